//! Plain-feed payload content.
//!
//! A payload is `postcard((PAYLOAD_FORMAT_VERSION: u8, Content))`, decoded canonically. The enum
//! variant index is part of the format: new variants are only ever appended, never reordered.
//! Content that other crates define (the ledger's wallet entries) travels as [`Content::App`].
//!
//! A peer that cannot decode a payload (a newer variant, say) still stores and relays the entry:
//! the chain only commits to the payload's hash and length.

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::{Error, Result};
use crate::identity::FeedId;
use crate::limits::{MAX_ADDRESS_BYTES, MAX_APP_KIND_BYTES, MAX_NICK_BYTES};
use crate::validate::validate_payload_size;

/// The payload format version this crate writes and accepts.
pub const PAYLOAD_FORMAT_VERSION: u8 = 1;

/// What an entry says. Variant order is the wire format: append only.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Content {
    /// A public text message.
    Post {
        /// The text.
        text: String,
    },
    /// Start replicating `feed` (and, within the hop limit, whom it follows).
    Follow {
        /// The followed feed.
        feed: FeedId,
    },
    /// Stop following `feed`.
    Unfollow {
        /// The feed.
        feed: FeedId,
    },
    /// Never replicate or relay `feed`.
    Block {
        /// The feed.
        feed: FeedId,
    },
    /// The author's nickname.
    Nick {
        /// 1 to [`MAX_NICK_BYTES`] bytes, no control characters.
        name: String,
    },
    /// A reachable address (`host:port`) of this feed's node.
    Pub {
        /// 1 to [`MAX_ADDRESS_BYTES`] bytes, no whitespace or control characters.
        address: String,
    },
    /// Content defined by another layer (e.g. the ledger), opaque here.
    App {
        /// What kind of content: 1 to [`MAX_APP_KIND_BYTES`] bytes of `[a-z0-9/._-]`.
        kind: String,
        /// The content's own encoding.
        #[serde(with = "crate::codec::bytes")]
        bytes: Vec<u8>,
    },
    /// Undo a `Block` of `feed`: it may be replicated again (if followed).
    Unblock {
        /// The feed.
        feed: FeedId,
    },
}

impl Content {
    /// Encodes the content as a payload.
    ///
    /// Errors: a field breaks its rule ([`Error::InvalidContent`]); the payload would exceed
    /// [`MAX_PAYLOAD_BYTES`](crate::limits::MAX_PAYLOAD_BYTES) ([`Error::TooLarge`]).
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.check_fields()?;
        let bytes = codec::encode("payload", &(PAYLOAD_FORMAT_VERSION, self))?;
        validate_payload_size(bytes.len())?;
        Ok(bytes)
    }

    /// Decodes a payload.
    ///
    /// Rules: size at most [`MAX_PAYLOAD_BYTES`](crate::limits::MAX_PAYLOAD_BYTES)
    /// ([`Error::TooLarge`]); first byte is [`PAYLOAD_FORMAT_VERSION`]
    /// ([`Error::UnsupportedVersion`]); canonical encoding
    /// ([`Error::Malformed`], [`Error::NonCanonical`]); field rules ([`Error::InvalidContent`]).
    pub fn decode(bytes: &[u8]) -> Result<Content> {
        validate_payload_size(bytes.len())?;
        match bytes.first() {
            None => {
                return Err(Error::Malformed {
                    what: "payload",
                    detail: "empty".into(),
                });
            }
            Some(&PAYLOAD_FORMAT_VERSION) => {}
            Some(&found) => {
                return Err(Error::UnsupportedVersion {
                    what: "payload",
                    expected: PAYLOAD_FORMAT_VERSION,
                    found,
                });
            }
        }
        let (_, content): (u8, Content) = codec::decode_canonical("payload", bytes)?;
        content.check_fields()?;
        Ok(content)
    }

    /// A short name of the variant, for display.
    pub fn kind(&self) -> &str {
        match self {
            Content::Post { .. } => "post",
            Content::Follow { .. } => "follow",
            Content::Unfollow { .. } => "unfollow",
            Content::Block { .. } => "block",
            Content::Nick { .. } => "nick",
            Content::Pub { .. } => "pub",
            Content::App { kind, .. } => kind,
            Content::Unblock { .. } => "unblock",
        }
    }

    fn check_fields(&self) -> Result<()> {
        match self {
            Content::Post { .. }
            | Content::Follow { .. }
            | Content::Unfollow { .. }
            | Content::Block { .. }
            | Content::Unblock { .. } => Ok(()),
            Content::Nick { name } => {
                check_len("nick", name, MAX_NICK_BYTES)?;
                if name.chars().any(char::is_control) {
                    return Err(invalid("nick", "contains control characters"));
                }
                if name.trim() != name {
                    return Err(invalid("nick", "has leading or trailing whitespace"));
                }
                Ok(())
            }
            Content::Pub { address } => {
                check_len("pub address", address, MAX_ADDRESS_BYTES)?;
                if address.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return Err(invalid(
                        "pub address",
                        "contains whitespace or control characters",
                    ));
                }
                Ok(())
            }
            Content::App { kind, .. } => {
                check_len("app kind", kind, MAX_APP_KIND_BYTES)?;
                let allowed = |c: char| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || matches!(c, '/' | '.' | '_' | '-')
                };
                if !kind.chars().all(allowed) {
                    return Err(invalid("app kind", "may only contain [a-z0-9/._-]"));
                }
                Ok(())
            }
        }
    }
}

fn invalid(field: &'static str, reason: &str) -> Error {
    Error::InvalidContent {
        field,
        reason: reason.into(),
    }
}

fn check_len(field: &'static str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(invalid(field, "is empty"));
    }
    if value.len() > max {
        return Err(Error::InvalidContent {
            field,
            reason: format!("is {} bytes, the limit is {max}", value.len()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;
    use crate::limits::MAX_PAYLOAD_BYTES;

    fn all_variants() -> Vec<Content> {
        let feed = Keypair::from_seed(&[1; 32]).id();
        vec![
            Content::Post {
                text: "hello".into(),
            },
            Content::Follow { feed },
            Content::Unfollow { feed },
            Content::Block { feed },
            Content::Nick {
                name: "alice".into(),
            },
            Content::Pub {
                address: "127.0.0.1:8008".into(),
            },
            Content::App {
                kind: "scrip/wallet".into(),
                bytes: vec![1, 2, 3],
            },
            Content::Unblock { feed },
        ]
    }

    #[test]
    fn every_variant_round_trips() {
        for content in all_variants() {
            let bytes = content.encode().unwrap();
            assert_eq!(bytes[0], PAYLOAD_FORMAT_VERSION);
            assert_eq!(Content::decode(&bytes).unwrap(), content);
        }
    }

    #[test]
    fn variant_indices_are_frozen() {
        // The second byte of a payload is the variant index; appending variants must not move
        // these.
        let indices: Vec<u8> = all_variants()
            .iter()
            .map(|c| c.encode().unwrap()[1])
            .collect();
        assert_eq!(indices, vec![0, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn nick_limits_are_enforced_on_encode_and_decode() {
        let long = Content::Nick {
            name: "x".repeat(MAX_NICK_BYTES + 1),
        };
        assert!(matches!(long.encode(), Err(Error::InvalidContent { .. })));
        let bytes = codec::encode("payload", &(PAYLOAD_FORMAT_VERSION, &long)).unwrap();
        assert!(matches!(
            Content::decode(&bytes),
            Err(Error::InvalidContent { .. })
        ));
        let ok = Content::Nick {
            name: "x".repeat(MAX_NICK_BYTES),
        };
        assert!(ok.encode().is_ok());
        for bad in ["", " alice", "al\nice"] {
            let nick = Content::Nick { name: bad.into() };
            assert!(nick.encode().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn payload_limit_is_enforced_on_encode_and_decode() {
        let big = Content::Post {
            text: "x".repeat(MAX_PAYLOAD_BYTES),
        };
        assert!(matches!(big.encode(), Err(Error::TooLarge { .. })));
        assert!(matches!(
            Content::decode(&vec![1u8; MAX_PAYLOAD_BYTES + 1]),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn bad_payloads_are_refused() {
        assert!(matches!(Content::decode(&[]), Err(Error::Malformed { .. })));
        assert!(matches!(
            Content::decode(&[2, 0, 0]),
            Err(Error::UnsupportedVersion { found: 2, .. })
        ));
        // Unknown variant 200.
        assert!(matches!(
            Content::decode(&[1, 200, 1]),
            Err(Error::Malformed { .. })
        ));
        let mut trailing = all_variants()[0].encode().unwrap();
        trailing.push(0);
        assert!(matches!(
            Content::decode(&trailing),
            Err(Error::NonCanonical { .. })
        ));
        // Invalid UTF-8 in a post.
        assert!(matches!(
            Content::decode(&[1, 0, 1, 0xff]),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn app_kind_is_restricted() {
        for bad in ["", "Wallet", "a b", &"k".repeat(MAX_APP_KIND_BYTES + 1)] {
            let content = Content::App {
                kind: bad.into(),
                bytes: vec![],
            };
            assert!(content.encode().is_err(), "accepted {bad:?}");
        }
    }
}
