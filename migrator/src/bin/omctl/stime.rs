//! Event times in listings, as ps prints STIME: the local time of day for today's events, the
//! month and day for older ones. [`stime`] is pure (libc's calendar does the dates);
//! [`local_offset_s`] asks libc for the zone.

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The local zone's offset from UTC in seconds now (0 when libc cannot tell).
// tm_gmtoff is a c_long: i64 here, i32 on 32-bit targets.
#[allow(clippy::useless_conversion)]
pub fn local_offset_s() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let t = libc::time_t::try_from(now).unwrap_or(0);
    // SAFETY: tm is plain old data, so all-zero is a valid value; localtime_r only reads `t`
    // and writes `tm`, both live locals, and is thread-safe.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        i64::from(tm.tm_gmtoff)
    }
}

/// `at_ms` (ms since the epoch) as `HH:MM:SS` when it is on the same local day as `now_ms`,
/// else as `MonDD`; `offset_s` is the local zone's offset from UTC.
pub fn stime(at_ms: u64, now_ms: u64, offset_s: i64) -> String {
    let local = |ms: u64| i64::try_from(ms / 1000).unwrap_or(i64::MAX / 2) + offset_s;
    let (at, now) = (local(at_ms), local(now_ms));
    let day = at.div_euclid(86_400);
    if day == now.div_euclid(86_400) {
        let s = at.rem_euclid(86_400);
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        let (month, mday) = month_day(day * 86_400);
        format!("{}{mday:02}", MONTHS.get(month).copied().unwrap_or("???"))
    }
}

/// Month (0-based) and day of month of `secs` since the epoch, as libc's calendar reads it in
/// UTC (the caller has already shifted to local time).
fn month_day(secs: i64) -> (usize, i32) {
    let t = libc::time_t::try_from(secs).unwrap_or(0);
    // SAFETY: tm is plain old data, so all-zero is a valid value; gmtime_r only reads `t` and
    // writes `tm`, both live locals, and is thread-safe.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::gmtime_r(&t, &mut tm).is_null() {
            return (0, 1);
        }
        (usize::try_from(tm.tm_mon).unwrap_or(0), tm.tm_mday)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-03-05 14:02:11 UTC.
    const T: u64 = 1_709_647_331_000;

    #[test]
    fn today_is_a_time_of_day() {
        assert_eq!(stime(T, T + 60_000, 0), "14:02:11");
        // An hour east of UTC.
        assert_eq!(stime(T, T, 3600), "15:02:11");
    }

    #[test]
    fn other_days_are_month_and_day() {
        assert_eq!(stime(T, T + 86_400_000, 0), "Mar05");
        assert_eq!(stime(0, T, 0), "Jan01");
        // 2024-02-29, a leap day.
        assert_eq!(stime(1_709_164_800_000, T, 0), "Feb29");
        // Late on the 5th in UTC is already the 6th ten hours east.
        assert_eq!(
            stime(T + 9 * 3_600_000, T + 10 * 86_400_000, 36_000),
            "Mar06"
        );
    }

    #[test]
    fn the_zone_offset_is_sane() {
        assert!(local_offset_s().abs() <= 14 * 3600);
    }
}
