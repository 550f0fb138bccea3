//! Calendar events as Proxmox schedules jobs with them: the systemd-like subset
//! `[WEEKDAY] [[YEARS-]MONTHS-DAYS] [HOURS:MINUTES[:SECONDS]]` plus the shorthands `minutely`,
//! `hourly`, `daily`, `weekly`, `monthly`, `yearly`/`annually`, `quarterly` and `semiannually`.
//!
//! Parsing follows proxmox-time: a time without `:` is minutes (`*/15` is every 15 minutes of
//! every hour), an omitted hour is `*`, omitted seconds are `00`, and a spec without any time
//! (`sat,sun`, `2015-10-21`) fires at `00:00:00`. [`CalendarEvent::next_after`] takes the time and
//! a fixed UTC offset as arguments, so this module, like the rest of hearth-core, does no I/O and
//! needs no timezone database; the date arithmetic is Howard Hinnant's civil-day algorithms.

use std::fmt;
use std::str::FromStr;

use crate::time::{SECONDS_PER_DAY, civil_from_days};

/// How far ahead [`CalendarEvent::next_after`] looks before deciding a spec never fires again.
/// Eight years because that is the longest gap between two leap days (2096-02-29 to 2104-02-29),
/// so `*-02-29` always finds its next occurrence; `2020-02-30` gives up after this many days.
const SEARCH_DAYS: i64 = 8 * 366;

/// The recurring points in time a job runs at, as parsed from a Proxmox `schedule`.
///
/// Every field is a list of components; an empty list means `*` (any value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarEvent {
    /// Bit `i` set means ISO weekday `i` (0 = Monday … 6 = Sunday) matches.
    weekdays: u8,
    years: Vec<Component>,
    months: Vec<Component>,
    days: Vec<Component>,
    hours: Vec<Component>,
    minutes: Vec<Component>,
    seconds: Vec<Component>,
}

/// One element of a comma-separated field list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Component {
    /// `5`
    Value(u32),
    /// `8..17`
    Range(u32, u32),
    /// `0/15`, `*/15` (start is the field's minimum), `8..17/2`.
    Repeat { start: u32, end: Option<u32>, step: u32 },
}

/// A numeric field of a calendar event, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Year => "year",
            Field::Month => "month",
            Field::Day => "day",
            Field::Hour => "hour",
            Field::Minute => "minute",
            Field::Second => "second",
        }
    }

    /// The inclusive range of values the field accepts. Years stop at 2199 like systemd's
    /// and proxmox-time's parsers.
    fn bounds(self) -> (u32, u32) {
        match self {
            Field::Year => (1970, 2199),
            Field::Month => (1, 12),
            Field::Day => (1, 31),
            Field::Hour => (0, 23),
            Field::Minute | Field::Second => (0, 59),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a calendar event did not parse. Each message names the offending part and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error(
        "empty calendar event: expected [WEEKDAY] [[YEARS-]MONTHS-DAYS] [HOURS:MINUTES[:SECONDS]] or a shorthand such as daily"
    )]
    Empty,
    #[error(
        "invalid weekday '{0}': expected sun, mon, tue, wed, thu, fri or sat, lists (sat,sun) or ranges (mon..fri)"
    )]
    Weekday(String),
    #[error("invalid date '{0}': expected MONTHS-DAYS or YEARS-MONTHS-DAYS such as *-*-01 or 2025-01-01")]
    Date(String),
    #[error("invalid time '{0}': expected MINUTES, HOURS:MINUTES or HOURS:MINUTES:SECONDS such as */15 or 02:00")]
    Time(String),
    #[error(
        "invalid {field} '{text}': expected *, a number, a list (a,b), a range (a..b) or a repetition (start/step, */step)"
    )]
    Syntax { field: Field, text: String },
    #[error("{field} {value} is out of range: expected {min}..{max}")]
    OutOfRange { field: Field, value: String, min: u32, max: u32 },
    #[error("invalid {field} range {start}..{end}: the start is after the end")]
    ReversedRange { field: Field, start: u32, end: u32 },
    #[error("invalid {field} repetition '{text}': the step must be at least 1")]
    ZeroStep { field: Field, text: String },
    #[error("unexpected '{0}' after the time: expected [WEEKDAY] [[YEARS-]MONTHS-DAYS] [HOURS:MINUTES[:SECONDS]]")]
    Trailing(String),
}

const WEEKDAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const ALL_WEEKDAYS: u8 = 0x7f;

impl CalendarEvent {
    /// Parses a Proxmox calendar event such as `mon..fri 02:00`, `*/15`, `sat,sun`,
    /// `*-*-01 00:00` or `daily`. Weekday names and shorthands are case-insensitive.
    pub fn parse(input: &str) -> Result<CalendarEvent, CalendarError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(CalendarError::Empty);
        }
        if let Some(event) = Self::shorthand(&text.to_ascii_lowercase()) {
            return Ok(event);
        }

        let mut event = CalendarEvent {
            weekdays: ALL_WEEKDAYS,
            years: Vec::new(),
            months: Vec::new(),
            days: Vec::new(),
            hours: Vec::new(),
            minutes: Vec::new(),
            seconds: Vec::new(),
        };
        let mut tokens = text.split_whitespace().peekable();
        if let Some(token) = tokens.next_if(|t| t.starts_with(|c: char| c.is_ascii_alphabetic())) {
            event.weekdays = parse_weekdays(token)?;
        }
        if let Some(token) = tokens.next_if(|t| t.contains('-')) {
            (event.years, event.months, event.days) = parse_date(token)?;
        }
        match tokens.next() {
            Some(token) => (event.hours, event.minutes, event.seconds) = parse_time(token)?,
            // Without a time the event fires at midnight, like systemd's `Sat,Sun`.
            None => {
                event.hours = vec![Component::Value(0)];
                event.minutes = vec![Component::Value(0)];
                event.seconds = vec![Component::Value(0)];
            }
        }
        if let Some(token) = tokens.next() {
            return Err(CalendarError::Trailing(token.to_owned()));
        }
        Ok(event)
    }

    /// The shorthands, expanded as proxmox-time does.
    fn shorthand(name: &str) -> Option<CalendarEvent> {
        let zero = || vec![Component::Value(0)];
        let values = |list: &[u32]| list.iter().map(|&v| Component::Value(v)).collect::<Vec<_>>();
        let mut event = CalendarEvent {
            weekdays: ALL_WEEKDAYS,
            years: Vec::new(),
            months: Vec::new(),
            days: Vec::new(),
            hours: Vec::new(),
            minutes: Vec::new(),
            seconds: zero(),
        };
        match name {
            "minutely" => {}
            "hourly" => event.minutes = zero(),
            "daily" | "weekly" | "monthly" | "yearly" | "annually" | "quarterly" | "semiannually" | "semi-annually" => {
                event.hours = zero();
                event.minutes = zero();
                match name {
                    "daily" => {}
                    "weekly" => event.weekdays = 1,
                    _ => {
                        event.days = values(&[1]);
                        event.months = match name {
                            "monthly" => Vec::new(),
                            "quarterly" => values(&[1, 4, 7, 10]),
                            "semiannually" | "semi-annually" => values(&[1, 7]),
                            _ => values(&[1]),
                        };
                    }
                }
            }
            _ => return None,
        }
        Some(event)
    }

    /// The first second strictly after unix time `t` at which the event fires, reading the
    /// event's fields in local time `utc_offset_seconds` east of UTC. `None` when nothing
    /// matches within the next eight years (an impossible date such as `2020-02-30`, or a year
    /// that has passed).
    pub fn next_after(&self, t: i64, utc_offset_seconds: i32) -> Option<i64> {
        let local = t.checked_add(i64::from(utc_offset_seconds))?.checked_add(1)?;
        let first_day = local.div_euclid(SECONDS_PER_DAY);
        let mut from_second = u32::try_from(local.rem_euclid(SECONDS_PER_DAY)).ok()?;
        for day in first_day..first_day.checked_add(SEARCH_DAYS)? {
            if self.matches_day(day) {
                if let Some(second) = self.first_time_from(from_second) {
                    let local_time = day.checked_mul(SECONDS_PER_DAY)?.checked_add(i64::from(second))?;
                    return local_time.checked_sub(i64::from(utc_offset_seconds));
                }
            }
            from_second = 0;
        }
        None
    }

    fn matches_day(&self, day: i64) -> bool {
        let weekday = (day + 3).rem_euclid(7); // 1970-01-01 was a Thursday.
        if self.weekdays & (1 << weekday) == 0 {
            return false;
        }
        let (year, month, day_of_month) = civil_from_days(day);
        let year_matches = match u32::try_from(year) {
            Ok(year) => matches(&self.years, year, Field::Year),
            Err(_) => self.years.is_empty(),
        };
        year_matches && matches(&self.months, month, Field::Month) && matches(&self.days, day_of_month, Field::Day)
    }

    /// The first second of the day at or after `from` whose hour, minute and second match.
    fn first_time_from(&self, from: u32) -> Option<u32> {
        let (from_hour, from_minute, from_second) = (from / 3600, from / 60 % 60, from % 60);
        let mut hour = next_match(&self.hours, from_hour, Field::Hour);
        while let Some(h) = hour {
            let minute_start = if h == from_hour { from_minute } else { 0 };
            let mut minute = next_match(&self.minutes, minute_start, Field::Minute);
            while let Some(m) = minute {
                let second_start = if h == from_hour && m == from_minute { from_second } else { 0 };
                if let Some(s) = next_match(&self.seconds, second_start, Field::Second) {
                    return Some(h * 3600 + m * 60 + s);
                }
                minute = next_match(&self.minutes, m + 1, Field::Minute);
            }
            hour = next_match(&self.hours, h + 1, Field::Hour);
        }
        None
    }
}

impl FromStr for CalendarEvent {
    type Err = CalendarError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CalendarEvent::parse(s)
    }
}

/// The canonical form, systemd's normalized one with lowercase weekdays:
/// `mon..fri *-*-* 02:00:00`. Parsing it gives back an equal event.
impl fmt::Display for CalendarEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weekdays != ALL_WEEKDAYS {
            write_weekdays(f, self.weekdays)?;
            f.write_str(" ")?;
        }
        write_list(f, &self.years, 4)?;
        f.write_str("-")?;
        write_list(f, &self.months, 2)?;
        f.write_str("-")?;
        write_list(f, &self.days, 2)?;
        f.write_str(" ")?;
        write_list(f, &self.hours, 2)?;
        f.write_str(":")?;
        write_list(f, &self.minutes, 2)?;
        f.write_str(":")?;
        write_list(f, &self.seconds, 2)
    }
}

fn write_weekdays(f: &mut fmt::Formatter<'_>, mask: u8) -> fmt::Result {
    let mut first = true;
    let mut i = 0;
    while i < 7 {
        if mask & (1 << i) == 0 {
            i += 1;
            continue;
        }
        let mut end = i;
        while end + 1 < 7 && mask & (1 << (end + 1)) != 0 {
            end += 1;
        }
        if !first {
            f.write_str(",")?;
        }
        first = false;
        // Runs of three or more read best as ranges; two days stay a list (`sat,sun`).
        if end - i >= 2 {
            write!(f, "{}..{}", WEEKDAY_NAMES[i], WEEKDAY_NAMES[end])?;
        } else {
            f.write_str(WEEKDAY_NAMES[i])?;
            if end > i {
                write!(f, ",{}", WEEKDAY_NAMES[end])?;
            }
        }
        i = end + 1;
    }
    Ok(())
}

fn write_list(f: &mut fmt::Formatter<'_>, list: &[Component], width: usize) -> fmt::Result {
    if list.is_empty() {
        return f.write_str("*");
    }
    for (i, component) in list.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        match *component {
            Component::Value(v) => write!(f, "{v:0width$}")?,
            Component::Range(a, b) => write!(f, "{a:0width$}..{b:0width$}")?,
            Component::Repeat { start, end: None, step } => write!(f, "{start:0width$}/{step}")?,
            Component::Repeat { start, end: Some(end), step } => write!(f, "{start:0width$}..{end:0width$}/{step}")?,
        }
    }
    Ok(())
}

fn matches(list: &[Component], value: u32, field: Field) -> bool {
    list.is_empty()
        || list.iter().any(|c| match *c {
            Component::Value(v) => v == value,
            Component::Range(a, b) => (a..=b).contains(&value),
            Component::Repeat { start, end, step } => {
                value >= start && value <= end.unwrap_or(field.bounds().1) && (value - start).is_multiple_of(step)
            }
        })
}

/// The smallest value in `from..=max` of the field that the list matches.
fn next_match(list: &[Component], from: u32, field: Field) -> Option<u32> {
    (from..=field.bounds().1).find(|&v| matches(list, v, field))
}

fn parse_weekdays(token: &str) -> Result<u8, CalendarError> {
    let bad = || CalendarError::Weekday(token.to_owned());
    let mut mask = 0u8;
    for part in token.split(',') {
        let (start, end) = match part.split_once("..") {
            Some((a, b)) => (weekday_index(a).ok_or_else(bad)?, weekday_index(b).ok_or_else(bad)?),
            None => {
                let day = weekday_index(part).ok_or_else(bad)?;
                (day, day)
            }
        };
        // A reversed range wraps around the week: `fri..mon` is fri, sat, sun, mon.
        let mut day = start;
        loop {
            mask |= 1 << day;
            if day == end {
                break;
            }
            day = (day + 1) % 7;
        }
    }
    Ok(mask)
}

fn weekday_index(name: &str) -> Option<usize> {
    const FULL: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let name = name.to_ascii_lowercase();
    (0..7).find(|&i| name == WEEKDAY_NAMES[i] || name == FULL[i])
}

type DateParts = (Vec<Component>, Vec<Component>, Vec<Component>);

fn parse_date(token: &str) -> Result<DateParts, CalendarError> {
    let parts: Vec<&str> = token.split('-').collect();
    match parts[..] {
        [month, day] => Ok((Vec::new(), parse_list(month, Field::Month)?, parse_list(day, Field::Day)?)),
        [year, month, day] => {
            Ok((parse_list(year, Field::Year)?, parse_list(month, Field::Month)?, parse_list(day, Field::Day)?))
        }
        _ => Err(CalendarError::Date(token.to_owned())),
    }
}

fn parse_time(token: &str) -> Result<DateParts, CalendarError> {
    let parts: Vec<&str> = token.split(':').collect();
    let zero = || vec![Component::Value(0)];
    match parts[..] {
        // A bare field is minutes of every hour: `*/15`, `5`.
        [minute] => Ok((Vec::new(), parse_list(minute, Field::Minute)?, zero())),
        [hour, minute] => Ok((parse_list(hour, Field::Hour)?, parse_list(minute, Field::Minute)?, zero())),
        [hour, minute, second] => {
            Ok((parse_list(hour, Field::Hour)?, parse_list(minute, Field::Minute)?, parse_list(second, Field::Second)?))
        }
        _ => Err(CalendarError::Time(token.to_owned())),
    }
}

/// Parses one field: `*`, `*/step` or a comma list of `n`, `a..b`, `n/step` and `a..b/step`.
fn parse_list(text: &str, field: Field) -> Result<Vec<Component>, CalendarError> {
    if let Some(rest) = text.strip_prefix('*') {
        return match rest.strip_prefix('/') {
            None if rest.is_empty() => Ok(Vec::new()),
            Some(step) => {
                let step = parse_step(step, text, field)?;
                Ok(vec![Component::Repeat { start: field.bounds().0, end: None, step }])
            }
            None => Err(CalendarError::Syntax { field, text: text.to_owned() }),
        };
    }
    text.split(',').map(|part| parse_component(part, text, field)).collect()
}

fn parse_component(part: &str, text: &str, field: Field) -> Result<Component, CalendarError> {
    let (base, step) = match part.split_once('/') {
        Some((base, step)) => (base, Some(parse_step(step, text, field)?)),
        None => (part, None),
    };
    let (start, end) = match base.split_once("..") {
        Some((a, b)) => {
            let (start, end) = (parse_value(a, text, field)?, parse_value(b, text, field)?);
            if start > end {
                return Err(CalendarError::ReversedRange { field, start, end });
            }
            (start, Some(end))
        }
        None => (parse_value(base, text, field)?, None),
    };
    Ok(match (end, step) {
        (None, None) => Component::Value(start),
        (Some(end), None) => Component::Range(start, end),
        (end, Some(step)) => Component::Repeat { start, end, step },
    })
}

fn parse_value(digits: &str, text: &str, field: Field) -> Result<u32, CalendarError> {
    let syntax = || CalendarError::Syntax { field, text: text.to_owned() };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    let (min, max) = field.bounds();
    match digits.parse::<u32>() {
        Ok(value) if (min..=max).contains(&value) => Ok(value),
        _ => Err(CalendarError::OutOfRange { field, value: digits.to_owned(), min, max }),
    }
}

fn parse_step(digits: &str, text: &str, field: Field) -> Result<u32, CalendarError> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CalendarError::Syntax { field, text: text.to_owned() });
    }
    match digits.parse::<u32>() {
        Ok(0) => Err(CalendarError::ZeroStep { field, text: text.to_owned() }),
        Ok(step) => Ok(step),
        // A step beyond any field's range simply matches only the start.
        Err(_) => Ok(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::days_from_civil;
    use expect_test::{Expect, expect};

    /// Unix time of a local wall-clock time at `offset` seconds east of UTC.
    fn at(text: &str, offset: i32) -> i64 {
        let (date, time) = text.split_once(' ').expect("test times are 'YYYY-MM-DD HH:MM:SS'");
        let d: Vec<i64> = date.split('-').map(|p| p.parse().expect("numeric date")).collect();
        let t: Vec<i64> = time.split(':').map(|p| p.parse().expect("numeric time")).collect();
        let days = days_from_civil(d[0], d[1] as u32, d[2] as u32);
        days * SECONDS_PER_DAY + t[0] * 3600 + t[1] * 60 + t[2] - i64::from(offset)
    }

    fn show(t: i64, offset: i32) -> String {
        let local = t + i64::from(offset);
        let (y, m, d) = civil_from_days(local.div_euclid(SECONDS_PER_DAY));
        let s = local.rem_euclid(SECONDS_PER_DAY);
        let weekday = WEEKDAY_NAMES[(local.div_euclid(SECONDS_PER_DAY) + 3).rem_euclid(7) as usize];
        format!("{weekday} {y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }

    /// One line per spec: its canonical form, then its next five occurrences after `start`.
    fn check_table(cases: &[(&str, &str)], offset: i32, expect: Expect) {
        let mut out = String::new();
        for &(spec, start) in cases {
            let event = CalendarEvent::parse(spec).expect("table specs are valid");
            assert_eq!(CalendarEvent::parse(&event.to_string()).as_ref(), Ok(&event), "{spec} round-trips");
            out += &format!("{spec:<24} = {event}\n");
            let mut t = at(start, offset);
            for _ in 0..5 {
                match event.next_after(t, offset) {
                    Some(next) => {
                        assert!(next > t, "{spec}: {next} is not after {t}");
                        out += &format!("    {}\n", show(next, offset));
                        t = next;
                    }
                    None => {
                        out += "    never\n";
                        break;
                    }
                }
            }
        }
        expect.assert_eq(&out);
    }

    #[test]
    fn reference_examples() {
        // 2025-01-01 was a Wednesday.
        let start = "2025-01-01 00:00:00";
        check_table(
            &[
                ("mon..fri 02:00", start),
                ("sat,sun", start),
                ("12:05", start),
                ("*/15", start),
                ("mon..fri 8..17,22:0/15", "2025-01-03 17:30:00"),
                ("Sat *-1..7 15:00", start),
                ("*-05", start),
                ("2015-10-21", "2014-01-01 00:00:00"),
                ("*", start),
                ("8:00/15", start),
                ("12/2:5", start),
                ("sat 03:00", start),
                ("*-*-01 00:00", start),
                ("mon,wed 8..17/2:30", start),
            ],
            0,
            expect![[r#"
                mon..fri 02:00           = mon..fri *-*-* 02:00:00
                    wed 2025-01-01 02:00:00
                    thu 2025-01-02 02:00:00
                    fri 2025-01-03 02:00:00
                    mon 2025-01-06 02:00:00
                    tue 2025-01-07 02:00:00
                sat,sun                  = sat,sun *-*-* 00:00:00
                    sat 2025-01-04 00:00:00
                    sun 2025-01-05 00:00:00
                    sat 2025-01-11 00:00:00
                    sun 2025-01-12 00:00:00
                    sat 2025-01-18 00:00:00
                12:05                    = *-*-* 12:05:00
                    wed 2025-01-01 12:05:00
                    thu 2025-01-02 12:05:00
                    fri 2025-01-03 12:05:00
                    sat 2025-01-04 12:05:00
                    sun 2025-01-05 12:05:00
                */15                     = *-*-* *:00/15:00
                    wed 2025-01-01 00:15:00
                    wed 2025-01-01 00:30:00
                    wed 2025-01-01 00:45:00
                    wed 2025-01-01 01:00:00
                    wed 2025-01-01 01:15:00
                mon..fri 8..17,22:0/15   = mon..fri *-*-* 08..17,22:00/15:00
                    fri 2025-01-03 17:45:00
                    fri 2025-01-03 22:00:00
                    fri 2025-01-03 22:15:00
                    fri 2025-01-03 22:30:00
                    fri 2025-01-03 22:45:00
                Sat *-1..7 15:00         = sat *-*-01..07 15:00:00
                    sat 2025-01-04 15:00:00
                    sat 2025-02-01 15:00:00
                    sat 2025-03-01 15:00:00
                    sat 2025-04-05 15:00:00
                    sat 2025-05-03 15:00:00
                *-05                     = *-*-05 00:00:00
                    sun 2025-01-05 00:00:00
                    wed 2025-02-05 00:00:00
                    wed 2025-03-05 00:00:00
                    sat 2025-04-05 00:00:00
                    mon 2025-05-05 00:00:00
                2015-10-21               = 2015-10-21 00:00:00
                    wed 2015-10-21 00:00:00
                    never
                *                        = *-*-* *:*:00
                    wed 2025-01-01 00:01:00
                    wed 2025-01-01 00:02:00
                    wed 2025-01-01 00:03:00
                    wed 2025-01-01 00:04:00
                    wed 2025-01-01 00:05:00
                8:00/15                  = *-*-* 08:00/15:00
                    wed 2025-01-01 08:00:00
                    wed 2025-01-01 08:15:00
                    wed 2025-01-01 08:30:00
                    wed 2025-01-01 08:45:00
                    thu 2025-01-02 08:00:00
                12/2:5                   = *-*-* 12/2:05:00
                    wed 2025-01-01 12:05:00
                    wed 2025-01-01 14:05:00
                    wed 2025-01-01 16:05:00
                    wed 2025-01-01 18:05:00
                    wed 2025-01-01 20:05:00
                sat 03:00                = sat *-*-* 03:00:00
                    sat 2025-01-04 03:00:00
                    sat 2025-01-11 03:00:00
                    sat 2025-01-18 03:00:00
                    sat 2025-01-25 03:00:00
                    sat 2025-02-01 03:00:00
                *-*-01 00:00             = *-*-01 00:00:00
                    sat 2025-02-01 00:00:00
                    sat 2025-03-01 00:00:00
                    tue 2025-04-01 00:00:00
                    thu 2025-05-01 00:00:00
                    sun 2025-06-01 00:00:00
                mon,wed 8..17/2:30       = mon,wed *-*-* 08..17/2:30:00
                    wed 2025-01-01 08:30:00
                    wed 2025-01-01 10:30:00
                    wed 2025-01-01 12:30:00
                    wed 2025-01-01 14:30:00
                    wed 2025-01-01 16:30:00
            "#]],
        );
    }

    #[test]
    fn shorthands() {
        let start = "2025-01-01 00:00:00";
        check_table(
            &[
                ("minutely", start),
                ("hourly", start),
                ("daily", start),
                ("weekly", start),
                ("monthly", start),
                ("yearly", start),
                ("annually", start),
                ("quarterly", start),
                ("semiannually", start),
                ("Daily", start),
            ],
            0,
            expect![[r#"
                minutely                 = *-*-* *:*:00
                    wed 2025-01-01 00:01:00
                    wed 2025-01-01 00:02:00
                    wed 2025-01-01 00:03:00
                    wed 2025-01-01 00:04:00
                    wed 2025-01-01 00:05:00
                hourly                   = *-*-* *:00:00
                    wed 2025-01-01 01:00:00
                    wed 2025-01-01 02:00:00
                    wed 2025-01-01 03:00:00
                    wed 2025-01-01 04:00:00
                    wed 2025-01-01 05:00:00
                daily                    = *-*-* 00:00:00
                    thu 2025-01-02 00:00:00
                    fri 2025-01-03 00:00:00
                    sat 2025-01-04 00:00:00
                    sun 2025-01-05 00:00:00
                    mon 2025-01-06 00:00:00
                weekly                   = mon *-*-* 00:00:00
                    mon 2025-01-06 00:00:00
                    mon 2025-01-13 00:00:00
                    mon 2025-01-20 00:00:00
                    mon 2025-01-27 00:00:00
                    mon 2025-02-03 00:00:00
                monthly                  = *-*-01 00:00:00
                    sat 2025-02-01 00:00:00
                    sat 2025-03-01 00:00:00
                    tue 2025-04-01 00:00:00
                    thu 2025-05-01 00:00:00
                    sun 2025-06-01 00:00:00
                yearly                   = *-01-01 00:00:00
                    thu 2026-01-01 00:00:00
                    fri 2027-01-01 00:00:00
                    sat 2028-01-01 00:00:00
                    mon 2029-01-01 00:00:00
                    tue 2030-01-01 00:00:00
                annually                 = *-01-01 00:00:00
                    thu 2026-01-01 00:00:00
                    fri 2027-01-01 00:00:00
                    sat 2028-01-01 00:00:00
                    mon 2029-01-01 00:00:00
                    tue 2030-01-01 00:00:00
                quarterly                = *-01,04,07,10-01 00:00:00
                    tue 2025-04-01 00:00:00
                    tue 2025-07-01 00:00:00
                    wed 2025-10-01 00:00:00
                    thu 2026-01-01 00:00:00
                    wed 2026-04-01 00:00:00
                semiannually             = *-01,07-01 00:00:00
                    tue 2025-07-01 00:00:00
                    thu 2026-01-01 00:00:00
                    wed 2026-07-01 00:00:00
                    fri 2027-01-01 00:00:00
                    thu 2027-07-01 00:00:00
                Daily                    = *-*-* 00:00:00
                    thu 2025-01-02 00:00:00
                    fri 2025-01-03 00:00:00
                    sat 2025-01-04 00:00:00
                    sun 2025-01-05 00:00:00
                    mon 2025-01-06 00:00:00
            "#]],
        );
    }

    #[test]
    fn month_and_year_rollover() {
        check_table(
            &[
                ("daily", "2025-12-31 23:59:59"),
                ("*-*-31 23:59:59", "2025-01-31 23:59:59"),
                ("*-12-31 23:59:59", "2025-06-01 00:00:00"),
                ("*:*:*", "2025-12-31 23:59:58"),
                ("*-*-* 23:59:30/10", "2025-12-31 23:59:45"),
                ("mon *-1..7 9:00", "2025-12-29 10:00:00"),
            ],
            0,
            expect![[r#"
                daily                    = *-*-* 00:00:00
                    thu 2026-01-01 00:00:00
                    fri 2026-01-02 00:00:00
                    sat 2026-01-03 00:00:00
                    sun 2026-01-04 00:00:00
                    mon 2026-01-05 00:00:00
                *-*-31 23:59:59          = *-*-31 23:59:59
                    mon 2025-03-31 23:59:59
                    sat 2025-05-31 23:59:59
                    thu 2025-07-31 23:59:59
                    sun 2025-08-31 23:59:59
                    fri 2025-10-31 23:59:59
                *-12-31 23:59:59         = *-12-31 23:59:59
                    wed 2025-12-31 23:59:59
                    thu 2026-12-31 23:59:59
                    fri 2027-12-31 23:59:59
                    sun 2028-12-31 23:59:59
                    mon 2029-12-31 23:59:59
                *:*:*                    = *-*-* *:*:*
                    wed 2025-12-31 23:59:59
                    thu 2026-01-01 00:00:00
                    thu 2026-01-01 00:00:01
                    thu 2026-01-01 00:00:02
                    thu 2026-01-01 00:00:03
                *-*-* 23:59:30/10        = *-*-* 23:59:30/10
                    wed 2025-12-31 23:59:50
                    thu 2026-01-01 23:59:30
                    thu 2026-01-01 23:59:40
                    thu 2026-01-01 23:59:50
                    fri 2026-01-02 23:59:30
                mon *-1..7 9:00          = mon *-*-01..07 09:00:00
                    mon 2026-01-05 09:00:00
                    mon 2026-02-02 09:00:00
                    mon 2026-03-02 09:00:00
                    mon 2026-04-06 09:00:00
                    mon 2026-05-04 09:00:00
            "#]],
        );
    }

    #[test]
    fn leap_days() {
        check_table(
            &[
                ("*-02-29", "2025-01-01 00:00:00"),
                ("*-02-29 12:00", "2096-03-01 00:00:00"),
                ("*-02-*", "2024-02-28 00:00:00"),
            ],
            0,
            expect![[r#"
                *-02-29                  = *-02-29 00:00:00
                    tue 2028-02-29 00:00:00
                    sun 2032-02-29 00:00:00
                    fri 2036-02-29 00:00:00
                    wed 2040-02-29 00:00:00
                    mon 2044-02-29 00:00:00
                *-02-29 12:00            = *-02-29 12:00:00
                    fri 2104-02-29 12:00:00
                    wed 2108-02-29 12:00:00
                    mon 2112-02-29 12:00:00
                    sat 2116-02-29 12:00:00
                    thu 2120-02-29 12:00:00
                *-02-*                   = *-02-* 00:00:00
                    thu 2024-02-29 00:00:00
                    sat 2025-02-01 00:00:00
                    sun 2025-02-02 00:00:00
                    mon 2025-02-03 00:00:00
                    tue 2025-02-04 00:00:00
            "#]],
        );
    }

    #[test]
    fn fixed_utc_offsets() {
        // Local 00:00 at UTC+2 is 22:00 UTC the day before; the table shows local times.
        let plus_two = 2 * 3600;
        assert_eq!(
            CalendarEvent::parse("daily").expect("valid").next_after(at("2025-01-01 00:00:00", 0), plus_two),
            Some(at("2025-01-01 22:00:00", 0))
        );
        check_table(
            &[("daily", "2025-01-01 00:00:00"), ("mon..fri 02:00", "2025-01-03 03:00:00")],
            plus_two,
            expect![[r#"
                daily                    = *-*-* 00:00:00
                    thu 2025-01-02 00:00:00
                    fri 2025-01-03 00:00:00
                    sat 2025-01-04 00:00:00
                    sun 2025-01-05 00:00:00
                    mon 2025-01-06 00:00:00
                mon..fri 02:00           = mon..fri *-*-* 02:00:00
                    mon 2025-01-06 02:00:00
                    tue 2025-01-07 02:00:00
                    wed 2025-01-08 02:00:00
                    thu 2025-01-09 02:00:00
                    fri 2025-01-10 02:00:00
            "#]],
        );
        check_table(
            &[("sat 03:00", "2025-01-01 00:00:00"), ("*-*-01 00:00", "2025-01-31 23:00:00")],
            -(5 * 3600 + 30 * 60),
            expect![[r#"
                sat 03:00                = sat *-*-* 03:00:00
                    sat 2025-01-04 03:00:00
                    sat 2025-01-11 03:00:00
                    sat 2025-01-18 03:00:00
                    sat 2025-01-25 03:00:00
                    sat 2025-02-01 03:00:00
                *-*-01 00:00             = *-*-01 00:00:00
                    sat 2025-02-01 00:00:00
                    sat 2025-03-01 00:00:00
                    tue 2025-04-01 00:00:00
                    thu 2025-05-01 00:00:00
                    sun 2025-06-01 00:00:00
            "#]],
        );
    }

    #[test]
    fn strictly_after_a_match() {
        let event = CalendarEvent::parse("02:00").expect("valid");
        let two = at("2025-01-01 02:00:00", 0);
        assert_eq!(event.next_after(two - 1, 0), Some(two));
        assert_eq!(event.next_after(two, 0), Some(two + SECONDS_PER_DAY));
    }

    #[test]
    fn impossible_or_past_dates_never_fire() {
        let now = at("2025-01-01 00:00:00", 0);
        for spec in ["2020-02-30", "*-02-30", "*-04-31", "2015-10-21", "2024-*-* 12:00", "2021-02-29"] {
            assert_eq!(CalendarEvent::parse(spec).expect("valid").next_after(now, 0), None, "{spec}");
        }
        // The far end of the timeline gives up instead of overflowing.
        let every_minute = CalendarEvent::parse("*").expect("valid");
        assert_eq!(every_minute.next_after(i64::MAX, 0), None);
        assert_eq!(every_minute.next_after(i64::MAX - 5, 0), None);
        assert_eq!(every_minute.next_after(i64::MIN, -3600), None);
    }

    #[test]
    fn parse_errors_name_the_bad_part() {
        let cases = [
            "",
            "   ",
            "mon..fry 02:00",
            "funday",
            "mon 25:00",
            "12:60",
            "12:00:61",
            "*-13-01",
            "*-*-00",
            "1969-01-01",
            "*-1-2-3-4",
            "1:2:3:4",
            "*/0",
            "10..5",
            "mon 02:00 daily",
            "02:00 mon",
            "*x",
            "1,,2",
            "a..b",
            "99999999999",
            "daily 02:00",
        ];
        let out: String = cases
            .iter()
            .map(|spec| match CalendarEvent::parse(spec) {
                Ok(event) => format!("{spec:?}: unexpectedly parsed as {event}\n"),
                Err(err) => format!("{spec:?}: {err}\n"),
            })
            .collect();
        expect![[r#"
            "": empty calendar event: expected [WEEKDAY] [[YEARS-]MONTHS-DAYS] [HOURS:MINUTES[:SECONDS]] or a shorthand such as daily
            "   ": empty calendar event: expected [WEEKDAY] [[YEARS-]MONTHS-DAYS] [HOURS:MINUTES[:SECONDS]] or a shorthand such as daily
            "mon..fry 02:00": invalid weekday 'mon..fry': expected sun, mon, tue, wed, thu, fri or sat, lists (sat,sun) or ranges (mon..fri)
            "funday": invalid weekday 'funday': expected sun, mon, tue, wed, thu, fri or sat, lists (sat,sun) or ranges (mon..fri)
            "mon 25:00": hour 25 is out of range: expected 0..23
            "12:60": minute 60 is out of range: expected 0..59
            "12:00:61": second 61 is out of range: expected 0..59
            "*-13-01": month 13 is out of range: expected 1..12
            "*-*-00": day 00 is out of range: expected 1..31
            "1969-01-01": year 1969 is out of range: expected 1970..2199
            "*-1-2-3-4": invalid date '*-1-2-3-4': expected MONTHS-DAYS or YEARS-MONTHS-DAYS such as *-*-01 or 2025-01-01
            "1:2:3:4": invalid time '1:2:3:4': expected MINUTES, HOURS:MINUTES or HOURS:MINUTES:SECONDS such as */15 or 02:00
            "*/0": invalid minute repetition '*/0': the step must be at least 1
            "10..5": invalid minute range 10..5: the start is after the end
            "mon 02:00 daily": unexpected 'daily' after the time: expected [WEEKDAY] [[YEARS-]MONTHS-DAYS] [HOURS:MINUTES[:SECONDS]]
            "02:00 mon": unexpected 'mon' after the time: expected [WEEKDAY] [[YEARS-]MONTHS-DAYS] [HOURS:MINUTES[:SECONDS]]
            "*x": invalid minute '*x': expected *, a number, a list (a,b), a range (a..b) or a repetition (start/step, */step)
            "1,,2": invalid minute '1,,2': expected *, a number, a list (a,b), a range (a..b) or a repetition (start/step, */step)
            "a..b": invalid weekday 'a..b': expected sun, mon, tue, wed, thu, fri or sat, lists (sat,sun) or ranges (mon..fri)
            "99999999999": minute 99999999999 is out of range: expected 0..59
            "daily 02:00": invalid weekday 'daily': expected sun, mon, tue, wed, thu, fri or sat, lists (sat,sun) or ranges (mon..fri)
        "#]]
        .assert_eq(&out);
    }
}
