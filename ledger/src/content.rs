//! What a wallet may write: the content of wallet feed entries.
//!
//! A wallet entry's payload is the feed's `Content::App { kind: "scrip/wallet", bytes }` with
//! `bytes = postcard((WALLET_VERSION: u8, WalletEntry))`, decoded canonically. Variant order is
//! the format: variants are only ever appended.
//!
//! Two content versions are read: version 1 (orders without expiry or condition) and version 2,
//! which every new entry is written in (orders with an expiry and an optional hash lock,
//! accepts with a preimage, cancels and refunds). Both decode into the one [`WalletEntry`]; a
//! version-1 order has no expiry.
//!
//! Entries that credit a wallet **embed** what they cite: the cited entry's signed header,
//! payload and certificate, and its wallet's genesis with its certificate. So a wallet's log,
//! alone, carries everything needed to replay its balance: that is what makes the audit a replay.

use scrip_feed::{Content, EntryBytes, EntryId, FeedId, Seq, Timestamp, codec};
use serde::{Deserialize, Serialize};

use crate::amount::{Amount, Currency};
use crate::certificate::Certificate;
use crate::error::Error;
use crate::fate::FateCertificate;

/// The feed `App` kind of wallet content.
pub const WALLET_KIND: &str = "scrip/wallet";
/// The wallet content version every new entry is written in.
pub const WALLET_VERSION: u8 = 2;
/// The first wallet content version (orders without expiry or condition), still read.
pub const WALLET_VERSION_1: u8 = 1;
/// Longest order memo, in bytes.
pub const MAX_MEMO_BYTES: usize = 256;
/// Longest rejection reason, in bytes.
pub const MAX_REASON_BYTES: usize = 256;

/// A wallet entry. Variant order is the wire format: append only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WalletEntry {
    /// Seq 1 of every wallet: its notary set.
    Genesis(Genesis),
    /// New money, by its issuer only.
    Mint(Mint),
    /// Moves money out of the balance into escrow, payable to `to`. Its id is the order id.
    Order(Order),
    /// The receiver takes an order: credits it.
    Accept(Accept),
    /// The receiver declines an order: credits nobody, resolves it.
    Reject(Reject),
    /// The sender takes back a rejected order.
    Reclaim(Reclaim),
    /// The sender takes back an unconditional order its receiver has not accepted (version 2).
    Cancel(Cancel),
    /// The sender takes back an order after its expiry (version 2).
    Refund(Refund),
}

/// The wallet's notaries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// 1 to 64 distinct notary feed ids.
    pub notaries: Vec<FeedId>,
}

/// New money.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mint {
    /// The currency (its issuer must be this wallet).
    pub currency: Currency,
    /// How much, in minor units.
    pub amount: Amount,
}

/// A payment order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The receiving wallet.
    pub to: FeedId,
    /// The currency.
    pub currency: Currency,
    /// How much, in minor units.
    pub amount: Amount,
    /// Free text, at most [`MAX_MEMO_BYTES`].
    pub memo: String,
    /// When it can no longer be accepted and may be refunded (version 2; a version-1 order
    /// never expires).
    pub expiry: Option<Timestamp>,
    /// A hash lock: accepting needs its preimage (version 2 only).
    pub condition: Option<HashLock>,
}

/// Acceptance of an order addressed to this wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accept {
    /// The sender's certified order.
    pub order: Citation,
    /// The preimage of the order's hash lock (exactly when the order has one; version 2).
    pub preimage: Option<Preimage>,
    /// The order's claim certificate from its sender's notaries (exactly when the order has an
    /// expiry; version 2).
    pub claim: Option<FateCertificate>,
}

/// Taking back an unconditional order its receiver has not accepted, before or after its
/// expiry, without any entry from the receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// The order, in this wallet's own log.
    pub order: OrderRef,
    /// Its void certificate (fate `Cancelled`) from this wallet's notaries.
    pub void: FateCertificate,
}

/// Taking back an order its receiver has not accepted, after its expiry, without any entry
/// from the receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// The order, in this wallet's own log.
    pub order: OrderRef,
    /// Its void certificate (fate `Expired`) from this wallet's notaries.
    pub void: FateCertificate,
}

/// Length of a hash lock's preimage, in bytes.
pub const PREIMAGE_BYTES: usize = 32;

/// A hash lock: `blake3(preimage)` of a [`PREIMAGE_BYTES`]-byte secret (plain blake3, no key
/// or context, so that anyone can check a preimage with any blake3 implementation).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HashLock(pub [u8; 32]);

impl HashLock {
    /// Whether `preimage` opens this lock.
    pub fn opens(&self, preimage: &Preimage) -> bool {
        blake3::hash(&preimage.0).as_bytes() == &self.0
    }

    /// Hex text.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<HashLock, Error> {
        parse_hex32("hash lock", text).map(HashLock)
    }
}

impl std::fmt::Debug for HashLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HashLock({})", self.to_hex())
    }
}

/// The secret that opens a [`HashLock`]. Secret until an accept reveals it (then anyone who
/// replicates the receiver's log reads it): zeroized on drop, redacted in `Debug`.
#[derive(
    Clone, PartialEq, Eq, Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop,
)]
pub struct Preimage(pub [u8; PREIMAGE_BYTES]);

impl Preimage {
    /// Its lock.
    pub fn lock(&self) -> HashLock {
        HashLock(*blake3::hash(&self.0).as_bytes())
    }

    /// Hex text (the secret itself: show it only to its owner).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Preimage, Error> {
        parse_hex32("preimage", text).map(Preimage)
    }
}

impl std::fmt::Debug for Preimage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Preimage(<redacted>)")
    }
}

fn parse_hex32(what: &'static str, text: &str) -> Result<[u8; 32], Error> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes).map_err(|e| Error::Malformed {
        what,
        reason: format!("expected 64 hex digits: {e}"),
    })?;
    Ok(bytes)
}

/// Rejection of an order addressed to this wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// The sender's certified order.
    pub order: Citation,
    /// Why, at most [`MAX_REASON_BYTES`].
    pub reason: String,
}

/// Taking back a rejected order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reclaim {
    /// The order, in this wallet's own log.
    pub order: OrderRef,
    /// The receiver's certified rejection of it.
    pub rejection: Citation,
}

/// An order of this wallet, by position and id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRef {
    /// Its seq in this wallet's log.
    pub seq: Seq,
    /// Its entry id (the order id).
    pub id: EntryId,
}

/// A certified entry, as bytes: signed header, payload, certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertifiedBytes {
    /// The entry: signed header and payload.
    pub bytes: EntryBytes,
    /// Its certificate from its wallet's notaries.
    pub certificate: Certificate,
}

/// Another wallet's certified entry, with that wallet's certified genesis (its notary set).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citation {
    /// The cited entry.
    pub entry: CertifiedBytes,
    /// Its wallet's genesis.
    pub genesis: CertifiedBytes,
}

impl Citation {
    /// The id of the cited entry (blake3 of its header).
    pub fn cited_id(&self) -> EntryId {
        EntryId::of_header(&self.entry.bytes.header)
    }
}

impl WalletEntry {
    /// Encodes the entry as a feed payload, in the current version ([`WALLET_VERSION`]). An
    /// order needs an expiry; only orders carry one.
    pub fn to_payload(&self) -> Result<Vec<u8>, Error> {
        let bytes = codec::encode(
            "wallet entry",
            &(WALLET_VERSION, wire::V2::from_entry(self)?),
        )?;
        Ok(Content::App {
            kind: WALLET_KIND.into(),
            bytes,
        }
        .encode()?)
    }

    /// Encodes the entry in the first content version ([`WALLET_VERSION_1`]), as wallets
    /// wrote before orders had an expiry: for tests and vectors showing that such logs still
    /// fold. Fails for what version 1 cannot say (an expiry, a condition, a preimage, a cancel
    /// or a refund).
    pub fn to_payload_v1(&self) -> Result<Vec<u8>, Error> {
        let bytes = codec::encode(
            "wallet entry",
            &(WALLET_VERSION_1, wire::V1::from_entry(self)?),
        )?;
        Ok(Content::App {
            kind: WALLET_KIND.into(),
            bytes,
        }
        .encode()?)
    }

    /// Decodes a feed payload as a wallet entry.
    ///
    /// Rules: the payload is feed `App` content of kind [`WALLET_KIND`]; its bytes start with
    /// [`WALLET_VERSION`] and are the canonical encoding of a `WalletEntry`.
    pub fn from_payload(payload: &[u8]) -> Result<WalletEntry, Error> {
        let malformed = |reason: String| Error::Malformed {
            what: "wallet entry",
            reason,
        };
        // Fast path: the exact canonical wrapper, read in place (the fold decodes every entry).
        if let Some(inner) = wallet_bytes(payload) {
            return WalletEntry::decode_inner(inner);
        }
        let Content::App { kind, bytes } = Content::decode(payload)? else {
            return Err(malformed("not wallet content".into()));
        };
        if kind != WALLET_KIND {
            return Err(malformed(format!("app content of kind {kind:?}")));
        }
        WalletEntry::decode_inner(&bytes)
    }

    fn decode_inner(bytes: &[u8]) -> Result<WalletEntry, Error> {
        let malformed = |reason: String| Error::Malformed {
            what: "wallet entry",
            reason,
        };
        match bytes.first() {
            Some(&WALLET_VERSION) => {
                let (_, entry): (u8, wire::V2) = codec::decode_canonical("wallet entry", bytes)
                    .map_err(|e| malformed(e.to_string()))?;
                Ok(entry.into_entry())
            }
            Some(&WALLET_VERSION_1) => {
                let (_, entry): (u8, wire::V1) = codec::decode_canonical("wallet entry", bytes)
                    .map_err(|e| malformed(e.to_string()))?;
                Ok(entry.into_entry())
            }
            Some(other) => Err(malformed(format!("unknown version {other}"))),
            None => Err(malformed("empty".into())),
        }
    }

    /// A short name of the variant.
    pub fn kind(&self) -> &'static str {
        match self {
            WalletEntry::Genesis(_) => "genesis",
            WalletEntry::Mint(_) => "mint",
            WalletEntry::Order(_) => "order",
            WalletEntry::Accept(_) => "accept",
            WalletEntry::Reject(_) => "reject",
            WalletEntry::Reclaim(_) => "reclaim",
            WalletEntry::Cancel(_) => "cancel",
            WalletEntry::Refund(_) => "refund",
        }
    }
}

/// The two wire layouts of wallet content. Variant order is the format: append only.
mod wire {
    use super::*;

    fn unsaid(what: &str, version: u8) -> Error {
        Error::Malformed {
            what: "wallet entry",
            reason: format!("{what} cannot be written in wallet content version {version}"),
        }
    }

    /// Version 1: orders without expiry or condition, accepts without preimage.
    #[derive(Serialize, Deserialize)]
    pub enum V1 {
        Genesis(Genesis),
        Mint(Mint),
        Order {
            to: FeedId,
            currency: crate::amount::Currency,
            amount: crate::amount::Amount,
            memo: String,
        },
        Accept {
            order: Citation,
        },
        Reject(Reject),
        Reclaim(Reclaim),
    }

    impl V1 {
        pub fn into_entry(self) -> WalletEntry {
            match self {
                V1::Genesis(g) => WalletEntry::Genesis(g),
                V1::Mint(m) => WalletEntry::Mint(m),
                V1::Order {
                    to,
                    currency,
                    amount,
                    memo,
                } => WalletEntry::Order(Order {
                    to,
                    currency,
                    amount,
                    memo,
                    expiry: None,
                    condition: None,
                }),
                V1::Accept { order } => WalletEntry::Accept(Accept {
                    order,
                    preimage: None,
                    claim: None,
                }),
                V1::Reject(r) => WalletEntry::Reject(r),
                V1::Reclaim(r) => WalletEntry::Reclaim(r),
            }
        }

        pub fn from_entry(entry: &WalletEntry) -> Result<V1, Error> {
            Ok(match entry.clone() {
                WalletEntry::Genesis(g) => V1::Genesis(g),
                WalletEntry::Mint(m) => V1::Mint(m),
                WalletEntry::Order(o) => {
                    if o.expiry.is_some() || o.condition.is_some() {
                        return Err(unsaid("an expiry or a condition", WALLET_VERSION_1));
                    }
                    V1::Order {
                        to: o.to,
                        currency: o.currency,
                        amount: o.amount,
                        memo: o.memo,
                    }
                }
                WalletEntry::Accept(a) => {
                    if a.preimage.is_some() || a.claim.is_some() {
                        return Err(unsaid("a preimage or a claim", WALLET_VERSION_1));
                    }
                    V1::Accept { order: a.order }
                }
                WalletEntry::Reject(r) => V1::Reject(r),
                WalletEntry::Reclaim(r) => V1::Reclaim(r),
                WalletEntry::Cancel(_) | WalletEntry::Refund(_) => {
                    return Err(unsaid("a cancel or a refund", WALLET_VERSION_1));
                }
            })
        }
    }

    /// Version 2: every order has an expiry and may have a hash lock; cancels and refunds.
    #[derive(Serialize, Deserialize)]
    pub enum V2 {
        Genesis(Genesis),
        Mint(Mint),
        Order {
            to: FeedId,
            currency: crate::amount::Currency,
            amount: crate::amount::Amount,
            memo: String,
            expiry: Timestamp,
            condition: Option<HashLock>,
        },
        Accept {
            order: Citation,
            preimage: Option<Preimage>,
            claim: Option<FateCertificate>,
        },
        Reject(Reject),
        Reclaim(Reclaim),
        Cancel(Cancel),
        Refund(Refund),
    }

    impl V2 {
        pub fn into_entry(self) -> WalletEntry {
            match self {
                V2::Genesis(g) => WalletEntry::Genesis(g),
                V2::Mint(m) => WalletEntry::Mint(m),
                V2::Order {
                    to,
                    currency,
                    amount,
                    memo,
                    expiry,
                    condition,
                } => WalletEntry::Order(Order {
                    to,
                    currency,
                    amount,
                    memo,
                    expiry: Some(expiry),
                    condition,
                }),
                V2::Accept {
                    order,
                    preimage,
                    claim,
                } => WalletEntry::Accept(Accept {
                    order,
                    preimage,
                    claim,
                }),
                V2::Reject(r) => WalletEntry::Reject(r),
                V2::Reclaim(r) => WalletEntry::Reclaim(r),
                V2::Cancel(c) => WalletEntry::Cancel(c),
                V2::Refund(r) => WalletEntry::Refund(r),
            }
        }

        pub fn from_entry(entry: &WalletEntry) -> Result<V2, Error> {
            Ok(match entry.clone() {
                WalletEntry::Genesis(g) => V2::Genesis(g),
                WalletEntry::Mint(m) => V2::Mint(m),
                WalletEntry::Order(o) => V2::Order {
                    expiry: o.expiry.ok_or_else(|| Error::Malformed {
                        what: "wallet entry",
                        reason: "an order needs an expiry".into(),
                    })?,
                    to: o.to,
                    currency: o.currency,
                    amount: o.amount,
                    memo: o.memo,
                    condition: o.condition,
                },
                WalletEntry::Accept(a) => V2::Accept {
                    order: a.order,
                    preimage: a.preimage,
                    claim: a.claim,
                },
                WalletEntry::Reject(r) => V2::Reject(r),
                WalletEntry::Reclaim(r) => V2::Reclaim(r),
                WalletEntry::Cancel(c) => V2::Cancel(c),
                WalletEntry::Refund(r) => V2::Refund(r),
            })
        }
    }
}

/// The `App` kind of a wallet link: an identity's statement "my wallet is W".
pub const WALLET_LINK_KIND: &str = "scrip/wallet-link";
/// The wallet link version.
pub const WALLET_LINK_VERSION: u8 = 1;

/// The payload of an identity's entry naming its wallet: feed content
/// `App { kind: "scrip/wallet-link", bytes: postcard((version: u8 = 1, wallet: [u8; 32])) }`.
/// It is the identity's own word, signed in its feed: it tells someone who knows the person
/// (their identity) which wallet to pay; the latest link in the feed counts.
pub fn wallet_link_payload(wallet: FeedId) -> Result<Vec<u8>, Error> {
    let bytes = codec::encode("wallet link", &(WALLET_LINK_VERSION, wallet))?;
    Ok(Content::App {
        kind: WALLET_LINK_KIND.into(),
        bytes,
    }
    .encode()?)
}

/// The wallet an identity's entry payload links to, if it is a wallet link.
pub fn wallet_link(payload: &[u8]) -> Option<FeedId> {
    match Content::decode(payload).ok()? {
        Content::App { kind, bytes } if kind == WALLET_LINK_KIND => {
            let (version, wallet): (u8, FeedId) =
                codec::decode_canonical("wallet link", &bytes).ok()?;
            (version == WALLET_LINK_VERSION).then_some(wallet)
        }
        _ => None,
    }
}

/// The wallet [`Genesis`] `entry` is, if it is one: the first entry of its feed, with a payload
/// that is a wallet genesis (its notary set not checked yet: see [`wallet_notaries`]).
pub fn wallet_genesis(entry: &scrip_feed::Entry) -> Option<Genesis> {
    if entry.seq() != Seq::FIRST {
        return None;
    }
    match WalletEntry::from_payload(entry.payload()?) {
        Ok(WalletEntry::Genesis(genesis)) => Some(genesis),
        _ => None,
    }
}

/// The notary set of the wallet whose first entry is `entry`, if it is a wallet's genesis naming
/// a valid set. The one test of what makes a feed a **wallet**: every entry of a feed whose
/// first entry passes it counts only with a certificate under that set (`docs/protocol/ledger.md`
/// §1, `feed.md` §9). A genesis naming an invalid set is no wallet: nothing could certify it.
pub fn wallet_notaries(entry: &scrip_feed::Entry) -> Option<crate::NotarySet> {
    wallet_genesis(entry).and_then(|g| crate::NotarySet::new(&g.notaries).ok())
}

/// If `payload` is exactly the canonical encoding of `Content::App { kind: WALLET_KIND, bytes }`,
/// returns `bytes` (borrowed); `None` otherwise (the slow path then reports what is wrong).
fn wallet_bytes(payload: &[u8]) -> Option<&[u8]> {
    // payload version, `App` variant index, kind length, kind.
    const PREFIX: &[u8] = b"\x01\x06\x0cscrip/wallet";
    let rest = payload.strip_prefix(PREFIX)?;
    let mut len: u64 = 0;
    let mut used = 0usize;
    for (i, &byte) in rest.iter().enumerate().take(10) {
        len |= u64::from(byte & 0x7f) << (7 * i);
        used = i + 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let bytes = rest.get(used..)?;
    // The length must be canonical (minimal varint) and cover exactly the rest.
    let canonical = codec::encodes_to(&(bytes.len() as u64), &rest[..used]);
    (canonical && len == bytes.len() as u64).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scrip_feed::Keypair;

    #[test]
    fn a_wallet_link_round_trips() {
        let wallet = scrip_feed::Keypair::from_seed(&[9; 32]).id();
        let payload = wallet_link_payload(wallet).unwrap();
        assert_eq!(wallet_link(&payload), Some(wallet));
        assert_eq!(
            wallet_link(&Content::Post { text: "hi".into() }.encode().unwrap()),
            None
        );
    }

    /// A feed is a wallet only if its first entry is a genesis naming a valid notary set.
    #[test]
    fn a_wallet_is_a_first_entry_genesis_with_a_valid_set() {
        let key = Keypair::from_seed(&[3; 32]);
        let notary = Keypair::from_seed(&[4; 32]).id();
        let first = |notaries: Vec<FeedId>| {
            let payload = WalletEntry::Genesis(Genesis { notaries })
                .to_payload()
                .unwrap();
            scrip_feed::Entry::create(&key, None, scrip_feed::Timestamp::from_millis(0), payload)
                .unwrap()
        };
        let valid = first(vec![notary]);
        assert_eq!(
            wallet_notaries(&valid).map(|set| set.n()),
            Some(1),
            "a valid genesis"
        );
        // The same notary twice: a genesis, but no valid set, so no wallet.
        let doubled = first(vec![notary, notary]);
        assert!(wallet_genesis(&doubled).is_some());
        assert!(wallet_notaries(&doubled).is_none());
        assert!(wallet_notaries(&first(Vec::new())).is_none(), "no notaries");
        // A genesis payload at seq 2 makes nothing a wallet.
        let payload = WalletEntry::Genesis(Genesis {
            notaries: vec![notary],
        })
        .to_payload()
        .unwrap();
        let second =
            scrip_feed::Entry::create(&key, Some(valid.head()), valid.timestamp(), payload)
                .unwrap();
        assert!(wallet_notaries(&second).is_none());
    }

    #[test]
    fn wallet_entries_round_trip_and_variant_indices_are_frozen() {
        let issuer = Keypair::from_seed(&[1; 32]).id();
        let currency = Currency::new(issuer, "EUR", 2).unwrap();
        let entries = [
            WalletEntry::Genesis(Genesis {
                notaries: vec![issuer],
            }),
            WalletEntry::Mint(Mint {
                currency,
                amount: Amount::from_minor(5),
            }),
            WalletEntry::Order(Order {
                to: issuer,
                currency,
                amount: Amount::from_minor(5),
                memo: "lunch".into(),
                expiry: Some(crate::kit::FAR_EXPIRY),
                condition: None,
            }),
        ];
        for (index, entry) in entries.iter().enumerate() {
            let payload = entry.to_payload().unwrap();
            assert_eq!(WalletEntry::from_payload(&payload).unwrap(), *entry);
            let Content::App { bytes, .. } = Content::decode(&payload).unwrap() else {
                panic!("not app content");
            };
            assert_eq!(bytes[0], WALLET_VERSION);
            assert_eq!(usize::from(bytes[1]), index);
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_generic_decoder() {
        let issuer = Keypair::from_seed(&[1; 32]).id();
        let entry = WalletEntry::Order(Order {
            to: issuer,
            currency: Currency::new(issuer, "EUR", 2).unwrap(),
            amount: Amount::from_minor(5),
            memo: "m".repeat(200),
            expiry: Some(crate::kit::FAR_EXPIRY),
            condition: None,
        });
        let payload = entry.to_payload().unwrap();
        assert!(wallet_bytes(&payload).is_some());
        // An over-long length varint is not canonical: refused by both paths.
        let inner = wallet_bytes(&payload).unwrap().to_vec();
        let mut overlong = b"\x01\x06\x0cscrip/wallet".to_vec();
        // The length as a three-byte varint with a needless zero top group.
        let n = inner.len();
        assert!(n < 1 << 14);
        let low = u8::try_from(n & 0x7f).unwrap() | 0x80;
        let high = u8::try_from(n >> 7).unwrap() | 0x80;
        overlong.extend_from_slice(&[low, high, 0x00]);
        overlong.extend_from_slice(&inner);
        assert!(wallet_bytes(&overlong).is_none());
        assert!(WalletEntry::from_payload(&overlong).is_err());
        // Trailing bytes: refused.
        let mut trailing = payload.clone();
        trailing.push(0);
        assert!(WalletEntry::from_payload(&trailing).is_err());
    }

    #[test]
    fn other_content_is_not_a_wallet_entry() {
        let post = Content::Post { text: "hi".into() }.encode().unwrap();
        assert!(WalletEntry::from_payload(&post).is_err());
        let other_app = Content::App {
            kind: "other".into(),
            bytes: vec![1, 0],
        }
        .encode()
        .unwrap();
        assert!(WalletEntry::from_payload(&other_app).is_err());
        let future = Content::App {
            kind: WALLET_KIND.into(),
            bytes: vec![2, 0],
        }
        .encode()
        .unwrap();
        assert!(WalletEntry::from_payload(&future).is_err());
    }
}
