//! Notary sets, votes, certificates, and the quorum and cross-group rules.
//!
//! A wallet's genesis names its notary set S (n distinct notaries). With f = ⌊(n−1)/3⌋ faulty
//! notaries tolerated, a **certificate** needs q = n − f votes. Two quorums of one set share at
//! least q + q − n = n − 2f ≥ f + 1 notaries, so at least one honest notary voted for both; an
//! honest notary votes at most once per (wallet, seq), so two certificates for different entries
//! at one slot cannot exist while at most f notaries are faulty.
//!
//! **Cross-group rule.** A receiver whose set is S_B relies on a certificate from the sender's
//! set S_A only if O = S_A ∩ S_B has |O| ≥ 2·f_A + f_B + 1. Each S_A quorum misses at most f_A
//! members of S_A, so it holds at least |O| − f_A ≥ f_A + f_B + 1 members of O. Hence:
//!
//! 1. two conflicting certificates from S_A share at least |O| − 2·f_A ≥ f_B + 1 members of O,
//!    each of which voted twice for one slot: more than the f_B faulty notaries the receiver's
//!    own set tolerates;
//! 2. every certificate from S_A carries at least f_A + f_B + 1 votes of notaries the receiver
//!    trusts, of which at most f_B are faulty: at least f_A + 1 honest notaries the receiver
//!    trusts checked the sender's balance.
//!
//! With S_A = S_B this is n ≥ 3f + 1. See `docs/protocol/ledger.md` §4.

use scrip_feed::codec;
use scrip_feed::identity::{AuthorKey, signing_bytes};
use scrip_feed::{EntryId, FeedId, Keypair, Seq, Signature};
use serde::{Deserialize, Serialize};

use crate::error::{CertificateError, Error};

/// Signature domain of votes.
pub const VOTE_DOMAIN: &[u8] = b"scrip/vote/v1";
/// Certificate encoding version.
pub const CERTIFICATE_VERSION: u8 = 1;
/// The attachment kind under which certificates travel with entries.
pub const CERTIFICATE_KIND: &str = "scrip/certificate";
/// Most notaries in a set.
pub const MAX_NOTARIES: usize = 64;
/// The only round used so far (kept in the signed bytes so that recovery rounds fit later).
pub const ROUND_ZERO: u32 = 0;

/// A wallet's notaries: 1 to [`MAX_NOTARIES`] distinct, valid keys, kept sorted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotarySet {
    members: Vec<FeedId>,
}

impl NotarySet {
    /// Checks and sorts a set.
    ///
    /// Rules: 1 to [`MAX_NOTARIES`] members; no duplicates; each a valid, non-weak ed25519 key.
    pub fn new(members: &[FeedId]) -> Result<NotarySet, Error> {
        let set = NotarySet::from_certified(members)?;
        for member in &set.members {
            AuthorKey::cached(member).map_err(|e| Error::InvalidNotarySet {
                reason: format!("{member}: {e}"),
            })?;
        }
        Ok(set)
    }

    /// A set whose members' keys are not checked for being valid curve points (only count and
    /// distinctness): for sets taken from certified citations, whose notaries' keys are proven
    /// usable by the very votes checked next (a weak or invalid key fails every vote check).
    /// Checking points costs a decompression per member per citation.
    pub fn from_certified(members: &[FeedId]) -> Result<NotarySet, Error> {
        let bad = |reason: String| Error::InvalidNotarySet { reason };
        if members.is_empty() || members.len() > MAX_NOTARIES {
            return Err(bad(format!(
                "{} notaries, a set has 1 to {MAX_NOTARIES}",
                members.len()
            )));
        }
        let mut sorted = members.to_vec();
        sorted.sort();
        if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad(format!("{} appears twice", pair[0])));
        }
        Ok(NotarySet { members: sorted })
    }

    /// The members, sorted.
    pub fn members(&self) -> &[FeedId] {
        &self.members
    }

    /// n.
    pub fn n(&self) -> usize {
        self.members.len()
    }

    /// f = ⌊(n − 1) / 3⌋: faulty notaries tolerated.
    pub fn f(&self) -> usize {
        self.n().saturating_sub(1) / 3
    }

    /// q = n − f: votes needed for a certificate.
    pub fn quorum(&self) -> usize {
        self.n() - self.f()
    }

    /// True if `notary` is a member.
    pub fn contains(&self, notary: &FeedId) -> bool {
        self.members.binary_search(notary).is_ok()
    }

    /// |self ∩ other|.
    pub fn overlap(&self, other: &NotarySet) -> usize {
        self.members.iter().filter(|m| other.contains(m)).count()
    }

    /// A short text form for messages: `{@abc…, @def…}`.
    pub fn describe(&self) -> String {
        let shown: Vec<String> = self.members.iter().map(FeedId::short).collect();
        format!("{{{}}}", shown.join(", "))
    }
}

/// The overlap a receiver with set `receiver` needs with the set `sender` whose certificate it
/// relies on: 2·f_sender + f_receiver + 1.
pub fn overlap_required(sender: &NotarySet, receiver: &NotarySet) -> usize {
    2 * sender.f() + receiver.f() + 1
}

/// The cross-group rule: `Ok` if `receiver` may rely on certificates of `sender`, else the
/// overlap found and the overlap needed.
pub fn check_overlap(sender: &NotarySet, receiver: &NotarySet) -> Result<(), (usize, usize)> {
    let overlap = sender.overlap(receiver);
    let required = overlap_required(sender, receiver);
    if overlap >= required {
        Ok(())
    } else {
        Err((overlap, required))
    }
}

/// What a vote is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteSubject {
    /// The wallet.
    pub wallet: FeedId,
    /// The slot.
    pub seq: Seq,
    /// The entry voted for.
    pub entry: EntryId,
    /// The round (0 for now).
    pub round: u32,
}

impl VoteSubject {
    /// The bytes a notary signs (without the domain): `postcard(wallet, seq, entry, round)`.
    pub fn message(&self) -> Vec<u8> {
        codec::encode("vote subject", self).unwrap_or_default()
    }
}

/// A notary's vote: its signature over the subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The notary.
    pub notary: FeedId,
    /// ed25519 over `"scrip/vote/v1" ‖ 0x00 ‖ subject.message()`.
    pub signature: Signature,
}

impl Vote {
    /// Signs `subject` as `notary`.
    pub fn sign(notary: &Keypair, subject: &VoteSubject) -> Vote {
        Vote {
            notary: notary.id(),
            signature: notary.sign(VOTE_DOMAIN, &subject.message()),
        }
    }

    /// True if the signature verifies (strictly) for `subject`.
    pub fn verifies(&self, subject: &VoteSubject) -> bool {
        AuthorKey::cached(&self.notary)
            .map(|key| key.verify(VOTE_DOMAIN, &subject.message(), &self.signature))
            .unwrap_or(false)
    }
}

/// A quorum of votes for one entry. Votes are sorted by notary, each notary at most once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The certified entry.
    pub entry: EntryId,
    /// The round (0 for now).
    pub round: u32,
    /// The votes, sorted by notary.
    pub votes: Vec<Vote>,
}

impl Certificate {
    /// Assembles a certificate from votes (sorting them; duplicates are dropped).
    pub fn from_votes(entry: EntryId, round: u32, mut votes: Vec<Vote>) -> Certificate {
        votes.sort_by_key(|v| v.notary);
        votes.dedup_by_key(|v| v.notary);
        Certificate {
            entry,
            round,
            votes,
        }
    }

    /// The canonical encoding: `postcard((CERTIFICATE_VERSION, certificate))`.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode("certificate", &(CERTIFICATE_VERSION, self)).unwrap_or_default()
    }

    /// The hash of its canonical encoding: what a memory of checked certificates keys them by
    /// (two certificates for one entry can differ in their votes, and so in whether they
    /// verify).
    pub fn hash(&self) -> scrip_feed::Hash {
        scrip_feed::Hash::of(&self.encode())
    }

    /// Decodes a certificate, refusing anything but the canonical encoding of the current
    /// version, or more than [`MAX_NOTARIES`] votes.
    pub fn decode(bytes: &[u8]) -> Result<Certificate, CertificateError> {
        let malformed = |reason: String| CertificateError::Malformed { reason };
        match bytes.first() {
            Some(&CERTIFICATE_VERSION) => {}
            Some(other) => return Err(malformed(format!("unknown version {other}"))),
            None => return Err(malformed("empty".into())),
        }
        let (_, certificate): (u8, Certificate) =
            codec::decode_canonical("certificate", bytes).map_err(|e| malformed(e.to_string()))?;
        if certificate.votes.len() > MAX_NOTARIES {
            return Err(malformed(format!(
                "{} votes, at most {MAX_NOTARIES}",
                certificate.votes.len()
            )));
        }
        Ok(certificate)
    }
}

/// Checks that `certificate` certifies `subject` under `set`.
///
/// Rules, in order: it names the entry ([`CertificateError::WrongEntry`]) and round
/// ([`CertificateError::WrongRound`]); votes are in strictly increasing notary order, so no
/// notary twice ([`CertificateError::DuplicateSigner`]); every signer is in the set
/// ([`CertificateError::UnknownSigner`]); there are at least q votes
/// ([`CertificateError::BelowQuorum`]); every signature passes feed.md §4
/// ([`CertificateError::BadSignature`]).
pub fn verify_certificate(
    certificate: &Certificate,
    set: &NotarySet,
    subject: &VoteSubject,
) -> Result<(), CertificateError> {
    check_certificate_shape(certificate, set, subject)?;
    verify_votes(certificate, subject)
}

/// Checks every vote signature of `certificate` over `subject` (feed.md §4), nothing else.
pub fn verify_votes(
    certificate: &Certificate,
    subject: &VoteSubject,
) -> Result<(), CertificateError> {
    verify_signatures(VOTE_DOMAIN, &subject.message(), &certificate.votes)
}

/// Checks that every vote of `votes` is its notary's signature over `domain ‖ 0x00 ‖ message`
/// (`bad-signature` names the first that is not): the one loop behind entry votes and fate
/// votes.
pub fn verify_signatures(
    domain: &[u8],
    message: &[u8],
    votes: &[Vote],
) -> Result<(), CertificateError> {
    verify_signatures_except(domain, message, votes, |_, _| false)
}

/// [`verify_signatures`], except the votes `known` vouches for (given each vote and the bytes
/// it signs): those are not verified again.
pub fn verify_signatures_except(
    domain: &[u8],
    message: &[u8],
    votes: &[Vote],
    known: impl Fn(&Vote, &[u8]) -> bool,
) -> Result<(), CertificateError> {
    let message = signing_bytes(domain, message);
    for vote in votes {
        let ok = known(vote, &message)
            || AuthorKey::cached(&vote.notary)
                .map(|key| key.verify_prepared(&message, &vote.signature))
                .unwrap_or(false);
        if !ok {
            return Err(CertificateError::BadSignature {
                notary: vote.notary.to_string(),
            });
        }
    }
    Ok(())
}

/// Every rule of [`verify_certificate`] except the signatures (for callers that check those
/// elsewhere, e.g. in parallel).
pub fn check_certificate_shape(
    certificate: &Certificate,
    set: &NotarySet,
    subject: &VoteSubject,
) -> Result<(), CertificateError> {
    if certificate.entry != subject.entry {
        return Err(CertificateError::WrongEntry {
            expected: subject.entry.to_string(),
            found: certificate.entry.to_string(),
        });
    }
    if certificate.round != subject.round {
        return Err(CertificateError::WrongRound {
            expected: subject.round,
            found: certificate.round,
        });
    }
    check_signers(&certificate.votes, set)
}

/// The signer rules shared by every kind of quorum certificate (entry certificates and fate
/// certificates): votes strictly increasing by notary (`duplicate-signer`), every signer in the
/// set (`unknown-signer`), at least a quorum of them (`below-quorum`).
pub fn check_signers(votes: &[Vote], set: &NotarySet) -> Result<(), CertificateError> {
    for pair in votes.windows(2) {
        if pair[0].notary >= pair[1].notary {
            return Err(CertificateError::DuplicateSigner {
                notary: pair[1].notary.to_string(),
            });
        }
    }
    // Both lists are sorted: one merge walk checks membership.
    let mut members = set.members().iter().peekable();
    for vote in votes {
        while members.next_if(|m| **m < vote.notary).is_some() {}
        if members.peek() != Some(&&vote.notary) {
            return Err(CertificateError::UnknownSigner {
                notary: vote.notary.to_string(),
            });
        }
    }
    if votes.len() < set.quorum() {
        return Err(CertificateError::BelowQuorum {
            have: votes.len(),
            need: set.quorum(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: u8) -> Vec<Keypair> {
        (1..=n).map(|i| Keypair::from_seed(&[i; 32])).collect()
    }

    fn set(keys: &[Keypair]) -> NotarySet {
        NotarySet::new(&keys.iter().map(Keypair::id).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn quorum_sizes() {
        for (n, f, q) in [
            (1, 0, 1),
            (2, 0, 2),
            (3, 0, 3),
            (4, 1, 3),
            (7, 2, 5),
            (10, 3, 7),
            (64, 21, 43),
        ] {
            let s = set(&keys(n));
            assert_eq!((s.f(), s.quorum()), (f, q), "n = {n}");
        }
    }

    #[test]
    fn overlap_rule_matches_its_formula() {
        let all = keys(10);
        let a = set(&all[..4]); // f = 1
        let b = set(&all[..4]);
        assert_eq!(overlap_required(&a, &b), 4);
        assert!(check_overlap(&a, &b).is_ok());
        let c = set(&all[1..5]); // shares 3 with a
        assert_eq!(check_overlap(&a, &c), Err((3, 4)));
        let d = set(&all[..7]); // f = 2
        assert_eq!(overlap_required(&a, &d), 2 + 2 + 1);
        assert!(check_overlap(&a, &d).is_err(), "a has only 4 members");
    }

    #[test]
    fn notary_sets_are_checked() {
        let k = keys(2);
        assert!(NotarySet::new(&[]).is_err());
        assert!(NotarySet::new(&[k[0].id(), k[0].id()]).is_err());
        let mut weak = [0u8; 32];
        weak[0] = 1;
        assert!(NotarySet::new(&[FeedId::from_bytes(weak)]).is_err());
        let many: Vec<FeedId> = (0..65u8)
            .map(|i| Keypair::from_seed(&[i.wrapping_add(100); 32]).id())
            .collect();
        assert!(NotarySet::new(&many).is_err());
    }

    #[test]
    fn certificates_round_trip_canonically() {
        let k = keys(4);
        let subject = VoteSubject {
            wallet: k[0].id(),
            seq: Seq::FIRST,
            entry: EntryId::of_header(b"x"),
            round: ROUND_ZERO,
        };
        let cert = Certificate::from_votes(
            subject.entry,
            ROUND_ZERO,
            k.iter()
                .rev()
                .map(|key| Vote::sign(key, &subject))
                .collect(),
        );
        assert_eq!(Certificate::decode(&cert.encode()).unwrap(), cert);
        verify_certificate(&cert, &set(&k), &subject).unwrap();
        let mut trailing = cert.encode();
        trailing.push(0);
        assert!(Certificate::decode(&trailing).is_err());
    }
}
