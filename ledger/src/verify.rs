//! Signature checking for the ledger, and citation verification.
//!
//! The fold separates *what* is checked from *how* signatures are checked: every rule runs
//! always; signatures (entry signatures and notary votes) go through a [`SignatureCheck`], which
//! verifies them ([`VerifyAll`]), trusts them because they were verified before
//! ([`TrustSignatures`], e.g. a node folding entries its store already validated), or looks them
//! up in results verified ahead as batches ([`Gather`] then [`Precomputed`]: the audit, a
//! notary's batch of proposals).

use std::collections::HashMap;

use scrip_feed::identity::{AuthorKey, domain, signing_bytes, verify_batch};
use scrip_feed::validate::{entry_signed_bytes, validate_payload, validate_signature};
use scrip_feed::{Entry, EntryId, FeedId, Seq, Signature};

use crate::certificate::{
    Certificate, NotarySet, ROUND_ZERO, VOTE_DOMAIN, Vote, VoteSubject, check_certificate_shape,
    verify_signatures_except,
};
use crate::content::{CertifiedBytes, Citation, WalletEntry};
use crate::error::{CertificateError, Rejection};
use crate::fate::{FATE_DOMAIN, Fate};
use crate::state::CertifiedEntry;

/// How signatures are checked.
pub trait SignatureCheck: Sync {
    /// The entry's integrity: its payload matches its header (length and hash) and its
    /// signature verifies (strict ed25519). What the feed store checks on ingest.
    fn entry(&self, entry: &Entry) -> Result<(), scrip_feed::Error>;
    /// The signatures of a certificate's votes (its shape is checked separately).
    fn votes(
        &self,
        certificate: &Certificate,
        subject: &VoteSubject,
    ) -> Result<(), CertificateError>;

    /// Checks the signatures of a fate certificate's votes (verified, unless overridden).
    fn fate_votes(
        &self,
        votes: &[crate::certificate::Vote],
        subject: &crate::fate::FateSubject,
    ) -> Result<(), CertificateError> {
        crate::fate::verify_fate_votes(votes, subject)
    }
}

/// Verifies every signature.
#[derive(Clone, Copy, Debug, Default)]
pub struct VerifyAll;

impl SignatureCheck for VerifyAll {
    fn entry(&self, entry: &Entry) -> Result<(), scrip_feed::Error> {
        validate_payload(entry)?;
        validate_signature(entry)
    }

    fn votes(
        &self,
        certificate: &Certificate,
        subject: &VoteSubject,
    ) -> Result<(), CertificateError> {
        crate::certificate::verify_votes(certificate, subject)
    }
}

/// Trusts every signature and payload hash: for entries verified before (the feed store checks
/// payloads and signatures on ingest; notaries checked the votes and the citations an entry
/// embeds before certifying it). Every other rule still runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct TrustSignatures;

impl SignatureCheck for TrustSignatures {
    fn entry(&self, _entry: &Entry) -> Result<(), scrip_feed::Error> {
        Ok(())
    }

    fn votes(
        &self,
        _certificate: &Certificate,
        _subject: &VoteSubject,
    ) -> Result<(), CertificateError> {
        Ok(())
    }

    fn fate_votes(
        &self,
        _votes: &[crate::certificate::Vote],
        _subject: &crate::fate::FateSubject,
    ) -> Result<(), CertificateError> {
        Ok(())
    }
}

/// Signatures verified ahead (as batches, maybe in parallel), each remembered with exactly
/// what was verified: the key, the signature and the signed bytes (domain included). A check
/// looks each signature up and compares key and signed bytes; whatever it does not find, or
/// finds over other bytes, it verifies on the spot, so correctness never depends on what was
/// precomputed, and a failure is reported exactly as [`VerifyAll`] reports it (only good
/// signatures are remembered; a bad one is verified again and named). An entry's payload is
/// not covered by its signature (the header commits to it by hash): it is checked at every use.
/// Filled by [`Gather::verify`].
#[derive(Clone, Debug, Default)]
pub struct Precomputed {
    /// Good signatures: the signer and the index of the signed bytes in `signed`.
    good: HashMap<[u8; 64], (FeedId, usize)>,
    signed: Vec<Vec<u8>>,
}

impl Precomputed {
    /// How many good signatures it holds.
    pub fn len(&self) -> usize {
        self.good.len()
    }

    /// True if it holds none.
    pub fn is_empty(&self) -> bool {
        self.good.is_empty()
    }

    /// Adds `other`'s good signatures.
    pub fn extend(&mut self, other: Precomputed) {
        let base = self.signed.len();
        self.signed.extend(other.signed);
        self.good.extend(
            other
                .good
                .into_iter()
                .map(|(signature, (key, at))| (signature, (key, base + at))),
        );
    }

    /// Whether `signature` by `key` over the concatenation of `parts` verified.
    /// Whether `signature` is `key`'s over `domain ‖ 0 ‖ message`: looked up, else verified.
    pub fn verifies(
        &self,
        key: &FeedId,
        domain: &[u8],
        message: &[u8],
        signature: &Signature,
    ) -> bool {
        self.holds(key, signature, &[domain, &[0], message])
            || AuthorKey::cached(key).is_ok_and(|k| k.verify(domain, message, signature))
    }

    fn holds(&self, key: &FeedId, signature: &Signature, parts: &[&[u8]]) -> bool {
        let Some((signer, at)) = self.good.get(signature.as_bytes()) else {
            return false;
        };
        if signer != key {
            return false;
        }
        let mut rest = self.signed[*at].as_slice();
        for part in parts {
            match rest.split_at_checked(part.len()) {
                Some((head, tail)) if head == *part => rest = tail,
                _ => return false,
            }
        }
        rest.is_empty()
    }
}

impl SignatureCheck for Precomputed {
    fn entry(&self, entry: &Entry) -> Result<(), scrip_feed::Error> {
        validate_payload(entry)?;
        let parts: [&[u8]; 3] = [domain::ENTRY, &[0], entry.signed_fields_bytes()];
        if self.holds(&entry.author(), &entry.header().signature, &parts) {
            Ok(())
        } else {
            validate_signature(entry)
        }
    }

    fn votes(
        &self,
        certificate: &Certificate,
        subject: &VoteSubject,
    ) -> Result<(), CertificateError> {
        let known =
            |vote: &Vote, signed: &[u8]| self.holds(&vote.notary, &vote.signature, &[signed]);
        verify_signatures_except(VOTE_DOMAIN, &subject.message(), &certificate.votes, known)
    }

    fn fate_votes(
        &self,
        votes: &[Vote],
        subject: &crate::fate::FateSubject,
    ) -> Result<(), CertificateError> {
        let known =
            |vote: &Vote, signed: &[u8]| self.holds(&vote.notary, &vote.signature, &[signed]);
        verify_signatures_except(FATE_DOMAIN, &subject.message(), votes, known)
    }
}

/// One signature waiting in a [`Gather`]: its key, the index of the bytes it signs, and itself.
type Pending = (AuthorKey, usize, Signature);

/// What a [`Gather`] holds: the signatures, and the bytes they sign (a certificate's votes
/// share one).
#[derive(Default)]
struct Gathered {
    pending: Vec<Pending>,
    messages: Vec<Vec<u8>>,
    /// Signatures the gatherer verified itself (the index of the bytes they sign).
    checked: Vec<(FeedId, usize, Signature)>,
}

/// Gathers signatures to verify as one batch, by running checks through it: every check
/// answers `Ok` and records the signatures it would have verified (an unusable key is not
/// recorded: the real check refuses it later). [`Gather::verify`] then checks them in one batch
/// (`feed.md` §4: a batch accepts exactly what single checks accept) into a [`Precomputed`].
/// Gathering too little costs single checks later; too much costs batch work for nothing.
#[derive(Default)]
pub struct Gather {
    gathered: std::sync::Mutex<Gathered>,
}

impl std::fmt::Debug for Gather {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gather")
            .field("pending", &self.len())
            .finish()
    }
}

impl Gather {
    /// Records `signatures` (each with its signer) over `signed`.
    fn record(&self, signed: Vec<u8>, signatures: impl Iterator<Item = (FeedId, Signature)>) {
        let Ok(mut gathered) = self.gathered.lock() else {
            return;
        };
        let at = gathered.messages.len();
        let mut any = false;
        for (signer, signature) in signatures {
            if let Ok(key) = AuthorKey::cached(&signer) {
                gathered.pending.push((key, at, signature));
                any = true;
            }
        }
        if any {
            gathered.messages.push(signed);
        }
    }

    /// Adds a signature the caller verified itself, singly (because whether to gather more
    /// depended on it): it joins the results without being verified again.
    pub fn checked(&self, key: &FeedId, domain: &[u8], message: &[u8], signature: Signature) {
        if let Ok(mut gathered) = self.gathered.lock() {
            let at = gathered.messages.len();
            gathered.messages.push(signing_bytes(domain, message));
            gathered.checked.push((*key, at, signature));
        }
    }

    fn record_votes(&self, domain: &[u8], message: &[u8], votes: &[Vote]) {
        let signed = signing_bytes(domain, message);
        self.record(signed, votes.iter().map(|v| (v.notary, v.signature)));
    }

    /// How many signatures it holds.
    pub fn len(&self) -> usize {
        self.gathered.lock().map_or(0, |g| g.pending.len())
    }

    /// True if it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Verifies the gathered signatures as one batch; the good ones are remembered.
    pub fn verify(self) -> Precomputed {
        let Gathered {
            pending,
            messages,
            checked,
        } = self.gathered.into_inner().unwrap_or_default();
        let items: Vec<(&AuthorKey, &[u8], &Signature)> = pending
            .iter()
            .map(|(key, at, signature)| (key, messages[*at].as_slice(), signature))
            .collect();
        let good = verify_batch(&items);
        let mut done = Precomputed {
            good: HashMap::with_capacity(items.len()),
            signed: Vec::new(),
        };
        for ((key, at, signature), good) in pending.iter().zip(good) {
            if good {
                done.good.insert(*signature.as_bytes(), (*key.id(), *at));
            }
        }
        for (key, at, signature) in checked {
            done.good.insert(*signature.as_bytes(), (key, at));
        }
        done.signed = messages;
        done
    }
}

impl SignatureCheck for Gather {
    fn entry(&self, entry: &Entry) -> Result<(), scrip_feed::Error> {
        self.record(
            entry_signed_bytes(entry),
            std::iter::once((entry.author(), entry.header().signature)),
        );
        Ok(())
    }

    fn votes(
        &self,
        certificate: &Certificate,
        subject: &VoteSubject,
    ) -> Result<(), CertificateError> {
        self.record_votes(VOTE_DOMAIN, &subject.message(), &certificate.votes);
        Ok(())
    }

    fn fate_votes(
        &self,
        votes: &[Vote],
        subject: &crate::fate::FateSubject,
    ) -> Result<(), CertificateError> {
        self.record_votes(FATE_DOMAIN, &subject.message(), votes);
        Ok(())
    }
}

/// Runs `check` over every signature `certified` carries, without any rule: the entry, its
/// certificate's votes (if `certificates`), and what its payload embeds — a citation's genesis
/// and entry with their certificates (walked by [`verify_citation`] itself), an accept's claim
/// votes, a cancel's or refund's void votes. What [`Gather`] is fed with before a log or a
/// batch of proposals is checked.
pub fn each_signature(certified: &CertifiedEntry, certificates: bool, check: &dyn SignatureCheck) {
    let entry = &certified.entry;
    let _ = check.entry(entry);
    if let (Some(certificate), true) = (&certified.certificate, certificates) {
        let _ = check.votes(certificate, &subject_of(entry));
    }
    embedded_signatures(entry, check);
}

/// Runs `check` over the signatures `entry`'s payload embeds (see [`each_signature`]).
pub fn embedded_signatures(entry: &Entry, check: &dyn SignatureCheck) {
    let Some(content) = entry
        .payload()
        .and_then(|p| WalletEntry::from_payload(p).ok())
    else {
        return;
    };
    // A citation is walked as it is verified: what fails a cheap rule first is not gathered.
    let cite = |citation: &Citation| verify_citation(citation, check).ok();
    let fate = |wallet: FeedId, order: EntryId, fate: Fate, votes: &[Vote]| {
        let subject = crate::fate::FateSubject {
            wallet,
            order,
            fate,
        };
        let _ = check.fate_votes(votes, &subject);
    };
    match &content {
        WalletEntry::Accept(accept) => {
            if let (Some(order), Some(claim)) = (cite(&accept.order), &accept.claim) {
                fate(order.author, order.id, Fate::Claimed, &claim.votes);
            }
        }
        WalletEntry::Reject(reject) => {
            cite(&reject.order);
        }
        WalletEntry::Reclaim(reclaim) => {
            cite(&reclaim.rejection);
        }
        WalletEntry::Cancel(cancel) => {
            fate(
                entry.author(),
                cancel.order.id,
                Fate::Cancelled,
                &cancel.void.votes,
            );
        }
        WalletEntry::Refund(refund) => {
            fate(
                entry.author(),
                refund.order.id,
                Fate::Expired,
                &refund.void.votes,
            );
        }
        _ => {}
    }
}

/// Most certified entries a [`Seen`] remembers having verified (entry id and certificate), so
/// that a citation of one already checked is not checked again (a bounded, first-in first-out
/// memory: what falls out is checked again when cited).
pub const MAX_SEEN_CERTIFIED: usize = 65_536;

/// Certified entries a party verified (their signature and a certificate for them): the bounded
/// memory behind [`Remembered`]. Each party keeps its own (a notary, a wallet client and the
/// replication beside it): what another machine verified proves nothing here.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    order: std::collections::VecDeque<(EntryId, scrip_feed::Hash)>,
    certified: std::collections::HashSet<(EntryId, scrip_feed::Hash)>,
    entries: std::collections::HashMap<EntryId, u32>,
}

impl Seen {
    /// Remembers that `entry`'s signature and `certificate` for it verified.
    pub fn insert(&mut self, entry: EntryId, certificate: &Certificate) {
        let key = (entry, certificate.hash());
        if !self.certified.insert(key) {
            return;
        }
        *self.entries.entry(entry).or_insert(0) += 1;
        self.order.push_back(key);
        while self.order.len() > MAX_SEEN_CERTIFIED {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.certified.remove(&old);
            if let Some(count) = self.entries.get_mut(&old.0) {
                *count -= 1;
                if *count == 0 {
                    self.entries.remove(&old.0);
                }
            }
        }
    }

    /// How many are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True if none is.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Remembers the certified entries a verified citation carries (its genesis and entry).
    pub fn remember_citation(&mut self, citation: &Citation) {
        for bytes in [&citation.genesis, &citation.entry] {
            self.insert(EntryId::of_header(&bytes.bytes.header), &bytes.certificate);
        }
    }
}

/// Signature checks skipping what a party verified before ([`Seen`]): an entry whose id it has
/// seen verified (same id, same signed header; the payload's hash is still checked) and a
/// certificate it has seen verified for that entry (same bytes). Everything else goes to
/// `inner`.
pub struct Remembered<'a> {
    /// What was verified before.
    pub seen: &'a Seen,
    /// How everything else is checked.
    pub inner: &'a dyn SignatureCheck,
}

impl std::fmt::Debug for Remembered<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remembered")
            .field("seen", &self.seen.len())
            .finish_non_exhaustive()
    }
}

impl SignatureCheck for Remembered<'_> {
    fn entry(&self, entry: &Entry) -> Result<(), scrip_feed::Error> {
        if self.seen.entries.contains_key(&entry.id()) {
            validate_payload(entry)
        } else {
            self.inner.entry(entry)
        }
    }

    fn votes(
        &self,
        certificate: &Certificate,
        subject: &VoteSubject,
    ) -> Result<(), CertificateError> {
        let key = (subject.entry, certificate.hash());
        if certificate.entry == subject.entry && self.seen.certified.contains(&key) {
            Ok(())
        } else {
            self.inner.votes(certificate, subject)
        }
    }

    fn fate_votes(
        &self,
        votes: &[Vote],
        subject: &crate::fate::FateSubject,
    ) -> Result<(), CertificateError> {
        self.inner.fate_votes(votes, subject)
    }
}

/// A verified citation: the cited entry, decoded, with its wallet's notary set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cited {
    /// The cited wallet.
    pub author: FeedId,
    /// The cited entry's seq.
    pub seq: Seq,
    /// The cited entry's id.
    pub id: EntryId,
    /// Its content.
    pub content: WalletEntry,
    /// The cited wallet's notaries (from its certified genesis).
    pub notaries: NotarySet,
}

/// The subject a wallet's notaries sign for `entry`.
pub fn subject_of(entry: &Entry) -> VoteSubject {
    VoteSubject {
        wallet: entry.author(),
        seq: entry.seq(),
        entry: entry.id(),
        round: ROUND_ZERO,
    }
}

/// Checks `certificate` certifies `entry` under `set`: shape, then vote signatures.
pub fn certify(
    certificate: &Certificate,
    set: &NotarySet,
    entry: &Entry,
    check: &dyn SignatureCheck,
) -> Result<(), CertificateError> {
    let subject = subject_of(entry);
    check_certificate_shape(certificate, set, &subject)?;
    check.votes(certificate, &subject)
}

fn missing(reason: impl Into<String>) -> Rejection {
    Rejection::MissingCitation {
        reason: reason.into(),
    }
}

/// Decodes a certified entry's bytes and checks them as a feed entry (payload, signature).
pub fn decode_certified(
    bytes: &CertifiedBytes,
    check: &dyn SignatureCheck,
) -> Result<(Entry, WalletEntry), Rejection> {
    let entry = bytes
        .bytes
        .decode()
        .map_err(|e| missing(format!("cited entry: {e}")))?;
    check
        .entry(&entry)
        .map_err(|e| missing(format!("cited entry: {e}")))?;
    let content = WalletEntry::from_payload(&bytes.bytes.payload)
        .map_err(|e| missing(format!("cited entry: {e}")))?;
    Ok((entry, content))
}

/// Verifies a citation: the cited wallet's genesis is a certified first entry naming a valid
/// notary set, and the cited entry is a validly signed entry of that wallet, certified by that
/// set.
///
/// Rules: the genesis decodes, is seq 1 of its author, validly signed, a `Genesis` with a valid
/// notary set ([`Rejection::MissingCitation`]); its certificate verifies under its own set
/// ([`Rejection::CitedCertificate`]); the cited entry decodes, is by the same author, validly
/// signed, wallet content ([`Rejection::MissingCitation`]); its certificate verifies under the
/// set ([`Rejection::CitedCertificate`]).
pub fn verify_citation(
    citation: &Citation,
    check: &dyn SignatureCheck,
) -> Result<Cited, Rejection> {
    let (genesis, genesis_content) = decode_certified(&citation.genesis, check)?;
    if genesis.seq() != Seq::FIRST {
        return Err(missing("the cited genesis is not a first entry"));
    }
    let WalletEntry::Genesis(ref g) = genesis_content else {
        return Err(missing("the cited genesis is not a genesis"));
    };
    let notaries = NotarySet::from_certified(&g.notaries).map_err(|e| missing(e.to_string()))?;
    certify(&citation.genesis.certificate, &notaries, &genesis, check)
        .map_err(|error| Rejection::CitedCertificate { error })?;
    let (entry, content) = decode_certified(&citation.entry, check)?;
    if entry.author() != genesis.author() {
        return Err(missing(
            "the cited entry and the genesis are of different wallets",
        ));
    }
    certify(&citation.entry.certificate, &notaries, &entry, check)
        .map_err(|error| Rejection::CitedCertificate { error })?;
    Ok(Cited {
        author: entry.author(),
        seq: entry.seq(),
        id: entry.id(),
        content,
        notaries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory of verified certificates is bounded: past [`MAX_SEEN_CERTIFIED`] the oldest
    /// are forgotten (and checked again when cited), and an entry is forgotten with its last
    /// certificate.
    #[test]
    fn the_seen_certificates_are_bounded_first_in_first_out() {
        let mut seen = Seen::default();
        let certificate = |n: u64| Certificate {
            entry: EntryId::of_header(&n.to_le_bytes()),
            round: 0,
            votes: Vec::new(),
        };
        let total = MAX_SEEN_CERTIFIED as u64 + 10;
        for n in 0..total {
            let c = certificate(n);
            seen.insert(c.entry, &c);
        }
        assert_eq!(seen.len(), MAX_SEEN_CERTIFIED);
        let first = certificate(0);
        let last = certificate(total - 1);
        assert!(!seen.entries.contains_key(&first.entry));
        assert!(seen.entries.contains_key(&last.entry));
        assert!(seen.certified.contains(&(last.entry, last.hash())));
        assert_eq!(seen.entries.len(), MAX_SEEN_CERTIFIED);
        // The same certificate again changes nothing.
        seen.insert(last.entry, &last);
        assert_eq!(seen.len(), MAX_SEEN_CERTIFIED);
    }
}
