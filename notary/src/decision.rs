//! The notary's decision: a pure state machine over its view of each wallet's certified prefix
//! and the slots it voted for.
//!
//! For a proposed entry at slot (wallet, seq), in order:
//!
//! 1. certified entries the proposal carries (a missing prefix) are verified and learned; one
//!    that does not follow what the notary holds is only *heard of* (if its certificate
//!    verifies), since its predecessors are missing;
//! 2. the notary must know the wallet's whole certified prefix as far as it has heard of it
//!    (**amnesia guard**: [`Refusal::Behind`] until it caught up);
//! 3. the slot must be the next one: a later slot asks for the prefix ([`Refusal::NeedPrefix`]),
//!    an earlier one is already certified ([`Refusal::AlreadyCertified`], unless it is the very
//!    entry this notary voted for, which gets the same vote again);
//! 4. a slot already voted for another entry is **locked** ([`Refusal::Locked`], carrying the
//!    existing vote so that the client sees its own conflict); the same entry gets the same vote;
//! 5. the notary must be in the wallet's set ([`Refusal::NotANotary`]);
//! 6. the ledger's rules must hold after the certified prefix ([`Refusal::Rules`]: the exact
//!    `check` of `scrip-ledger`).
//!
//! Then it votes. The vote is recorded here at once (so a second proposal for the slot in the
//! same batch is locked out), but the service signs and sends it only after the record is durable.

use std::collections::BTreeMap;

use scrip_feed::validate::validate_payload;
use scrip_feed::{Entry, EntryId, FeedId, Seq};
use scrip_ledger::certificate::ROUND_ZERO;
use scrip_ledger::verify::{SignatureCheck, VerifyAll, subject_of};
use scrip_ledger::{
    Certificate, CertificateError, CertifiedEntry, Rejection, VoteSubject, WalletEntry, WalletState,
};
use serde::{Deserialize, Serialize};

/// Why a notary does not vote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// This notary is not in the wallet's set.
    #[error("this notary is not one of the wallet's notaries")]
    NotANotary,
    /// The notary lacks certified entries before the slot: send them.
    #[error("send the certified entries from #{from}")]
    NeedPrefix {
        /// The first seq missing.
        from: u64,
    },
    /// The notary heard of certified entries it does not hold yet (it may have lost data, or
    /// lags): it votes for this wallet again once it caught up.
    #[error("this notary holds the wallet up to #{have} but heard of #{certified}: catching up")]
    Behind {
        /// The certified prefix it holds.
        have: u64,
        /// The highest certified seq it heard of.
        certified: u64,
    },
    /// The slot is locked: this notary voted for another entry there.
    #[error("slot #{seq} is locked: this notary voted for entry {voted}")]
    Locked {
        /// The slot.
        seq: u64,
        /// The entry it voted for.
        voted: EntryId,
        /// Its vote for that entry (lock information for the client).
        vote: Option<scrip_ledger::Vote>,
    },
    /// The slot is certified with another entry already.
    #[error("slot #{seq} is already certified")]
    AlreadyCertified {
        /// The slot.
        seq: u64,
    },
    /// The entry breaks a ledger rule after the certified prefix.
    #[error("refused by the ledger rules: {reason}")]
    Rules {
        /// The rule's stable code.
        code: String,
        /// The reason.
        reason: String,
    },
    /// The request is malformed (undecodable entry, invalid prefix, ...).
    #[error("malformed request: {reason}")]
    Malformed {
        /// Why.
        reason: String,
    },
    /// The notary cannot decide now (storage failure, overload, rate limit): try again.
    #[error("unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl Refusal {
    /// True if an honest notary will keep refusing this exact entry (so that f + 1 equal
    /// definitive refusals prove no honest notary voted for it).
    pub fn is_definitive(&self) -> bool {
        matches!(
            self,
            Refusal::NotANotary
                | Refusal::Locked { .. }
                | Refusal::AlreadyCertified { .. }
                | Refusal::Rules { .. }
                | Refusal::Malformed { .. }
        )
    }

    /// A key under which equal definitive refusals are counted.
    pub fn kind(&self) -> String {
        match self {
            Refusal::NotANotary => "not-a-notary".into(),
            Refusal::NeedPrefix { .. } => "need-prefix".into(),
            Refusal::Behind { .. } => "behind".into(),
            Refusal::Locked { .. } => "locked".into(),
            Refusal::AlreadyCertified { .. } => "already-certified".into(),
            Refusal::Rules { code, .. } => format!("rules:{code}"),
            Refusal::Malformed { .. } => "malformed".into(),
            Refusal::Unavailable { .. } => "unavailable".into(),
        }
    }
}

/// What the notary decided for a proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A new vote: persist it, then sign it.
    Vote(VoteSubject),
    /// The same entry again: sign the same vote again (already durable).
    Again(VoteSubject),
    /// No vote. For [`Refusal::Locked`], `existing` is the subject of the vote that locks the
    /// slot (to sign and attach).
    Refuse {
        /// Why.
        refusal: Refusal,
        /// The locking vote's subject, if any.
        existing: Option<VoteSubject>,
    },
}

/// What a notary knows of one wallet.
#[derive(Clone, Debug)]
pub struct WalletView {
    /// The wallet's state after its certified prefix.
    pub ledger: WalletState,
    /// Slots this notary voted for, and for which entry.
    pub votes: BTreeMap<u64, EntryId>,
    /// The highest certified seq heard of (from replication, clients, other notaries).
    pub heard: u64,
}

impl WalletView {
    fn new(wallet: FeedId) -> WalletView {
        WalletView {
            ledger: WalletState::new(wallet),
            votes: BTreeMap::new(),
            heard: 0,
        }
    }

    /// The last certified seq held.
    pub fn certified_head(&self) -> u64 {
        self.ledger.next_seq.saturating_sub(1)
    }
}

/// The signature checks for learning a certified entry this notary itself voted for.
///
/// Before voting, the notary verified that entry with [`VerifyAll`] against the same certified
/// prefix: its signature and every signature its payload embeds (a citation's entries and
/// certificates). The entry id commits to the header, the header to the payload's hash (checked
/// again here: it is cheap), so the same id means the same bytes and those checks would give the
/// same answers. Only the certificate's votes for the entry itself are new, and they are
/// verified. This saves a third of an accept's checks at every notary.
struct VotedFor {
    entry: EntryId,
}

impl SignatureCheck for VotedFor {
    fn entry(&self, entry: &Entry) -> Result<(), scrip_feed::Error> {
        validate_payload(entry)
    }

    fn votes(
        &self,
        certificate: &Certificate,
        subject: &VoteSubject,
    ) -> Result<(), CertificateError> {
        if subject.entry == self.entry {
            VerifyAll.votes(certificate, subject)
        } else {
            // A certificate embedded in the entry's payload (a citation): verified at the vote.
            Ok(())
        }
    }
}

/// The signature checks for deciding on a proposal whose own signature and payload were just
/// verified: those are not checked again; everything its payload embeds (a citation's entries
/// and certificates) is.
struct Verified {
    entry: EntryId,
}

impl SignatureCheck for Verified {
    fn entry(&self, entry: &Entry) -> Result<(), scrip_feed::Error> {
        if entry.id() == self.entry {
            Ok(())
        } else {
            VerifyAll.entry(entry)
        }
    }

    fn votes(
        &self,
        certificate: &Certificate,
        subject: &VoteSubject,
    ) -> Result<(), CertificateError> {
        VerifyAll.votes(certificate, subject)
    }
}

/// A notary's whole state: pure, rebuilt after a restart from its stores.
#[derive(Clone, Debug)]
pub struct NotaryState {
    me: FeedId,
    wallets: BTreeMap<FeedId, WalletView>,
}

impl NotaryState {
    /// The state of notary `me`, knowing nothing yet.
    pub fn new(me: FeedId) -> NotaryState {
        NotaryState {
            me,
            wallets: BTreeMap::new(),
        }
    }

    /// This notary.
    pub fn id(&self) -> FeedId {
        self.me
    }

    /// What it knows of `wallet`.
    pub fn wallet(&self, wallet: &FeedId) -> Option<&WalletView> {
        self.wallets.get(wallet)
    }

    /// Every wallet it knows.
    pub fn wallets(&self) -> impl Iterator<Item = &WalletView> {
        self.wallets.values()
    }

    /// Restores a durable vote record (after a restart).
    pub fn restore_vote(&mut self, subject: &VoteSubject) {
        self.view(subject.wallet)
            .votes
            .insert(subject.seq.get(), subject.entry);
    }

    /// Takes back a vote decided but never made durable (the vote store failed): it was never
    /// signed, and the slot must not be answered with it later.
    pub fn forget_vote(&mut self, subject: &VoteSubject) {
        if let Some(view) = self.wallets.get_mut(&subject.wallet)
            && view.votes.get(&subject.seq.get()) == Some(&subject.entry)
        {
            view.votes.remove(&subject.seq.get());
        }
    }

    /// True if this notary holds `subject` as its vote for that slot.
    pub fn holds_vote(&self, subject: &VoteSubject) -> bool {
        self.wallets
            .get(&subject.wallet)
            .and_then(|view| view.votes.get(&subject.seq.get()))
            == Some(&subject.entry)
    }

    /// Notes that `wallet` has a certified entry at `seq` somewhere (amnesia guard input).
    pub fn heard_of(&mut self, wallet: FeedId, seq: u64) {
        let view = self.view(wallet);
        view.heard = view.heard.max(seq);
    }

    fn view(&mut self, wallet: FeedId) -> &mut WalletView {
        self.wallets
            .entry(wallet)
            .or_insert_with(|| WalletView::new(wallet))
    }

    /// Learns a certified entry (the next of its wallet's certified prefix), checking it fully
    /// (signature, link, certificate under the wallet's set, rules). Entries already held are
    /// ignored. Returns whether it was new.
    pub fn learn(
        &mut self,
        certified: &CertifiedEntry,
        check: &dyn SignatureCheck,
    ) -> Result<bool, Rejection> {
        let wallet = certified.entry.author();
        let seq = certified.entry.seq().get();
        // A wallet this notary does not know yet is remembered only once an entry of it is
        // learned: an entry that does not verify leaves no state behind.
        let known = self.wallets.contains_key(&wallet);
        let view = self.view(wallet);
        if seq < view.ledger.next_seq {
            return Ok(false);
        }
        let decision = view.ledger.evaluate(
            &certified.entry,
            certified.certificate.as_ref(),
            true,
            check,
        );
        match decision {
            Ok(_) => {
                view.ledger.commit(&certified.entry, &decision);
                view.heard = view.heard.max(seq);
                Ok(true)
            }
            // A certified entry that breaks a rule still occupies its slot (the fold records it
            // as rejected and goes on); only log-shape failures are refused here.
            Err(rejection) if !rejection.halts() => {
                view.ledger.commit(&certified.entry, &Err(rejection));
                view.heard = view.heard.max(seq);
                Ok(true)
            }
            Err(rejection) => {
                if !known {
                    self.wallets.remove(&wallet);
                }
                Err(rejection)
            }
        }
    }

    /// Learns a certified entry a client sent along with a proposal. If it is the very entry
    /// this notary voted for at its slot, only the certificate is new: see [`VotedFor`].
    fn learn_proposed(&mut self, certified: &CertifiedEntry) -> Result<bool, Rejection> {
        let id = certified.entry.id();
        let voted = self
            .wallets
            .get(&certified.entry.author())
            .and_then(|view| view.votes.get(&certified.entry.seq().get()))
            == Some(&id);
        if voted {
            self.learn(certified, &VotedFor { entry: id })
        } else {
            self.learn(certified, &VerifyAll)
        }
    }

    /// Hears of a certified entry beyond the prefix it holds (its predecessors are missing, so
    /// it cannot be learned yet): if its signature and its certificate verify under the
    /// wallet's set, the wallet is certified at least that far, and the amnesia guard holds
    /// until the notary has caught up. Unverifiable claims change nothing, so nobody can make a
    /// notary refuse a wallet by sending it a made-up seq. Returns whether it was believed.
    pub fn hear(&mut self, certified: &CertifiedEntry, check: &dyn SignatureCheck) -> bool {
        let seq = certified.entry.seq().get();
        // Without the wallet's genesis there is no set to check the certificate against.
        let Some(view) = self.wallets.get_mut(&certified.entry.author()) else {
            return false;
        };
        let (Some(set), Some(certificate)) = (
            view.ledger.notaries.as_ref(),
            certified.certificate.as_ref(),
        ) else {
            return false;
        };
        let believed = check.entry(&certified.entry).is_ok()
            && scrip_ledger::verify::certify(certificate, set, &certified.entry, check).is_ok();
        if believed {
            view.heard = view.heard.max(seq);
        }
        believed
    }

    /// Decides on `entry` after learning `prefix` (certified entries the client sent). A
    /// proposal whose own signature or payload does not verify is refused first and leaves no
    /// state behind (nor does one for a wallet this notary does not know, until it votes).
    // Long because: the numbered steps of notary.md section 3 in order, one block each; their order
    // is the safety argument, so it stays visible in one place.
    pub fn decide(&mut self, entry: &Entry, prefix: &[CertifiedEntry]) -> Decision {
        let refuse = |refusal| Decision::Refuse {
            refusal,
            existing: None,
        };
        if let Err(err) = VerifyAll.entry(entry) {
            return refuse(Refusal::Malformed {
                reason: format!("the proposed entry does not verify: {err}"),
            });
        }
        // Verified just now: the rules below need not check its signature again.
        let checked = Verified { entry: entry.id() };
        let mut prefix: Vec<&CertifiedEntry> = prefix.iter().collect();
        prefix.sort_by_key(|c| c.entry.seq());
        for certified in prefix {
            if certified.entry.author() != entry.author() {
                return refuse(Refusal::Malformed {
                    reason: "the prefix holds another wallet's entry".into(),
                });
            }
            let next = self
                .wallets
                .get(&entry.author())
                .map_or(1, |view| view.ledger.next_seq);
            if certified.entry.seq().get() > next {
                // Its predecessors are missing here: it only tells how far the wallet is
                // certified, and the checks below ask for what is missing.
                self.hear(certified, &VerifyAll);
                break;
            }
            if let Err(rejection) = self.learn_proposed(certified) {
                return refuse(Refusal::Malformed {
                    reason: format!("invalid certified prefix: {rejection}"),
                });
            }
        }

        let me = self.me;
        let wallet = entry.author();
        let seq = entry.seq().get();
        // An unknown wallet is looked at through a fresh view, kept only if this notary votes.
        let mut fresh = None;
        let view = match self.wallets.get_mut(&wallet) {
            Some(view) => view,
            None => fresh.insert(WalletView::new(wallet)),
        };
        let next = view.ledger.next_seq;
        let subject = subject_of(entry);

        // The slot is this notary's own business first: a vote is final.
        if let Some(&voted) = view.votes.get(&seq) {
            if voted == entry.id() {
                return Decision::Again(subject);
            }
            return Decision::Refuse {
                refusal: Refusal::Locked {
                    seq,
                    voted,
                    vote: None,
                },
                existing: Some(VoteSubject {
                    wallet,
                    seq: Seq::new(seq),
                    entry: voted,
                    round: ROUND_ZERO,
                }),
            };
        }
        if view.heard > view.certified_head() && seq > view.certified_head() {
            return refuse(Refusal::Behind {
                have: view.certified_head(),
                certified: view.heard,
            });
        }
        if seq < next {
            return refuse(Refusal::AlreadyCertified { seq });
        }
        if seq > next {
            return refuse(Refusal::NeedPrefix { from: next });
        }
        // The set: the proposed genesis's at seq 1, else the wallet's. (Without one, the
        // ledger's check below says why.)
        let members: Option<Vec<FeedId>> = if seq == 1 {
            entry
                .payload()
                .and_then(|p| WalletEntry::from_payload(p).ok())
                .and_then(|c| match c {
                    WalletEntry::Genesis(g) => Some(g.notaries),
                    _ => None,
                })
        } else {
            view.ledger
                .notaries
                .as_ref()
                .map(|set| set.members().to_vec())
        };
        if members.is_some_and(|m| !m.contains(&me)) {
            return refuse(Refusal::NotANotary);
        }
        if let Err(rejection) = view.ledger.evaluate(entry, None, false, &checked) {
            return refuse(Refusal::Rules {
                code: rejection.code().to_owned(),
                reason: rejection.to_string(),
            });
        }
        view.votes.insert(seq, entry.id());
        if let Some(view) = fresh {
            self.wallets.insert(wallet, view);
        }
        Decision::Vote(subject)
    }
}
