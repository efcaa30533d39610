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

use scrip_feed::Timestamp;
use scrip_feed::bounded::FifoMap;
use scrip_feed::validate::validate_payload;
use scrip_feed::{Entry, EntryId, FeedId, Seq};
use scrip_ledger::certificate::{ROUND_ZERO, VOTE_DOMAIN};
use scrip_ledger::fate::{FATE_DOMAIN, FATE_REQUEST_DOMAIN};
use scrip_ledger::verify::{
    Gather, Precomputed, Remembered, Seen, SignatureCheck, VerifyAll, subject_of, verify_citation,
};
use scrip_ledger::{Fate, FateSubject};

use crate::wire::FateRequest;
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
    /// A fate request refused by the fate rules (`notary.md` §3a: `no-expiry`,
    /// `missing-preimage`, `wrong-preimage`, `unexpected-preimage`, `conditional-cancel`,
    /// `order-claimed`, `order-voided`, `order-expired`, `not-expired`).
    #[error("{reason}")]
    Fate {
        /// The rule's stable code.
        code: String,
        /// The reason.
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
                | Refusal::Fate { .. }
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
            Refusal::Fate { code, .. } => format!("fate:{code}"),
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
/// certificates, a claim's fate certificate). The entry id commits to the header, the header to
/// the payload's hash (checked again here: it is cheap), so the same id means the same bytes and
/// those checks would give the same answers. Only the certificate's votes for the entry itself
/// are new, and they are verified. This saves a third of an accept's checks at every notary.
struct VotedFor<'a> {
    entry: EntryId,
    /// How what is verified is verified.
    inner: &'a dyn SignatureCheck,
}

impl SignatureCheck for VotedFor<'_> {
    fn entry(&self, entry: &Entry) -> Result<(), scrip_feed::Error> {
        validate_payload(entry)
    }

    fn votes(
        &self,
        certificate: &Certificate,
        subject: &VoteSubject,
    ) -> Result<(), CertificateError> {
        if subject.entry == self.entry {
            self.inner.votes(certificate, subject)
        } else {
            // A certificate embedded in the entry's payload (a citation): verified at the vote.
            Ok(())
        }
    }

    fn fate_votes(
        &self,
        _votes: &[scrip_ledger::Vote],
        _subject: &FateSubject,
    ) -> Result<(), CertificateError> {
        // Only ever embedded in the entry's payload (an accept's claim, a reclaim's void):
        // verified at the vote.
        Ok(())
    }
}

/// The signature checks for deciding on a proposal whose own signature and payload were just
/// verified: those are not checked again; everything its payload embeds (a citation's entries
/// and certificates) is.
struct Verified<'a> {
    entry: EntryId,
    /// How everything else is verified.
    inner: &'a dyn SignatureCheck,
}

impl SignatureCheck for Verified<'_> {
    fn entry(&self, entry: &Entry) -> Result<(), scrip_feed::Error> {
        if entry.id() == self.entry {
            Ok(())
        } else {
            self.inner.entry(entry)
        }
    }

    fn votes(
        &self,
        certificate: &Certificate,
        subject: &VoteSubject,
    ) -> Result<(), CertificateError> {
        self.inner.votes(certificate, subject)
    }

    fn fate_votes(
        &self,
        votes: &[scrip_ledger::Vote],
        subject: &FateSubject,
    ) -> Result<(), CertificateError> {
        self.inner.fate_votes(votes, subject)
    }
}

/// Most of its own vote signatures a notary remembers (see [`OwnVotes`]).
pub const MAX_OWN_VOTES: usize = 65_536;

/// The votes this notary signed (entry votes and fate votes), by the bytes they sign. A
/// certificate shown to it that carries its own vote carries those very bytes — ed25519
/// signatures are deterministic (RFC 8032 §5.1.6), so it signs a subject one way only — and
/// such a vote is compared with what it signed instead of verified. Any other bytes under its
/// name are verified like every vote. Bounded, first in first out: what falls out is verified
/// again.
#[derive(Clone, Debug)]
pub struct OwnVotes {
    signatures: FifoMap<scrip_feed::Hash, scrip_feed::Signature>,
}

impl Default for OwnVotes {
    fn default() -> Self {
        OwnVotes {
            signatures: FifoMap::new(MAX_OWN_VOTES),
        }
    }
}

impl OwnVotes {
    /// What a vote is remembered by: the hash of the bytes it signs.
    fn key(domain: &[u8], message: &[u8]) -> scrip_feed::Hash {
        scrip_feed::Hash::of(&scrip_feed::identity::signing_bytes(domain, message))
    }

    fn insert(&mut self, key: scrip_feed::Hash, signature: scrip_feed::Signature) {
        self.signatures.insert(key, signature);
    }

    fn signed(&self, key: &scrip_feed::Hash, signature: &scrip_feed::Signature) -> bool {
        self.signatures.get(key) == Some(signature)
    }

    /// How many are remembered.
    pub fn len(&self) -> usize {
        self.signatures.len()
    }

    /// True if none is.
    pub fn is_empty(&self) -> bool {
        self.signatures.is_empty()
    }
}

/// The signature checks of `inner`, except this notary's own votes that are the very bytes it
/// signed ([`OwnVotes`]): those are compared, the rest go to `inner`. Placed inside
/// [`Remembered`] (which looks certificates up by their whole bytes).
struct OwnFirst<'a> {
    me: FeedId,
    own: &'a OwnVotes,
    inner: &'a dyn SignatureCheck,
}

impl OwnFirst<'_> {
    /// `votes` without this notary's remembered own vote, if it is among them (`key` gives what
    /// the votes sign; it is hashed only when a vote bears this notary's name).
    fn others(
        &self,
        key: impl FnOnce() -> scrip_feed::Hash,
        votes: &[scrip_ledger::Vote],
    ) -> Option<Vec<scrip_ledger::Vote>> {
        if !votes.iter().any(|v| v.notary == self.me) {
            return None;
        }
        let key = key();
        let own =
            |v: &scrip_ledger::Vote| v.notary == self.me && self.own.signed(&key, &v.signature);
        votes
            .iter()
            .any(own)
            .then(|| votes.iter().filter(|v| !own(v)).copied().collect())
    }
}

impl SignatureCheck for OwnFirst<'_> {
    fn entry(&self, entry: &Entry) -> Result<(), scrip_feed::Error> {
        self.inner.entry(entry)
    }

    fn votes(
        &self,
        certificate: &Certificate,
        subject: &VoteSubject,
    ) -> Result<(), CertificateError> {
        let key = || OwnVotes::key(VOTE_DOMAIN, &subject.message());
        match self.others(key, &certificate.votes) {
            Some(votes) => self.inner.votes(
                &Certificate {
                    votes,
                    ..certificate.clone()
                },
                subject,
            ),
            None => self.inner.votes(certificate, subject),
        }
    }

    fn fate_votes(
        &self,
        votes: &[scrip_ledger::Vote],
        subject: &FateSubject,
    ) -> Result<(), CertificateError> {
        let key = || OwnVotes::key(FATE_DOMAIN, &subject.message());
        match self.others(key, votes) {
            Some(others) => self.inner.fate_votes(&others, subject),
            None => self.inner.fate_votes(votes, subject),
        }
    }
}

/// The citation a wallet entry carries, if any.
fn citation_of(entry: &Entry) -> Option<scrip_ledger::Citation> {
    match WalletEntry::from_payload(entry.payload()?).ok()? {
        WalletEntry::Accept(a) => Some(a.order),
        WalletEntry::Reject(r) => Some(r.order),
        WalletEntry::Reclaim(r) => Some(r.rejection),
        _ => None,
    }
}

/// A notary's whole state: pure, rebuilt after a restart from its stores.
#[derive(Clone, Debug)]
pub struct NotaryState {
    me: FeedId,
    wallets: BTreeMap<FeedId, WalletView>,
    /// The fate this notary signed for each order it signed one for (the first; a claim
    /// excludes every void and a void excludes a claim).
    fates: BTreeMap<EntryId, Fate>,
    /// Certified entries it verified, not to verify again when cited.
    seen: Seen,
    /// Its own votes as it signed them, compared instead of verified when shown back.
    own: OwnVotes,
    /// Signatures verified ahead for the batch being decided ([`NotaryState::gather`]); what is
    /// not found here is verified on the spot. Empty between batches.
    batch: Precomputed,
}

/// The order a fate request is about, as the notary knows it: from its own state (an order
/// of a wallet whose certified prefix it holds: nothing to check again) or from the request's
/// citation, verified.
#[derive(Clone, Debug)]
pub struct FateOrder {
    /// The order's wallet (its sender).
    pub author: FeedId,
    /// The order id.
    pub id: EntryId,
    /// Its receiver.
    pub to: FeedId,
    /// Its expiry.
    pub expiry: Option<Timestamp>,
    /// Its hash lock.
    pub condition: Option<scrip_ledger::content::HashLock>,
    /// The order wallet's notaries.
    pub notaries: scrip_ledger::NotarySet,
}

impl FateOrder {
    /// The order the request cites, verified (its citation: genesis, entry, certificates).
    pub fn verified(request: &FateRequest, seen: &Seen) -> Result<FateOrder, Box<Refusal>> {
        FateOrder::verified_with(request, seen, &VerifyAll)
    }

    /// [`FateOrder::verified`], with what `seen` does not vouch for checked by `base`.
    fn verified_with(
        request: &FateRequest,
        seen: &Seen,
        base: &dyn SignatureCheck,
    ) -> Result<FateOrder, Box<Refusal>> {
        let malformed = |reason: String| Box::new(Refusal::Malformed { reason });
        let check = Remembered { seen, inner: base };
        let cited = verify_citation(&request.order, &check)
            .map_err(|e| malformed(format!("the cited order: {e}")))?;
        let WalletEntry::Order(order) = cited.content else {
            return Err(malformed(format!(
                "the cited entry is a {}, not an order",
                cited.content.kind()
            )));
        };
        Ok(FateOrder {
            author: cited.author,
            id: cited.id,
            to: order.to,
            expiry: order.expiry,
            condition: order.condition,
            notaries: cited.notaries,
        })
    }
}

/// What the notary decided for a fate request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FateDecision {
    /// A new fate: persist it, then sign it.
    Vote(FateSubject),
    /// A fate it already holds for the order (or another void of a voided order): sign it
    /// once what it holds is durable.
    Again(FateSubject),
    /// No vote.
    Refuse(Refusal),
}

/// The rules of a fate request that do not depend on what this notary signed before, after
/// [`requester_rule`] (`notary.md` §3a, steps 2–5), in order: this notary is one of the order
/// wallet's notaries (`NotANotary`); the order has an expiry (`Rules no-expiry`: a version-1
/// order is never claimed nor voided); for a claim, the preimage opens the order's lock
/// (`missing-preimage`, `wrong-preimage`, `unexpected-preimage`); for a cancel, the order has
/// no lock (`conditional-cancel`). `cited` is the order as verified (or known) by step 1.
/// Returns the subject to vote for and the order's expiry (the clock rule is [`clock_rule`]).
pub fn fate_rules(
    request: &FateRequest,
    cited: &FateOrder,
    me: &FeedId,
) -> Result<(FateSubject, Timestamp), Box<Refusal>> {
    let rules = |code: &str, reason: String| {
        Box::new(Refusal::Fate {
            code: code.into(),
            reason,
        })
    };
    let order = cited;
    if !cited.notaries.contains(me) {
        return Err(Box::new(Refusal::NotANotary));
    }
    let Some(expiry) = order.expiry else {
        return Err(rules(
            "no-expiry",
            format!(
                "order {} has no expiry: it is never claimed nor voided",
                cited.id
            ),
        ));
    };
    let subject = FateSubject {
        wallet: cited.author,
        order: cited.id,
        fate: request.fate,
    };
    // Who asks was checked first (`requester_rule`), on the same bytes.
    match request.fate {
        Fate::Claimed => match (&order.condition, &request.preimage) {
            (None, None) => {}
            (Some(lock), Some(preimage)) if lock.opens(preimage) => {}
            (Some(_), Some(_)) => {
                return Err(rules(
                    "wrong-preimage",
                    format!(
                        "the preimage does not open the hash lock of order {}",
                        cited.id
                    ),
                ));
            }
            (Some(_), None) => {
                return Err(rules(
                    "missing-preimage",
                    format!(
                        "order {} is hash-locked: claiming it needs the preimage",
                        cited.id
                    ),
                ));
            }
            (None, Some(_)) => {
                return Err(rules(
                    "unexpected-preimage",
                    format!("order {} has no hash lock", cited.id),
                ));
            }
        },
        Fate::Cancelled if order.condition.is_some() => {
            return Err(rules(
                "conditional-cancel",
                format!(
                    "order {} is hash-locked: it cannot be cancelled, only refunded after its \
                     expiry",
                    cited.id
                ),
            ));
        }
        Fate::Cancelled | Fate::Expired => {}
    }
    Ok((subject, expiry))
}

/// Who may ask (`notary.md` §3a, step 0), checked first because it is the cheapest check that
/// a stranger fails (one signature, before the citation's eight): the request is signed by the
/// order's receiver for a claim, by its sender for a void (`Malformed`). The order is read from
/// the citation without verifying it yet; the same id and payload hash are verified afterwards,
/// so what was checked here is what the citation proves.
pub fn requester_rule(request: &FateRequest) -> Result<(), Box<Refusal>> {
    requester_rule_with(request, None, &Precomputed::default())
}

/// [`requester_rule`], with the request's signature looked up in `verified` first (verified
/// while gathering the batch: [`NotaryState::gather_fate`]). A request that came on a session
/// authenticated as the requester (`session`: the transport proved that key, `transport.md`)
/// needs no signature check: the session says what the signature would.
fn requester_rule_with(
    request: &FateRequest,
    session: Option<&FeedId>,
    verified: &Precomputed,
) -> Result<(), Box<Refusal>> {
    let (subject, requester, role) = requester_of(request)?;
    if session == Some(&requester) {
        return Ok(());
    }
    if !verified.verifies(
        &requester,
        FATE_REQUEST_DOMAIN,
        &subject.message(),
        &request.signature,
    ) {
        return Err(Box::new(Refusal::Malformed {
            reason: format!(
                "the request for fate {} is not signed by the order's {role}",
                request.fate.name()
            ),
        }));
    }
    Ok(())
}

/// What a fate request asks for and who must have signed it (the order's receiver for a claim,
/// its sender for a void), read from the citation without verifying it.
fn requester_of(
    request: &FateRequest,
) -> Result<(FateSubject, FeedId, &'static str), Box<Refusal>> {
    let malformed = |reason: String| Box::new(Refusal::Malformed { reason });
    let entry = request
        .order
        .entry
        .bytes
        .decode()
        .map_err(|e| malformed(format!("the cited order: {e}")))?;
    let Ok(WalletEntry::Order(order)) =
        WalletEntry::from_payload(&request.order.entry.bytes.payload)
    else {
        return Err(malformed("the cited entry is not an order".into()));
    };
    let subject = FateSubject {
        wallet: entry.author(),
        order: entry.id(),
        fate: request.fate,
    };
    let (requester, role) = if request.fate.is_void() {
        (entry.author(), "sender")
    } else {
        (order.to, "receiver")
    };
    Ok((subject, requester, role))
}

/// The time rule of a wallet entry (`notary.md` §3, step 7): its time (the header's
/// timestamp, the wallet's own clock when it signed) is not ahead of this notary's clock by
/// more than the margin `skew_ms`. A refusal is `Unavailable`, not definitive: time passes,
/// and the same bytes are voted for once this notary's clock has caught up, so honest notaries
/// never refuse an entry for good on a reading of their clocks (they could disagree about it,
/// and a wallet slot split between them would never be certified). An entry's time is not
/// checked to be recent: a pending entry may be sent again long after it was signed.
pub fn time_rule(entry: &Entry, now: Timestamp, skew_ms: u64) -> Result<(), Box<Refusal>> {
    let (time, now) = (entry.timestamp().as_millis(), now.as_millis());
    if time > now.saturating_add(skew_ms) {
        return Err(Box::new(Refusal::Unavailable {
            reason: format!(
                "the entry is stamped {time} ms, ahead of this notary's clock ({now} ms) by more \
                 than {skew_ms} ms: try again later"
            ),
        }));
    }
    Ok(())
}

/// The clock rule of a fate (`notary.md` §3a, step 6), with this notary's clock `now` and its
/// margin `skew_ms`: a claim only while `now + skew < expiry`, so that the true time is before
/// the expiry (`order-expired`); an expiry only once `now ≥ expiry + skew`, so that the true time
/// is past it (`not-expired`); a cancel at any time.
pub fn clock_rule(
    subject: &FateSubject,
    expiry: Timestamp,
    now: Timestamp,
    skew_ms: u64,
) -> Result<(), Box<Refusal>> {
    let (now, expiry) = (now.as_millis(), expiry.as_millis());
    let rules = |code: &str, reason: String| {
        Box::new(Refusal::Fate {
            code: code.into(),
            reason,
        })
    };
    match subject.fate {
        Fate::Claimed if now.saturating_add(skew_ms) >= expiry => Err(rules(
            "order-expired",
            format!(
                "order {} expires at {expiry} ms; this notary claims only until {skew_ms} ms \
                 before (its clock reads {now} ms)",
                subject.order
            ),
        )),
        Fate::Expired if now < expiry.saturating_add(skew_ms) => Err(rules(
            "not-expired",
            format!(
                "order {} expires at {expiry} ms; this notary voids it from {} ms (its clock \
                 reads {now} ms)",
                subject.order,
                expiry.saturating_add(skew_ms)
            ),
        )),
        _ => Ok(()),
    }
}

impl NotaryState {
    /// The state of notary `me`, knowing nothing yet.
    pub fn new(me: FeedId) -> NotaryState {
        NotaryState {
            me,
            wallets: BTreeMap::new(),
            fates: BTreeMap::new(),
            seen: Seen::default(),
            own: OwnVotes::default(),
            batch: Precomputed::default(),
        }
    }

    /// Signatures verified ahead for the decisions that follow, until
    /// [`NotaryState::end_batch`]: what [`NotaryState::gather`] gathered, verified as one batch.
    pub fn begin_batch(&mut self, verified: Precomputed) {
        self.batch = verified;
    }

    /// Forgets the batch's signatures.
    pub fn end_batch(&mut self) {
        self.batch = Precomputed::default();
    }

    /// Feeds `into` the signatures [`NotaryState::decide_at`] would verify for `entry` and
    /// `prefix` now, skipping what it would not verify (its own votes, certified entries it
    /// saw, what it voted for): the same wrappers in the same order, with nothing decided and
    /// nothing changed. Only the first prefix entry new here is gathered, and what the payload
    /// embeds only if the proposal then sits at the wallet's next slot, free, of a wallet this
    /// notary serves (otherwise the decision refuses before checking it): a stranger's bogus
    /// proposal costs little more batch work than the decision would spend on it. Gathering is
    /// a guess that costs nothing in correctness when wrong: whatever the decision then asks
    /// that was not gathered (or failed) is verified on the spot.
    pub fn gather(&self, entry: &Entry, prefix: &[CertifiedEntry], into: &dyn SignatureCheck) {
        let _ = into.entry(entry);
        let mut prefix: Vec<&CertifiedEntry> = prefix.iter().collect();
        prefix.sort_by_key(|c| c.entry.seq());
        let view = self.wallets.get(&entry.author());
        let mut next = view.map_or(1, |view| view.ledger.next_seq);
        for certified in prefix {
            let seq = certified.entry.seq().get();
            if certified.entry.author() != entry.author() {
                return;
            }
            if seq > next {
                // Heard of (see `hear`): its signature and certificate.
                let _ = into.entry(&certified.entry);
                if let Some(certificate) = &certified.certificate {
                    let _ = into.votes(certificate, &subject_of(&certified.entry));
                }
                break;
            }
            if seq < next {
                continue;
            }
            // One entry of the prefix (the usual case): a longer one is checked as it is
            // learned, one entry after another, so that a bogus one costs its first failure.
            self.gather_learned(certified, into);
            next += 1;
            break;
        }
        // What the payload embeds is checked only once the proposal is at the wallet's next
        // slot, the slot is free and this notary is one of the wallet's: a proposal refused
        // before that makes no batch work beyond its own signature and one prefix entry.
        let slot_free = view.is_none_or(|v| !v.votes.contains_key(&entry.seq().get()));
        let member = match view.and_then(|v| v.ledger.notaries.as_ref()) {
            Some(set) => set.contains(&self.me),
            None => entry.seq() == Seq::FIRST,
        };
        if entry.seq().get() != next || !slot_free || !member {
            return;
        }
        let checked = Verified {
            entry: entry.id(),
            inner: into,
        };
        let own_first = OwnFirst {
            me: self.me,
            own: &self.own,
            inner: &checked,
        };
        let remembered = Remembered {
            seen: &self.seen,
            inner: &own_first,
        };
        scrip_ledger::verify::embedded_signatures(entry, &remembered);
    }

    /// Feeds `into` what learning `certified` as the next entry of its wallet verifies (see
    /// [`NotaryState::learn_proposed`]: the same wrappers).
    fn gather_learned(&self, certified: &CertifiedEntry, into: &dyn SignatureCheck) {
        let voted_for = VotedFor {
            entry: certified.entry.id(),
            inner: into,
        };
        let check = OwnFirst {
            me: self.me,
            own: &self.own,
            inner: if self.voted_for(&certified.entry) {
                &voted_for
            } else {
                into
            },
        };
        scrip_ledger::verify::each_signature(certified, true, &check);
    }

    /// Feeds `into` the signatures [`NotaryState::decide_fate`] would verify for `request` (the
    /// cited order's, unless this notary holds the order), as [`NotaryState::gather`] does.
    /// The request's own signature comes first, verified here singly as the decision's first
    /// and cheapest check (a stranger's request with a bad one makes no batch work), and joins
    /// the batch's results so that the decision does not verify it again.
    pub fn gather_fate(&self, request: &FateRequest, into: &Gather) {
        self.gather_fate_on(request, None, into);
    }

    /// [`NotaryState::gather_fate`] for a request that came on a session authenticated as
    /// `session` (see [`NotaryState::decide_fate_on`]): the requester's own session needs no
    /// signature check.
    pub fn gather_fate_on(&self, request: &FateRequest, session: Option<&FeedId>, into: &Gather) {
        let Ok((subject, requester, _)) = requester_of(request) else {
            return;
        };
        if session != Some(&requester) {
            if !subject.request_verifies(&requester, &request.signature) {
                return;
            }
            into.checked(
                &requester,
                FATE_REQUEST_DOMAIN,
                &subject.message(),
                request.signature,
            );
        }
        if self.known_order(request).is_some() {
            return;
        }
        // As `learn_cited_order`: the next certified entry of a wallet it holds is learned.
        if let Some(certified) = self.cited_next(request) {
            self.gather_learned(&certified, into);
            return;
        }
        let remembered = Remembered {
            seen: &self.seen,
            inner: into,
        };
        let _ = verify_citation(&request.order, &remembered);
    }

    /// Decides a fate request at time `now` (this notary's clock, in milliseconds since the
    /// Unix epoch), with clock margin `skew_ms`: the rules of [`fate_rules`], then **the fate
    /// lock** (step 7): if this notary signed a fate of the order that excludes the one asked
    /// for, `Rules order-claimed` or `order-voided`; if it signed a compatible one, the same
    /// again; else the fate is noted at once (a second request in the same batch sees it) and
    /// signed only once durable.
    pub fn decide_fate(
        &mut self,
        request: &FateRequest,
        now: Timestamp,
        skew_ms: u64,
    ) -> FateDecision {
        self.decide_fate_on(request, None, now, skew_ms)
    }

    /// [`NotaryState::decide_fate`] for a request that came on a session the transport
    /// authenticated as `session` (`None`: not known, e.g. in process). On the requester's own
    /// session the request's signature is not checked (`notary.md` §3a, step 0): the session
    /// proves the same key, and so a claim costs each notary one check less.
    pub fn decide_fate_on(
        &mut self,
        request: &FateRequest,
        session: Option<&FeedId>,
        now: Timestamp,
        skew_ms: u64,
    ) -> FateDecision {
        if let Err(refusal) = requester_rule_with(request, session, &self.batch) {
            return FateDecision::Refuse(*refusal);
        }
        if self.known_order(request).is_none() {
            self.learn_cited_order(request);
        }
        let order = match self.known_order(request) {
            Some(order) => order,
            None => match FateOrder::verified_with(request, &self.seen, &self.batch) {
                Ok(order) => {
                    self.seen.remember_citation(&request.order);
                    order
                }
                Err(refusal) => return FateDecision::Refuse(*refusal),
            },
        };
        let (subject, expiry) = match fate_rules(request, &order, &self.me) {
            Ok(found) => found,
            Err(refusal) => return FateDecision::Refuse(*refusal),
        };
        match self.fates.get(&subject.order) {
            Some(held) if held.excludes(subject.fate) => {
                let (code, what) = if held.is_void() {
                    ("order-voided", "voided for its sender")
                } else {
                    ("order-claimed", "claimed by its receiver")
                };
                FateDecision::Refuse(Refusal::Fate {
                    code: code.into(),
                    reason: format!("this notary already signed order {} {what}", subject.order),
                })
            }
            // The very fate it signed: again, whatever its clock says now (it signed it when
            // the rules held, and a client may be collecting the votes it missed).
            Some(held) if *held == subject.fate => FateDecision::Again(subject),
            // Another void of a voided order: its clock rule, then signed (the order is void
            // here already, durably or in this batch).
            Some(_) => match clock_rule(&subject, expiry, now, skew_ms) {
                Ok(()) => FateDecision::Again(subject),
                Err(refusal) => FateDecision::Refuse(*refusal),
            },
            None => match clock_rule(&subject, expiry, now, skew_ms) {
                Ok(()) => {
                    self.fates.insert(subject.order, subject.fate);
                    FateDecision::Vote(subject)
                }
                Err(refusal) => FateDecision::Refuse(*refusal),
            },
        }
    }

    /// Learns the order a fate request cites if it is the next certified entry of a wallet
    /// whose prefix this notary holds (typically an order it just voted for: then only the
    /// certificate's votes are checked). Anything else is left to the full check.
    fn learn_cited_order(&mut self, request: &FateRequest) {
        let Some(certified) = self.cited_next(request) else {
            return;
        };
        let batch = std::mem::take(&mut self.batch);
        let _ = self.learn_proposed(&certified, &batch);
        self.batch = batch;
    }

    /// The entry a fate request cites, certified, if it is the next certified entry of a wallet
    /// whose prefix this notary holds.
    fn cited_next(&self, request: &FateRequest) -> Option<CertifiedEntry> {
        let entry = request.order.entry.bytes.decode().ok()?;
        let next = self.wallets.get(&entry.author())?.ledger.next_seq;
        (next == entry.seq().get()).then(|| CertifiedEntry {
            entry,
            certificate: Some(request.order.entry.certificate.clone()),
        })
    }

    /// Whether this notary voted for `entry` at its slot.
    fn voted_for(&self, entry: &Entry) -> bool {
        self.wallets
            .get(&entry.author())
            .and_then(|view| view.votes.get(&entry.seq().get()))
            == Some(&entry.id())
    }

    /// The order a fate request cites, if this notary holds it certified in a wallet's prefix:
    /// the same id means the same header, and the order's fields come from its own state.
    fn known_order(&self, request: &FateRequest) -> Option<FateOrder> {
        let id = request.order.cited_id();
        let header = Entry::decode(&request.order.entry.bytes.header, None).ok()?;
        let view = self.wallets.get(&header.author())?;
        let own = view.ledger.orders.get(&id)?;
        Some(FateOrder {
            author: view.ledger.wallet,
            id,
            to: own.to,
            expiry: own.expiry,
            condition: own.condition,
            notaries: view.ledger.notaries.clone()?,
        })
    }

    /// The fate this notary signed for `order`, if any.
    pub fn fate(&self, order: &EntryId) -> Option<Fate> {
        self.fates.get(order).copied()
    }

    /// Restores a durable fate record (after a restart).
    pub fn restore_fate(&mut self, order: EntryId, fate: Fate) {
        self.fates.entry(order).or_insert(fate);
    }

    /// Takes back a fate decided but never made durable (the vote store failed).
    pub fn forget_fate(&mut self, subject: &FateSubject) {
        if self.fates.get(&subject.order) == Some(&subject.fate) {
            self.fates.remove(&subject.order);
        }
    }

    /// True if this notary holds a fate of the order that `subject`'s fate is compatible with
    /// (so that signing `subject` keeps its promise).
    pub fn holds_fate(&self, subject: &FateSubject) -> bool {
        self.fates
            .get(&subject.order)
            .is_some_and(|held| !held.excludes(subject.fate))
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

    /// Notes the vote this notary signed for `subject` (the service calls it with each vote it
    /// sends): shown back in a certificate, it is compared rather than verified. A vote of
    /// another notary is not noted.
    pub fn signed_vote(&mut self, subject: &VoteSubject, vote: &scrip_ledger::Vote) {
        if vote.notary == self.me {
            self.own.insert(
                OwnVotes::key(VOTE_DOMAIN, &subject.message()),
                vote.signature,
            );
        }
    }

    /// As [`NotaryState::signed_vote`], for a fate vote.
    pub fn signed_fate(&mut self, subject: &FateSubject, vote: &scrip_ledger::Vote) {
        if vote.notary == self.me {
            self.own.insert(
                OwnVotes::key(FATE_DOMAIN, &subject.message()),
                vote.signature,
            );
        }
    }

    /// Its own votes it remembers signing.
    pub fn own_votes(&self) -> &OwnVotes {
        &self.own
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
                if let Some(certificate) = &certified.certificate {
                    self.seen.insert(certified.entry.id(), certificate);
                }
                let view = self.view(wallet);
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
    /// What is verified is verified by `base` (the batch's signatures verified ahead).
    fn learn_proposed(
        &mut self,
        certified: &CertifiedEntry,
        base: &dyn SignatureCheck,
    ) -> Result<bool, Rejection> {
        let id = certified.entry.id();
        let voted = self.voted_for(&certified.entry);
        // Taken out for the call (`learn` borrows the whole state), then put back.
        let own = std::mem::take(&mut self.own);
        let voted_for = VotedFor {
            entry: id,
            inner: base,
        };
        let check = OwnFirst {
            me: self.me,
            own: &own,
            inner: if voted { &voted_for } else { base },
        };
        let learned = self.learn(certified, &check);
        self.own = own;
        learned
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

    /// [`NotaryState::decide_at`] without the time rule (tests of the other steps).
    pub fn decide(&mut self, entry: &Entry, prefix: &[CertifiedEntry]) -> Decision {
        self.decide_checked(entry, prefix, None)
    }

    /// Decides on `entry` after learning `prefix`, at this notary's clock `now` with margin
    /// `skew_ms`: the steps of [`NotaryState::decide`], then the time rule (`notary.md` §3,
    /// step 7, [`time_rule`]).
    pub fn decide_at(
        &mut self,
        entry: &Entry,
        prefix: &[CertifiedEntry],
        now: Timestamp,
        skew_ms: u64,
    ) -> Decision {
        self.decide_checked(entry, prefix, Some((now, skew_ms)))
    }

    /// Decides on `entry` after learning `prefix` (certified entries the client sent). A
    /// proposal whose own signature or payload does not verify is refused first and leaves no
    /// state behind (nor does one for a wallet this notary does not know, until it votes).
    fn decide_checked(
        &mut self,
        entry: &Entry,
        prefix: &[CertifiedEntry],
        clock: Option<(Timestamp, u64)>,
    ) -> Decision {
        let refuse = |refusal| Decision::Refuse {
            refusal,
            existing: None,
        };
        if let Err(err) = self.batch.entry(entry) {
            return refuse(Refusal::Malformed {
                reason: format!("the proposed entry does not verify: {err}"),
            });
        }
        // Taken out for the call (the state is borrowed below), then put back.
        let batch = std::mem::take(&mut self.batch);
        let decision = self.decide_verified(entry, prefix, clock, &batch);
        self.batch = batch;
        decision
    }

    /// [`NotaryState::decide_checked`] once the proposal's signature and payload verified;
    /// `batch` holds the signatures verified ahead.
    // Long because: the numbered steps of notary.md section 3 in order, one block each; their order
    // is the safety argument, so it stays visible in one place.
    fn decide_verified(
        &mut self,
        entry: &Entry,
        prefix: &[CertifiedEntry],
        clock: Option<(Timestamp, u64)>,
        batch: &Precomputed,
    ) -> Decision {
        let refuse = |refusal| Decision::Refuse {
            refusal,
            existing: None,
        };
        // Verified just now: the rules below need not check its signature again.
        let checked = Verified {
            entry: entry.id(),
            inner: batch,
        };
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
                self.hear(certified, batch);
                break;
            }
            if let Err(rejection) = self.learn_proposed(certified, batch) {
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
        // What a citation carries that this notary verified before is not checked again.
        let own_first = OwnFirst {
            me,
            own: &self.own,
            inner: &checked,
        };
        let remembered = Remembered {
            seen: &self.seen,
            inner: &own_first,
        };
        if let Err(rejection) = view.ledger.evaluate(entry, None, false, &remembered) {
            return refuse(Refusal::Rules {
                code: rejection.code().to_owned(),
                reason: rejection.to_string(),
            });
        }
        if let Some((now, skew_ms)) = clock
            && let Err(refusal) = time_rule(entry, now, skew_ms)
        {
            return refuse(*refusal);
        }
        view.votes.insert(seq, entry.id());
        if let Some(citation) = citation_of(entry) {
            self.seen.remember_citation(&citation);
        }
        if let Some(view) = fresh {
            self.wallets.insert(wallet, view);
        }
        Decision::Vote(subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory of its own votes is bounded: past [`MAX_OWN_VOTES`] the oldest are forgotten
    /// (and verified again when shown back); only the very bytes signed count as signed.
    #[test]
    fn the_own_votes_are_bounded_first_in_first_out() {
        let mut own = OwnVotes::default();
        let key = |n: u64| OwnVotes::key(VOTE_DOMAIN, &n.to_le_bytes());
        let signature = |n: u64| {
            let mut bytes = [0u8; 64];
            bytes[..8].copy_from_slice(&n.to_le_bytes());
            scrip_feed::Signature::from_bytes(bytes)
        };
        let total = MAX_OWN_VOTES as u64 + 10;
        for n in 0..total {
            own.insert(key(n), signature(n));
        }
        assert_eq!(own.len(), MAX_OWN_VOTES);
        assert_eq!(own.signatures.len(), MAX_OWN_VOTES);
        assert!(!own.signed(&key(0), &signature(0)));
        assert!(own.signed(&key(total - 1), &signature(total - 1)));
        assert!(!own.signed(&key(total - 1), &signature(total - 2)));
        own.insert(key(total - 1), signature(total - 1));
        assert_eq!(own.len(), MAX_OWN_VOTES);
    }
}
