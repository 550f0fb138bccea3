//! Time stamps in snapshot directory names (RFC 3339, UTC, from hearth-core's one calendar) and
//! vzdump names (local time).

use hearth_core::time::DateTime;
pub use hearth_core::time::{parse_rfc3339, rfc3339};

/// `YYYY_MM_DD-HH_MM_SS` of unix time `t` at `utc_offset` seconds east of UTC (vzdump names).
pub fn vzdump_stamp(t: i64, utc_offset: i32) -> String {
    let DateTime { year, month, day, hour, minute, second } = DateTime::from_unix(t + i64::from(utc_offset));
    format!("{year:04}_{month:02}_{day:02}-{hour:02}_{minute:02}_{second:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps() {
        assert_eq!(rfc3339(1_725_796_801), "2024-09-08T12:00:01Z");
        assert_eq!(vzdump_stamp(1_725_796_801, 7200), "2024_09_08-14_00_01");
        assert_eq!(vzdump_stamp(0, -3600), "1969_12_31-23_00_00");
    }
}
