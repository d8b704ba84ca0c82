//! Protocol numbers: `YYYYMMDD` + a 6-digit sequence of that day in the
//! installation's time zone, e.g. `20261121000042`.

use chrono::{NaiveDate, TimeZone};

use super::Timestamp;

/// A protocol number. Its ordering is the order of allocation within a day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Protocol(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("protocol must be 14 digits (YYYYMMDD + 6-digit sequence)")]
    Malformed,
    #[error("the day's protocol sequence is exhausted (999999 calls)")]
    Exhausted,
}

impl Protocol {
    /// The installation-local day a protocol opened at `at` belongs to.
    pub fn day(at: Timestamp, tz: chrono_tz::Tz) -> NaiveDate {
        tz.from_utc_datetime(&at.naive_utc()).date_naive()
    }

    /// The protocol for the `seq`th allocation of `day` (1-based).
    pub fn new(day: NaiveDate, seq: u64) -> Result<Self, ProtocolError> {
        if seq == 0 || seq > 999_999 {
            return Err(ProtocolError::Exhausted);
        }
        Ok(Self(format!("{}{seq:06}", day.format("%Y%m%d"))))
    }

    pub fn parse(s: &str) -> Result<Self, ProtocolError> {
        if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProtocolError::Malformed);
        }
        NaiveDate::parse_from_str(&s[..8], "%Y%m%d").map_err(|_| ProtocolError::Malformed)?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its day and its sequence in that day (a parsed protocol always has
    /// both).
    pub fn parts(&self) -> (NaiveDate, u64) {
        let day = NaiveDate::parse_from_str(&self.0[..8], "%Y%m%d").unwrap_or_default();
        (day, self.0[8..].parse().unwrap_or(0))
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_uses_the_local_day() {
        let at: Timestamp = "2026-11-22T02:30:00Z".parse().unwrap();
        let day = Protocol::day(at, chrono_tz::America::Sao_Paulo);
        assert_eq!(Protocol::new(day, 42).unwrap().as_str(), "20261121000042");
        assert_eq!(Protocol::new(day, 1_000_000), Err(ProtocolError::Exhausted));
        assert!(Protocol::parse("20261121000042").is_ok());
        assert!(Protocol::parse("20261321000042").is_err());
        assert!(Protocol::parse("2026112100004x").is_err());
        assert!(Protocol::parse("../../etc/pass").is_err());
    }
}
