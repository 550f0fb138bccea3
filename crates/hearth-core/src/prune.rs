//! Backup retention: which backups `prune-backups` (`keep-last=3,keep-daily=7,…`) keeps, exactly
//! as Proxmox's `prune_mark_backup_group` decides it.
//!
//! Backups are grouped by guest (`qemu/100`) and sorted newest first. The rules run in the order
//! last → hourly → daily → weekly → monthly → yearly. Each rule sees the periods (hour, day, ISO
//! week, month, year) that already hold a kept backup as covered, keeps the newest backup of each
//! of its next N uncovered periods and marks the older backups of those periods for removal.
//! Whatever no rule kept is removed. Protected backups and backups with non-standard names are
//! never removed and never count towards a rule.
//!
//! Periods are those of local time. The module does no I/O, so the caller passes the offset of
//! local time from UTC at a given instant; tests use UTC.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use crate::schema::ConfigError;
use crate::storage::{self, BackupName};
use crate::time::{civil_from_days, days_from_civil};

/// The parsed `prune-backups` property string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeepOptions {
    pub all: bool,
    pub last: Option<u64>,
    pub hourly: Option<u64>,
    pub daily: Option<u64>,
    pub weekly: Option<u64>,
    pub monthly: Option<u64>,
    pub yearly: Option<u64>,
}

/// Why a `prune-backups` value was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeepOptionsError {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("prune-backups: keep-all conflicts with {other}")]
    Conflict { other: &'static str },
}

impl KeepOptions {
    /// Parses `keep-last=3,keep-daily=7` against [`storage::PRUNE_BACKUPS`].
    ///
    /// `keep-all=1` together with another option above 0 is refused; `keep-all=1,keep-last=0` is
    /// accepted, as Proxmox does.
    pub fn parse(input: &str) -> Result<KeepOptions, KeepOptionsError> {
        let parsed = storage::PRUNE_BACKUPS.parse("prune-backups", input)?;
        let count = |name: &str| -> Option<u64> {
            // The schema checked the value is an integer in 0..=2^20.
            parsed.get(name).map(|v| v.parse().expect("prune-backups counts are validated integers"))
        };
        let keep = KeepOptions {
            all: parsed.flag("keep-all").unwrap_or(false),
            last: count("keep-last"),
            hourly: count("keep-hourly"),
            daily: count("keep-daily"),
            weekly: count("keep-weekly"),
            monthly: count("keep-monthly"),
            yearly: count("keep-yearly"),
        };
        if keep.all {
            if let Some((other, _)) = keep.counts().into_iter().find(|(_, n)| *n > 0) {
                return Err(KeepOptionsError::Conflict { other });
            }
        }
        Ok(keep)
    }

    /// Each count with its property name, in rule order; unset counts are 0.
    pub fn counts(&self) -> [(&'static str, u64); 6] {
        [
            ("keep-last", self.last.unwrap_or(0)),
            ("keep-hourly", self.hourly.unwrap_or(0)),
            ("keep-daily", self.daily.unwrap_or(0)),
            ("keep-weekly", self.weekly.unwrap_or(0)),
            ("keep-monthly", self.monthly.unwrap_or(0)),
            ("keep-yearly", self.yearly.unwrap_or(0)),
        ]
    }

    /// Whether nothing is pruned: `keep-all` is set or no count is above 0.
    pub fn keeps_everything(&self) -> bool {
        self.all || self.counts().iter().all(|(_, n)| *n == 0)
    }

    /// The most backups of one guest the options keep (vzdump's "max backup limit"); `None` when
    /// they keep everything.
    pub fn max_kept(&self) -> Option<u64> {
        (!self.keeps_everything()).then(|| self.counts().iter().map(|(_, n)| n).sum())
    }
}

impl fmt::Display for KeepOptions {
    /// The canonical property string; `keep-all=1` when the options keep everything.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.keeps_everything() {
            return f.write_str("keep-all=1");
        }
        let mut first = true;
        for (name, n) in self.counts().into_iter().filter(|(_, n)| *n > 0) {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{name}={n}")?;
        }
        Ok(())
    }
}

/// One backup archive as prune sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    /// The archive's file name (or volume id).
    pub id: String,
    /// `<type>/<vmid>`, e.g. `qemu/100`.
    pub guest: String,
    /// Unix time: the name's timestamp read as local time, or the file's ctime for
    /// non-standard names.
    pub time: i64,
    /// An `<archive>.protected` sentinel exists.
    pub protected: bool,
    /// The name follows `vzdump-<type>-<vmid>-YYYY_MM_DD-HH_MM_SS.<ext>`.
    pub standard_name: bool,
}

impl Backup {
    /// A backup of `guest` from its file name. A standard name gives the time (local time,
    /// converted with `utc_offset`); any other name is `renamed` and takes `fallback_time`.
    pub fn from_file_name(
        file: &str,
        guest: &str,
        fallback_time: i64,
        protected: bool,
        utc_offset: impl Fn(i64) -> i32,
    ) -> Backup {
        let parsed = storage::parse_backup_name(file).and_then(|name| {
            let local = local_seconds_of_name(&name)?;
            let guest = format!("{}/{}", name.guest_type, name.vmid);
            // Read the offset at the naive instant, then once more at the corrected one, so a
            // name just after a DST change gets the offset in force at that time.
            let first = local - i64::from(utc_offset(local));
            Some((guest, local - i64::from(utc_offset(first))))
        });
        match parsed {
            Some((guest, time)) => Backup { id: file.to_owned(), guest, time, protected, standard_name: true },
            None => Backup {
                id: file.to_owned(),
                guest: guest.to_owned(),
                time: fallback_time,
                protected,
                standard_name: false,
            },
        }
    }
}

/// The seconds since 1970-01-01 00:00 of a name's `YYYY_MM_DD-HH_MM_SS`, read as a wall-clock
/// time without a zone. `None` when a field is out of range.
pub fn local_seconds_of_name(name: &BackupName) -> Option<i64> {
    if name.time.len() != 19 {
        return None;
    }
    crate::time::seconds_of_fields(&name.time)
}

/// What prune does with one backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mark {
    Keep,
    Remove,
    /// Protected: never removed, never counted.
    Protected,
    /// A non-standard name: never removed, never counted.
    Renamed,
}

impl Mark {
    pub fn as_str(self) -> &'static str {
        match self {
            Mark::Keep => "keep",
            Mark::Remove => "remove",
            Mark::Protected => "protected",
            Mark::Renamed => "renamed",
        }
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One backup with its mark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkedBackup {
    pub id: String,
    pub time: i64,
    pub mark: Mark,
}

/// The backups of one guest, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupGroup {
    pub guest: String,
    pub backups: Vec<MarkedBackup>,
}

/// Marks every backup, grouped by guest (groups sorted by guest, backups newest first, equal
/// times by id). `utc_offset(t)` is the offset of local time from UTC, in seconds, at unix time
/// `t`.
pub fn mark(backups: &[Backup], keep: &KeepOptions, utc_offset: impl Fn(i64) -> i32) -> Vec<BackupGroup> {
    let mut groups: BTreeMap<&str, Vec<&Backup>> = BTreeMap::new();
    for backup in backups {
        groups.entry(&backup.guest).or_default().push(backup);
    }
    groups
        .into_iter()
        .map(|(guest, mut members)| {
            members.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.id.cmp(&b.id)));
            let marks = mark_group(&members, keep, &utc_offset);
            let backups = members
                .iter()
                .zip(marks)
                .map(|(b, mark)| MarkedBackup { id: b.id.clone(), time: b.time, mark })
                .collect();
            BackupGroup { guest: guest.to_owned(), backups }
        })
        .collect()
}

/// The period a backup falls in for one rule.
type PeriodOf = fn(&LocalTime) -> i64;

/// Marks one group, sorted newest first.
fn mark_group(sorted: &[&Backup], keep: &KeepOptions, utc_offset: &impl Fn(i64) -> i32) -> Vec<Mark> {
    let mut marks: Vec<Option<Mark>> = sorted
        .iter()
        .map(|b| match (b.protected, b.standard_name) {
            (true, _) => Some(Mark::Protected),
            (false, false) => Some(Mark::Renamed),
            (false, true) => None,
        })
        .collect();
    if keep.keeps_everything() {
        return marks.into_iter().map(|m| m.unwrap_or(Mark::Keep)).collect();
    }
    let local: Vec<LocalTime> = sorted.iter().map(|b| LocalTime::new(b.time, utc_offset(b.time))).collect();
    let rules: [PeriodOf; 6] = [
        |t| t.unix,
        |t| t.seconds.div_euclid(3600),
        |t| t.days,
        |t| {
            let (year, week) = t.iso_week();
            year * 100 + i64::from(week)
        },
        |t| t.year * 12 + t.month,
        |t| t.year,
    ];
    for ((_, count), period_of) in keep.counts().into_iter().zip(rules) {
        apply_rule(&mut marks, &local, count, period_of);
    }
    marks.into_iter().map(|m| m.unwrap_or(Mark::Remove)).collect()
}

/// One rule: keep the newest unmarked backup of each of the next `count` periods that hold no
/// kept backup yet; older backups of those periods are removed.
fn apply_rule(marks: &mut [Option<Mark>], local: &[LocalTime], count: u64, period_of: PeriodOf) {
    if count == 0 {
        return;
    }
    let covered: HashSet<i64> =
        marks.iter().zip(local).filter(|(m, _)| **m == Some(Mark::Keep)).map(|(_, t)| period_of(t)).collect();
    let mut added: HashSet<i64> = HashSet::new();
    for (slot, time) in marks.iter_mut().zip(local) {
        let period = period_of(time);
        if slot.is_some() || covered.contains(&period) {
            continue;
        }
        if added.contains(&period) {
            *slot = Some(Mark::Remove);
        } else {
            if added.len() as u64 >= count {
                break;
            }
            added.insert(period);
            *slot = Some(Mark::Keep);
        }
    }
}

/// A unix time and its local calendar fields.
#[derive(Clone, Copy, Debug)]
struct LocalTime {
    unix: i64,
    /// Local seconds since 1970-01-01 00:00.
    seconds: i64,
    /// Local days since 1970-01-01.
    days: i64,
    year: i64,
    month: i64,
}

impl LocalTime {
    fn new(unix: i64, utc_offset: i32) -> LocalTime {
        let seconds = unix + i64::from(utc_offset);
        let days = seconds.div_euclid(86_400);
        let (year, month, _) = civil_from_days(days);
        LocalTime { unix, seconds, days, year, month: i64::from(month) }
    }

    /// The ISO 8601 week-numbering year and week (`%G`, `%V`): weeks start on Monday and week 1
    /// holds the year's first Thursday.
    fn iso_week(&self) -> (i64, u32) {
        // 1970-01-01 was a Thursday; Monday = 0.
        let weekday = (self.days + 3).rem_euclid(7);
        let thursday = self.days - weekday + 3;
        let (year, _, _) = civil_from_days(thursday);
        let ordinal = thursday - days_from_civil(year, 1, 1);
        let week = u32::try_from(ordinal / 7 + 1).expect("an ISO week is between 1 and 53");
        (year, week)
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};
    use proptest::prelude::*;

    use super::*;

    fn utc(_: i64) -> i32 {
        0
    }

    /// Unix time of a UTC `YYYY_MM_DD-HH_MM_SS`.
    fn at(time: &str) -> i64 {
        let name = BackupName { guest_type: "qemu".into(), vmid: "100".parse().unwrap(), time: time.into() };
        local_seconds_of_name(&name).unwrap()
    }

    fn backup(time: &str) -> Backup {
        Backup::from_file_name(&format!("vzdump-qemu-100-{time}.vma.zst"), "qemu/100", 0, false, utc)
    }

    fn keep(options: &str) -> KeepOptions {
        KeepOptions::parse(options).unwrap()
    }

    /// The marks of one guest's backups, newest first, as `time mark` lines.
    fn render(groups: &[BackupGroup]) -> String {
        let mut out = String::new();
        for group in groups {
            out.push_str(&format!("{}\n", group.guest));
            for b in &group.backups {
                out.push_str(&format!("  {} {}\n", b.id, b.mark));
            }
        }
        out
    }

    /// The times (`YYYY_MM_DD-HH_MM_SS`) of one guest's backups marked keep, newest first.
    fn kept(times: &[&str], options: &str) -> Vec<String> {
        let backups: Vec<Backup> = times.iter().map(|t| backup(t)).collect();
        let groups = mark(&backups, &keep(options), utc);
        assert_eq!(groups.len(), 1);
        let prefix = "vzdump-qemu-100-".len();
        groups[0]
            .backups
            .iter()
            .filter(|b| b.mark == Mark::Keep)
            .map(|b| b.id[prefix..prefix + "YYYY_MM_DD-HH_MM_SS".len()].to_owned())
            .collect()
    }

    /// One backup a day at 02:00 from `first` (YYYY, MM, DD) for `days` days.
    fn daily_series(first: (i64, u32, u32), days: i64) -> Vec<String> {
        let start = days_from_civil(first.0, first.1, first.2);
        (0..days)
            .map(|d| {
                let (y, m, day) = civil_from_days(start + d);
                format!("{y:04}_{m:02}_{day:02}-02_00_00")
            })
            .collect()
    }

    #[test]
    fn iso_weeks_around_new_year() {
        let week = |time: &str| LocalTime::new(at(time), 0).iso_week();
        // 2020-12-31 is a Thursday: week 53 of 2020, which runs to Sunday 2021-01-03.
        assert_eq!(week("2020_12_28-00_00_00"), (2020, 53));
        assert_eq!(week("2021_01_03-23_59_59"), (2020, 53));
        assert_eq!(week("2021_01_04-00_00_00"), (2021, 1));
        // 2024-12-30 (Monday) starts week 1 of 2025.
        assert_eq!(week("2024_12_29-12_00_00"), (2024, 52));
        assert_eq!(week("2024_12_30-00_00_00"), (2025, 1));
        // 2027-01-01 is a Friday: it belongs to week 53 of 2026.
        assert_eq!(week("2027_01_01-00_00_00"), (2026, 53));
    }

    #[test]
    fn names_give_local_times() {
        let b = Backup::from_file_name("vzdump-lxc-105-2024_01_01-02_00_07.tar.zst", "x", 0, false, |_| 3600);
        assert_eq!(b.guest, "lxc/105");
        assert_eq!(b.time, at("2024_01_01-01_00_07"));
        assert!(b.standard_name);
        let renamed = Backup::from_file_name("my-backup.vma.zst", "qemu/100", 42, true, utc);
        assert_eq!(
            renamed,
            Backup {
                id: "my-backup.vma.zst".into(),
                guest: "qemu/100".into(),
                time: 42,
                protected: true,
                standard_name: false
            }
        );
        let bad_date = Backup::from_file_name("vzdump-qemu-100-2024_02_30-00_00_00.vma", "qemu/100", 7, false, utc);
        assert!(!bad_date.standard_name);
    }

    fn check_options(input: &str, expect: Expect) {
        let actual = match KeepOptions::parse(input) {
            Ok(k) => format!("{k} everything={} max={:?}", k.keeps_everything(), k.max_kept()),
            Err(e) => format!("error: {e}"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn parses_options() {
        check_options("keep-last=3,keep-daily=7", expect!["keep-last=3,keep-daily=7 everything=false max=Some(10)"]);
        check_options("keep-daily=7,keep-last=3", expect!["keep-last=3,keep-daily=7 everything=false max=Some(10)"]);
        check_options("keep-all=1", expect!["keep-all=1 everything=true max=None"]);
        check_options("keep-last=0", expect!["keep-all=1 everything=true max=None"]);
        check_options("keep-all=1,keep-last=0", expect!["keep-all=1 everything=true max=None"]);
        check_options("keep-all=0,keep-weekly=2", expect!["keep-weekly=2 everything=false max=Some(2)"]);
        check_options(
            "keep-all=1,keep-monthly=2",
            expect!["error: prune-backups: keep-all conflicts with keep-monthly"],
        );
        check_options("keep-hourly=x", expect!["error: prune-backups: keep-hourly: invalid integer 'x'"]);
        check_options(
            "keep-minutely=1",
            expect![
                "error: prune-backups: unknown property 'keep-minutely' (allowed: keep-all, keep-last, keep-hourly, keep-daily, keep-weekly, keep-monthly, keep-yearly)"
            ],
        );
    }

    #[test]
    fn conflict_names_both_options() {
        let err = KeepOptions::parse("keep-last=1,keep-all=1").unwrap_err();
        assert_eq!(err, KeepOptionsError::Conflict { other: "keep-last" });
        let message = err.to_string();
        assert!(message.contains("keep-all") && message.contains("keep-last"), "{message}");
    }

    /// §3.5's example: the 3 newest, then the newest of each of the next 13 days without one.
    #[test]
    fn keep_last_then_daily() {
        // Three backups a day (02:00, 10:00, 18:00) for 30 days.
        let mut times = Vec::new();
        for day in daily_series((2024, 3, 1), 30) {
            for hour in ["02", "10", "18"] {
                times.push(format!("{}-{hour}_00_00", &day[..10]));
            }
        }
        let times: Vec<&str> = times.iter().map(String::as_str).collect();
        let kept = kept(&times, "keep-last=3,keep-daily=13");
        let mut expected = vec!["2024_03_30-18_00_00", "2024_03_30-10_00_00", "2024_03_30-02_00_00"];
        let days = daily_series((2024, 3, 17), 13);
        let days: Vec<String> = days.iter().rev().map(|d| format!("{}-18_00_00", &d[..10])).collect();
        expected.extend(days.iter().map(String::as_str));
        assert_eq!(kept, expected);
    }

    #[test]
    fn keep_weekly_across_iso_year_boundary() {
        // Daily backups from Monday 2020-12-14 to Sunday 2021-01-17: weeks 51, 52, 53 (which
        // holds 2021-01-01..03), 1, 2.
        let times = daily_series((2020, 12, 14), 35);
        let times: Vec<&str> = times.iter().map(String::as_str).collect();
        let kept = kept(&times, "keep-weekly=4");
        assert_eq!(kept, ["2021_01_17-02_00_00", "2021_01_10-02_00_00", "2021_01_03-02_00_00", "2020_12_27-02_00_00"]);
    }

    #[test]
    fn keep_monthly_and_yearly() {
        let times = daily_series((2022, 11, 20), 500);
        let times: Vec<&str> = times.iter().map(String::as_str).collect();
        assert_eq!(
            kept(&times, "keep-monthly=3"),
            ["2024_04_02-02_00_00", "2024_03_31-02_00_00", "2024_02_29-02_00_00"]
        );
        assert_eq!(
            kept(&times, "keep-yearly=5"),
            ["2024_04_02-02_00_00", "2023_12_31-02_00_00", "2022_12_31-02_00_00"]
        );
        // Monthly covers 2024 already, so yearly goes on with 2023 and 2022.
        assert_eq!(
            kept(&times, "keep-monthly=1,keep-yearly=2"),
            ["2024_04_02-02_00_00", "2023_12_31-02_00_00", "2022_12_31-02_00_00"]
        );
    }

    #[test]
    fn protected_and_renamed_are_neither_removed_nor_counted() {
        let mut backups: Vec<Backup> =
            ["2024_05_03-02_00_00", "2024_05_02-02_00_00", "2024_05_01-02_00_00"].iter().map(|t| backup(t)).collect();
        backups[0].protected = true;
        backups.push(Backup::from_file_name("manual.vma.zst", "qemu/100", at("2024_05_04-00_00_00"), false, utc));
        let groups = mark(&backups, &keep("keep-last=1"), utc);
        expect![[r#"
            qemu/100
              manual.vma.zst renamed
              vzdump-qemu-100-2024_05_03-02_00_00.vma.zst protected
              vzdump-qemu-100-2024_05_02-02_00_00.vma.zst keep
              vzdump-qemu-100-2024_05_01-02_00_00.vma.zst remove
        "#]]
        .assert_eq(&render(&groups));
        // Keep-all keeps protected and renamed marks.
        let groups = mark(&backups, &keep("keep-all=1"), utc);
        expect![[r#"
            qemu/100
              manual.vma.zst renamed
              vzdump-qemu-100-2024_05_03-02_00_00.vma.zst protected
              vzdump-qemu-100-2024_05_02-02_00_00.vma.zst keep
              vzdump-qemu-100-2024_05_01-02_00_00.vma.zst keep
        "#]]
        .assert_eq(&render(&groups));
    }

    #[test]
    fn keep_all_or_zero_counts_keep_everything() {
        let times = daily_series((2024, 1, 1), 10);
        let times: Vec<&str> = times.iter().map(String::as_str).collect();
        for options in ["keep-all=1", "keep-last=0,keep-daily=0", "keep-all=1,keep-yearly=0"] {
            assert_eq!(kept(&times, options).len(), 10, "{options}");
        }
    }

    #[test]
    fn local_time_decides_the_day() {
        // 23:30 UTC on May 1st is May 2nd in UTC+2: both backups fall on one local day.
        let backups = [backup("2024_05_01-23_30_00"), backup("2024_05_02-08_00_00")];
        let kept_utc = mark(&backups, &keep("keep-daily=5"), utc);
        assert!(kept_utc[0].backups.iter().all(|b| b.mark == Mark::Keep));
        let kept_cest = mark(&backups, &keep("keep-daily=5"), |_| 7200);
        let marks: Vec<Mark> = kept_cest[0].backups.iter().map(|b| b.mark).collect();
        assert_eq!(marks, [Mark::Keep, Mark::Remove]);
    }

    fn check_series(backups: &[Backup], options: &str, expect: Expect) {
        expect.assert_eq(&render(&mark(backups, &keep(options), utc)));
    }

    /// Nightly backups of two guests plus an extra afternoon backup, a protected one and a
    /// hand-named one, with a typical job's retention.
    #[test]
    fn realistic_series() {
        let mut backups = Vec::new();
        for day in daily_series((2024, 12, 20), 20) {
            let day = &day[..10];
            backups.push(backup(&format!("{day}-01_00_00")));
            let ct = format!("vzdump-lxc-105-{day}-01_30_00.tar.zst");
            backups.push(Backup::from_file_name(&ct, "lxc/105", 0, day == "2024_12_25", utc));
        }
        backups.push(backup("2025_01_08-15_00_00"));
        backups.push(Backup::from_file_name(
            "before-upgrade.vma.zst",
            "qemu/100",
            at("2024_12_31-12_00_00"),
            false,
            utc,
        ));
        let table = [
            (
                "keep-last=2,keep-daily=3,keep-weekly=2",
                expect![[r#"
                    lxc/105
                      vzdump-lxc-105-2025_01_08-01_30_00.tar.zst keep
                      vzdump-lxc-105-2025_01_07-01_30_00.tar.zst keep
                      vzdump-lxc-105-2025_01_06-01_30_00.tar.zst keep
                      vzdump-lxc-105-2025_01_05-01_30_00.tar.zst keep
                      vzdump-lxc-105-2025_01_04-01_30_00.tar.zst keep
                      vzdump-lxc-105-2025_01_03-01_30_00.tar.zst remove
                      vzdump-lxc-105-2025_01_02-01_30_00.tar.zst remove
                      vzdump-lxc-105-2025_01_01-01_30_00.tar.zst remove
                      vzdump-lxc-105-2024_12_31-01_30_00.tar.zst remove
                      vzdump-lxc-105-2024_12_30-01_30_00.tar.zst remove
                      vzdump-lxc-105-2024_12_29-01_30_00.tar.zst keep
                      vzdump-lxc-105-2024_12_28-01_30_00.tar.zst remove
                      vzdump-lxc-105-2024_12_27-01_30_00.tar.zst remove
                      vzdump-lxc-105-2024_12_26-01_30_00.tar.zst remove
                      vzdump-lxc-105-2024_12_25-01_30_00.tar.zst protected
                      vzdump-lxc-105-2024_12_24-01_30_00.tar.zst remove
                      vzdump-lxc-105-2024_12_23-01_30_00.tar.zst remove
                      vzdump-lxc-105-2024_12_22-01_30_00.tar.zst keep
                      vzdump-lxc-105-2024_12_21-01_30_00.tar.zst remove
                      vzdump-lxc-105-2024_12_20-01_30_00.tar.zst remove
                    qemu/100
                      vzdump-qemu-100-2025_01_08-15_00_00.vma.zst keep
                      vzdump-qemu-100-2025_01_08-01_00_00.vma.zst keep
                      vzdump-qemu-100-2025_01_07-01_00_00.vma.zst keep
                      vzdump-qemu-100-2025_01_06-01_00_00.vma.zst keep
                      vzdump-qemu-100-2025_01_05-01_00_00.vma.zst keep
                      vzdump-qemu-100-2025_01_04-01_00_00.vma.zst remove
                      vzdump-qemu-100-2025_01_03-01_00_00.vma.zst remove
                      vzdump-qemu-100-2025_01_02-01_00_00.vma.zst remove
                      vzdump-qemu-100-2025_01_01-01_00_00.vma.zst remove
                      before-upgrade.vma.zst renamed
                      vzdump-qemu-100-2024_12_31-01_00_00.vma.zst remove
                      vzdump-qemu-100-2024_12_30-01_00_00.vma.zst remove
                      vzdump-qemu-100-2024_12_29-01_00_00.vma.zst keep
                      vzdump-qemu-100-2024_12_28-01_00_00.vma.zst remove
                      vzdump-qemu-100-2024_12_27-01_00_00.vma.zst remove
                      vzdump-qemu-100-2024_12_26-01_00_00.vma.zst remove
                      vzdump-qemu-100-2024_12_25-01_00_00.vma.zst remove
                      vzdump-qemu-100-2024_12_24-01_00_00.vma.zst remove
                      vzdump-qemu-100-2024_12_23-01_00_00.vma.zst remove
                      vzdump-qemu-100-2024_12_22-01_00_00.vma.zst keep
                      vzdump-qemu-100-2024_12_21-01_00_00.vma.zst remove
                      vzdump-qemu-100-2024_12_20-01_00_00.vma.zst remove
                "#]],
            ),
            (
                "keep-monthly=2",
                expect![[r#"
                lxc/105
                  vzdump-lxc-105-2025_01_08-01_30_00.tar.zst keep
                  vzdump-lxc-105-2025_01_07-01_30_00.tar.zst remove
                  vzdump-lxc-105-2025_01_06-01_30_00.tar.zst remove
                  vzdump-lxc-105-2025_01_05-01_30_00.tar.zst remove
                  vzdump-lxc-105-2025_01_04-01_30_00.tar.zst remove
                  vzdump-lxc-105-2025_01_03-01_30_00.tar.zst remove
                  vzdump-lxc-105-2025_01_02-01_30_00.tar.zst remove
                  vzdump-lxc-105-2025_01_01-01_30_00.tar.zst remove
                  vzdump-lxc-105-2024_12_31-01_30_00.tar.zst keep
                  vzdump-lxc-105-2024_12_30-01_30_00.tar.zst remove
                  vzdump-lxc-105-2024_12_29-01_30_00.tar.zst remove
                  vzdump-lxc-105-2024_12_28-01_30_00.tar.zst remove
                  vzdump-lxc-105-2024_12_27-01_30_00.tar.zst remove
                  vzdump-lxc-105-2024_12_26-01_30_00.tar.zst remove
                  vzdump-lxc-105-2024_12_25-01_30_00.tar.zst protected
                  vzdump-lxc-105-2024_12_24-01_30_00.tar.zst remove
                  vzdump-lxc-105-2024_12_23-01_30_00.tar.zst remove
                  vzdump-lxc-105-2024_12_22-01_30_00.tar.zst remove
                  vzdump-lxc-105-2024_12_21-01_30_00.tar.zst remove
                  vzdump-lxc-105-2024_12_20-01_30_00.tar.zst remove
                qemu/100
                  vzdump-qemu-100-2025_01_08-15_00_00.vma.zst keep
                  vzdump-qemu-100-2025_01_08-01_00_00.vma.zst remove
                  vzdump-qemu-100-2025_01_07-01_00_00.vma.zst remove
                  vzdump-qemu-100-2025_01_06-01_00_00.vma.zst remove
                  vzdump-qemu-100-2025_01_05-01_00_00.vma.zst remove
                  vzdump-qemu-100-2025_01_04-01_00_00.vma.zst remove
                  vzdump-qemu-100-2025_01_03-01_00_00.vma.zst remove
                  vzdump-qemu-100-2025_01_02-01_00_00.vma.zst remove
                  vzdump-qemu-100-2025_01_01-01_00_00.vma.zst remove
                  before-upgrade.vma.zst renamed
                  vzdump-qemu-100-2024_12_31-01_00_00.vma.zst keep
                  vzdump-qemu-100-2024_12_30-01_00_00.vma.zst remove
                  vzdump-qemu-100-2024_12_29-01_00_00.vma.zst remove
                  vzdump-qemu-100-2024_12_28-01_00_00.vma.zst remove
                  vzdump-qemu-100-2024_12_27-01_00_00.vma.zst remove
                  vzdump-qemu-100-2024_12_26-01_00_00.vma.zst remove
                  vzdump-qemu-100-2024_12_25-01_00_00.vma.zst remove
                  vzdump-qemu-100-2024_12_24-01_00_00.vma.zst remove
                  vzdump-qemu-100-2024_12_23-01_00_00.vma.zst remove
                  vzdump-qemu-100-2024_12_22-01_00_00.vma.zst remove
                  vzdump-qemu-100-2024_12_21-01_00_00.vma.zst remove
                  vzdump-qemu-100-2024_12_20-01_00_00.vma.zst remove
            "#]],
            ),
        ];
        for (options, expect) in table {
            check_series(&backups, options, expect);
        }
    }

    proptest! {
        #[test]
        fn keeps_at_most_the_sum_of_counts(
            offsets in prop::collection::vec(0i64..3 * 366 * 86_400, 0..60),
            counts in prop::array::uniform6(0u64..6),
        ) {
            let base = at("2023_06_01-00_00_00");
            let backups: Vec<Backup> = offsets
                .iter()
                .enumerate()
                .map(|(i, o)| Backup {
                    id: format!("b{i}"),
                    guest: "qemu/100".into(),
                    time: base + o,
                    protected: i % 7 == 3,
                    standard_name: true,
                })
                .collect();
            let options = KeepOptions {
                all: false,
                last: Some(counts[0]),
                hourly: Some(counts[1]),
                daily: Some(counts[2]),
                weekly: Some(counts[3]),
                monthly: Some(counts[4]),
                yearly: Some(counts[5]),
            };
            let groups = mark(&backups, &options, utc);
            let marks: Vec<Mark> = groups.iter().flat_map(|g| g.backups.iter().map(|b| b.mark)).collect();
            prop_assert_eq!(marks.len(), backups.len());
            let protected = backups.iter().filter(|b| b.protected).count();
            prop_assert_eq!(marks.iter().filter(|m| **m == Mark::Protected).count(), protected);
            let kept = marks.iter().filter(|m| **m == Mark::Keep).count() as u64;
            if options.keeps_everything() {
                prop_assert_eq!(kept as usize, backups.len() - protected);
            } else {
                prop_assert!(kept <= counts.iter().sum::<u64>());
            }
        }

        #[test]
        fn keep_last_keeps_exactly_the_newest(
            times in prop::collection::btree_set(0i64..1_000_000_000, 0..40),
            n in 1u64..50,
        ) {
            let backups: Vec<Backup> = times
                .iter()
                .enumerate()
                .map(|(i, t)| Backup {
                    id: format!("b{i:02}"),
                    guest: "qemu/100".into(),
                    time: *t,
                    protected: false,
                    standard_name: true,
                })
                .collect();
            let options = KeepOptions { last: Some(n), ..KeepOptions::default() };
            let groups = mark(&backups, &options, utc);
            let sorted = groups.first().map(|g| g.backups.clone()).unwrap_or_default();
            let expected_kept = times.len().min(n as usize);
            for (i, b) in sorted.iter().enumerate() {
                prop_assert_eq!(b.mark, if i < expected_kept { Mark::Keep } else { Mark::Remove });
            }
            let newest: Vec<i64> = times.iter().rev().take(expected_kept).copied().collect();
            let kept: Vec<i64> = sorted.iter().filter(|b| b.mark == Mark::Keep).map(|b| b.time).collect();
            prop_assert_eq!(kept, newest);
        }
    }
}
