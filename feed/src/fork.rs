//! Fork proofs: two distinct, validly signed headers by one author at one seq, each with the
//! evidence its feed's rules may ask for.
//!
//! An honest author never signs two entries at one seq (ed25519 signing is deterministic, and
//! the signature rule (feed.md §4) refuses malleated signatures, so nobody but the author can make a second valid
//! header). Two such headers therefore prove the author forked its feed, and anyone can check the
//! proof without trusting whoever relayed it.
//!
//! Some feeds count only entries that carry more than the author's signature: a wallet's entry
//! counts once a quorum of its notaries certified it, and the wallet may sign proposals the
//! notaries then refuse. For such feeds, two signed headers prove nothing; what proves a fork is
//! two headers *with their evidence* (their certificates). So each half of a proof may carry
//! **evidence**: up to [`MAX_ATTACHMENTS_PER_ENTRY`] attachments (kind and opaque bytes, as kept
//! with stored entries), which this crate bounds and orders but does not interpret. Whoever
//! keeps a proof decides, by the feed's rules, whether its evidence is enough
//! (`docs/protocol/feed.md` §9).
//!
//! Wire form, version 1 (no evidence):
//! `postcard((1u8, first: bytes, second: bytes))`; version 2 (evidence on at least one half):
//! `postcard((2u8, first: bytes, second: bytes, first_evidence: Vec<(kind: String, bytes)>,
//! second_evidence: Vec<(kind: String, bytes)>))`. `first` and `second` are signed headers
//! (length-prefixed) with `id(first) < id(second)`; each evidence list is sorted by kind with no
//! kind twice. So each proof has exactly one encoding.

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::entry::{Entry, Seq};
use crate::error::{Error, ForkProofDefect, Result};
use crate::hash::Hash;
use crate::identity::FeedId;
use crate::limits::{
    MAX_ATTACHMENTS_PER_ENTRY, MAX_FORK_EVIDENCE_BYTES, MAX_FORK_PROOF_BYTES,
    MAX_FORK_PROOF_V1_BYTES,
};
use crate::store::check_attachment_parts;
use crate::validate::validate_signature;

/// The fork proof format version without evidence.
pub const FORK_PROOF_VERSION: u8 = 1;
/// The fork proof format version with evidence.
pub const FORK_PROOF_EVIDENCE_VERSION: u8 = 2;

/// What one half of a fork proof carries besides its header: attachments (kind, bytes), sorted
/// by kind, as [`crate::Store::attachments`] returns them.
pub type Evidence = Vec<(String, Vec<u8>)>;

#[derive(Serialize, Deserialize)]
struct ForkProofWire {
    version: u8,
    #[serde(with = "crate::codec::bytes")]
    first: Vec<u8>,
    #[serde(with = "crate::codec::bytes")]
    second: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct EvidenceWire {
    kind: String,
    #[serde(with = "crate::codec::bytes")]
    bytes: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct ForkProofWireV2 {
    version: u8,
    #[serde(with = "crate::codec::bytes")]
    first: Vec<u8>,
    #[serde(with = "crate::codec::bytes")]
    second: Vec<u8>,
    first_evidence: Vec<EvidenceWire>,
    second_evidence: Vec<EvidenceWire>,
}

/// A checked proof that an author signed two different entries at one seq.
///
/// Values of this type are always valid proofs of two signatures (both constructors verify);
/// whether their evidence is enough for the feed is for the feed's rules to say.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ForkProof {
    first: Entry,
    second: Entry,
    first_evidence: Evidence,
    second_evidence: Evidence,
}

impl ForkProof {
    /// Builds the proof that `a` and `b` fork their author's feed. The order of `a` and `b` does
    /// not matter.
    ///
    /// Rules: see [`verify_fork`].
    pub fn new(a: &Entry, b: &Entry) -> Result<ForkProof> {
        ForkProof::with_evidence(a, Evidence::new(), b, Evidence::new())
    }

    /// As [`ForkProof::new`], each half with its evidence (in any order of kinds).
    ///
    /// Rules: [`verify_fork`], then [`check_evidence`] for each half.
    pub fn with_evidence(
        a: &Entry,
        a_evidence: Evidence,
        b: &Entry,
        b_evidence: Evidence,
    ) -> Result<ForkProof> {
        let ((first, mut first_evidence), (second, mut second_evidence)) = if a.id() <= b.id() {
            ((a, a_evidence), (b, b_evidence))
        } else {
            ((b, b_evidence), (a, a_evidence))
        };
        verify_fork(first, second)?;
        first_evidence.sort_by(|x, y| x.0.cmp(&y.0));
        second_evidence.sort_by(|x, y| x.0.cmp(&y.0));
        check_evidence(&first_evidence)?;
        check_evidence(&second_evidence)?;
        Ok(ForkProof {
            first: first.without_payload(),
            second: second.without_payload(),
            first_evidence,
            second_evidence,
        })
    }

    /// Decodes and verifies a proof received from a peer.
    ///
    /// Rules: size at most [`MAX_FORK_PROOF_V1_BYTES`] for version 1, [`MAX_FORK_PROOF_BYTES`]
    /// for version 2 ([`Error::TooLarge`]); version ([`Error::UnsupportedVersion`]); canonical
    /// encoding (a version 2 proof carries evidence on at least one half: without any, version 1
    /// is its only encoding, [`Error::NonCanonical`]); each half a well-formed header
    /// ([`Entry::decode`]); the halves in canonical order
    /// ([`ForkProofDefect::NotCanonicalOrder`]); then [`verify_fork`]; then [`check_evidence`]
    /// for each half.
    pub fn decode(bytes: &[u8]) -> Result<ForkProof> {
        let too_large = |max: usize| {
            Err(Error::TooLarge {
                what: "fork proof",
                max,
                found: bytes.len(),
            })
        };
        let (first, second, first_evidence, second_evidence) = match bytes.first() {
            Some(&FORK_PROOF_VERSION) => {
                if bytes.len() > MAX_FORK_PROOF_V1_BYTES {
                    return too_large(MAX_FORK_PROOF_V1_BYTES);
                }
                let wire: ForkProofWire = codec::decode_canonical("fork proof", bytes)?;
                (wire.first, wire.second, Vec::new(), Vec::new())
            }
            Some(&FORK_PROOF_EVIDENCE_VERSION) => {
                if bytes.len() > MAX_FORK_PROOF_BYTES {
                    return too_large(MAX_FORK_PROOF_BYTES);
                }
                let wire: ForkProofWireV2 = codec::decode_canonical("fork proof", bytes)?;
                if wire.first_evidence.is_empty() && wire.second_evidence.is_empty() {
                    return Err(Error::NonCanonical {
                        what: "fork proof (version 2 without evidence)",
                    });
                }
                let unwire = |list: Vec<EvidenceWire>| -> Evidence {
                    list.into_iter().map(|e| (e.kind, e.bytes)).collect()
                };
                (
                    wire.first,
                    wire.second,
                    unwire(wire.first_evidence),
                    unwire(wire.second_evidence),
                )
            }
            Some(&found) => {
                return Err(Error::UnsupportedVersion {
                    what: "fork proof",
                    expected: FORK_PROOF_EVIDENCE_VERSION,
                    found,
                });
            }
            None => {
                return Err(Error::Malformed {
                    what: "fork proof",
                    detail: "empty".into(),
                });
            }
        };
        let first = Entry::decode(&first, None)?;
        let second = Entry::decode(&second, None)?;
        if first.id() > second.id() {
            return Err(Error::InvalidForkProof {
                defect: ForkProofDefect::NotCanonicalOrder,
            });
        }
        verify_fork(&first, &second)?;
        check_evidence(&first_evidence)?;
        check_evidence(&second_evidence)?;
        Ok(ForkProof {
            first,
            second,
            first_evidence,
            second_evidence,
        })
    }

    /// The canonical encoding: version 1 without evidence, else version 2.
    pub fn encode(&self) -> Vec<u8> {
        // Encoding structs of bytes, byte vectors and strings cannot fail.
        if self.first_evidence.is_empty() && self.second_evidence.is_empty() {
            let wire = ForkProofWire {
                version: FORK_PROOF_VERSION,
                first: self.first.header_bytes().to_vec(),
                second: self.second.header_bytes().to_vec(),
            };
            return codec::encode("fork proof", &wire).unwrap_or_default();
        }
        let wire_evidence = |evidence: &Evidence| -> Vec<EvidenceWire> {
            evidence
                .iter()
                .map(|(kind, bytes)| EvidenceWire {
                    kind: kind.clone(),
                    bytes: bytes.clone(),
                })
                .collect()
        };
        let wire = ForkProofWireV2 {
            version: FORK_PROOF_EVIDENCE_VERSION,
            first: self.first.header_bytes().to_vec(),
            second: self.second.header_bytes().to_vec(),
            first_evidence: wire_evidence(&self.first_evidence),
            second_evidence: wire_evidence(&self.second_evidence),
        };
        codec::encode("fork proof", &wire).unwrap_or_default()
    }

    /// The author who forked.
    pub fn author(&self) -> FeedId {
        self.first.author()
    }

    /// The seq that was signed twice.
    pub fn seq(&self) -> Seq {
        self.first.seq()
    }

    /// The two headers (payloads are not part of a proof), in canonical order.
    pub fn entries(&self) -> (&Entry, &Entry) {
        (&self.first, &self.second)
    }

    /// Each half with its evidence, in canonical order.
    pub fn halves(&self) -> [(&Entry, &Evidence); 2] {
        [
            (&self.first, &self.first_evidence),
            (&self.second, &self.second_evidence),
        ]
    }

    /// True if neither half carries evidence.
    pub fn is_bare(&self) -> bool {
        self.first_evidence.is_empty() && self.second_evidence.is_empty()
    }

    /// A stable id for the proof: blake3 of its encoding.
    pub fn hash(&self) -> Hash {
        Hash::of(&self.encode())
    }
}

/// Checks one half's evidence.
///
/// Rules: at most [`MAX_ATTACHMENTS_PER_ENTRY`] items ([`Error::TooLarge`]); kinds strictly
/// increasing, so no kind twice ([`ForkProofDefect::EvidenceOrder`]); each kind and size as an
/// attachment's ([`crate::store::check_attachment`]); at most [`MAX_FORK_EVIDENCE_BYTES`] of
/// bytes in all ([`Error::TooLarge`]).
pub fn check_evidence(evidence: &Evidence) -> Result<()> {
    if evidence.len() > MAX_ATTACHMENTS_PER_ENTRY {
        return Err(Error::TooLarge {
            what: "fork proof evidence (items)",
            max: MAX_ATTACHMENTS_PER_ENTRY,
            found: evidence.len(),
        });
    }
    if evidence.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
        return Err(Error::InvalidForkProof {
            defect: ForkProofDefect::EvidenceOrder,
        });
    }
    let mut total = 0usize;
    for (kind, bytes) in evidence {
        check_attachment_parts(kind, bytes)?;
        total = total.saturating_add(bytes.len());
    }
    if total > MAX_FORK_EVIDENCE_BYTES {
        return Err(Error::TooLarge {
            what: "fork proof evidence (bytes)",
            max: MAX_FORK_EVIDENCE_BYTES,
            found: total,
        });
    }
    Ok(())
}

/// Checks that two entries prove a fork.
///
/// Rules, in order:
/// - they are different entries ([`ForkProofDefect::SameEntry`]);
/// - they have the same author ([`ForkProofDefect::DifferentAuthors`]);
/// - they have the same seq ([`ForkProofDefect::DifferentSeqs`]);
/// - both signatures are valid ([`validate_signature`]'s errors).
pub fn verify_fork(a: &Entry, b: &Entry) -> Result<()> {
    let defect = |defect| Err(Error::InvalidForkProof { defect });
    if a.id() == b.id() {
        return defect(ForkProofDefect::SameEntry);
    }
    if a.author() != b.author() {
        return defect(ForkProofDefect::DifferentAuthors);
    }
    if a.seq() != b.seq() {
        return defect(ForkProofDefect::DifferentSeqs {
            first: a.seq(),
            second: b.seq(),
        });
    }
    validate_signature(a)?;
    validate_signature(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Keypair, Timestamp};

    fn entry(key: &Keypair, text: &[u8]) -> Entry {
        Entry::create(key, None, Timestamp::from_millis(1), text.to_vec()).unwrap()
    }

    #[test]
    fn a_fork_is_proven_and_round_trips() {
        let key = Keypair::from_seed(&[4; 32]);
        let (a, b) = (entry(&key, b"a"), entry(&key, b"b"));
        let proof = ForkProof::new(&a, &b).unwrap();
        assert_eq!(proof, ForkProof::new(&b, &a).unwrap());
        assert_eq!(proof.author(), key.id());
        assert_eq!(proof.seq(), Seq::FIRST);
        assert_eq!(ForkProof::decode(&proof.encode()).unwrap(), proof);
    }

    #[test]
    fn the_same_entry_twice_is_not_a_fork() {
        let key = Keypair::from_seed(&[4; 32]);
        let a = entry(&key, b"a");
        assert_eq!(
            ForkProof::new(&a, &a),
            Err(Error::InvalidForkProof {
                defect: ForkProofDefect::SameEntry
            })
        );
    }

    #[test]
    fn different_authors_are_not_a_fork() {
        let a = entry(&Keypair::from_seed(&[4; 32]), b"a");
        let b = entry(&Keypair::from_seed(&[5; 32]), b"a");
        assert_eq!(
            ForkProof::new(&a, &b),
            Err(Error::InvalidForkProof {
                defect: ForkProofDefect::DifferentAuthors
            })
        );
    }

    #[test]
    fn different_seqs_are_not_a_fork() {
        let key = Keypair::from_seed(&[4; 32]);
        let a = entry(&key, b"a");
        let b = Entry::create(&key, Some(a.head()), Timestamp::from_millis(1), vec![]).unwrap();
        assert!(matches!(
            ForkProof::new(&a, &b),
            Err(Error::InvalidForkProof {
                defect: ForkProofDefect::DifferentSeqs { .. }
            })
        ));
    }

    #[test]
    fn a_bad_signature_is_not_a_fork() {
        let key = Keypair::from_seed(&[4; 32]);
        let a = entry(&key, b"a");
        let b = entry(&key, b"b");
        let mut bytes = b.header_bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let forged = Entry::decode(&bytes, None).unwrap();
        assert!(matches!(
            ForkProof::new(&a, &forged),
            Err(Error::BadSignature { .. })
        ));
    }

    #[test]
    fn a_proof_with_evidence_round_trips_and_keeps_each_half_its_own() {
        let key = Keypair::from_seed(&[4; 32]);
        let (a, b) = (entry(&key, b"a"), entry(&key, b"b"));
        let ev = |tag: u8| {
            vec![
                ("z/kind".to_owned(), vec![tag]),
                ("a/kind".to_owned(), vec![tag]),
            ]
        };
        let proof = ForkProof::with_evidence(&a, ev(1), &b, ev(2)).unwrap();
        assert_eq!(
            proof,
            ForkProof::with_evidence(&b, ev(2), &a, ev(1)).unwrap()
        );
        for (entry, evidence) in proof.halves() {
            let tag = if entry.id() == a.id() { 1 } else { 2 };
            assert_eq!(
                evidence[0],
                ("a/kind".to_owned(), vec![tag]),
                "sorted, own evidence"
            );
        }
        let bytes = proof.encode();
        assert_eq!(bytes[0], FORK_PROOF_EVIDENCE_VERSION);
        assert_eq!(ForkProof::decode(&bytes).unwrap(), proof);
        // Without evidence the proof is version 1, as before.
        assert_eq!(
            ForkProof::new(&a, &b).unwrap().encode()[0],
            FORK_PROOF_VERSION
        );
    }

    #[test]
    fn evidence_out_of_bounds_or_order_is_refused() {
        let key = Keypair::from_seed(&[4; 32]);
        let (a, b) = (entry(&key, b"a"), entry(&key, b"b"));
        let twice = vec![("k".to_owned(), vec![1]), ("k".to_owned(), vec![2])];
        assert_eq!(
            ForkProof::with_evidence(&a, twice, &b, Vec::new()),
            Err(Error::InvalidForkProof {
                defect: ForkProofDefect::EvidenceOrder
            })
        );
        let many: Evidence = (0..=MAX_ATTACHMENTS_PER_ENTRY)
            .map(|i| (format!("k{i}"), vec![0]))
            .collect();
        assert!(matches!(
            ForkProof::with_evidence(&a, many, &b, Vec::new()),
            Err(Error::TooLarge { .. })
        ));
        let big = vec![
            ("k1".to_owned(), vec![0; 8 * 1024]),
            ("k2".to_owned(), vec![0; 1]),
        ];
        assert!(matches!(
            ForkProof::with_evidence(&a, big, &b, Vec::new()),
            Err(Error::TooLarge { .. })
        ));
        let bad_kind = vec![("Upper".to_owned(), vec![0])];
        assert!(ForkProof::with_evidence(&a, bad_kind, &b, Vec::new()).is_err());
        // Version 2 without evidence is not canonical.
        let (first, second) = ForkProof::new(&a, &b)
            .unwrap()
            .halves()
            .map(|(e, _)| e.clone())
            .into();
        let bare_v2 = codec::encode(
            "fork proof",
            &ForkProofWireV2 {
                version: FORK_PROOF_EVIDENCE_VERSION,
                first: first.header_bytes().to_vec(),
                second: second.header_bytes().to_vec(),
                first_evidence: vec![],
                second_evidence: vec![],
            },
        )
        .unwrap();
        assert!(matches!(
            ForkProof::decode(&bare_v2),
            Err(Error::NonCanonical { .. })
        ));
    }

    #[test]
    fn halves_out_of_order_are_refused() {
        let key = Keypair::from_seed(&[4; 32]);
        let proof = ForkProof::new(&entry(&key, b"a"), &entry(&key, b"b")).unwrap();
        let (first, second) = proof.entries();
        let swapped = codec::encode(
            "fork proof",
            &ForkProofWire {
                version: FORK_PROOF_VERSION,
                first: second.header_bytes().to_vec(),
                second: first.header_bytes().to_vec(),
            },
        )
        .unwrap();
        assert_eq!(
            ForkProof::decode(&swapped),
            Err(Error::InvalidForkProof {
                defect: ForkProofDefect::NotCanonicalOrder
            })
        );
    }
}
