//! The process's own figures from /proc, under the metric names every
//! Prometheus client library uses (`process_cpu_seconds_total`, ...), so
//! existing dashboards and alerts apply unchanged.

use super::exposition::Exposition;

/// Figures of this process at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub threads: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time_seconds: f64,
}

impl ProcessStats {
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|s| parse_boot_time(&s))?;
        // SAFETY: sysconf and getrlimit only read process-wide constants.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: `limit` is a valid rlimit to write into.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        let mut stats = parse_stat(&stat, ticks.max(1) as f64, page.max(1) as u64, boot_time)?;
        stats.open_fds = open_fds;
        stats.max_fds = limit.rlim_cur;
        Some(stats)
    }
}

/// `/proc/self/stat`: fields after the command name (which may hold spaces
/// and parentheses, so split after its last `)`).
fn parse_stat(stat: &str, ticks_per_second: f64, page_size: u64, boot_time: u64) -> Option<ProcessStats> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field numbers of proc(5), minus the two before the split (pid, comm).
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some(ProcessStats {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks_per_second,
        threads: field(20)?,
        start_time_seconds: boot_time as f64 + field(22)? as f64 / ticks_per_second,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * page_size,
        open_fds: 0,
        max_fds: 0,
    })
}

fn parse_boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// The collector [`super::Metrics`] registers for every process.
pub fn collect(out: &mut Exposition) {
    let Some(s) = ProcessStats::read() else { return };
    out.counter("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", &[(vec![], s.cpu_seconds)]);
    out.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", &[(vec![], s.resident_bytes as f64)]);
    out.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", &[(vec![], s.virtual_bytes as f64)]);
    out.gauge("process_open_fds", "Open file descriptors.", &[(vec![], s.open_fds as f64)]);
    out.gauge("process_max_fds", "Limit of open file descriptors.", &[(vec![], s.max_fds as f64)]);
    out.gauge("process_threads", "Operating system threads of the process.", &[(vec![], s.threads as f64)]);
    out.gauge(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch, in seconds.",
        &[(vec![], s.start_time_seconds)],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_command_name_with_spaces() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1000 \
                    123456789 2560 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(stat, 100.0, 4096, 1_700_000_000).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.threads, 7);
        assert_eq!(s.start_time_seconds, 1_700_000_010.0);
        assert_eq!(s.virtual_bytes, 123_456_789);
        assert_eq!(s.resident_bytes, 2560 * 4096);
    }

    #[test]
    fn this_process_has_threads_memory_and_fds() {
        let s = ProcessStats::read().unwrap();
        assert!(s.threads >= 1 && s.resident_bytes > 0 && s.open_fds >= 3 && s.max_fds >= s.open_fds, "{s:?}");
        assert_eq!(parse_boot_time("cpu 1 2\nbtime 1700000000\n"), Some(1_700_000_000));
    }
}
