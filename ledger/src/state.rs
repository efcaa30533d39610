//! The ledger: the fold over certified wallet logs, and what it says about balances, orders,
//! supply and conservation.

use std::collections::{BTreeMap, BTreeSet};

use scrip_feed::{Entry, EntryId, FeedId, Hash, codec};
use serde::Serialize;

use crate::amount::{Amount, Currency};
use crate::certificate::Certificate;
use crate::error::Rejection;
use crate::verify::SignatureCheck;
use crate::wallet::{Effect, Outcome, OwnOrder, Returned, WalletState};

/// A wallet entry with its certificate (if it has one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifiedEntry {
    /// The entry, with its payload.
    pub entry: Entry,
    /// Its certificate.
    pub certificate: Option<Certificate>,
}

/// Where an order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum OrderStatus {
    /// In escrow, waiting for the receiver.
    Pending,
    /// Credited to the receiver.
    Accepted,
    /// Declined; in escrow until the sender reclaims it.
    Rejected,
    /// Returned to the sender after the receiver's rejection.
    Reclaimed,
    /// Returned to the sender by a cancel (an unconditional order the receiver had not
    /// accepted).
    Cancelled,
    /// Returned to the sender after its expiry.
    Refunded,
}

/// An order as the whole ledger sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderView {
    /// The sender.
    pub from: FeedId,
    /// The order's seq in the sender's log.
    pub seq: u64,
    /// The receiver.
    pub to: FeedId,
    /// The currency.
    pub currency: Currency,
    /// The amount.
    pub amount: Amount,
    /// Its status.
    pub status: OrderStatus,
    /// Its expiry, if any (none for a version-1 order).
    pub expiry: Option<scrip_feed::Timestamp>,
    /// Its hash lock, if any.
    pub condition: Option<crate::content::HashLock>,
}

/// Per currency: Σ balances, Σ escrow, Σ mints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Sum of all wallets' balances.
    pub balances: Amount,
    /// Sum of orders pending or rejected (not yet accepted or reclaimed).
    pub escrow: Amount,
    /// Sum of the issuer's mints.
    pub supply: Amount,
}

/// The ledger state: every wallet's state after its certified log. A pure function of the set
/// of certified entries (whatever order they arrive in).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LedgerState {
    wallets: BTreeMap<FeedId, WalletState>,
    /// The orders addressed to each wallet, by receiver: derived from `wallets` (so that one
    /// wallet's orders are found without looking at every wallet), not part of the canonical
    /// encoding.
    #[serde(skip)]
    incoming: BTreeMap<FeedId, BTreeSet<(FeedId, EntryId)>>,
}

/// Folds certified entries (of any wallets, in any order) into a ledger state.
///
/// Wallets are independent (each one's state depends on its own log only), so their logs are
/// folded in parallel on all cores; the result does not depend on how they are split.
// Long because: the fold of ledger.md section 6 in one pass: parallel signature checks, then the
// sequential replay.
pub fn fold(entries: Vec<CertifiedEntry>, check: &dyn SignatureCheck) -> LedgerState {
    // Group positions by wallet and order each log by seq. Entries are large: they are never
    // moved, only referred to.
    let mut logs: BTreeMap<FeedId, Vec<usize>> = BTreeMap::new();
    let mut run_author: Option<FeedId> = None;
    let mut run: Vec<usize> = Vec::new();
    for (i, certified) in entries.iter().enumerate() {
        let author = certified.entry.author();
        if run_author.is_some_and(|a| a != author)
            && let Some(a) = run_author
        {
            logs.entry(a).or_default().append(&mut run);
        }
        run_author = Some(author);
        run.push(i);
    }
    if let Some(a) = run_author {
        logs.entry(a).or_default().append(&mut run);
    }
    let key = |i: &usize| (entries[*i].entry.seq(), entries[*i].entry.id());
    for log in logs.values_mut() {
        if !log.is_sorted_by(|a, b| key(a) <= key(b)) {
            log.sort_by_key(key);
        }
        // The same entry offered twice counts once.
        log.dedup_by(|a, b| {
            entries[*a].entry.id() == entries[*b].entry.id()
                && entries[*a].certificate == entries[*b].certificate
        });
    }

    let total: usize = logs.values().map(Vec::len).sum();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let parts = if total < PARALLEL_FOLD_MIN { 1 } else { cores };
    // Deal whole wallets to `parts` groups, largest first, each to the lightest group.
    let mut by_size: Vec<Vec<usize>> = logs.into_values().collect();
    by_size.sort_by_key(|log| std::cmp::Reverse(log.len()));
    let mut groups: Vec<(usize, Vec<Vec<usize>>)> = (0..parts).map(|_| (0, Vec::new())).collect();
    for log in by_size {
        if let Some(lightest) = groups.iter_mut().min_by_key(|(size, _)| *size) {
            lightest.0 += log.len();
            lightest.1.push(log);
        }
    }
    let entries = &entries;
    let folded: Vec<Vec<WalletState>> = if parts == 1 {
        groups
            .into_iter()
            .map(|(_, g)| fold_group(entries, g, check))
            .collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = groups
                .into_iter()
                .map(|(_, group)| scope.spawn(move || fold_group(entries, group, check)))
                .collect();
            handles
                .into_iter()
                .map(|h| match h.join() {
                    Ok(states) => states,
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect()
        })
    };
    let wallets: BTreeMap<FeedId, WalletState> = folded
        .into_iter()
        .flatten()
        .map(|w| (w.wallet, w))
        .collect();
    let mut incoming: BTreeMap<FeedId, BTreeSet<(FeedId, EntryId)>> = BTreeMap::new();
    for wallet in wallets.values() {
        for (id, own) in &wallet.orders {
            incoming
                .entry(own.to)
                .or_default()
                .insert((wallet.wallet, *id));
        }
    }
    LedgerState { wallets, incoming }
}

/// Below this many entries the fold runs on one thread.
const PARALLEL_FOLD_MIN: usize = 20_000;

fn fold_group(
    entries: &[CertifiedEntry],
    logs: Vec<Vec<usize>>,
    check: &dyn SignatureCheck,
) -> Vec<WalletState> {
    logs.into_iter()
        .filter_map(|log| {
            let author = entries[*log.first()?].entry.author();
            let mut wallet = WalletState::new(author);
            for &i in &log {
                let certified = &entries[i];
                let decision = wallet.evaluate(
                    &certified.entry,
                    certified.certificate.as_ref(),
                    true,
                    check,
                );
                wallet.commit(&certified.entry, &decision);
            }
            Some(wallet)
        })
        .collect()
}

impl LedgerState {
    /// An empty ledger.
    pub fn new() -> LedgerState {
        LedgerState::default()
    }

    /// Applies one certified entry (the next of its wallet's log); equal to folding again with
    /// it. Returns what it did, or why it changed nothing.
    pub fn apply(
        &mut self,
        entry: &CertifiedEntry,
        check: &dyn SignatureCheck,
    ) -> Result<Effect, Rejection> {
        let author = entry.entry.author();
        let wallet = self
            .wallets
            .entry(author)
            .or_insert_with(|| WalletState::new(author));
        let decision = wallet.evaluate(&entry.entry, entry.certificate.as_ref(), true, check);
        wallet.commit(&entry.entry, &decision);
        if let Ok(Effect::Order { order, to, .. }) = &decision {
            self.incoming
                .entry(*to)
                .or_default()
                .insert((author, *order));
        }
        decision
    }

    /// The orders from or to `wallet`, with their status: like [`LedgerState::orders`], but
    /// looking only at that wallet's orders and those addressed to it.
    pub fn orders_of(&self, wallet: &FeedId) -> BTreeMap<EntryId, OrderView> {
        let mut orders = BTreeMap::new();
        let mut add = |from: &WalletState, id: &EntryId, own: &OwnOrder| {
            orders.insert(*id, self.view(from, id, own));
        };
        if let Some(own) = self.wallets.get(wallet) {
            for (id, order) in &own.orders {
                add(own, id, order);
            }
        }
        for (sender, id) in self.incoming.get(wallet).into_iter().flatten() {
            if let Some(from) = self.wallets.get(sender)
                && let Some(order) = from.orders.get(id)
            {
                add(from, id, order);
            }
        }
        orders
    }

    /// What the order `id` that `from` made is, and how it stands.
    fn view(&self, from: &WalletState, id: &EntryId, own: &OwnOrder) -> OrderView {
        let status = match own.returned {
            Some(Returned::Reclaimed { .. }) => OrderStatus::Reclaimed,
            Some(Returned::Cancelled { .. }) => OrderStatus::Cancelled,
            Some(Returned::Refunded { .. }) => OrderStatus::Refunded,
            None => match self
                .wallets
                .get(&own.to)
                .and_then(|receiver| receiver.resolved.get(id))
            {
                Some(r) if r.accepted => OrderStatus::Accepted,
                Some(_) => OrderStatus::Rejected,
                None => OrderStatus::Pending,
            },
        };
        OrderView {
            from: from.wallet,
            seq: own.seq,
            to: own.to,
            currency: own.currency,
            amount: own.amount,
            status,
            expiry: own.expiry,
            condition: own.condition,
        }
    }

    /// Would `entry` be valid as the next entry of its wallet? The question a notary asks before
    /// it votes (no certificate is needed yet). Pure.
    pub fn check(&self, entry: &Entry, check: &dyn SignatureCheck) -> Result<Effect, Rejection> {
        match self.wallets.get(&entry.author()) {
            Some(wallet) => wallet.evaluate(entry, None, false, check),
            None => WalletState::new(entry.author()).evaluate(entry, None, false, check),
        }
    }

    /// A wallet's state.
    pub fn wallet(&self, id: &FeedId) -> Option<&WalletState> {
        self.wallets.get(id)
    }

    /// Every wallet's state.
    pub fn wallets(&self) -> impl Iterator<Item = &WalletState> {
        self.wallets.values()
    }

    /// The outcome of a wallet's entry at `seq`.
    pub fn outcome(&self, wallet: &FeedId, seq: u64) -> Option<&Outcome> {
        let state = self.wallets.get(wallet)?;
        state
            .outcomes
            .binary_search_by_key(&seq, |(s, _)| *s)
            .ok()
            .map(|i| &state.outcomes[i].1)
    }

    /// Every non-zero balance, per (wallet, currency).
    pub fn balances(&self) -> BTreeMap<(FeedId, Currency), Amount> {
        self.wallets
            .values()
            .flat_map(|w| {
                w.balances
                    .iter()
                    .filter(|(_, a)| !a.is_zero())
                    .map(move |(c, a)| ((w.wallet, *c), *a))
            })
            .collect()
    }

    /// Every order made by a wallet of the ledger, with its status.
    pub fn orders(&self) -> BTreeMap<EntryId, OrderView> {
        let mut orders = BTreeMap::new();
        for wallet in self.wallets.values() {
            for (id, own) in &wallet.orders {
                orders.insert(*id, self.view(wallet, id, own));
            }
        }
        orders
    }

    /// Per currency: Σ balances, Σ escrow, Σ mints.
    pub fn totals(&self) -> BTreeMap<Currency, Totals> {
        let mut totals: BTreeMap<Currency, Totals> = BTreeMap::new();
        let mut add =
            |currency: &Currency, field: fn(&mut Totals) -> &mut Amount, amount: Amount| {
                let total = field(totals.entry(*currency).or_default());
                *total = Amount::from_minor(total.minor().saturating_add(amount.minor()));
            };
        for wallet in self.wallets.values() {
            for (currency, amount) in &wallet.balances {
                add(currency, |t| &mut t.balances, *amount);
            }
            for (currency, amount) in &wallet.minted {
                add(currency, |t| &mut t.supply, *amount);
            }
        }
        for order in self.orders().values() {
            if matches!(order.status, OrderStatus::Pending | OrderStatus::Rejected) {
                add(&order.currency, |t| &mut t.escrow, order.amount);
            }
        }
        totals
    }

    /// Wallets cited by this ledger's wallets (as senders of accepted or rejected orders) but
    /// not in it. Conservation only holds for a closed set.
    pub fn missing_wallets(&self) -> Vec<FeedId> {
        let mut missing: Vec<FeedId> = self
            .wallets
            .values()
            .flat_map(|w| w.resolved.values().map(|r| r.from))
            .filter(|from| !self.wallets.contains_key(from))
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }

    /// Contradictions between wallets' logs, which honest notaries never certify and which only
    /// a faulty quorum (more than f faulty notaries in one group) can produce: a credit citing
    /// an order its sender's log does not apply (money from nowhere), or a reclaim of an order
    /// its receiver did not reject. Each names the group that certified the cited entry. Empty
    /// for every history certified by honest quorums; an auditor holding several logs uses it
    /// to name a faulty group.
    ///
    /// A log shorter than the cited entry is only behind (a copy still replicating) and proves
    /// nothing. But a log that *reaches* the cited entry's seq proves something whatever it
    /// holds before it: an uncertified or invalid entry there (the fold stops), another entry at
    /// that seq (a fork), or the entry itself refused by the rules. In each case the cited
    /// entry's certificate vouches for something its own log does not support, so every break
    /// of conservation a set of logs shows is named here.
    pub fn inconsistencies(&self) -> Vec<String> {
        let mut found = Vec::new();
        let reaches = |wallet: &WalletState, seq: u64| {
            wallet.outcomes.last().is_some_and(|(last, _)| *last >= seq)
        };
        let group = |wallet: &WalletState| {
            wallet.notaries.as_ref().map_or_else(
                || "an unknown group".to_owned(),
                |set| format!("the group {}", set.describe()),
            )
        };
        for wallet in self.wallets.values() {
            for (order, resolution) in &wallet.resolved {
                let Some(sender) = self
                    .wallets
                    .get(&resolution.from)
                    .filter(|s| reaches(s, resolution.order_seq))
                else {
                    continue;
                };
                match sender.orders.get(order) {
                    Some(own)
                        if own.to == wallet.wallet
                            && own.currency == resolution.currency
                            && own.amount == resolution.amount => {}
                    _ => found.push(format!(
                        "{} resolved order {order} (#{} of {}), which {}'s log does not apply as \
                         a valid order: certified by {} against its own log",
                        wallet.wallet,
                        resolution.order_seq,
                        resolution.from,
                        resolution.from,
                        group(sender)
                    )),
                }
            }
            for (order, own) in &wallet.orders {
                let rejection_seq = match own.returned {
                    None => continue,
                    Some(Returned::Reclaimed { rejection_seq, .. }) => rejection_seq,
                    Some(Returned::Cancelled { seq } | Returned::Refunded { seq }) => {
                        // Taken back without the receiver: the receiver must not have accepted
                        // it. Both cite a fate certificate of the sender's group (a claim and a
                        // void), which only a group with more than f faulty notaries signs.
                        if let Some(receiver) = self.wallets.get(&own.to)
                            && let Some(r) = receiver.resolved.get(order)
                            && r.accepted
                        {
                            found.push(format!(
                                "order {order} of {} was both accepted by {} (#{}) and taken \
                                 back by its sender (#{seq}): {} signed both its claim and its \
                                 void",
                                wallet.wallet,
                                own.to,
                                r.seq,
                                group(wallet)
                            ));
                        }
                        continue;
                    }
                };
                if let Some(receiver) = self
                    .wallets
                    .get(&own.to)
                    .filter(|r| reaches(r, rejection_seq))
                    && !matches!(receiver.resolved.get(order), Some(r) if !r.accepted)
                {
                    found.push(format!(
                        "{} reclaimed order {order}, which {} did not reject: the rejection it \
                         cites (#{}) was certified by {} against its own log",
                        wallet.wallet,
                        own.to,
                        rejection_seq,
                        group(receiver)
                    ));
                }
            }
        }
        found
    }

    /// Checks conservation: for every currency, Σ balances + Σ escrow = Σ mints. Meaningful for
    /// a closed set of logs (see [`LedgerState::missing_wallets`]).
    pub fn check_conservation(&self) -> Result<(), String> {
        let missing = self.missing_wallets();
        if !missing.is_empty() {
            return Err(format!(
                "not a closed set of logs: {} cited wallet(s) missing",
                missing.len()
            ));
        }
        for (currency, t) in self.totals() {
            let held = u128::from(t.balances.minor()) + u128::from(t.escrow.minor());
            if held != u128::from(t.supply.minor()) {
                return Err(format!(
                    "{currency}: balances {} + escrow {} != supply {}",
                    t.balances, t.escrow, t.supply
                ));
            }
        }
        Ok(())
    }

    /// The canonical encoding of the state (postcard; maps in key order).
    pub fn encode(&self) -> Vec<u8> {
        codec::encode("ledger state", self).unwrap_or_default()
    }

    /// blake3 of [`LedgerState::encode`].
    pub fn hash(&self) -> Hash {
        Hash::of(&self.encode())
    }
}
