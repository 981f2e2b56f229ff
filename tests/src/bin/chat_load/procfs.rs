//! What /proc says about a process (memory, CPU time) and about the machine, so every
//! report says where and under what load it was measured.

use serde::Serialize;

/// Resident memory of `pid` in KiB (`VmRSS` in /proc/<pid>/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of `pid` in seconds (/proc/<pid>/stat fields 14 and 15).
///
/// The kernel reports these in USER_HZ ticks, which is 100 on every Linux architecture
/// the project runs on (it is fixed by the ABI, unlike the kernel's internal HZ).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it are plain numbers.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `after_name` starts at field 3 (state), so utime (14) is index 11.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// This process's id.
pub fn own_pid() -> u32 {
    std::process::id()
}

/// The machine a run was measured on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical CPUs available to this process.
    pub cpus: usize,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// 1-minute load average when the run started.
    pub load_average_1m: f64,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads the machine description from /proc.
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let memory_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .map_or(0, |kib| kib / 1024);
        Machine {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            memory_mib,
            load_average_1m: load_average(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }
    }
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// CPU seconds used by the target (when its pid is known) and by this generator over a
/// stretch of the run.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuMeter {
    target_pid: Option<u32>,
    target_start: Option<f64>,
    own_start: Option<f64>,
}

/// CPU seconds used during a measured stretch.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct CpuUse {
    /// By the target process (absent when its pid is unknown).
    pub target_s: Option<f64>,
    /// By this generator.
    pub generator_s: Option<f64>,
}

impl CpuMeter {
    /// Starts measuring now.
    pub fn start(target_pid: Option<u32>) -> CpuMeter {
        CpuMeter { target_pid, target_start: target_pid.and_then(cpu_secs), own_start: cpu_secs(own_pid()) }
    }

    /// CPU used since [`CpuMeter::start`].
    pub fn stop(&self) -> CpuUse {
        let delta = |start: Option<f64>, now: Option<f64>| Some(now? - start?);
        CpuUse {
            target_s: delta(self.target_start, self.target_pid.and_then(cpu_secs)),
            generator_s: delta(self.own_start, cpu_secs(own_pid())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        assert!(rss_kib(own_pid()).is_some_and(|kib| kib > 0));
        assert!(cpu_secs(own_pid()).is_some());
        assert!(Machine::probe().cpus >= 1);
    }
}
