//! One wallet's state, and the rules for its next entry: pure functions of its certified log.
//!
//! Every balance change of a wallet sits in its own log (credits arrive by its `Accept` and
//! `Reclaim` entries, which embed the certified foreign entries they cite), so a wallet's state
//! depends on its own log only. That is why the fold is order-independent and the audit is a
//! replay.

use std::collections::BTreeMap;

use scrip_feed::validate::validate_link;
use scrip_feed::{Entry, EntryId, FeedId, Head, Seq, Timestamp};
use serde::Serialize;

use crate::amount::{Amount, Currency, CurrencyCode};
use crate::certificate::{Certificate, NotarySet, check_overlap};
use crate::content::{HashLock, MAX_MEMO_BYTES, MAX_REASON_BYTES, OrderRef, WalletEntry};
use crate::error::{Rejection, currency_text, feed_text, id_text};
use crate::fate::{Fate, FateCertificate, FateSubject, check_claim, check_fate};
use crate::verify::{SignatureCheck, certify, verify_citation};

/// An order this wallet made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OwnOrder {
    /// Its seq.
    pub seq: u64,
    /// The receiver.
    pub to: FeedId,
    /// The currency.
    pub currency: Currency,
    /// The amount.
    pub amount: Amount,
    /// When it expires (none for a version-1 order).
    pub expiry: Option<Timestamp>,
    /// Its hash lock, if any.
    pub condition: Option<HashLock>,
    /// How its escrow came back to this wallet, if it did.
    pub returned: Option<Returned>,
}

/// How an order's escrow came back to its sender (the sender's end of an order; the
/// receiver's ends, accept and reject, are in the receiver's log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Returned {
    /// Reclaimed after the receiver's rejection.
    Reclaimed {
        /// The seq of the reclaim.
        seq: u64,
        /// The seq of the receiver's rejection it cites.
        rejection_seq: u64,
    },
    /// Cancelled (an unconditional order, not accepted).
    Cancelled {
        /// The seq of the cancel.
        seq: u64,
    },
    /// Refunded after its expiry.
    Refunded {
        /// The seq of the refund.
        seq: u64,
    },
}

/// How this wallet resolved an order addressed to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// The sender.
    pub from: FeedId,
    /// The order's seq in the sender's log.
    pub order_seq: u64,
    /// The currency.
    pub currency: Currency,
    /// The amount.
    pub amount: Amount,
    /// Accepted (credited) or rejected.
    pub accepted: bool,
    /// The seq of the accept or reject.
    pub seq: u64,
}

/// What an applied entry did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Effect {
    /// The wallet's notaries were set.
    Genesis {
        /// The set.
        notaries: NotarySet,
    },
    /// Money created.
    Mint {
        /// The currency.
        currency: Currency,
        /// The amount.
        amount: Amount,
    },
    /// Money moved into escrow for `to`.
    Order {
        /// The order id.
        order: EntryId,
        /// The receiver.
        to: FeedId,
        /// The currency.
        currency: Currency,
        /// The amount.
        amount: Amount,
        /// Its expiry, if any.
        expiry: Option<Timestamp>,
        /// Its hash lock, if any.
        condition: Option<HashLock>,
    },
    /// An order credited to this wallet.
    Accept {
        /// The order id.
        order: EntryId,
        /// The order's seq in the sender's log.
        order_seq: u64,
        /// The sender.
        from: FeedId,
        /// The currency.
        currency: Currency,
        /// The amount.
        amount: Amount,
    },
    /// An order declined.
    Reject {
        /// The order id.
        order: EntryId,
        /// The order's seq in the sender's log.
        order_seq: u64,
        /// The sender.
        from: FeedId,
        /// The currency.
        currency: Currency,
        /// The amount.
        amount: Amount,
    },
    /// A rejected order's escrow returned to this wallet.
    Reclaim {
        /// The order id.
        order: EntryId,
        /// The seq of the receiver's rejection.
        rejection_seq: u64,
        /// The currency.
        currency: Currency,
        /// The amount.
        amount: Amount,
    },
    /// An unconditional order's escrow returned without the receiver.
    Cancel {
        /// The order id.
        order: EntryId,
        /// The currency.
        currency: Currency,
        /// The amount.
        amount: Amount,
    },
    /// An expired order's escrow returned without the receiver.
    Refund {
        /// The order id.
        order: EntryId,
        /// The currency.
        currency: Currency,
        /// The amount.
        amount: Amount,
    },
}

impl Effect {
    /// The currency and the change to this wallet's balance (`+`/`-`), if any.
    pub fn balance_change(&self) -> Option<(&Currency, Amount, bool)> {
        match self {
            Effect::Genesis { .. } | Effect::Reject { .. } => None,
            Effect::Mint {
                currency, amount, ..
            }
            | Effect::Accept {
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
            } => Some((currency, *amount, true)),
            Effect::Order {
                currency, amount, ..
            } => Some((currency, *amount, false)),
        }
    }
}

/// The outcome of one certified entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// It counted.
    Applied,
    /// It changed nothing, for this reason (boxed: most entries are applied, and a wallet keeps
    /// an outcome per entry).
    Rejected(Box<Rejection>),
}

/// One wallet's state after a prefix of its certified log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WalletState {
    /// The wallet.
    pub wallet: FeedId,
    /// Its notaries (after its genesis).
    pub notaries: Option<NotarySet>,
    /// The seq its next entry must have.
    pub next_seq: u64,
    /// Its latest entry.
    pub head: Option<EntryId>,
    /// True once the log stopped (an uncertified entry, a gap, a broken link, a bad genesis):
    /// nothing after it counts.
    pub halted: bool,
    /// Balances per currency.
    pub balances: BTreeMap<Currency, Amount>,
    /// Total minted per currency (only the issuer mints).
    pub minted: BTreeMap<Currency, Amount>,
    /// Decimals of the codes this wallet issued, fixed by their first mint.
    pub decimals: BTreeMap<CurrencyCode, u8>,
    /// Orders this wallet made.
    pub orders: BTreeMap<EntryId, OwnOrder>,
    /// Orders addressed to this wallet that it accepted or rejected.
    pub resolved: BTreeMap<EntryId, Resolution>,
    /// The outcome of every entry considered, in seq order.
    pub outcomes: Vec<(u64, Outcome)>,
}

fn add(balance: Option<&Amount>, amount: Amount) -> Result<Amount, Rejection> {
    balance
        .copied()
        .unwrap_or(Amount::ZERO)
        .checked_add(amount)
        .ok_or(Rejection::Overflow)
}

fn too_long(field: &'static str, text: &str, max: usize) -> Result<(), Rejection> {
    if text.len() > max {
        return Err(Rejection::TooLong {
            field,
            len: text.len(),
            max,
        });
    }
    Ok(())
}

fn bad_content(seq: u64, reason: impl ToString) -> Rejection {
    Rejection::NotWalletContent {
        seq,
        reason: reason.to_string(),
    }
}

impl WalletState {
    /// An empty wallet (before its genesis).
    pub fn new(wallet: FeedId) -> WalletState {
        WalletState {
            wallet,
            notaries: None,
            next_seq: 1,
            head: None,
            halted: false,
            balances: BTreeMap::new(),
            minted: BTreeMap::new(),
            decimals: BTreeMap::new(),
            orders: BTreeMap::new(),
            resolved: BTreeMap::new(),
            outcomes: Vec::new(),
        }
    }

    /// The balance in `currency`.
    pub fn balance(&self, currency: &Currency) -> Amount {
        self.balances.get(currency).copied().unwrap_or(Amount::ZERO)
    }

    /// Would `entry` be valid as this wallet's next entry? With `certificate = Some`, also
    /// checks that it certifies the entry; with `None`, the question a notary asks before it
    /// votes. Pure: changes nothing.
    ///
    /// Rules, in order: the log has not stopped and the entry is the next seq
    /// ([`Rejection::Gap`]); it links to the head, its payload matches, its signature verifies
    /// ([`Rejection::InvalidEntry`]); it is wallet content ([`Rejection::NotWalletContent`], or
    /// [`Rejection::MissingGenesis`] at seq 1); seq 1 is a genesis with a valid notary set
    /// ([`Rejection::BadNotarySet`]); the certificate, if required, verifies
    /// ([`Rejection::NotCertified`], [`Rejection::InvalidCertificate`]); then the ledger rules
    /// of its kind.
    pub fn evaluate(
        &self,
        entry: &Entry,
        certificate: Option<&Certificate>,
        require_certificate: bool,
        check: &dyn SignatureCheck,
    ) -> Result<Effect, Rejection> {
        let seq = entry.seq().get();
        if self.halted || seq != self.next_seq {
            return Err(Rejection::Gap {
                expected: self.next_seq,
                found: seq,
            });
        }
        let invalid = |e: scrip_feed::Error| Rejection::InvalidEntry {
            seq,
            reason: e.to_string(),
        };
        let head = self.head.map(|id| Head {
            seq: Seq::new(seq.saturating_sub(1)),
            id,
        });
        validate_link(&self.wallet, head.as_ref(), entry).map_err(invalid)?;
        let Some(payload) = entry.payload() else {
            return Err(Rejection::InvalidEntry {
                seq,
                reason: "the payload is missing".into(),
            });
        };
        check.entry(entry).map_err(invalid)?;
        let content = match WalletEntry::from_payload(payload) {
            Ok(content) => content,
            Err(_) if seq == 1 => return Err(Rejection::MissingGenesis),
            Err(e) => return Err(bad_content(seq, e)),
        };
        let genesis_set;
        let set = match (&content, &self.notaries) {
            (WalletEntry::Genesis(genesis), None) => {
                genesis_set =
                    NotarySet::new(&genesis.notaries).map_err(|e| Rejection::BadNotarySet {
                        reason: e.to_string(),
                    })?;
                &genesis_set
            }
            (_, None) => return Err(Rejection::MissingGenesis),
            (_, Some(set)) => set,
        };
        if require_certificate {
            let certificate = certificate.ok_or(Rejection::NotCertified { seq })?;
            certify(certificate, set, entry, check)
                .map_err(|error| Rejection::InvalidCertificate { seq, error })?;
        }
        self.rules(entry, &content, set, check)
    }

    /// The ledger rules of each kind of entry.
    // Long because: one arm per entry kind, mirroring ledger.md section 3 row by row, so that the
    // rules read against the spec in one place.
    fn rules(
        &self,
        entry: &Entry,
        content: &WalletEntry,
        set: &NotarySet,
        check: &dyn SignatureCheck,
    ) -> Result<Effect, Rejection> {
        let seq = entry.seq().get();
        match content {
            WalletEntry::Genesis(_) => {
                if self.notaries.is_some() {
                    return Err(Rejection::GenesisNotFirst);
                }
                // `evaluate` built `set` from this genesis.
                Ok(Effect::Genesis {
                    notaries: set.clone(),
                })
            }
            WalletEntry::Mint(mint) => {
                let currency = &mint.currency;
                currency.check().map_err(|e| bad_content(seq, e))?;
                if currency.issuer != self.wallet {
                    return Err(Rejection::MintByNonIssuer {
                        currency: currency_text(currency),
                        issuer: feed_text(&currency.issuer),
                    });
                }
                if mint.amount.is_zero() {
                    return Err(Rejection::ZeroAmount);
                }
                if let Some(&first) = self.decimals.get(&currency.code)
                    && first != currency.decimals
                {
                    return Err(Rejection::DecimalsMismatch {
                        code: currency.code.to_string(),
                        first,
                        found: currency.decimals,
                    });
                }
                add(self.balances.get(currency), mint.amount)?;
                add(self.minted.get(currency), mint.amount)?;
                Ok(Effect::Mint {
                    currency: *currency,
                    amount: mint.amount,
                })
            }
            WalletEntry::Order(order) => {
                order.currency.check().map_err(|e| bad_content(seq, e))?;
                if order.amount.is_zero() {
                    return Err(Rejection::ZeroAmount);
                }
                if order.to == self.wallet {
                    return Err(Rejection::SelfPayment);
                }
                too_long("memo", &order.memo, MAX_MEMO_BYTES)?;
                let Some(&balance) = self.balances.get(&order.currency) else {
                    return Err(Rejection::UnknownCurrency {
                        currency: currency_text(&order.currency),
                    });
                };
                if order.amount > balance {
                    return Err(Rejection::Overspend {
                        currency: currency_text(&order.currency),
                        balance,
                        amount: order.amount,
                    });
                }
                Ok(Effect::Order {
                    order: entry.id(),
                    to: order.to,
                    currency: order.currency,
                    amount: order.amount,
                    expiry: order.expiry,
                    condition: order.condition,
                })
            }
            WalletEntry::Accept(accept) => {
                let (cited, order) = self.cited_order(&accept.order, check)?;
                let order_text = || id_text(&cited.id);
                match (&order.condition, &accept.preimage) {
                    (None, None) => {}
                    (Some(lock), Some(preimage)) if lock.opens(preimage) => {}
                    (Some(_), Some(_)) => {
                        return Err(Rejection::WrongPreimage {
                            order: order_text(),
                        });
                    }
                    (Some(_), None) => {
                        return Err(Rejection::MissingPreimage {
                            order: order_text(),
                        });
                    }
                    (None, Some(_)) => {
                        return Err(Rejection::UnexpectedPreimage {
                            order: order_text(),
                        });
                    }
                }
                // An order with an expiry is accepted only with its claim certificate from the
                // sender's notaries (ledger.md section 5a); a version-1 order is never claimed.
                match (&order.expiry, &accept.claim) {
                    (Some(_), Some(claim)) => {
                        let subject = FateSubject {
                            wallet: cited.author,
                            order: cited.id,
                            fate: Fate::Claimed,
                        };
                        check_claim(claim, &cited.notaries, set, &subject, check).map_err(
                            |error| Rejection::InvalidFate {
                                order: order_text(),
                                error,
                            },
                        )?;
                    }
                    (Some(_), None) => {
                        return Err(Rejection::MissingClaim {
                            order: order_text(),
                        });
                    }
                    (None, Some(_)) => {
                        return Err(Rejection::UnexpectedClaim {
                            order: order_text(),
                        });
                    }
                    (None, None) => {}
                }
                check_overlap(&cited.notaries, set).map_err(|(overlap, required)| {
                    Rejection::OverlapTooSmall {
                        overlap,
                        required,
                        sender_set: cited.notaries.describe(),
                        receiver_set: set.describe(),
                    }
                })?;
                add(self.balances.get(&order.currency), order.amount)?;
                Ok(Effect::Accept {
                    order: cited.id,
                    order_seq: cited.seq.get(),
                    from: cited.author,
                    currency: order.currency,
                    amount: order.amount,
                })
            }
            WalletEntry::Reject(reject) => {
                too_long("reason", &reject.reason, MAX_REASON_BYTES)?;
                let (cited, order) = self.cited_order(&reject.order, check)?;
                Ok(Effect::Reject {
                    order: cited.id,
                    order_seq: cited.seq.get(),
                    from: cited.author,
                    currency: order.currency,
                    amount: order.amount,
                })
            }
            WalletEntry::Cancel(cancel) => {
                let own = self.own_order(&cancel.order)?;
                if own.expiry.is_none() {
                    return Err(Rejection::NoExpiry {
                        order: id_text(&cancel.order.id),
                    });
                }
                if own.condition.is_some() {
                    return Err(Rejection::ConditionalCancel {
                        order: id_text(&cancel.order.id),
                    });
                }
                self.check_void(&cancel.order, &cancel.void, Fate::Cancelled, set, check)?;
                add(self.balances.get(&own.currency), own.amount)?;
                Ok(Effect::Cancel {
                    order: cancel.order.id,
                    currency: own.currency,
                    amount: own.amount,
                })
            }
            WalletEntry::Refund(refund) => {
                let own = self.own_order(&refund.order)?;
                if own.expiry.is_none() {
                    return Err(Rejection::NoExpiry {
                        order: id_text(&refund.order.id),
                    });
                }
                self.check_void(&refund.order, &refund.void, Fate::Expired, set, check)?;
                add(self.balances.get(&own.currency), own.amount)?;
                Ok(Effect::Refund {
                    order: refund.order.id,
                    currency: own.currency,
                    amount: own.amount,
                })
            }
            WalletEntry::Reclaim(reclaim) => {
                let order_text = id_text(&reclaim.order.id);
                let own = self.own_order(&reclaim.order)?;
                let cited = verify_citation(&reclaim.rejection, check)?;
                let WalletEntry::Reject(rejection) = &cited.content else {
                    return Err(Rejection::ReclaimWithoutRejection {
                        order: order_text,
                        reason: format!("the cited entry is a {}", cited.content.kind()),
                    });
                };
                let rejected = rejection.order.cited_id();
                if rejected != reclaim.order.id {
                    return Err(Rejection::ReclaimWithoutRejection {
                        order: order_text,
                        reason: format!("the cited rejection is of order {rejected}"),
                    });
                }
                if cited.author != own.to {
                    return Err(Rejection::NotTheReceiversRejection {
                        order: order_text,
                        by: feed_text(&cited.author),
                        to: feed_text(&own.to),
                    });
                }
                check_overlap(&cited.notaries, set).map_err(|(overlap, required)| {
                    Rejection::OverlapTooSmall {
                        overlap,
                        required,
                        sender_set: cited.notaries.describe(),
                        receiver_set: set.describe(),
                    }
                })?;
                add(self.balances.get(&own.currency), own.amount)?;
                Ok(Effect::Reclaim {
                    order: reclaim.order.id,
                    rejection_seq: cited.seq.get(),
                    currency: own.currency,
                    amount: own.amount,
                })
            }
        }
    }

    /// A void certificate of this wallet's own order, under its own set.
    fn check_void(
        &self,
        order: &OrderRef,
        void: &FateCertificate,
        fate: Fate,
        set: &NotarySet,
        check: &dyn SignatureCheck,
    ) -> Result<(), Rejection> {
        let subject = FateSubject {
            wallet: self.wallet,
            order: order.id,
            fate,
        };
        check_fate(void, set, &subject, check).map_err(|error| Rejection::InvalidFate {
            order: id_text(&order.id),
            error,
        })
    }

    /// This wallet's own order at `order`'s seq, whose escrow it has not taken back yet.
    fn own_order(&self, order: &OrderRef) -> Result<&OwnOrder, Rejection> {
        let order_text = || id_text(&order.id);
        let own = self
            .orders
            .get(&order.id)
            .filter(|o| o.seq == order.seq.get())
            .ok_or_else(|| Rejection::UnknownOrder {
                order: order_text(),
            })?;
        if own.returned.is_some() {
            return Err(Rejection::DoubleReclaim {
                order: order_text(),
            });
        }
        Ok(own)
    }

    /// The order cited by an accept or reject, checked: a certified order, addressed to this
    /// wallet, not yet resolved by it.
    fn cited_order(
        &self,
        citation: &crate::content::Citation,
        check: &dyn SignatureCheck,
    ) -> Result<(crate::verify::Cited, crate::content::Order), Rejection> {
        let cited = verify_citation(citation, check)?;
        let WalletEntry::Order(order) = &cited.content else {
            return Err(Rejection::NotAnOrder);
        };
        let order = order.clone();
        if order.to != self.wallet {
            return Err(Rejection::NotAddressedToYou {
                order: id_text(&cited.id),
                to: feed_text(&order.to),
            });
        }
        if self.resolved.contains_key(&cited.id) {
            return Err(Rejection::AlreadyResolved {
                order: id_text(&cited.id),
            });
        }
        order
            .currency
            .check()
            .map_err(|e| bad_content(cited.seq.get(), e))?;
        Ok((cited, order))
    }

    /// Records the outcome of `entry` (as decided by [`WalletState::evaluate`]) and applies its
    /// effect. A rejected entry changes nothing but its position; a halting rejection stops the
    /// log.
    pub fn commit(&mut self, entry: &Entry, decision: &Result<Effect, Rejection>) {
        let seq = entry.seq().get();
        match decision {
            Ok(effect) => {
                self.apply_effect(entry, effect);
                self.advance(entry);
                self.outcomes.push((seq, Outcome::Applied));
            }
            Err(rejection) => {
                if rejection.halts() {
                    self.halted = true;
                } else {
                    self.advance(entry);
                }
                self.outcomes
                    .push((seq, Outcome::Rejected(Box::new(rejection.clone()))));
            }
        }
    }

    fn advance(&mut self, entry: &Entry) {
        self.next_seq = entry.seq().get().saturating_add(1);
        self.head = Some(entry.id());
    }

    fn credit(&mut self, currency: &Currency, amount: Amount) {
        let balance = self.balances.entry(*currency).or_insert(Amount::ZERO);
        // Checked in `rules`; saturating keeps this total even if called out of order.
        *balance = Amount::from_minor(balance.minor().saturating_add(amount.minor()));
    }

    fn apply_effect(&mut self, entry: &Entry, effect: &Effect) {
        match effect {
            Effect::Genesis { notaries } => self.notaries = Some(notaries.clone()),
            Effect::Mint { currency, amount } => {
                self.credit(currency, *amount);
                let minted = self.minted.entry(*currency).or_insert(Amount::ZERO);
                *minted = Amount::from_minor(minted.minor().saturating_add(amount.minor()));
                self.decimals
                    .entry(currency.code)
                    .or_insert(currency.decimals);
            }
            Effect::Order {
                order,
                to,
                currency,
                amount,
                expiry,
                condition,
            } => {
                if let Some(balance) = self.balances.get_mut(currency) {
                    *balance = Amount::from_minor(balance.minor().saturating_sub(amount.minor()));
                }
                self.orders.insert(
                    *order,
                    OwnOrder {
                        seq: entry.seq().get(),
                        to: *to,
                        currency: *currency,
                        amount: *amount,
                        expiry: *expiry,
                        condition: *condition,
                        returned: None,
                    },
                );
            }
            Effect::Accept {
                order,
                order_seq,
                from,
                currency,
                amount,
            }
            | Effect::Reject {
                order,
                order_seq,
                from,
                currency,
                amount,
            } => {
                let accepted = matches!(effect, Effect::Accept { .. });
                if accepted {
                    self.credit(currency, *amount);
                }
                self.resolved.insert(
                    *order,
                    Resolution {
                        from: *from,
                        order_seq: *order_seq,
                        currency: *currency,
                        amount: *amount,
                        accepted,
                        seq: entry.seq().get(),
                    },
                );
            }
            Effect::Reclaim {
                order,
                rejection_seq,
                currency,
                amount,
            } => {
                self.credit(currency, *amount);
                if let Some(own) = self.orders.get_mut(order) {
                    own.returned = Some(Returned::Reclaimed {
                        seq: entry.seq().get(),
                        rejection_seq: *rejection_seq,
                    });
                }
            }
            Effect::Cancel {
                order,
                currency,
                amount,
            }
            | Effect::Refund {
                order,
                currency,
                amount,
            } => {
                self.credit(currency, *amount);
                let seq = entry.seq().get();
                if let Some(own) = self.orders.get_mut(order) {
                    own.returned = Some(if matches!(effect, Effect::Cancel { .. }) {
                        Returned::Cancelled { seq }
                    } else {
                        Returned::Refunded { seq }
                    });
                }
            }
        }
    }
}
