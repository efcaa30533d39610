//! Signature checking for the ledger, and citation verification.
//!
//! The fold separates *what* is checked from *how* signatures are checked: every rule runs
//! always; signatures (entry signatures and notary votes) go through a [`SignatureCheck`], which
//! verifies them ([`VerifyAll`]), trusts them because they were verified before
//! ([`TrustSignatures`], e.g. a node folding entries its store already validated), or looks them
//! up in results computed in parallel ([`Precomputed`], the audit).

use std::collections::HashMap;

use scrip_feed::validate::{validate_payload, validate_signature};

use scrip_feed::{Entry, EntryId, FeedId, Seq};

use crate::certificate::{
    Certificate, NotarySet, ROUND_ZERO, VoteSubject, check_certificate_shape,
};
use crate::content::{CertifiedBytes, Citation, WalletEntry};
use crate::error::{CertificateError, Rejection};

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

/// Results computed ahead (in parallel), keyed by exactly what they answer for; anything not
/// found is verified on the spot, so correctness never depends on what was precomputed.
///
/// - An entry's *signature* result is keyed by the entry's id: the id is the hash of the whole
///   signed header (signature included), so one id means one signature check. The payload is
///   not covered by it (two entries with one header can carry different payloads), so its hash
///   is checked on the spot, every time (cheap).
/// - A certificate's result is keyed by the certified entry's id *and* the certificate's hash:
///   two certificates for one entry can carry different votes (a forged one beside the real
///   one, in two citations of the same order), and each gets its own answer.
#[derive(Debug, Default)]
pub struct Precomputed {
    /// Entry signature results (the author's key, then the signature), by entry id.
    pub entries: HashMap<EntryId, Result<(), scrip_feed::Error>>,
    /// Vote signature results, by certified entry id and [`Certificate::hash`].
    pub votes: HashMap<(EntryId, scrip_feed::Hash), Result<(), CertificateError>>,
}

impl SignatureCheck for Precomputed {
    fn entry(&self, entry: &Entry) -> Result<(), scrip_feed::Error> {
        validate_payload(entry)?;
        match self.entries.get(&entry.id()) {
            Some(result) => result.clone(),
            None => validate_signature(entry),
        }
    }

    fn votes(
        &self,
        certificate: &Certificate,
        subject: &VoteSubject,
    ) -> Result<(), CertificateError> {
        if certificate.entry != subject.entry {
            return VerifyAll.votes(certificate, subject);
        }
        match self.votes.get(&(subject.entry, certificate.hash())) {
            Some(result) => result.clone(),
            None => VerifyAll.votes(certificate, subject),
        }
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
