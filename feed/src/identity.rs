//! Identities: [`FeedId`], [`Keypair`], [`Signature`] and the one canonical signature check.
//!
//! Every signature in scrip is made over domain-separated bytes, `domain || 0x00 || message`,
//! and checked by [`verify_signature`] (or [`AuthorKey::verify`], the same check with the public
//! key decompressed once), or many at once by [`verify_batch`], which gives the same answers:
//! ed25519 under ZIP-215's rules (non-canonical `S` refused, the cofactored equation) with keys
//! checked once to be canonical and free of small-order components (feed.md §2, §4). No other
//! check is used anywhere.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::error::{Error, clip};
use crate::hash::parse_prefixed_base58;

/// Signature domains: every signed message in scrip starts with one of these tags.
pub mod domain {
    /// Entry headers.
    pub const ENTRY: &[u8] = b"scrip/entry/v1";
}

/// A feed's identity: its author's ed25519 public key.
///
/// Text form: `@` followed by the base58 (bitcoin alphabet) encoding of the 32 key bytes, parsed
/// strictly (exactly one text form per key).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FeedId([u8; 32]);

impl FeedId {
    /// The text form's prefix.
    pub const PREFIX: char = '@';

    /// Wraps raw public key bytes. The bytes are not checked here; signature checks reject keys
    /// that are not valid or are weak.
    pub const fn from_bytes(bytes: [u8; 32]) -> FeedId {
        FeedId(bytes)
    }

    /// The raw public key bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A short form for humans (`@` and the first 8 base58 characters).
    pub fn short(&self) -> String {
        let full = self.to_string();
        full.chars().take(9).collect()
    }
}

impl fmt::Display for FeedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, bs58::encode(self.0).into_string())
    }
}

impl fmt::Debug for FeedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FeedId({self})")
    }
}

impl FromStr for FeedId {
    type Err = Error;

    /// Parses the text form and also checks that the key is a valid, non-weak ed25519 point, so
    /// that a typo is caught at the prompt rather than by a later signature check.
    fn from_str(input: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidFeedId {
            input: clip(input),
            reason,
        };
        let bytes = parse_prefixed_base58(input, FeedId::PREFIX).map_err(invalid)?;
        match key_defect(&bytes) {
            None => Ok(FeedId(bytes)),
            Some(KeyDefect::Invalid) => Err(invalid("not a valid ed25519 public key")),
            Some(KeyDefect::SmallOrder) => Err(invalid("a weak (small-order) ed25519 key")),
            Some(KeyDefect::MixedOrder) => Err(invalid(
                "an ed25519 key with a small-order component (mixed order)",
            )),
        }
    }
}

/// An ed25519 signature (64 bytes), encoded as 64 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 64]);

impl Signature {
    /// Wraps raw signature bytes.
    pub const fn from_bytes(bytes: [u8; 64]) -> Signature {
        Signature(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(64)?;
        for byte in &self.0 {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SignatureVisitor;
        impl<'de> Visitor<'de> for SignatureVisitor {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
                let mut bytes = [0u8; 64];
                for (i, slot) in bytes.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(Signature(bytes))
            }
        }
        deserializer.deserialize_tuple(64, SignatureVisitor)
    }
}

/// Builds the bytes actually signed: `domain || 0x00 || message`. The zero byte keeps one
/// domain from being a prefix of another.
pub fn signing_bytes(domain: &[u8], message: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(domain.len() + 1 + message.len());
    bytes.extend_from_slice(domain);
    bytes.push(0);
    bytes.extend_from_slice(message);
    bytes
}

/// Whether `bytes` is the canonical encoding of the point `key` decompressed to. Decompression
/// alone also accepts a y coordinate at or above the field's prime p (read modulo p) and a set
/// sign bit on x = 0: other byte strings for the same point, which would give one key two
/// feed ids. feed.md §2 refuses them.
fn canonical(key: &VerifyingKey, bytes: &[u8; 32]) -> bool {
    key.to_edwards().compress().as_bytes() == bytes
}

/// Why 32 bytes are not a usable key (feed.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyDefect {
    /// Not the canonical encoding of a curve point.
    Invalid,
    /// A point of small order (8·A is the identity).
    SmallOrder,
    /// A point with a small-order component (L·A is not the identity): one secret key would
    /// sign for up to 8 such ids under the cofactored equation (§4).
    MixedOrder,
}

/// The key rules of feed.md §2, checked once when a key is parsed or first used.
fn key_defect(bytes: &[u8; 32]) -> Option<KeyDefect> {
    let Some(key) = VerifyingKey::from_bytes(bytes)
        .ok()
        .filter(|key| canonical(key, bytes))
    else {
        return Some(KeyDefect::Invalid);
    };
    if key.is_weak() {
        return Some(KeyDefect::SmallOrder);
    }
    if !key.to_edwards().is_torsion_free() {
        return Some(KeyDefect::MixedOrder);
    }
    None
}

/// Most decompressed keys [`AuthorKey::cached`] remembers.
pub const AUTHOR_KEY_CACHE_CAPACITY: usize = 4096;

/// A public key decompressed and checked once, for verifying many signatures by one author.
#[derive(Clone, Copy)]
pub struct AuthorKey {
    id: FeedId,
    key: ed25519_zebra::VerificationKey,
}

impl fmt::Debug for AuthorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorKey({})", self.id)
    }
}

impl AuthorKey {
    /// Decompresses `author`.
    ///
    /// Rules: the bytes are the canonical encoding of an ed25519 point
    /// ([`Error::InvalidAuthorKey`]); the point has neither small order nor a small-order
    /// component ([`Error::WeakAuthorKey`]).
    pub fn new(author: &FeedId) -> Result<AuthorKey, Error> {
        match key_defect(author.as_bytes()) {
            None => {}
            Some(KeyDefect::Invalid) => return Err(Error::InvalidAuthorKey { author: *author }),
            Some(KeyDefect::SmallOrder | KeyDefect::MixedOrder) => {
                return Err(Error::WeakAuthorKey { author: *author });
            }
        }
        let key = ed25519_zebra::VerificationKey::try_from(*author.as_bytes())
            .map_err(|_| Error::InvalidAuthorKey { author: *author })?;
        Ok(AuthorKey { id: *author, key })
    }

    /// [`AuthorKey::new`], remembering the last [`AUTHOR_KEY_CACHE_CAPACITY`] keys decompressed
    /// by this process: decompressing costs about a fifth of a signature check, and the same
    /// few keys (a wallet's notaries, the authors being replicated) sign almost everything.
    /// Only valid keys are remembered; an invalid one fails the same way every time.
    pub fn cached(author: &FeedId) -> Result<AuthorKey, Error> {
        static CACHE: std::sync::OnceLock<
            std::sync::Mutex<std::collections::HashMap<FeedId, AuthorKey>>,
        > = std::sync::OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(key) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(author) {
            return Ok(*key);
        }
        let key = AuthorKey::new(author)?;
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= AUTHOR_KEY_CACHE_CAPACITY {
            // Forgetting everything at once keeps this simple and bounded; a hot key is back
            // after one decompression.
            cache.clear();
        }
        cache.insert(*author, key);
        Ok(key)
    }

    /// The author.
    pub fn id(&self) -> &FeedId {
        &self.id
    }

    /// True iff `signature` is this author's signature of `domain || 0 || message` under
    /// feed.md §2's rule (ZIP-215: S canonical, R any point encoding, the cofactored equation).
    pub fn verify(&self, domain: &[u8], message: &[u8], signature: &Signature) -> bool {
        let signed = signing_bytes(domain, message);
        self.verify_prepared(&signed, signature)
    }

    /// As [`AuthorKey::verify`], for bytes already built by [`signing_bytes`].
    pub fn verify_prepared(&self, signed: &[u8], signature: &Signature) -> bool {
        SIGNATURE_CHECKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let signature = ed25519_zebra::Signature::from_bytes(&signature.0);
        self.key.verify(&signature, signed).is_ok()
    }
}

/// Fewest signatures checked as one batch: below it, single checks cost no more.
pub const MIN_BATCH: usize = 4;

/// Checks many signatures at once: `items` are (key, bytes signed as [`signing_bytes`] built
/// them, signature). Returns one answer per item, the same answers single checks
/// ([`AuthorKey::verify_prepared`]) give: under ZIP-215's rules a batch accepts exactly when
/// every one of its signatures does. A batch that fails is checked again one by one to name
/// the bad ones (an honest peer's batches never fail). The batch's random coefficients come from
/// the operating system, through a blake3 stream.
pub fn verify_batch(items: &[(&AuthorKey, &[u8], &Signature)]) -> Vec<bool> {
    if items.len() < MIN_BATCH {
        return items
            .iter()
            .map(|(key, signed, signature)| key.verify_prepared(signed, signature))
            .collect();
    }
    SIGNATURE_CHECKS.fetch_add(
        u64::try_from(items.len()).unwrap_or(u64::MAX),
        std::sync::atomic::Ordering::Relaxed,
    );
    let mut batch = ed25519_zebra::batch::Verifier::new();
    for (key, signed, signature) in items {
        batch.queue((
            ed25519_zebra::VerificationKeyBytes::from(*key.id.as_bytes()),
            ed25519_zebra::Signature::from_bytes(&signature.0),
            *signed,
        ));
    }
    let passed = BatchRng::new().is_some_and(|rng| batch.verify(rng).is_ok());
    if passed {
        vec![true; items.len()]
    } else {
        items
            .iter()
            .map(|(key, signed, signature)| key.verify_prepared(signed, signature))
            .collect()
    }
}

/// The random coefficients of a batch check: a blake3 output stream keyed by 32 bytes from the
/// operating system (an attacker who could predict them could make a bad batch pass).
struct BatchRng(blake3::OutputReader);

impl BatchRng {
    /// `None` if the operating system has no randomness to give (then single checks are used).
    fn new() -> Option<BatchRng> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).ok()?;
        Some(BatchRng(
            blake3::Hasher::new_keyed(&seed)
                .update(b"scrip/batch-verify/v1")
                .finalize_xof(),
        ))
    }
}

impl rand_core::TryRng for BatchRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0u8; 4];
        self.0.fill(&mut bytes);
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0u8; 8];
        self.0.fill(&mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for BatchRng {}

/// Signature checks made by this process so far (every check goes through
/// [`AuthorKey::verify_prepared`]). Benchmarks compare it with the checks a protocol step needs.
static SIGNATURE_CHECKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many signatures this process has checked so far.
pub fn signature_checks() -> u64 {
    SIGNATURE_CHECKS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The one canonical signature check of scrip.
///
/// Rules: the key is a valid ed25519 point of the prime-order subgroup (feed.md §2); the
/// signature passes feed.md §4 over `domain || 0x00 || message`. Returns `Ok(true)` if it verifies, `Ok(false)` if it does not, and
/// an error when the key itself is unusable.
pub fn verify_signature(
    author: &FeedId,
    domain: &[u8],
    message: &[u8],
    signature: &Signature,
) -> Result<bool, Error> {
    Ok(AuthorKey::cached(author)?.verify(domain, message, signature))
}

/// A secret signing key and its feed id. The secret is zeroized when dropped and never printed.
pub struct Keypair {
    signing: SigningKey,
    id: FeedId,
}

impl Keypair {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<Keypair, Error> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| Error::Randomness(e.to_string()))?;
        Ok(Keypair::from_seed(&seed))
    }

    /// The key whose 32-byte secret seed is `seed` (deterministic: for key files and test
    /// vectors).
    pub fn from_seed(seed: &[u8; 32]) -> Keypair {
        let signing = SigningKey::from_bytes(seed);
        let id = FeedId(signing.verifying_key().to_bytes());
        Keypair { signing, id }
    }

    /// The secret seed, for writing a key file.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// This key's feed id.
    pub fn id(&self) -> FeedId {
        self.id
    }

    /// Signs `domain || 0x00 || message`.
    pub fn sign(&self, domain: &[u8], message: &[u8]) -> Signature {
        self.sign_prepared(&signing_bytes(domain, message))
    }

    /// Signs bytes already built by [`signing_bytes`].
    pub fn sign_prepared(&self, signed: &[u8]) -> Signature {
        Signature(self.signing.sign(signed).to_bytes())
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys whose y is written at or above p (y + p for a small y) decompress to a valid point
    /// but are not its canonical encoding: refused at parse and as an author, like any invalid
    /// key. The test finds such keys among y = 2..18 and fails if it finds none.
    #[test]
    fn non_canonical_key_encodings_are_refused() {
        // p = 2^255 - 19, little-endian.
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        let mut found = 0;
        for y in 2u8..19 {
            let mut bytes = p;
            bytes[0] = bytes[0].wrapping_add(y); // 0xed + y < 0x100 for y < 19
            let Ok(key) = VerifyingKey::from_bytes(&bytes) else {
                continue;
            };
            if key.is_weak() {
                continue;
            }
            found += 1;
            let id = FeedId::from_bytes(bytes);
            assert!(
                matches!(AuthorKey::new(&id), Err(Error::InvalidAuthorKey { .. })),
                "y = {y} + p"
            );
            let text = format!("@{}", bs58::encode(bytes).into_string());
            assert!(text.parse::<FeedId>().is_err(), "y = {y} + p parses");
            // The canonical encoding of the same point is judged by the other rules alone: an
            // ordinary key in the prime-order subgroup, a weak (mixed-order) one otherwise.
            let point = key.to_edwards();
            let canonical = FeedId::from_bytes(point.compress().to_bytes());
            if point.is_torsion_free() {
                assert!(AuthorKey::new(&canonical).is_ok());
            } else {
                assert!(matches!(
                    AuthorKey::new(&canonical),
                    Err(Error::WeakAuthorKey { .. })
                ));
            }
        }
        assert!(found > 0, "no non-canonical test key found");
    }

    #[test]
    fn feed_id_text_round_trips() {
        let key = Keypair::from_seed(&[7; 32]);
        let text = key.id().to_string();
        assert!(text.starts_with('@'));
        assert_eq!(text.parse::<FeedId>().unwrap(), key.id());
    }

    #[test]
    fn feed_id_parse_is_strict() {
        let text = Keypair::from_seed(&[7; 32]).id().to_string();
        for bad in [
            String::new(),
            "@".into(),
            text[1..].to_string(),
            format!("%{}", &text[1..]),
            format!("{text} "),
            format!("{text}x"),
            format!("@1{}", &text[1..]),
            "@0OIl".into(),
            format!("@{}", "z".repeat(200)),
        ] {
            assert!(bad.parse::<FeedId>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn feed_id_parse_rejects_weak_and_invalid_points() {
        // The identity point (y = 1) is small-order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let text = FeedId::from_bytes(identity).to_string();
        let err = text.parse::<FeedId>().unwrap_err();
        assert!(err.to_string().contains("weak"), "{err}");
        // y = 2 is not on the curve.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        let text = FeedId::from_bytes(off_curve).to_string();
        let err = text.parse::<FeedId>().unwrap_err();
        assert!(err.to_string().contains("not a valid"), "{err}");
    }

    #[test]
    fn keypair_debug_is_redacted() {
        let key = Keypair::from_seed(&[9; 32]);
        let debug = format!("{key:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains(&hex::encode([9u8; 32])));
        assert!(!debug.contains("9, 9, 9"));
    }

    #[test]
    fn signatures_are_domain_separated() {
        let key = Keypair::from_seed(&[1; 32]);
        let sig = key.sign(b"scrip/test/v1", b"message");
        assert!(verify_signature(&key.id(), b"scrip/test/v1", b"message", &sig).unwrap());
        assert!(!verify_signature(&key.id(), b"scrip/other/v1", b"message", &sig).unwrap());
        // Moving bytes between domain and message does not keep the signature valid.
        assert!(!verify_signature(&key.id(), b"scrip/test/v1m", b"essage", &sig).unwrap());
    }

    #[test]
    fn generated_keys_differ() {
        let a = Keypair::generate().unwrap();
        let b = Keypair::generate().unwrap();
        assert_ne!(a.id(), b.id());
    }
}
