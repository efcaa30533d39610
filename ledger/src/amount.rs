//! Money: [`Amount`] (integer minor units, checked arithmetic) and [`Currency`] (issuer wallet,
//! code, decimals). No floats anywhere.

use std::fmt;

use scrip_feed::FeedId;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Most decimal places a currency may have (10^19 overflows a u64).
pub const MAX_DECIMALS: u8 = 18;
/// Longest currency code.
pub const MAX_CODE_BYTES: usize = 8;

/// An amount of money in minor units (cents for a 2-decimal currency).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Amount(u64);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// Wraps minor units.
    pub const fn from_minor(units: u64) -> Amount {
        Amount(units)
    }

    /// The minor units.
    pub const fn minor(self) -> u64 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`, or `None` if it would be negative.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// True for zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Parses a decimal text (`"12.50"`, `"3"`) as minor units of a currency with `decimals`
    /// places.
    ///
    /// Rules: only ASCII digits with at most one `.`; no sign, exponent, spaces or separators;
    /// at most `decimals` digits after the point; not zero; no overflow. Each is its own error.
    pub fn parse(text: &str, decimals: u8) -> Result<Amount, Error> {
        let bad = |reason: &str| Error::InvalidAmount {
            input: clip(text),
            reason: reason.to_owned(),
        };
        if text.is_empty() {
            return Err(bad("empty"));
        }
        if text.starts_with('-') {
            return Err(bad("amounts cannot be negative"));
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
            return Err(bad(
                "expected digits with at most one decimal point, like 12.50",
            ));
        }
        let fraction = fraction.unwrap_or("");
        if fraction.len() > usize::from(decimals) {
            return Err(bad(&format!(
                "this currency has {decimals} decimal places, the amount has {}",
                fraction.len()
            )));
        }
        let scale = 10u64
            .checked_pow(u32::from(decimals))
            .ok_or_else(|| bad("too many decimal places"))?;
        let overflow = || bad("too large");
        let whole: u64 = whole.parse().map_err(|_| overflow())?;
        let mut minor = whole.checked_mul(scale).ok_or_else(overflow)?;
        if !fraction.is_empty() {
            let padded = format!("{fraction:0<width$}", width = usize::from(decimals));
            let fraction: u64 = padded.parse().map_err(|_| overflow())?;
            minor = minor.checked_add(fraction).ok_or_else(overflow)?;
        }
        if minor == 0 {
            return Err(bad("must be more than zero"));
        }
        Ok(Amount(minor))
    }

    /// The amount as decimal text with `decimals` places (`1250` with 2 → `"12.50"`).
    pub fn display(self, decimals: u8) -> String {
        if decimals == 0 {
            return self.0.to_string();
        }
        let scale = 10u128.pow(u32::from(decimals.min(MAX_DECIMALS)));
        let value = u128::from(self.0);
        format!(
            "{}.{:0width$}",
            value / scale,
            value % scale,
            width = usize::from(decimals.min(MAX_DECIMALS))
        )
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

/// A currency code: 1 to [`MAX_CODE_BYTES`] of `[A-Z0-9]`, starting with a letter. Stored
/// inline (a `Copy` value: currencies are compared and copied on every entry of the fold), and
/// encoded as a string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CurrencyCode {
    len: u8,
    bytes: [u8; MAX_CODE_BYTES],
}

impl CurrencyCode {
    /// Checks and wraps a code.
    pub fn new(code: &str) -> Result<CurrencyCode, Error> {
        let valid = !code.is_empty()
            && code.len() <= MAX_CODE_BYTES
            && code
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && code.bytes().next().is_some_and(|b| b.is_ascii_uppercase());
        if !valid {
            return Err(Error::InvalidCurrency {
                reason: format!(
                    "code {:?} must be 1 to {MAX_CODE_BYTES} of A-Z and 0-9, starting with a letter",
                    clip(code)
                ),
            });
        }
        let mut bytes = [0u8; MAX_CODE_BYTES];
        bytes[..code.len()].copy_from_slice(code.as_bytes());
        Ok(CurrencyCode {
            len: u8::try_from(code.len()).unwrap_or(0),
            bytes,
        })
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (checked in `new`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl PartialOrd for CurrencyCode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CurrencyCode {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CurrencyCode({})", self.as_str())
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CurrencyCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CurrencyCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CodeVisitor;
        impl serde::de::Visitor<'_> for CodeVisitor {
            type Value = CurrencyCode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a currency code")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CurrencyCode, E> {
                CurrencyCode::new(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(CodeVisitor)
    }
}

/// A currency: its issuer's wallet, a code, and its decimal places (fixed by its first mint).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct Currency {
    /// The wallet that alone may mint it.
    pub issuer: FeedId,
    /// Its code, e.g. `EUR`.
    pub code: CurrencyCode,
    /// Decimal places of its minor unit.
    pub decimals: u8,
}

impl Currency {
    /// A currency, checking the code and the decimals.
    pub fn new(issuer: FeedId, code: &str, decimals: u8) -> Result<Currency, Error> {
        let code = CurrencyCode::new(code)?;
        let currency = Currency {
            issuer,
            code,
            decimals,
        };
        currency.check()?;
        Ok(currency)
    }

    /// The short form for people, `CODE@` and the first 8 base58 characters of the issuer
    /// (`EUR@4dFUkGx9`): for display only, never for machines (see [`short_currency`]).
    pub fn short(&self) -> String {
        short_currency(&self.to_string())
    }

    /// Checks the code and decimals of a decoded currency.
    pub fn check(&self) -> Result<(), Error> {
        CurrencyCode::new(self.code.as_str())?;
        if self.decimals > MAX_DECIMALS {
            return Err(Error::InvalidCurrency {
                reason: format!("{} decimals, at most {MAX_DECIMALS}", self.decimals),
            });
        }
        Ok(())
    }
}

/// A currency's notation, `CODE@ISSUER` with the issuer's full base58 id: how scrip writes a
/// currency everywhere (messages, JSON, audit reports). Its decimals are not part of the
/// notation: the issuer's first mint fixes them (ledger.md §3).
impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.code, self.issuer)
    }
}

/// The short display form of a currency's notation (`CODE@ISSUER` → `CODE@` and 8 characters of
/// the issuer); text that is not such a notation is returned as it is.
pub fn short_currency(notation: &str) -> String {
    match notation.split_once('@') {
        Some((code, issuer)) => format!("{code}@{}", issuer.chars().take(8).collect::<String>()),
        None => notation.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_amounts_parse_exactly() {
        assert_eq!(Amount::parse("12.50", 2).unwrap(), Amount(1250));
        assert_eq!(Amount::parse("12.5", 2).unwrap(), Amount(1250));
        assert_eq!(Amount::parse("12", 2).unwrap(), Amount(1200));
        assert_eq!(Amount::parse("0.01", 2).unwrap(), Amount(1));
        assert_eq!(Amount::parse("7", 0).unwrap(), Amount(7));
        assert_eq!(
            Amount::parse("18446744073709551615", 0).unwrap(),
            Amount(u64::MAX)
        );
    }

    #[test]
    fn bad_amounts_are_refused_with_a_reason() {
        for (text, decimals, reason) in [
            ("-5", 2, "negative"),
            ("0", 2, "more than zero"),
            ("0.00", 2, "more than zero"),
            ("1e3", 2, "digits"),
            ("12.345", 2, "2 decimal places"),
            ("1.5", 0, "0 decimal places"),
            ("", 2, "empty"),
            (" 1", 2, "digits"),
            ("1,000", 2, "digits"),
            ("1.", 2, "digits"),
            (".5", 2, "digits"),
            ("+5", 2, "digits"),
            ("18446744073709551616", 0, "too large"),
            ("184467440737095516.16", 2, "too large"),
        ] {
            let err = Amount::parse(text, decimals).unwrap_err().to_string();
            assert!(err.contains(reason), "{text:?}: {err}");
        }
    }

    #[test]
    fn amounts_display_with_their_decimals() {
        assert_eq!(Amount(1250).display(2), "12.50");
        assert_eq!(Amount(5).display(2), "0.05");
        assert_eq!(Amount(5).display(0), "5");
        assert_eq!(Amount(u64::MAX).display(18), "18.446744073709551615");
        for n in [1u64, 99, 100, 12_345_678] {
            assert_eq!(Amount::parse(&Amount(n).display(3), 3).unwrap(), Amount(n));
        }
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Amount(u64::MAX).checked_add(Amount(1)), None);
        assert_eq!(Amount(1).checked_sub(Amount(2)), None);
        assert_eq!(Amount(3).checked_sub(Amount(2)), Some(Amount(1)));
    }

    #[test]
    fn currency_codes_are_checked() {
        assert!(CurrencyCode::new("EUR").is_ok());
        assert!(CurrencyCode::new("X2").is_ok());
        for bad in ["", "eur", "2X", "TOOLONGCODE", "E-R"] {
            assert!(CurrencyCode::new(bad).is_err(), "accepted {bad:?}");
        }
    }
}
