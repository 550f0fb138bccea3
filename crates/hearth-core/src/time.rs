//! Calendar arithmetic on unix times: the proleptic Gregorian calendar (Howard Hinnant's
//! `days_from_civil` and `civil_from_days`), broken-down times, and the RFC 3339 form Hearth
//! writes. The one copy every crate uses; like the rest of hearth-core it never reads the clock.

/// Seconds in a day; unix time has no leap seconds.
pub const SECONDS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (`month` 1-12, `day` 1-31).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400); // [0, 399]
    let month = i64::from(month);
    let month_index = if month > 2 { month - 3 } else { month + 9 }; // March = 0
    let day_of_year = (153 * month_index + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian (year, month 1-12, day 1-31) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // [0, 146096]
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // [0, 11], March-based
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let small = |n: i64| u32::try_from(n).expect("a month is 1..=12 and a day 1..=31 by construction");
    (year, small(month), small(day))
}

/// The number of days in `month` (1-12) of `year`.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    let next = if month >= 12 { days_from_civil(year + 1, 1, 1) } else { days_from_civil(year, month + 1, 1) };
    u32::try_from(next - days_from_civil(year, month, 1)).expect("a month has 28 to 31 days")
}

/// The day of the week of a day count since 1970-01-01, Monday = 0 (1970-01-01 was a Thursday).
pub fn weekday_from_monday(days: i64) -> u32 {
    u32::try_from((days + 3).rem_euclid(7)).expect("rem_euclid(7) is 0..7")
}

/// A unix time broken down into calendar fields, at whatever offset it was shifted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl DateTime {
    /// The fields of unix time `t` in UTC; add an offset to `t` first for local time.
    pub fn from_unix(t: i64) -> DateTime {
        let (year, month, day) = civil_from_days(t.div_euclid(SECONDS_PER_DAY));
        let secs = u32::try_from(t.rem_euclid(SECONDS_PER_DAY)).expect("seconds of a day fit in u32");
        DateTime { year, month, day, hour: secs / 3600, minute: secs % 3600 / 60, second: secs % 60 }
    }

    /// The unix time of these fields read as UTC, or `None` when a field is out of range
    /// (February 30th, hour 24).
    pub fn to_unix(self) -> Option<i64> {
        let valid = (1..=12).contains(&self.month)
            && (1..=days_in_month(self.year, self.month)).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60;
        valid.then(|| {
            days_from_civil(self.year, self.month, self.day) * SECONDS_PER_DAY
                + i64::from(self.hour * 3600 + self.minute * 60 + self.second)
        })
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for unix time `t`.
pub fn rfc3339(t: i64) -> String {
    let DateTime { year, month, day, hour, minute, second } = DateTime::from_unix(t);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// Parses exactly the form [`rfc3339`] writes (UTC, `Z`, no fraction).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z'
    {
        return None;
    }
    seconds_of_fields(text)
}

/// The unix time of the date and time whose digits stand at the places of
/// `YYYY?MM?DD?HH?MM?SS` (any separators: RFC 3339's, vzdump's `YYYY_MM_DD-HH_MM_SS`), read as
/// UTC; `None` when a field is not digits or out of range.
pub fn seconds_of_fields(text: &str) -> Option<i64> {
    let field = |from: usize, len: usize| -> Option<u32> {
        let s = text.get(from..from + len)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    DateTime {
        year: i64::from(field(0, 4)?),
        month: field(5, 2)?,
        day: field(8, 2)?,
        hour: field(11, 2)?,
        minute: field(14, 2)?,
        second: field(17, 2)?,
    }
    .to_unix()
}

/// `YYYY-MM-DD HH:MM:SS` for unix time `t` in UTC, as listings print times.
pub fn format_utc(t: i64) -> String {
    let DateTime { year, month, day, hour, minute, second } = DateTime::from_unix(t);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        for days in -800_000..800_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2023, 12), 31);
        assert_eq!(weekday_from_monday(0), 3);
    }

    #[test]
    fn rfc3339_round_trips() {
        for t in [0, 951_782_400, 1_725_796_801, 4_102_444_799, -1] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(rfc3339(1_725_796_801), "2024-09-08T12:00:01Z");
        assert_eq!(parse_rfc3339("2024-02-30T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2024-09-08T24:00:01Z"), None);
        assert_eq!(parse_rfc3339("2024-09-08T12:00:01+02:00"), None);
    }

    #[test]
    fn utc_listing_form() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(1_716_560_368), "2024-05-24 14:19:28");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(format_utc(-1), "1969-12-31 23:59:59");
    }
}
