//! The audit: replay one wallet's log from its bytes, re-checking every signature, hash link,
//! certificate, citation and balance step, and report each step; stop at the first violation
//! with its position and reason.
//!
//! Signatures are checked first, in parallel on all cores ([`precompute`]); the replay itself
//! is sequential and uses those results (anything not precomputed is checked on the spot).
//! A log too long to hold is fed to an [`Auditor`] in parts, each part's signatures checked
//! the same way: the same report, holding the wallet's state and the steps but no entries.

use std::thread;

use scrip_feed::{Entry, FeedId};
use serde::{Deserialize, Serialize};

use crate::certificate::NotarySet;
use crate::content::WalletEntry;
use crate::error::Rejection;
use crate::state::CertifiedEntry;
use crate::verify::{Gather, Precomputed, SignatureCheck, each_signature};
use crate::wallet::{Effect, WalletState};

/// One replayed entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditStep {
    /// Its seq.
    pub seq: u64,
    /// Its entry id.
    pub entry: String,
    /// What it is (`genesis`, `mint`, `order`, `accept`, `reject`, `reclaim`, `cancel`,
    /// `refund`).
    pub kind: String,
    /// The other wallet involved, if any.
    pub counterparty: Option<String>,
    /// The order concerned, if any.
    pub order: Option<String>,
    /// The currency, if money moved or could have.
    pub currency: Option<String>,
    /// The amount (decimal text), if any.
    pub amount: Option<String>,
    /// The change to this wallet's balance: `+`, `-` or none.
    pub direction: Option<String>,
    /// The wallet's balance in that currency after the step (decimal text).
    pub balance_after: Option<String>,
    /// An order's expiry, in milliseconds since the Unix epoch (none for a version-1 order).
    #[serde(default)]
    pub expiry: Option<u64>,
    /// An order's hash lock (hex), if it has one.
    #[serde(default)]
    pub condition: Option<String>,
    /// The preimage an accept reveals (hex), for a hash-locked order.
    #[serde(default)]
    pub preimage: Option<String>,
}

/// A final balance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceLine {
    /// The currency.
    pub currency: String,
    /// The amount (decimal text).
    pub amount: String,
}

/// The audit's conclusion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Every entry checked out.
    Sound,
    /// The first entry that did not.
    Violation {
        /// Its position.
        seq: u64,
        /// A stable code for the rule broken.
        code: String,
        /// The reason, for humans.
        reason: String,
    },
}

/// The report of [`audit`], serializable (JSON for the CLI).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// The audited wallet.
    pub wallet: String,
    /// Entries replayed (up to and including a violation).
    pub entries: u64,
    /// Its notaries (from its genesis).
    pub notaries: Vec<String>,
    /// Votes needed per certificate.
    pub quorum: usize,
    /// One step per entry replayed.
    pub steps: Vec<AuditStep>,
    /// Balances after the last sound entry.
    pub balances: Vec<BalanceLine>,
    /// Sound, or the first violation.
    pub verdict: Verdict,
}

impl AuditReport {
    /// True if the log checked out.
    pub fn is_sound(&self) -> bool {
        self.verdict == Verdict::Sound
    }
}

/// Audits `wallet`'s log (its certified entries with payloads; order does not matter), checking
/// every signature (in parallel across cores).
pub fn audit(wallet: &FeedId, log: &[CertifiedEntry]) -> AuditReport {
    let precomputed = precompute(log);
    audit_with(wallet, log, &precomputed)
}

/// [`audit`] with signatures checked by `check`.
pub fn audit_with(
    wallet: &FeedId,
    log: &[CertifiedEntry],
    check: &dyn SignatureCheck,
) -> AuditReport {
    let mut sorted: Vec<&CertifiedEntry> = log.iter().collect();
    sorted.sort_by_key(|e| e.entry.seq().get());
    let mut auditor = Auditor::new(*wallet);
    auditor.replay(sorted, check);
    auditor.finish()
}

/// An audit fed a wallet's log in parts ([`Auditor::push`]), for a log too long to hold: it
/// keeps the wallet's state and the report's steps, not the entries. Pushing the whole log in
/// parts of any sizes, in seq order, gives exactly [`audit`]'s report.
#[derive(Debug)]
pub struct Auditor {
    wallet: FeedId,
    state: WalletState,
    steps: Vec<AuditStep>,
    verdict: Option<Verdict>,
}

impl Auditor {
    /// An audit of `wallet` that has replayed nothing yet.
    pub fn new(wallet: FeedId) -> Auditor {
        Auditor {
            wallet,
            state: WalletState::new(wallet),
            steps: Vec::new(),
            verdict: None,
        }
    }

    /// Replays `part`, the entries that follow those pushed before, in seq order, its
    /// signatures checked first in parallel on all cores. Returns false once the audit has
    /// stopped at a violation: nothing pushed after it is looked at.
    pub fn push(&mut self, part: &[CertifiedEntry]) -> bool {
        let set = self.state.notaries.clone().or_else(|| genesis_set(part));
        let precomputed = precompute_with(part, set.as_ref());
        self.replay(part, &precomputed)
    }

    /// [`Auditor::push`] with signatures checked by `check`.
    pub fn push_with(&mut self, part: &[CertifiedEntry], check: &dyn SignatureCheck) -> bool {
        self.replay(part, check)
    }

    fn replay<'a>(
        &mut self,
        part: impl IntoIterator<Item = &'a CertifiedEntry>,
        check: &dyn SignatureCheck,
    ) -> bool {
        if self.verdict.is_some() {
            return false;
        }
        for certified in part {
            let entry = &certified.entry;
            let decision = self
                .state
                .evaluate(entry, certified.certificate.as_ref(), true, check);
            self.state.commit(entry, &decision);
            match decision {
                Ok(effect) => self.steps.push(step(entry, &effect, &self.state)),
                Err(rejection) => {
                    self.steps.push(bare_step(entry));
                    self.verdict = Some(violation(entry.seq().get(), &rejection));
                    return false;
                }
            }
        }
        true
    }

    /// The report: sound if every entry pushed checked out (a log with no entry has no
    /// genesis: a violation at seq 1), else the first violation.
    pub fn finish(self) -> AuditReport {
        let verdict = match self.verdict {
            Some(verdict) => verdict,
            None if self.steps.is_empty() => violation(1, &Rejection::MissingGenesis),
            None => Verdict::Sound,
        };
        let notaries = self.state.notaries.as_ref();
        AuditReport {
            wallet: self.wallet.to_string(),
            entries: self.steps.len() as u64,
            notaries: notaries
                .map(|set| set.members().iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            quorum: notaries.map_or(0, NotarySet::quorum),
            steps: self.steps,
            balances: self
                .state
                .balances
                .iter()
                .map(|(currency, amount)| BalanceLine {
                    currency: currency.to_string(),
                    amount: amount.display(currency.decimals),
                })
                .collect(),
            verdict,
        }
    }
}

fn violation(seq: u64, rejection: &Rejection) -> Verdict {
    Verdict::Violation {
        seq,
        code: rejection.code().to_owned(),
        reason: rejection.to_string(),
    }
}

fn kind_of(entry: &Entry) -> String {
    entry
        .payload()
        .and_then(|p| WalletEntry::from_payload(p).ok())
        .map_or_else(|| "unreadable".to_owned(), |c| c.kind().to_owned())
}

/// A step with only the entry's seq, id and kind (a violating entry's, or the start of one).
fn bare_step(entry: &Entry) -> AuditStep {
    AuditStep {
        seq: entry.seq().get(),
        entry: entry.id().to_string(),
        kind: kind_of(entry),
        counterparty: None,
        order: None,
        currency: None,
        amount: None,
        direction: None,
        balance_after: None,
        expiry: None,
        condition: None,
        preimage: None,
    }
}

fn step(entry: &Entry, effect: &Effect, state: &WalletState) -> AuditStep {
    let mut step = bare_step(entry);
    match effect {
        Effect::Genesis { .. } => {}
        Effect::Mint { .. } => {}
        Effect::Order {
            order,
            to,
            expiry,
            condition,
            ..
        } => {
            step.order = Some(order.to_string());
            step.counterparty = Some(to.to_string());
            step.expiry = expiry.map(|e| e.as_millis());
            step.condition = condition.map(|c| c.to_hex());
        }
        Effect::Accept { order, from, .. } | Effect::Reject { order, from, .. } => {
            step.order = Some(order.to_string());
            step.counterparty = Some(from.to_string());
            if let Some(WalletEntry::Accept(accept)) = entry
                .payload()
                .and_then(|p| WalletEntry::from_payload(p).ok())
            {
                step.preimage = accept.preimage.as_ref().map(|p| p.to_hex());
            }
        }
        Effect::Reclaim { order, .. }
        | Effect::Cancel { order, .. }
        | Effect::Refund { order, .. } => step.order = Some(order.to_string()),
    }
    let currency = match effect {
        Effect::Genesis { .. } => None,
        Effect::Mint { currency, amount }
        | Effect::Order {
            currency, amount, ..
        }
        | Effect::Accept {
            currency, amount, ..
        }
        | Effect::Reject {
            currency, amount, ..
        }
        | Effect::Reclaim {
            currency, amount, ..
        }
        | Effect::Cancel {
            currency, amount, ..
        }
        | Effect::Refund {
            currency, amount, ..
        } => Some((currency, amount)),
    };
    if let Some((currency, amount)) = currency {
        step.currency = Some(currency.to_string());
        step.amount = Some(amount.display(currency.decimals));
        step.balance_after = Some(state.balance(currency).display(currency.decimals));
    }
    step.direction = effect
        .balance_change()
        .map(|(_, _, credit)| if credit { "+" } else { "-" }.to_owned());
    step
}

/// Checks every signature of a log (entries, their certificates, and everything their
/// citations embed) in parallel on all cores, for a later sequential replay.
pub fn precompute(log: &[CertifiedEntry]) -> Precomputed {
    precompute_with(log, genesis_set(log).as_ref())
}

/// The notary set named by the genesis among `log`, if it holds one that names a valid set.
fn genesis_set(log: &[CertifiedEntry]) -> Option<NotarySet> {
    log.iter()
        .find(|e| e.entry.seq().get() == 1)
        .and_then(|e| e.entry.payload())
        .and_then(|p| WalletEntry::from_payload(p).ok())
        .and_then(|c| match c {
            WalletEntry::Genesis(g) => NotarySet::new(&g.notaries).ok(),
            _ => None,
        })
}

/// [`precompute`] for a part of a wallet's log (its genesis not among it), whose notary set is
/// `set` (certificates are checked only with one).
pub fn precompute_with(log: &[CertifiedEntry], set: Option<&NotarySet>) -> Precomputed {
    let certificates = set.is_some();
    let cores = thread::available_parallelism().map_or(1, usize::from);
    let chunk = log.len().div_ceil(cores).max(1);
    let parts: Vec<Precomputed> = thread::scope(|scope| {
        let handles: Vec<_> = log
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let gather = Gather::default();
                    for certified in part {
                        each_signature(certified, certificates, &gather);
                    }
                    gather.verify()
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut all = Precomputed::default();
    for part in parts {
        all.extend(part);
    }
    all
}
