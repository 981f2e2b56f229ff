//! The nodes a run loads: one server, or several server processes sharing one Redis store
//! (replicas of one chat). Sessions are spread round-robin over the nodes that take
//! clients, and the CPU of every node (and of Redis, when its pid is known) is read over
//! the measured window, so a report can say what each message cost where.

use serde::Serialize;

use crate::procfs::{self, CpuMeter, CpuUse};
use crate::report::{Report, per_op};
use crate::wire::Endpoint;

/// The endpoints of one run and the processes behind them.
#[derive(Clone)]
pub struct Fleet {
    endpoints: Vec<Endpoint>,
    /// Process id of node i, when known.
    pids: Vec<Option<u32>>,
    /// Sessions go to the first `client_nodes` nodes only (at least 1).
    client_nodes: usize,
    redis_pid: Option<u32>,
}

/// CPU and memory of one process during a run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcessUse {
    /// A node's MCP endpoint (absent for Redis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Its process id, when known.
    pub pid: Option<u32>,
    /// Whether sessions were opened on it (a node given none only applies what the
    /// others replicate).
    pub clients: bool,
    /// CPU seconds in the measured window.
    pub cpu_s: Option<f64>,
    /// `cpu_s` per message (or per session opened), in microseconds.
    pub cpu_us_per_op: Option<f64>,
    /// Resident memory at the end of the load.
    pub rss_kib: Option<u64>,
}

impl Fleet {
    /// A fleet of `endpoints` with `pids` aligned to them (missing ones unknown);
    /// clients go to the first `client_nodes` (all when `None`).
    pub fn new(
        endpoints: Vec<Endpoint>,
        pids: Vec<Option<u32>>,
        client_nodes: Option<usize>,
        redis_pid: Option<u32>,
    ) -> Fleet {
        let client_nodes = client_nodes.unwrap_or(endpoints.len()).clamp(1, endpoints.len().max(1));
        Fleet { endpoints, pids, client_nodes, redis_pid }
    }

    /// The endpoint for session (or worker) number `i`: round-robin over the nodes that
    /// take clients.
    pub fn endpoint(&self, i: usize) -> &Endpoint {
        &self.endpoints[i % self.client_nodes]
    }

    /// The URLs, comma-separated.
    pub fn url(&self) -> String {
        self.endpoints.iter().map(Endpoint::url).collect::<Vec<_>>().join(",")
    }

    /// Whether the report shows processes one by one (several nodes, or a Redis).
    fn detailed(&self) -> bool {
        self.endpoints.len() > 1 || self.redis_pid.is_some()
    }

    /// Resident memory of each node now (`None` where the pid is unknown).
    pub fn rss_each(&self) -> Vec<Option<u64>> {
        self.pids.iter().map(|pid| pid.and_then(procfs::rss_kib)).collect()
    }

    /// Starts reading CPU time now.
    pub fn meter(&self) -> FleetMeter {
        FleetMeter {
            nodes: self.pids.iter().map(|pid| CpuMeter::start(*pid)).collect(),
            own: CpuMeter::start(None),
            redis: self.redis_pid.map(|pid| CpuMeter::start(Some(pid))),
        }
    }
}

/// CPU readings started at the beginning of the measured window.
pub struct FleetMeter {
    nodes: Vec<CpuMeter>,
    own: CpuMeter,
    redis: Option<CpuMeter>,
}

/// CPU seconds used in the measured window, per process.
#[derive(Clone, Debug, Default)]
pub struct FleetCpu {
    nodes: Vec<Option<f64>>,
    redis: Option<f64>,
    /// The nodes' total (when every node's is known) and the generator's.
    pub total: CpuUse,
}

impl FleetMeter {
    /// CPU used since [`Fleet::meter`].
    pub fn stop(&self) -> FleetCpu {
        let nodes: Vec<Option<f64>> = self.nodes.iter().map(|m| m.stop().target_s).collect();
        let target_s = if nodes.is_empty() { None } else { nodes.iter().copied().sum() };
        FleetCpu {
            redis: self.redis.as_ref().and_then(|m| m.stop().target_s),
            total: CpuUse { target_s, generator_s: self.own.stop().generator_s },
            nodes,
        }
    }
}

impl FleetCpu {
    /// Fills the CPU and memory figures of `report` for `ops` messages or sessions:
    /// the totals as for one server, and with several nodes or a Redis each process.
    /// `rss` is [`Fleet::rss_each`] at the end of the load.
    pub fn fill(&self, fleet: &Fleet, report: &mut Report, ops: u64, rss: &[Option<u64>]) {
        report.url = fleet.url();
        report.cpu = self.total;
        report.rss_kib = total_rss(rss);
        report.target_cpu_us_per_op = per_op(self.total.target_s, ops);
        report.generator_cpu_us_per_op = per_op(self.total.generator_s, ops);
        if !fleet.detailed() {
            return;
        }
        report.nodes = fleet
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, endpoint)| {
                let pid = fleet.pids.get(i).copied().flatten();
                let cpu_s = self.nodes.get(i).copied().flatten();
                ProcessUse {
                    url: Some(endpoint.url().to_owned()),
                    pid,
                    clients: i < fleet.client_nodes,
                    cpu_s,
                    cpu_us_per_op: per_op(cpu_s, ops),
                    rss_kib: rss.get(i).copied().flatten(),
                }
            })
            .collect();
        report.redis = fleet.redis_pid.map(|pid| ProcessUse {
            url: None,
            pid: Some(pid),
            clients: false,
            cpu_s: self.redis,
            cpu_us_per_op: per_op(self.redis, ops),
            rss_kib: procfs::rss_kib(pid),
        });
        let with_redis = match (self.total.target_s, self.redis) {
            (Some(nodes), Some(redis)) => Some(nodes + redis),
            (nodes, None) if fleet.redis_pid.is_none() => nodes,
            _ => None,
        };
        report.system_cpu_us_per_op = per_op(with_redis, ops);
    }
}

/// The nodes' total memory, when every node's is known.
pub fn total_rss(each: &[Option<u64>]) -> Option<u64> {
    if each.is_empty() { None } else { each.iter().copied().sum() }
}
