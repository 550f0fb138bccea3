//! Local time's offset from UTC, from the C library's time zone data (`TZ`, /etc/localtime).
//! Backup names and job schedules are in local time, as vzdump and pvescheduler use it.

/// Seconds east of UTC of local time at unix time `t` (0 when the C library cannot tell).
pub fn utc_offset(t: i64) -> i32 {
    let time: libc::time_t = t;
    // SAFETY: `tm` is plain old data, so all-zero is a valid value; localtime_r only writes
    // into the `tm` we own and reads `time`, both live for the call; it is the thread-safe
    // variant (no shared static buffer).
    let offset = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&time, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    };
    i32::try_from(offset).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn offsets_are_within_a_day() {
        let offset = super::utc_offset(1_700_000_000);
        assert!(offset.abs() <= 14 * 3600, "{offset}");
    }
}
