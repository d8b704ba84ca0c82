//! Business hours (*períodos de atendimento*).

use chrono::{DateTime, Utc};
use chrono::{Datelike, NaiveTime, TimeZone, Timelike};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{FieldErrors, Holiday, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl From<chrono::Weekday> for Weekday {
    fn from(w: chrono::Weekday) -> Self {
        use chrono::Weekday as W;
        match w {
            W::Mon => Self::Monday,
            W::Tue => Self::Tuesday,
            W::Wed => Self::Wednesday,
            W::Thu => Self::Thursday,
            W::Fri => Self::Friday,
            W::Sat => Self::Saturday,
            W::Sun => Self::Sunday,
        }
    }
}

/// Open from `start` (inclusive) to `end` (exclusive), local time, `HH:MM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    pub weekday: Weekday,
    pub start: String,
    pub end: String,
}

fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    if s.len() != 5 {
        return None;
    }
    NaiveTime::parse_from_str(s, "%H:%M").ok()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Period {
    pub id: i64,
    pub name: String,
    pub time_zone: String,
    pub ranges: Vec<TimeRange>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeriodInput {
    pub name: String,
    #[serde(default = "sao_paulo")]
    pub time_zone: String,
    #[serde(default)]
    pub ranges: Vec<TimeRange>,
}

fn sao_paulo() -> String {
    "America/Sao_Paulo".into()
}

impl PeriodInput {
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut e = FieldErrors::new();
        e.name("name", &self.name, 80);
        e.check(
            self.time_zone.parse::<chrono_tz::Tz>().is_ok(),
            "time_zone",
            "must be an IANA time zone such as America/Sao_Paulo",
        );
        for (i, r) in self.ranges.iter().enumerate() {
            let start = parse_hhmm(&r.start);
            let end = parse_hhmm(&r.end);
            e.check(
                start.is_some(),
                format!("ranges[{i}].start"),
                "must be HH:MM",
            );
            // 24:00 closes a range at midnight.
            let end = end.or_else(|| (r.end == "24:00").then_some(NaiveTime::MIN));
            e.check(end.is_some(), format!("ranges[{i}].end"), "must be HH:MM");
            if let (Some(s), Some(en)) = (start, end)
                && en != NaiveTime::MIN
                && en <= s
            {
                e.add(format!("ranges[{i}].end"), "must be after start");
            }
        }
        e.into_result()
    }
}

impl Period {
    pub fn to_input(&self) -> PeriodInput {
        PeriodInput {
            name: self.name.clone(),
            time_zone: self.time_zone.clone(),
            ranges: self.ranges.clone(),
        }
    }

    /// Whether the period is open at `at`, given the installation's holidays
    /// (a holiday closes its periods, or all of them, for the whole day).
    pub fn is_open(&self, at: Timestamp, holidays: &[Holiday]) -> bool {
        let tz: chrono_tz::Tz = self.time_zone.parse().unwrap_or(chrono_tz::UTC);
        let local = tz.from_utc_datetime(&at.naive_utc());
        let date = local.date_naive();
        if holidays
            .iter()
            .any(|h| h.date == date && h.period_id.is_none_or(|p| p == self.id))
        {
            return false;
        }
        let weekday = Weekday::from(local.weekday());
        let now = NaiveTime::from_hms_opt(local.hour(), local.minute(), local.second())
            .unwrap_or(NaiveTime::MIN);
        self.ranges.iter().any(|r| {
            let (Some(start), end) = (parse_hhmm(&r.start), parse_hhmm(&r.end)) else {
                return false;
            };
            r.weekday == weekday && now >= start && end.is_none_or(|end| now < end)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn period() -> Period {
        Period {
            id: 1,
            name: "comercial".into(),
            time_zone: "America/Sao_Paulo".into(),
            ranges: vec![TimeRange {
                weekday: Weekday::Monday,
                start: "08:00".into(),
                end: "18:36".into(),
            }],
            created_at: Timestamp::default(),
            updated_at: Timestamp::default(),
        }
    }

    fn utc(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn open_in_local_time_and_closed_on_holidays() {
        let p = period();
        // 2026-11-23 is a Monday; São Paulo is UTC-3.
        assert!(p.is_open(utc("2026-11-23T11:00:00Z"), &[]));
        assert!(!p.is_open(utc("2026-11-23T10:59:59Z"), &[]));
        assert!(p.is_open(utc("2026-11-23T21:35:59Z"), &[]));
        assert!(!p.is_open(utc("2026-11-23T21:36:00Z"), &[]));
        assert!(!p.is_open(utc("2026-11-24T12:00:00Z"), &[]));
        let holiday = Holiday {
            id: 1,
            date: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            name: "x".into(),
            period_id: None,
            created_at: Timestamp::default(),
            updated_at: Timestamp::default(),
        };
        assert!(!p.is_open(utc("2026-11-23T12:00:00Z"), std::slice::from_ref(&holiday)));
        let other = Holiday {
            period_id: Some(2),
            ..holiday
        };
        assert!(p.is_open(utc("2026-11-23T12:00:00Z"), &[other]));
    }

    #[test]
    fn ranges_are_validated() {
        let mut input = period().to_input();
        input.ranges[0].end = "07:00".into();
        input.ranges.push(TimeRange {
            weekday: Weekday::Friday,
            start: "8:00".into(),
            end: "24:00".into(),
        });
        input.time_zone = "Mars/Olympus".into();
        let errs = input.validate().unwrap_err();
        let fields: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["time_zone", "ranges[0].end", "ranges[1].start"]);
    }
}
