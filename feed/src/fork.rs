//! Fork proofs: two distinct, validly signed headers by one author at one seq.
//!
//! An honest author never signs two entries at one seq (ed25519 signing is deterministic, and
//! `verify_strict` refuses malleated signatures, so nobody but the author can make a second valid
//! header). Two such headers therefore prove the author forked its feed, and anyone can check the
//! proof without trusting whoever relayed it.
//!
//! Wire form: `postcard((FORK_PROOF_VERSION: u8, first: bytes, second: bytes))`, where `first`
//! and `second` are signed headers (length-prefixed) with `id(first) < id(second)`, so each pair
//! of headers has exactly one encoding.

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::entry::{Entry, Seq};
use crate::error::{Error, ForkProofDefect, Result};
use crate::hash::Hash;
use crate::identity::FeedId;
use crate::limits::MAX_FORK_PROOF_BYTES;
use crate::validate::validate_signature;

/// The fork proof format version.
pub const FORK_PROOF_VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct ForkProofWire {
    version: u8,
    #[serde(with = "crate::codec::bytes")]
    first: Vec<u8>,
    #[serde(with = "crate::codec::bytes")]
    second: Vec<u8>,
}

/// A checked proof that an author signed two different entries at one seq.
///
/// Values of this type are always valid proofs: both constructors verify.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ForkProof {
    first: Entry,
    second: Entry,
}

impl ForkProof {
    /// Builds the proof that `a` and `b` fork their author's feed. The order of `a` and `b` does
    /// not matter.
    ///
    /// Rules: see [`verify_fork`].
    pub fn new(a: &Entry, b: &Entry) -> Result<ForkProof> {
        let (first, second) = if a.id() <= b.id() { (a, b) } else { (b, a) };
        verify_fork(first, second)?;
        Ok(ForkProof {
            first: first.without_payload(),
            second: second.without_payload(),
        })
    }

    /// Decodes and verifies a proof received from a peer.
    ///
    /// Rules: size at most [`MAX_FORK_PROOF_BYTES`] ([`Error::TooLarge`]); version
    /// ([`Error::UnsupportedVersion`]); canonical encoding; each half a well-formed header
    /// ([`Entry::decode`]); the halves in canonical order
    /// ([`ForkProofDefect::NotCanonicalOrder`]); then [`verify_fork`].
    pub fn decode(bytes: &[u8]) -> Result<ForkProof> {
        if bytes.len() > MAX_FORK_PROOF_BYTES {
            return Err(Error::TooLarge {
                what: "fork proof",
                max: MAX_FORK_PROOF_BYTES,
                found: bytes.len(),
            });
        }
        match bytes.first() {
            Some(&FORK_PROOF_VERSION) => {}
            Some(&found) => {
                return Err(Error::UnsupportedVersion {
                    what: "fork proof",
                    expected: FORK_PROOF_VERSION,
                    found,
                });
            }
            None => {
                return Err(Error::Malformed {
                    what: "fork proof",
                    detail: "empty".into(),
                });
            }
        }
        let wire: ForkProofWire = codec::decode_canonical("fork proof", bytes)?;
        let first = Entry::decode(&wire.first, None)?;
        let second = Entry::decode(&wire.second, None)?;
        if first.id() > second.id() {
            return Err(Error::InvalidForkProof {
                defect: ForkProofDefect::NotCanonicalOrder,
            });
        }
        verify_fork(&first, &second)?;
        Ok(ForkProof { first, second })
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let wire = ForkProofWire {
            version: FORK_PROOF_VERSION,
            first: self.first.header_bytes().to_vec(),
            second: self.second.header_bytes().to_vec(),
        };
        // Encoding a struct of a byte and two byte vectors cannot fail.
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

    /// A stable id for the proof: blake3 of its encoding.
    pub fn hash(&self) -> Hash {
        Hash::of(&self.encode())
    }
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
