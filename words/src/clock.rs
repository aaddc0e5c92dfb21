//! The time of day a message was written, as both windows show it beside a chat message:
//! `14:05`, in the machine's own time zone.

/// `hh:mm` of a Unix time (milliseconds) in the local time zone (UTC where it is unknown).
pub fn local_clock(unix_ms: u64) -> String {
    let secs = (unix_ms / 1000) as libc::time_t;
    // SAFETY: `localtime_r` reads `secs` and writes only into `tm`, which lives through the
    // call; a null return leaves `tm` unread.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let local = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if local {
        format!("{:02}:{:02}", tm.tm_hour, tm.tm_min)
    } else {
        let day = unix_ms / 1000 % 86_400;
        format!("{:02}:{:02}", day / 3600, day / 60 % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_reads_as_hours_and_minutes() {
        let s = local_clock(1_700_000_000_000);
        assert_eq!(s.len(), 5);
        assert_eq!(&s[2..3], ":");
    }
}
