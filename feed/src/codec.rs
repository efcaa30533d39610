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
    if !rest.is_empty() {
        return Err(Error::NonCanonical { what });
    }
    let again = encode(what, &value)?;
    if again != bytes {
        return Err(Error::NonCanonical { what });
    }
    Ok(value)
}

/// Encodes `value` with postcard.
pub fn encode<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| Error::Malformed {
        what,
        detail: e.to_string(),
    })
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
    fn overlong_varints_are_refused() {
        // 5 encoded in two bytes: 0x85 0x00.
        assert_eq!(
            decode_canonical::<u64>("n", &[0x85, 0x00]),
            Err(Error::NonCanonical { what: "n" })
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
