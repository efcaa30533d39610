//! Canonical postcard decoding.
//!
//! postcard accepts over-long varints and ignores trailing bytes, so two different byte strings
//! can decode to the same value. Every signed or hashed structure in scrip must have exactly one
//! encoding, so decoding is: decode, refuse trailing bytes, re-encode, and refuse unless the
//! re-encoding equals the input.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Decodes `bytes` as a `T`, refusing anything but its canonical encoding.
///
/// Errors: [`Error::Malformed`] if the bytes do not decode; [`Error::NonCanonical`] if they have
/// trailing bytes or are not what encoding the decoded value gives.
pub fn decode_canonical<T>(what: &'static str, bytes: &[u8]) -> Result<T>
where
    T: Serialize + DeserializeOwned,
{
    let (value, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|e| Error::Malformed {
        what,
        detail: e.to_string(),
    })?;
    if !rest.is_empty() || !encodes_to(&value, bytes) {
        return Err(Error::NonCanonical { what });
    }
    Ok(value)
}

/// Decodes bytes this process checked with [`decode_canonical`] when it took them in and kept
/// since (a store's own records): the same value, without the comparison with its encoding,
/// which costs as much as the decoding. Trailing bytes are still refused ([`Error::Malformed`]).
pub fn decode_checked_before<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok(_) => Err(Error::Malformed {
            what,
            detail: "trailing bytes".into(),
        }),
        Err(e) => Err(Error::Malformed {
            what,
            detail: e.to_string(),
        }),
    }
}

/// True iff `value` encodes to exactly `expected`. Compares while encoding, without allocating,
/// and stops at the first difference.
pub fn encodes_to<T: Serialize + ?Sized>(value: &T, expected: &[u8]) -> bool {
    struct Compare<'a> {
        expected: &'a [u8],
        at: usize,
    }
    impl postcard::ser_flavors::Flavor for Compare<'_> {
        type Output = bool;
        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            let end = self.at.checked_add(data.len());
            match end.and_then(|end| self.expected.get(self.at..end)) {
                Some(slice) if slice == data => {
                    self.at += data.len();
                    Ok(())
                }
                _ => Err(postcard::Error::SerializeBufferFull),
            }
        }
        fn try_push(&mut self, data: u8) -> postcard::Result<()> {
            if self.expected.get(self.at) == Some(&data) {
                self.at += 1;
                Ok(())
            } else {
                Err(postcard::Error::SerializeBufferFull)
            }
        }
        fn finalize(self) -> postcard::Result<bool> {
            Ok(self.at == self.expected.len())
        }
    }
    postcard::serialize_with_flavor(value, Compare { expected, at: 0 }).unwrap_or(false)
}

/// Encodes `value` with postcard.
pub fn encode<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| Error::Malformed {
        what,
        detail: e.to_string(),
    })
}

/// Serde helper for `Vec<u8>` fields: (de)serializes them as bytes rather than as a sequence of
/// `u8`. postcard's wire form is identical (a varint length, then the bytes), but it is decoded
/// in one copy instead of byte by byte. Use with `#[serde(with = "scrip_feed::codec::bytes")]`.
pub mod bytes {
    use std::fmt;

    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    /// Serializes as bytes.
    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    /// Deserializes from bytes (or, for self-describing formats, a sequence).
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(byte) = seq.next_element()? {
                    out.push(byte);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

/// As [`bytes`], for `Option<Vec<u8>>` fields.
pub mod option_bytes {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serialize, Serializer};

    struct Bytes<'a>(&'a [u8]);

    impl Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    /// Serializes as an optional byte string.
    pub fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => serializer.serialize_some(&Bytes(bytes)),
            None => serializer.serialize_none(),
        }
    }

    /// Deserializes an optional byte string.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        struct OptionVisitor;
        impl<'de> Visitor<'de> for OptionVisitor {
            type Value = Option<Vec<u8>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("optional bytes")
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                super::bytes::deserialize(d).map(Some)
            }
        }
        deserializer.deserialize_option(OptionVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bytes_decode() {
        let bytes = encode("n", &(300u64, 7u8)).unwrap();
        assert_eq!(
            decode_canonical::<(u64, u8)>("n", &bytes).unwrap(),
            (300, 7)
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode("n", &5u64).unwrap();
        bytes.push(0);
        assert_eq!(
            decode_canonical::<u64>("n", &bytes),
            Err(Error::NonCanonical { what: "n" })
        );
    }

    #[test]
    fn bytes_checked_before_decode_the_same_without_the_comparison() {
        let bytes = encode("n", &(300u64, 7u8)).unwrap();
        assert_eq!(
            decode_checked_before::<(u64, u8)>("n", &bytes).unwrap(),
            (300, 7)
        );
        // Only what `decode_canonical` checks beyond decoding is skipped.
        assert_eq!(decode_checked_before::<u64>("n", &[0x85, 0x00]).unwrap(), 5);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            decode_checked_before::<(u64, u8)>("n", &trailing),
            Err(Error::Malformed { .. })
        ));
        assert!(decode_checked_before::<(u64, u8)>("n", &bytes[..1]).is_err());
    }

    #[test]
    fn overlong_varints_are_refused() {
        // 5 encoded in two bytes: 0x85 0x00.
        assert_eq!(
            decode_canonical::<u64>("n", &[0x85, 0x00]),
            Err(Error::NonCanonical { what: "n" })
        );
    }

    #[test]
    fn bytes_helper_is_wire_identical_to_a_sequence() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct AsBytes(#[serde(with = "super::bytes")] Vec<u8>);
        let data: Vec<u8> = (0..=255).collect();
        let as_seq = encode("x", &data).unwrap();
        let as_bytes = encode("x", &AsBytes(data.clone())).unwrap();
        assert_eq!(as_seq, as_bytes);
        assert_eq!(
            decode_canonical::<AsBytes>("x", &as_seq).unwrap(),
            AsBytes(data)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            decode_canonical::<(u64, u64)>("n", &[0xff]),
            Err(Error::Malformed { .. })
        ));
    }
}
