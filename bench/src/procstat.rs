//! What Linux says in `/proc` about a process and the machine: CPU time used (`/proc/PID/stat`,
//! user + system), resident memory (`VmRSS` in `/proc/PID/status`), datagrams the kernel dropped
//! at a UDP socket because its receive buffer was full (`/proc/net/udp`), and the load average.
//! The benches read these before and after a phase and report the difference. Parsing is kept
//! apart from reading so it can be tested on fixed text.

use std::time::Duration;

use anyhow::Context;

/// User plus system CPU time a process has used so far.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let ticks =
        parse_stat_ticks(&text).with_context(|| format!("{path} has an unexpected shape"))?;
    // SAFETY: sysconf only reads a system constant.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    anyhow::ensure!(
        per_sec > 0,
        "cannot read the clock tick rate (sysconf _SC_CLK_TCK)"
    );
    Ok(Duration::from_secs_f64(ticks as f64 / per_sec as f64))
}

/// Resident set size of a process in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_status_rss_kib(&text).with_context(|| format!("{path} has no readable VmRSS line"))
}

/// Datagrams dropped so far at the UDP sockets bound to local `port` (IPv4 and IPv6).
pub fn udp_drops(port: u16) -> anyhow::Result<u64> {
    let mut total = 0;
    for path in ["/proc/net/udp", "/proc/net/udp6"] {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                total += parse_udp_drops(&text, port)
                    .with_context(|| format!("{path} has an unexpected shape"))?
            }
            // A kernel without IPv6 has no udp6 table.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.ends_with('6') => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {path}")),
        }
    }
    Ok(total)
}

/// The 1-minute load average, to judge how busy the machine was during a run.
pub fn load_average() -> anyhow::Result<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").context("cannot read /proc/loadavg")?;
    text.split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .context("/proc/loadavg has an unexpected shape")
}

/// Sum of the `drops` column of the sockets whose local address has `port`, from the text of
/// `/proc/net/udp` or `/proc/net/udp6` (`local_address` is `HEXADDR:HEXPORT`; `drops` is the
/// last column).
pub fn parse_udp_drops(table: &str, port: u16) -> Option<u64> {
    let mut lines = table.lines();
    let header = lines.next()?;
    if !header.split_whitespace().any(|w| w == "drops") {
        return None;
    }
    let mut total = 0;
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = fields.get(1)?;
        let hex_port = local.rsplit(':').next()?;
        if u16::from_str_radix(hex_port, 16).ok()? == port {
            total += fields.last()?.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

/// `utime + stime` in clock ticks from the text of `/proc/PID/stat`.
///
/// The second field is the command name in parentheses and may itself hold spaces and
/// parentheses, so fields are counted from the last `)`: after it come field 3 (state) onward,
/// and utime and stime are fields 14 and 15.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let utime: u64 = fields.nth(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The `VmRSS:  1234 kB` value from the text of `/proc/PID/status`.
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value = parts.next()?.parse().ok()?;
    (parts.next()? == "kB").then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_counted_from_the_last_paren() {
        let stat =
            "4242 (we (ird) name) S 1 4242 4242 0 -1 4194304 100 0 0 0 37 12 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_stat_ticks(stat), Some(49));
        assert_eq!(parse_stat_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn rss_line_is_found_and_parsed() {
        let status = "Name:\trelay\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_status_rss_kib(status), Some(12345));
        assert_eq!(parse_status_rss_kib("Name:\tkthread\n"), None);
    }

    #[test]
    fn udp_drops_summed_by_local_port() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 9917: 0100007F:9AB9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 20063 2 00000000fbc8649f 225
 9918: 00000000:9AB9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 20064 2 00000000fbc8649f 5
 9919: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 20065 2 00000000fbc8649f 7
";
        assert_eq!(parse_udp_drops(table, 0x9AB9), Some(230));
        assert_eq!(parse_udp_drops(table, 53), Some(7));
        assert_eq!(parse_udp_drops(table, 1), Some(0));
        assert_eq!(parse_udp_drops("garbage", 1), None);
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        cpu_time(pid).unwrap();
        load_average().unwrap();
        udp_drops(1).unwrap();
    }
}
