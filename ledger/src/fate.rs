//! The fate of an order: **claimed** by its receiver, or **void** (cancelled by its sender, or
//! expired). The sender's notaries decide it, once per order, by quorum, outside any wallet's
//! log; the receiver's `Accept` cites a claim certificate and the sender's `Cancel` or `Refund`
//! cites a void certificate. Two quorums of one set share an honest notary, and an honest notary
//! never signs both a claim and a void of one order (it records the fate durably before it
//! signs: `docs/protocol/notary.md` §3a), so no order is both accepted and taken back.
//!
//! Because the certificate is obtained *before* the wallet entry that cites it is proposed, the
//! rules that judge that entry are deterministic (the certificate verifies or not): honest
//! notaries never split on it, and a race between a claim and a void can at worst leave an
//! order undecided, never a wallet's slot.
//!
//! Specified in `docs/protocol/ledger.md` §5a.

use scrip_feed::identity::AuthorKey;
use scrip_feed::{EntryId, FeedId, Keypair, Signature, codec};
use serde::{Deserialize, Serialize};

use crate::certificate::{MAX_NOTARIES, NotarySet, Vote, check_signers};
use crate::error::CertificateError;

/// The domain of a notary's fate vote.
pub const FATE_DOMAIN: &[u8] = b"scrip/fate/v1";
/// The domain of a wallet's request for a fate (signed by the order's receiver for a claim, by
/// its sender for a void).
pub const FATE_REQUEST_DOMAIN: &[u8] = b"scrip/fate-request/v1";

/// What becomes of an order. Variant order is the wire format: append only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Fate {
    /// Its receiver takes it (before its expiry; with the preimage of its lock, if any).
    Claimed,
    /// Its sender takes it back before its receiver claims it (unconditional orders only).
    Cancelled,
    /// Its expiry passed unclaimed: its sender takes it back.
    Expired,
}

impl Fate {
    /// True for the fates that return the escrow to the sender.
    pub fn is_void(self) -> bool {
        !matches!(self, Fate::Claimed)
    }

    /// True if an honest notary that signed `self` for an order must never sign `other` for it:
    /// a claim excludes every void and every void excludes a claim.
    pub fn excludes(self, other: Fate) -> bool {
        self.is_void() != other.is_void()
    }

    /// A stable lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Fate::Claimed => "claimed",
            Fate::Cancelled => "cancelled",
            Fate::Expired => "expired",
        }
    }
}

/// What a fate vote (and a fate request) is about: `order` of `wallet` (its sender) ends as
/// `fate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FateSubject {
    /// The order's wallet (its sender).
    pub wallet: FeedId,
    /// The order id.
    pub order: EntryId,
    /// The fate.
    pub fate: Fate,
}

impl FateSubject {
    /// The signed message: `postcard((wallet, order, fate))`.
    pub fn message(&self) -> Vec<u8> {
        codec::encode("fate subject", self).unwrap_or_default()
    }

    /// A notary's vote for this fate.
    pub fn vote(&self, notary: &Keypair) -> Vote {
        Vote {
            notary: notary.id(),
            signature: notary.sign(FATE_DOMAIN, &self.message()),
        }
    }

    /// A wallet's request for this fate, signed with the wallet's key.
    pub fn request(&self, wallet: &Keypair) -> Signature {
        wallet.sign(FATE_REQUEST_DOMAIN, &self.message())
    }

    /// Whether `signature` is `by`'s request for this fate.
    pub fn request_verifies(&self, by: &FeedId, signature: &Signature) -> bool {
        AuthorKey::cached(by)
            .map(|key| key.verify(FATE_REQUEST_DOMAIN, &self.message(), signature))
            .unwrap_or(false)
    }
}

/// A quorum of the order wallet's notaries voting for one fate of one order. Which order is
/// known from where it is cited (the accept's citation, the cancel's or refund's own order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FateCertificate {
    /// The fate.
    pub fate: Fate,
    /// The votes, strictly increasing by notary.
    pub votes: Vec<Vote>,
}

impl FateCertificate {
    /// A certificate from `votes` (sorted, one per notary).
    pub fn from_votes(fate: Fate, mut votes: Vec<Vote>) -> FateCertificate {
        votes.sort_by_key(|v| v.notary);
        votes.dedup_by_key(|v| v.notary);
        FateCertificate { fate, votes }
    }
}

/// Checks `certificate` for `subject` under the order wallet's `set`, in this order: it names
/// the fate (`wrong-fate`); at most 64 votes (`malformed`); the signer rules
/// ([`check_signers`]: `duplicate-signer`, `unknown-signer`, `below-quorum`); every vote
/// verifies (`bad-signature`, checked by `check`).
pub fn check_fate(
    certificate: &FateCertificate,
    set: &NotarySet,
    subject: &FateSubject,
    check: &dyn crate::verify::SignatureCheck,
) -> Result<(), CertificateError> {
    check_fate_shape(certificate, subject)?;
    check_signers(&certificate.votes, set)?;
    check.fate_votes(&certificate.votes, subject)
}

/// The rules every fate certificate meets before its signers are looked at: it names the fate
/// (`wrong-fate`) and has at most 64 votes (`malformed`).
fn check_fate_shape(
    certificate: &FateCertificate,
    subject: &FateSubject,
) -> Result<(), CertificateError> {
    if certificate.fate != subject.fate {
        return Err(CertificateError::WrongFate {
            expected: subject.fate.name(),
            found: certificate.fate.name(),
        });
    }
    if certificate.votes.len() > MAX_NOTARIES {
        return Err(CertificateError::Malformed {
            reason: format!("{} votes, at most {MAX_NOTARIES}", certificate.votes.len()),
        });
    }
    Ok(())
}

/// How many members of O = S_A ∩ S_B must sign a claim when not a quorum of S_A does:
/// |O| − min(f_A, f_B). With the cross-group rule (|O| ≥ 2·f_A + f_B + 1) any two such sets of
/// signers, and any such set and a quorum of S_A, share more than f_A members of S_A, so an honest
/// one (`ledger.md` §5a).
pub fn claim_threshold_in_overlap(order_set: &NotarySet, receiver_set: &NotarySet) -> usize {
    order_set
        .overlap(receiver_set)
        .saturating_sub(order_set.f().min(receiver_set.f()))
}

/// Checks a claim certificate of an order of a wallet with set `order_set`, accepted by a
/// wallet with set `receiver_set`. As [`check_fate`], except who may sign: every signer is in
/// `order_set` (`unknown-signer`), and either at least its quorum signed, or all signers are
/// also in `receiver_set` and at least [`claim_threshold_in_overlap`] of them signed
/// (`below-quorum`). So a receiver can claim from the notaries it shares with the sender, whose
/// addresses it knows; with one group both rules are the quorum.
pub fn check_claim(
    certificate: &FateCertificate,
    order_set: &NotarySet,
    receiver_set: &NotarySet,
    subject: &FateSubject,
    check: &dyn crate::verify::SignatureCheck,
) -> Result<(), CertificateError> {
    check_fate_shape(certificate, subject)?;
    let by_quorum = check_signers(&certificate.votes, order_set);
    match by_quorum {
        Ok(()) => {}
        Err(CertificateError::BelowQuorum { have, .. }) => {
            let in_overlap = certificate
                .votes
                .iter()
                .all(|v| receiver_set.contains(&v.notary));
            let threshold = claim_threshold_in_overlap(order_set, receiver_set);
            if !in_overlap || have < threshold.max(1) {
                return Err(CertificateError::BelowQuorum {
                    have,
                    need: order_set.quorum().min(threshold.max(1)),
                });
            }
        }
        Err(other) => return Err(other),
    }
    check.fate_votes(&certificate.votes, subject)
}

/// Verifies every fate vote's signature.
pub fn verify_fate_votes(votes: &[Vote], subject: &FateSubject) -> Result<(), CertificateError> {
    crate::certificate::verify_signatures(FATE_DOMAIN, &subject.message(), votes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::VerifyAll;

    fn keys(n: u8) -> Vec<Keypair> {
        (1..=n).map(|i| Keypair::from_seed(&[i; 32])).collect()
    }

    #[test]
    fn a_fate_certificate_needs_a_quorum_of_the_set_for_that_fate() {
        let notaries = keys(4);
        let set = NotarySet::new(&notaries.iter().map(Keypair::id).collect::<Vec<_>>()).unwrap();
        let subject = FateSubject {
            wallet: Keypair::from_seed(&[9; 32]).id(),
            order: EntryId::of_header(b"order"),
            fate: Fate::Claimed,
        };
        let votes: Vec<Vote> = notaries.iter().map(|n| subject.vote(n)).collect();
        let good = FateCertificate::from_votes(Fate::Claimed, votes[..3].to_vec());
        assert_eq!(check_fate(&good, &set, &subject, &VerifyAll), Ok(()));
        let short = FateCertificate::from_votes(Fate::Claimed, votes[..2].to_vec());
        assert!(matches!(
            check_fate(&short, &set, &subject, &VerifyAll),
            Err(CertificateError::BelowQuorum { .. })
        ));
        // Votes for a claim do not make a void.
        let relabelled = FateCertificate {
            fate: Fate::Cancelled,
            votes: good.votes.clone(),
        };
        let void = FateSubject {
            fate: Fate::Cancelled,
            ..subject
        };
        assert!(matches!(
            check_fate(&relabelled, &set, &void, &VerifyAll),
            Err(CertificateError::BadSignature { .. })
        ));
        assert!(matches!(
            check_fate(&good, &set, &void, &VerifyAll),
            Err(CertificateError::WrongFate { .. })
        ));
        // Nor for another order.
        let other = FateSubject {
            order: EntryId::of_header(b"other"),
            ..subject
        };
        assert!(matches!(
            check_fate(&good, &set, &other, &VerifyAll),
            Err(CertificateError::BadSignature { .. })
        ));
    }

    #[test]
    fn a_claim_excludes_every_void_and_voids_do_not_exclude_each_other() {
        assert!(Fate::Claimed.excludes(Fate::Cancelled));
        assert!(Fate::Claimed.excludes(Fate::Expired));
        assert!(Fate::Expired.excludes(Fate::Claimed));
        assert!(!Fate::Cancelled.excludes(Fate::Expired));
        assert!(!Fate::Claimed.excludes(Fate::Claimed));
    }

    #[test]
    fn a_request_is_signed_by_the_wallet_it_names() {
        let wallet = Keypair::from_seed(&[5; 32]);
        let subject = FateSubject {
            wallet: Keypair::from_seed(&[6; 32]).id(),
            order: EntryId::of_header(b"o"),
            fate: Fate::Cancelled,
        };
        let signature = subject.request(&wallet);
        assert!(subject.request_verifies(&wallet.id(), &signature));
        assert!(!subject.request_verifies(&subject.wallet, &signature));
        // A vote is not a request (other domain).
        let vote = subject.vote(&wallet);
        assert!(!subject.request_verifies(&wallet.id(), &vote.signature));
    }
}
