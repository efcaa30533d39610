//! Replication messages: what travels inside the transport's messages. Specified in
//! `docs/protocol/replication.md`.
//!
//! Every message is `postcard((WIRE_VERSION: u8, Message))`, decoded canonically and checked
//! against the limits in [`crate::limits`]. Variants of [`Message`] and [`Note`] are only ever
//! appended.

use scrip_feed::FeedId;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::limits::{
    MAX_ATTACHMENT_BYTES, MAX_ATTACHMENT_KIND_BYTES, MAX_ATTACHMENTS_PER_ENTRY,
    MAX_ENTRIES_PER_MESSAGE, MAX_FEATURES, MAX_NAME_BYTES, MAX_NOTES_PER_MESSAGE,
};

/// The leading byte of every message.
pub const WIRE_VERSION: u8 = 1;
/// The protocol's name, sent in [`Hello`].
pub const PROTOCOL_NAME: &str = "scrip-replicate";
/// The protocol version, sent in [`Hello`]. Peers with another major version do not talk.
pub const PROTOCOL_VERSION: u16 = 1;

/// A replication message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// First message of each side.
    Hello(Hello),
    /// Notes: for each feed, what the sender holds and whether it wants the receiver to send it.
    Clock(Vec<(FeedId, Note)>),
    /// Consecutive entries of one feed, in seq order.
    Entries(Entries),
    /// A fork proof (`scrip_feed::ForkProof` encoding), to be verified before it is believed.
    ForkProof(#[serde(with = "scrip_feed::codec::bytes")] Vec<u8>),
    /// Keeps an idle connection alive.
    Ping,
}

/// The first message of each side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_NAME`].
    pub protocol: String,
    /// [`PROTOCOL_VERSION`].
    pub version: u16,
    /// Optional features the sender supports (none are defined yet).
    pub features: Vec<String>,
    /// A random number fixed for the life of the sender's node process: remembered clocks are
    /// only valid within one epoch.
    pub epoch: u64,
    /// The receiver's epoch as the sender remembers it from an earlier session, if any.
    pub known_epoch: Option<u64>,
    /// blake3 of the notes the sender remembers receiving from the receiver (see
    /// [`notes_digest`]). If it matches what the receiver remembers sending, the receiver sends
    /// only the notes that changed.
    pub received_notes: Option<[u8; 32]>,
    /// blake3 of the notes the sender remembers sending to the receiver. If it matches what the
    /// receiver remembers receiving, the receiver keeps those notes and expects only changes.
    pub sent_notes: Option<[u8; 32]>,
}

/// What one side says about one feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Note {
    /// The sender does not replicate this feed: never send it.
    Ignore,
    /// The sender holds the feed up to `seq` (0: nothing). With `send`, the receiver should
    /// stream what it holds beyond `seq`, and then new entries live.
    At {
        /// The sender's latest seq of the feed.
        seq: u64,
        /// Whether the receiver should send the feed.
        send: bool,
    },
}

impl Note {
    /// The seq the note claims (0 for [`Note::Ignore`]).
    pub fn seq(&self) -> u64 {
        match self {
            Note::Ignore => 0,
            Note::At { seq, .. } => *seq,
        }
    }

    /// Whether the note asks the receiver to send the feed.
    pub fn wants(&self) -> bool {
        matches!(self, Note::At { send: true, .. })
    }
}

/// Consecutive entries of one feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entries {
    /// The feed.
    pub feed: FeedId,
    /// The entries, in seq order.
    pub items: Vec<WireEntry>,
}

/// One entry on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry {
    /// The signed header, exactly as signed.
    #[serde(with = "scrip_feed::codec::bytes")]
    pub header: Vec<u8>,
    /// The payload, if the sender holds it.
    #[serde(with = "scrip_feed::codec::option_bytes")]
    pub payload: Option<Vec<u8>>,
    /// Opaque attachments (e.g. notary certificates), keyed by kind.
    pub attachments: Vec<Attachment>,
}

/// Opaque, size-limited bytes that travel with an entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// What it is (e.g. `scrip/certificate`).
    pub kind: String,
    /// Its own encoding.
    #[serde(with = "scrip_feed::codec::bytes")]
    pub bytes: Vec<u8>,
}

/// Encodes a message for the transport.
pub fn encode(message: &Message) -> Result<Vec<u8>> {
    check_limits(message)?;
    postcard::to_stdvec(&(WIRE_VERSION, message)).map_err(|e| Error::Protocol {
        reason: format!("encoding a message: {e}"),
    })
}

/// Decodes a message from the transport.
///
/// Rules: the first byte is [`WIRE_VERSION`]; the encoding is canonical; the limits of
/// [`check_limits`] hold. Errors are [`Error::Protocol`] (or [`Error::Incompatible`] for the
/// version).
pub fn decode(bytes: &[u8]) -> Result<Message> {
    match bytes.first() {
        Some(&WIRE_VERSION) => {}
        Some(&other) => {
            return Err(Error::Incompatible {
                expected: format!("wire version {WIRE_VERSION}"),
                found: format!("wire version {other}"),
            });
        }
        None => {
            return Err(Error::Protocol {
                reason: "an empty message".into(),
            });
        }
    }
    let (_, message): (u8, Message) = scrip_feed::codec::decode_canonical("message", bytes)
        .map_err(|e| Error::Protocol {
            reason: e.to_string(),
        })?;
    check_limits(&message)?;
    Ok(message)
}

/// The per-message limits: at most [`MAX_NOTES_PER_MESSAGE`] notes, [`MAX_ENTRIES_PER_MESSAGE`]
/// entries, [`MAX_ATTACHMENTS_PER_ENTRY`] attachments of at most [`MAX_ATTACHMENT_BYTES`] with a
/// kind of 1 to [`MAX_ATTACHMENT_KIND_BYTES`] bytes, [`MAX_FEATURES`] features and names of at
/// most [`MAX_NAME_BYTES`].
pub fn check_limits(message: &Message) -> Result<()> {
    let violation = |reason: String| Err(Error::Protocol { reason });
    match message {
        Message::Hello(hello) => {
            if hello.protocol.len() > MAX_NAME_BYTES
                || hello.features.len() > MAX_FEATURES
                || hello.features.iter().any(|f| f.len() > MAX_NAME_BYTES)
            {
                return violation("a Hello exceeds its limits".into());
            }
        }
        Message::Clock(notes) if notes.len() > MAX_NOTES_PER_MESSAGE => {
            return violation(format!(
                "{} notes in one message, the limit is {MAX_NOTES_PER_MESSAGE}",
                notes.len()
            ));
        }
        Message::Entries(entries) => {
            if entries.items.is_empty() || entries.items.len() > MAX_ENTRIES_PER_MESSAGE {
                return violation(format!(
                    "{} entries in one message, the limit is 1 to {MAX_ENTRIES_PER_MESSAGE}",
                    entries.items.len()
                ));
            }
            for item in &entries.items {
                if item.attachments.len() > MAX_ATTACHMENTS_PER_ENTRY {
                    return violation("too many attachments on an entry".into());
                }
                for attachment in &item.attachments {
                    if attachment.bytes.len() > MAX_ATTACHMENT_BYTES
                        || attachment.kind.is_empty()
                        || attachment.kind.len() > MAX_ATTACHMENT_KIND_BYTES
                    {
                        return violation("an attachment exceeds its limits".into());
                    }
                }
            }
        }
        Message::Clock(_) | Message::ForkProof(_) | Message::Ping => {}
    }
    Ok(())
}

/// blake3 over the canonical encoding of `notes` in feed order: what [`Hello::received_notes`] and [`Hello::sent_notes`]
/// carries.
pub fn notes_digest<'a>(notes: impl IntoIterator<Item = (&'a FeedId, &'a Note)>) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for (feed, note) in notes {
        hasher.update(feed.as_bytes());
        match note {
            Note::Ignore => {
                hasher.update(&[0]);
            }
            Note::At { seq, send } => {
                hasher.update(&[1]);
                hasher.update(&seq.to_be_bytes());
                hasher.update(&[u8::from(*send)]);
            }
        }
    }
    *hasher.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use scrip_feed::Keypair;

    fn feed() -> FeedId {
        Keypair::from_seed(&[1; 32]).id()
    }

    #[test]
    fn messages_round_trip() {
        let messages = vec![
            Message::Hello(Hello {
                protocol: PROTOCOL_NAME.into(),
                version: PROTOCOL_VERSION,
                features: vec![],
                epoch: 7,
                known_epoch: Some(9),
                received_notes: Some([3; 32]),
                sent_notes: None,
            }),
            Message::Clock(vec![
                (feed(), Note::Ignore),
                (feed(), Note::At { seq: 5, send: true }),
            ]),
            Message::Entries(Entries {
                feed: feed(),
                items: vec![WireEntry {
                    header: vec![1, 2],
                    payload: Some(vec![3]),
                    attachments: vec![Attachment {
                        kind: "scrip/certificate".into(),
                        bytes: vec![4],
                    }],
                }],
            }),
            Message::ForkProof(vec![9; 10]),
            Message::Ping,
        ];
        for message in messages {
            assert_eq!(decode(&encode(&message).unwrap()).unwrap(), message);
        }
    }

    #[test]
    fn variant_indices_are_frozen() {
        assert_eq!(encode(&Message::Ping).unwrap(), vec![WIRE_VERSION, 4]);
        assert_eq!(
            encode(&Message::Clock(vec![])).unwrap(),
            vec![WIRE_VERSION, 1, 0]
        );
    }

    #[test]
    fn bad_messages_are_refused() {
        assert!(matches!(decode(&[]), Err(Error::Protocol { .. })));
        assert!(matches!(decode(&[2, 4]), Err(Error::Incompatible { .. })));
        assert!(matches!(decode(&[1, 99]), Err(Error::Protocol { .. })));
        assert!(matches!(decode(&[1, 4, 0]), Err(Error::Protocol { .. })));
        let empty_entries = Message::Entries(Entries {
            feed: feed(),
            items: vec![],
        });
        let bytes = postcard::to_stdvec(&(WIRE_VERSION, &empty_entries)).unwrap();
        assert!(matches!(decode(&bytes), Err(Error::Protocol { .. })));
        let big_attachment = Message::Entries(Entries {
            feed: feed(),
            items: vec![WireEntry {
                header: vec![],
                payload: None,
                attachments: vec![Attachment {
                    kind: "k".into(),
                    bytes: vec![0; MAX_ATTACHMENT_BYTES + 1],
                }],
            }],
        });
        assert!(encode(&big_attachment).is_err());
        let bytes = postcard::to_stdvec(&(WIRE_VERSION, &big_attachment)).unwrap();
        assert!(matches!(decode(&bytes), Err(Error::Protocol { .. })));
    }
}
