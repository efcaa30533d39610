//! Wallet addresses: the text form people type to pay a wallet.
//!
//! A wallet is named on the wire by its feed id (32 key bytes). People, though, copy and type
//! names, and a payment to a mistyped name is money gone: so the text form of a wallet is
//! distinct from every other id and carries a checksum.
//!
//! ```text
//! address  = "+" ‖ base58(key ‖ checksum)            (bitcoin alphabet, canonical form only)
//! checksum = blake3("scrip/wallet-address/v1" ‖ 0x00 ‖ key)[0..4]
//! ```
//!
//! `+` tells a wallet from an identity (`@`) or an entry (`%`) at a glance, and needs no quoting
//! in a shell (unlike `$`). The 4-byte checksum
//! catches any single wrong, missing or extra character, any swap of two characters, and all
//! but about one in four billion other mistakes. The key must also be a valid, non-weak ed25519
//! point. Vectors: `docs/protocol/vectors/address.json` (checked by this module's tests).

use std::fmt;
use std::str::FromStr;

use scrip_feed::{AuthorKey, FeedId};

use crate::error::Error;

/// The domain of the checksum.
pub const ADDRESS_DOMAIN: &[u8] = b"scrip/wallet-address/v1";
/// The text form's prefix.
pub const ADDRESS_PREFIX: char = '+';
/// Checksum bytes.
pub const CHECKSUM_BYTES: usize = 4;
/// Longest text form: the prefix and base58 of 36 bytes (at most 50 characters).
pub const MAX_ADDRESS_CHARS: usize = 1 + 50;

/// A wallet's address: its feed id, written with a checksum.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct WalletAddress(FeedId);

/// Why a text is not a wallet address (the reason shown to the user).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressDefect {
    /// It is an identity or feed id (`@…`), not a wallet address.
    FeedId,
    /// It does not start with `+`.
    Prefix,
    /// Too long to be an address.
    TooLong,
    /// A character outside the base58 alphabet.
    NotBase58,
    /// Too few or too many characters.
    Length,
    /// Not the canonical base58 form.
    NotCanonical,
    /// The checksum does not match: a character is wrong, missing, extra or swapped.
    Checksum,
    /// The key is not a valid (non-weak) ed25519 public key.
    Key,
}

impl AddressDefect {
    /// A sentence for the user.
    pub fn reason(self) -> &'static str {
        match self {
            AddressDefect::FeedId => {
                "that is an identity or feed id (@...), not a wallet address (+...)"
            }
            AddressDefect::Prefix => "a wallet address starts with '+'",
            AddressDefect::TooLong => "too long for a wallet address",
            AddressDefect::NotBase58 => {
                "a character that is not in the base58 alphabet (no 0, O, I or l)"
            }
            AddressDefect::Length => "too short or too long: a character is missing or extra",
            AddressDefect::NotCanonical => "not in canonical form",
            AddressDefect::Checksum => {
                "the checksum does not match: a character is mistyped, missing, extra or swapped"
            }
            AddressDefect::Key => "not a valid wallet key",
        }
    }

    /// A stable code (vectors, JSON errors).
    pub fn code(self) -> &'static str {
        match self {
            AddressDefect::FeedId => "address-is-feed-id",
            AddressDefect::Prefix => "address-prefix",
            AddressDefect::TooLong => "address-too-long",
            AddressDefect::NotBase58 => "address-not-base58",
            AddressDefect::Length => "address-length",
            AddressDefect::NotCanonical => "address-not-canonical",
            AddressDefect::Checksum => "address-checksum",
            AddressDefect::Key => "address-key",
        }
    }
}

fn checksum(key: &[u8; 32]) -> [u8; CHECKSUM_BYTES] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(ADDRESS_DOMAIN);
    hasher.update(&[0]);
    hasher.update(key);
    let hash = hasher.finalize();
    let mut out = [0u8; CHECKSUM_BYTES];
    out.copy_from_slice(&hash.as_bytes()[..CHECKSUM_BYTES]);
    out
}

impl WalletAddress {
    /// The address of wallet `wallet`.
    pub fn of(wallet: FeedId) -> WalletAddress {
        WalletAddress(wallet)
    }

    /// The wallet (its feed id).
    pub fn wallet(&self) -> FeedId {
        self.0
    }

    /// Parses an address as typed (surrounding whitespace is ignored).
    ///
    /// Rules, in order: not an `@` id ([`AddressDefect::FeedId`]); starts with `+`
    /// ([`AddressDefect::Prefix`]); at most [`MAX_ADDRESS_CHARS`] characters
    /// ([`AddressDefect::TooLong`]); base58 ([`AddressDefect::NotBase58`]); 36 bytes
    /// ([`AddressDefect::Length`]); canonical ([`AddressDefect::NotCanonical`]); the checksum
    /// ([`AddressDefect::Checksum`]); a valid, non-weak key ([`AddressDefect::Key`]).
    pub fn parse(text: &str) -> Result<WalletAddress, AddressDefect> {
        let text = text.trim();
        if text.starts_with(FeedId::PREFIX) {
            return Err(AddressDefect::FeedId);
        }
        let body = text
            .strip_prefix(ADDRESS_PREFIX)
            .ok_or(AddressDefect::Prefix)?;
        if text.len() > MAX_ADDRESS_CHARS {
            return Err(AddressDefect::TooLong);
        }
        let bytes = bs58::decode(body)
            .into_vec()
            .map_err(|_| AddressDefect::NotBase58)?;
        let bytes: [u8; 32 + CHECKSUM_BYTES] =
            bytes.try_into().map_err(|_| AddressDefect::Length)?;
        if bs58::encode(bytes).into_string() != body {
            return Err(AddressDefect::NotCanonical);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[..32]);
        if bytes[32..] != checksum(&key) {
            return Err(AddressDefect::Checksum);
        }
        let wallet = FeedId::from_bytes(key);
        AuthorKey::new(&wallet).map_err(|_| AddressDefect::Key)?;
        Ok(WalletAddress(wallet))
    }
}

impl fmt::Display for WalletAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = [0u8; 32 + CHECKSUM_BYTES];
        bytes[..32].copy_from_slice(self.0.as_bytes());
        bytes[32..].copy_from_slice(&checksum(self.0.as_bytes()));
        write!(f, "{ADDRESS_PREFIX}{}", bs58::encode(bytes).into_string())
    }
}

impl FromStr for WalletAddress {
    type Err = Error;

    fn from_str(text: &str) -> Result<WalletAddress, Error> {
        WalletAddress::parse(text).map_err(|defect| Error::InvalidAddress {
            input: text.chars().take(64).collect(),
            defect,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use scrip_feed::Keypair;
    use serde_json::{Value, json};

    fn wallet(seed: u8) -> FeedId {
        Keypair::from_seed(&[seed; 32]).id()
    }

    #[test]
    fn an_address_round_trips_and_is_not_a_feed_id() {
        let address = WalletAddress::of(wallet(1));
        let text = address.to_string();
        assert!(text.starts_with('+'));
        assert!(text.len() <= MAX_ADDRESS_CHARS);
        assert_eq!(text.parse::<WalletAddress>().unwrap(), address);
        assert_eq!(
            WalletAddress::parse(&format!("  {text}\n")).unwrap(),
            address
        );
        assert_eq!(
            WalletAddress::parse(&wallet(1).to_string()),
            Err(AddressDefect::FeedId)
        );
    }

    /// Every change of one character, every missing character and every swap of two
    /// neighbours is caught.
    #[test]
    fn every_single_typo_is_caught() {
        const ALPHABET: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        for seed in 1..4 {
            let text = WalletAddress::of(wallet(seed)).to_string();
            let chars: Vec<char> = text.chars().collect();
            for at in 1..chars.len() {
                for replacement in ALPHABET.chars().filter(|&c| c != chars[at]) {
                    let mut typo = chars.clone();
                    typo[at] = replacement;
                    let typo: String = typo.into_iter().collect();
                    assert!(WalletAddress::parse(&typo).is_err(), "{typo}");
                }
                let mut missing = chars.clone();
                missing.remove(at);
                assert!(WalletAddress::parse(&missing.iter().collect::<String>()).is_err());
                if at + 1 < chars.len() && chars[at] != chars[at + 1] {
                    let mut swapped = chars.clone();
                    swapped.swap(at, at + 1);
                    assert!(WalletAddress::parse(&swapped.iter().collect::<String>()).is_err());
                }
            }
        }
    }

    fn vectors() -> Value {
        let good: Vec<Value> = (1..4)
            .map(|seed| {
                let key = Keypair::from_seed(&[seed; 32]);
                json!({
                    "wallet": key.id().to_string(),
                    "key_hex": hex_of(key.id().as_bytes()),
                    "address": WalletAddress::of(key.id()).to_string(),
                })
            })
            .collect();
        let text = WalletAddress::of(wallet(1)).to_string();
        let mut typo: Vec<char> = text.chars().collect();
        typo[5] = if typo[5] == 'a' { 'b' } else { 'a' };
        let mut swapped: Vec<char> = text.chars().collect();
        let at = (1..swapped.len() - 1)
            .find(|&i| swapped[i] != swapped[i + 1])
            .unwrap();
        swapped.swap(at, at + 1);
        let weak = {
            // The identity point (a weak key) with its right checksum.
            let mut key = [0u8; 32];
            key[0] = 1;
            let mut bytes = key.to_vec();
            bytes.extend_from_slice(&checksum(&key));
            format!("+{}", bs58::encode(bytes).into_string())
        };
        let bad = |name: &str, text: String| {
            let defect = WalletAddress::parse(&text).unwrap_err();
            json!({"name": name, "text": text, "error": defect.code()})
        };
        json!({
            "format": "scrip wallet address vectors v1",
            "notes": "Generated by ledger/src/address.rs; see that module and docs/protocol/ledger.md §1.",
            "domain": String::from_utf8(ADDRESS_DOMAIN.to_vec()).unwrap(),
            "valid": good,
            "invalid": [
                bad("feed-id", wallet(1).to_string()),
                bad("no-prefix", text[1..].to_owned()),
                bad("too-long", format!("{text}{}", &text[1..])),
                bad("not-base58", format!("{}0", &text[..text.len() - 1])),
                bad("missing-character", text[..text.len() - 1].to_owned()),
                bad("one-character-changed", typo.into_iter().collect()),
                bad("two-characters-swapped", swapped.into_iter().collect()),
                bad("weak-key", weak),
            ],
        })
    }

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn vectors_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/protocol/vectors/address.json")
    }

    /// The checked-in vectors are what this code makes (`SCRIP_REGEN_VECTORS=1` rewrites
    /// them), and each parses as it says.
    #[test]
    fn checked_in_vectors_hold() {
        let generated = vectors();
        if std::env::var_os("SCRIP_REGEN_VECTORS").is_some() {
            let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
            std::fs::write(vectors_path(), text).unwrap();
        }
        let stored: Value =
            serde_json::from_str(&std::fs::read_to_string(vectors_path()).unwrap()).unwrap();
        assert_eq!(stored, generated, "regenerate with SCRIP_REGEN_VECTORS=1");
        for v in stored["valid"].as_array().unwrap() {
            let address = WalletAddress::parse(v["address"].as_str().unwrap()).unwrap();
            assert_eq!(address.wallet().to_string(), v["wallet"].as_str().unwrap());
        }
        for v in stored["invalid"].as_array().unwrap() {
            let defect = WalletAddress::parse(v["text"].as_str().unwrap()).unwrap_err();
            assert_eq!(defect.code(), v["error"].as_str().unwrap(), "{}", v["name"]);
        }
    }
}
