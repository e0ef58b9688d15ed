//! Memory and CPU of a process, read from Linux `/proc/<pid>/status` and
//! `/proc/<pid>/stat` (benchmarks measure the operator and the control plane).

/// What `/proc` says about a process; zeros where it could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProcStats {
    /// Resident set size (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Peak resident set size (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// User + system CPU time so far, seconds.
    pub cpu_seconds: f64,
}

/// Clock ticks per second of `utime`/`stime` (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// The stats of process `pid` now.
pub fn proc_stats(pid: u32) -> ProcStats {
    let read =
        |file: &str| std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    let status = read("status");
    ProcStats {
        rss_kib: status_kib(&status, "VmRSS:"),
        peak_rss_kib: status_kib(&status, "VmHWM:"),
        cpu_seconds: stat_cpu_seconds(&read("stat")),
    }
}

/// A `<key> <n> kB` line of `/proc/<pid>/status`, 0 if absent.
fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `/proc/<pid>/stat`, in seconds. The command (field 2)
/// may contain spaces and parentheses, so fields are counted after its last
/// `)`: state is 0 there, utime 11, stime 12.
fn stat_cpu_seconds(stat: &str) -> f64 {
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / USER_HZ
}

#[cfg(test)]
mod tests {
    use super::{stat_cpu_seconds, status_kib};

    #[test]
    fn cpu_seconds_are_utime_plus_stime_after_the_command() {
        let cases = [
            (
                "42 (pym-operator) S 1 42 42 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 8",
                2.0,
            ),
            ("7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0", 0.03),
            ("", 0.0),
            ("9 (short) S 1", 0.0),
        ];
        for (stat, want) in cases {
            assert!((stat_cpu_seconds(stat) - want).abs() < 1e-9, "{stat:?}");
        }
    }

    #[test]
    fn status_lines_give_kib() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        let cases = [("VmRSS:", 1024), ("VmHWM:", 2048), ("VmSwap:", 0)];
        for (key, want) in cases {
            assert_eq!(status_kib(status, key), want, "{key}");
        }
    }
}
