//! UTC calendar time from the system clock, without a date crate: the DICOM
//! writers stamp their outputs (DA / TM) and liverseg-review its audit records
//! (RFC 3339), and neither needs time zones.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC date and time of day, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// Proleptic Gregorian year.
    pub year: i64,
    /// 1-12.
    pub month: u32,
    /// 1-31.
    pub day: u32,
    /// 0-23.
    pub hour: u32,
    /// 0-59.
    pub minute: u32,
    /// 0-59 (Unix time has no leap seconds).
    pub second: u32,
}

impl UtcTime {
    /// Now, from the system clock; a clock before 1970 reads as the epoch.
    pub fn now() -> UtcTime {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        UtcTime::from_unix_secs(secs)
    }

    /// The calendar time `secs` seconds after 1970-01-01T00:00:00Z.
    pub fn from_unix_secs(secs: u64) -> UtcTime {
        let (year, month, day) = civil_from_days((secs / 86_400) as i64);
        let rem = (secs % 86_400) as u32;
        UtcTime { year, month, day, hour: rem / 3600, minute: rem / 60 % 60, second: rem % 60 }
    }
}

/// (year, month 1-12, day 1-31) of the day `days` after 1970-01-01 (negative:
/// before), by Howard Hinnant's `civil_from_days`: exact for every day in the
/// proleptic Gregorian calendar, with 400-year eras so no table is needed.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        // Leap days: 2000 is a leap year (divisible by 400), 2100 is not.
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
    }

    #[test]
    fn consecutive_days_step_by_one() {
        let mut prev = civil_from_days(-800_000);
        for days in -799_999..800_000 {
            let (y, m, d) = civil_from_days(days);
            let next_month = if prev.1 == 12 { (prev.0 + 1, 1) } else { (prev.0, prev.1 + 1) };
            assert!((y, m, d) == (prev.0, prev.1, prev.2 + 1) || ((y, m) == next_month && d == 1), "{days}: {prev:?} -> {:?}", (y, m, d));
            assert!((28..=31).contains(&prev.2) || d == prev.2 + 1);
            prev = (y, m, d);
        }
    }

    #[test]
    fn time_of_day() {
        let t = UtcTime::from_unix_secs(1_795_737_541);
        assert_eq!(t, UtcTime { year: 2026, month: 11, day: 26, hour: 23, minute: 59, second: 1 });
    }
}
