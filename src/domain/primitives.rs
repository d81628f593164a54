//! Values every capability shares: money, the shopper, and timestamps as documents carry them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Integer minor units plus an ISO-4217 code; never floats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub cents: i64,
    pub currency: String,
}

impl Money {
    /// The largest amount the shop takes: clients read amounts as 32-bit integers, so a larger
    /// cart or order could not be shown (or charged) as it is.
    pub const MAX_CENTS: i64 = i32::MAX as i64;
}

/// Who is shopping: a signed-in user (whose every session shares one cart and one order
/// history) or a guest session. Stored and sent as `user:<id>` or `guest:<session id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Shopper {
    User(String),
    Guest(String),
}

impl Shopper {
    /// The stored form, `user:<id>` or `guest:<session id>`.
    pub fn key(&self) -> String {
        match self {
            Shopper::User(id) => format!("user:{id}"),
            Shopper::Guest(session) => format!("guest:{session}"),
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        match key.split_once(':')? {
            ("user", id) if !id.is_empty() => Some(Shopper::User(id.to_owned())),
            ("guest", session) if !session.is_empty() => Some(Shopper::Guest(session.to_owned())),
            _ => None,
        }
    }

    pub fn user_id(&self) -> Option<&str> {
        match self {
            Shopper::User(id) => Some(id),
            Shopper::Guest(_) => None,
        }
    }

    pub fn is_guest(&self) -> bool {
        matches!(self, Shopper::Guest(_))
    }

    /// Carts are created on first change; deriving the id from the shopper lets an empty cart
    /// show the id it will keep, and two racing first changes agree on it.
    pub fn cart_id(&self) -> String {
        let digest = Sha256::digest(self.key().as_bytes());
        let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        format!("cart-{hex}")
    }
}

impl std::fmt::Display for Shopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

impl From<Shopper> for String {
    fn from(shopper: Shopper) -> Self {
        shopper.key()
    }
}

impl TryFrom<String> for Shopper {
    type Error = String;

    fn try_from(key: String) -> Result<Self, Self::Error> {
        Shopper::parse(&key).ok_or_else(|| format!("`{key}` is not a shopper"))
    }
}

/// `DateTime<Utc>` in serde as chrono writes it (RFC 3339 in UTC with `Z`, the fraction in 0, 3,
/// 6 or 9 digits), formatted and parsed by hand: every cart line carries one, and chrono's
/// general formatter and parser took a fourteenth of a cart change's CPU. Any other RFC 3339
/// text (an offset, a year past 9999) goes through chrono.
pub mod rfc3339 {
    use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Timelike, Utc};
    use serde::{Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = [0u8; 30];
        match format(at, &mut text) {
            Some(len) => {
                serializer.serialize_str(std::str::from_utf8(&text[..len]).map_err(serde::ser::Error::custom)?)
            }
            None => serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
        deserializer.deserialize_str(Rfc3339)
    }

    struct Rfc3339;

    impl de::Visitor<'_> for Rfc3339 {
        type Value = DateTime<Utc>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an RFC 3339 timestamp")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            match parse(text) {
                Some(at) => Ok(at),
                None => text.parse().map_err(E::custom),
            }
        }
    }

    fn format(at: &DateTime<Utc>, out: &mut [u8; 30]) -> Option<usize> {
        let (date, time) = (at.date_naive(), at.time());
        let nanos = time.nanosecond();
        let year = u32::try_from(date.year()).ok().filter(|year| *year <= 9999)?;
        if nanos >= 1_000_000_000 {
            return None;
        }
        for (at, value, width) in [
            (0, year, 4),
            (5, date.month(), 2),
            (8, date.day(), 2),
            (11, time.hour(), 2),
            (14, time.minute(), 2),
            (17, time.second(), 2),
        ] {
            digits(&mut out[at..at + width], value);
        }
        for (at, separator) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
            out[at] = separator;
        }
        let (fraction, width) = match nanos {
            0 => (0, 0),
            _ if nanos % 1_000_000 == 0 => (nanos / 1_000_000, 3),
            _ if nanos % 1_000 == 0 => (nanos / 1_000, 6),
            _ => (nanos, 9),
        };
        let mut len = 19;
        if width > 0 {
            out[19] = b'.';
            digits(&mut out[20..20 + width], fraction);
            len = 20 + width;
        }
        out[len] = b'Z';
        Some(len + 1)
    }

    fn digits(out: &mut [u8], mut value: u32) {
        for slot in out.iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`; `None` for anything else.
    fn parse(text: &str) -> Option<DateTime<Utc>> {
        let bytes = text.as_bytes();
        let shape = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
        if bytes.len() < 20 || bytes.last() != Some(&b'Z') || shape.iter().any(|&(at, byte)| bytes[at] != byte) {
            return None;
        }
        let number = |digits: &[u8]| {
            digits.iter().try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
        };
        let nanos = match &bytes[19..bytes.len() - 1] {
            [] => 0,
            [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
                number(fraction)? * 10u32.pow(9 - fraction.len() as u32)
            }
            _ => return None,
        };
        let year = i32::try_from(number(&bytes[0..4])?).ok()?;
        let date = NaiveDate::from_ymd_opt(year, number(&bytes[5..7])?, number(&bytes[8..10])?)?;
        let time =
            date.and_hms_nano_opt(number(&bytes[11..13])?, number(&bytes[14..16])?, number(&bytes[17..19])?, nanos)?;
        Some(time.and_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shopper_round_trips_through_its_key() {
        for shopper in [Shopper::User("u-1".into()), Shopper::Guest("s:2".into())] {
            assert_eq!(Shopper::parse(&shopper.key()), Some(shopper.clone()));
        }
        assert_eq!(Shopper::parse("guest:"), None);
        assert_eq!(Shopper::parse("admin:x"), None);
        assert_eq!(Shopper::User("a".into()).cart_id(), Shopper::User("a".into()).cart_id());
        assert_ne!(Shopper::User("a".into()).cart_id(), Shopper::Guest("a".into()).cart_id());
    }

    #[test]
    fn timestamps_read_and_write_as_chrono_does() {
        use chrono::{DateTime, TimeZone, Utc};

        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Stamped(#[serde(with = "rfc3339")] DateTime<Utc>);

        let second = Utc.with_ymd_and_hms(2026, 12, 6, 4, 5, 9).single().expect("a time");
        for nanos in [0, 120_000_000, 123_456_000, 123_456_789, 7] {
            let at = second + chrono::Duration::nanoseconds(nanos);
            let ours = serde_json::to_string(&Stamped(at)).expect("write");
            assert_eq!(ours, serde_json::to_string(&at).expect("chrono"), "written as chrono writes it");
            assert_eq!(serde_json::from_str::<Stamped>(&ours).expect("read"), Stamped(at));
        }
        let offset: Stamped = serde_json::from_str("\"2026-12-06T05:05:09+01:00\"").expect("an offset");
        assert_eq!(offset, Stamped(second), "other RFC 3339 forms go through chrono");
        assert!(serde_json::from_str::<Stamped>("\"2026-13-06T04:05:09Z\"").is_err(), "no 13th month");
        assert!(serde_json::from_str::<Stamped>("\"yesterday\"").is_err());
    }
}
