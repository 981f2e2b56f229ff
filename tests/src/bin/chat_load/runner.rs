//! Runs one scenario on each target (floor first, then the server; `--rounds` times,
//! alternating), builds the summary and prints it.

use crate::cli::{Cli, FloorMode, MessagingArgs, Scenario};
use crate::error::{Error, Result};
use crate::events::Delivery;
use crate::fleet::Fleet;
use crate::messaging::{self, Meeting, Plan};
use crate::procfs::Machine;
use crate::report::{Report, Summary};
use crate::target::{Kind, Target};
use crate::wire::Endpoint;
use crate::{connect, idle, jitter};

/// Runs the scenario of `cli`; `Ok(true)` when every correctness check passed.
pub async fn run(cli: &Cli) -> Result<bool> {
    let machine = Machine::probe();
    let kinds: &[Kind] = match (cli.target.floor, cli.target.sessionless) {
        (FloorMode::Only, true) => {
            return Err(Error::new("--sessionless with --floor only: the floor relay speaks only sessions"));
        }
        (_, true) => &[Kind::Server],
        (FloorMode::Compare, false) => &[Kind::Floor, Kind::Server],
        (FloorMode::Skip, false) => &[Kind::Server],
        (FloorMode::Only, false) => &[Kind::Floor],
    };
    if cli.target.sessionless && !matches!(cli.scenario, Scenario::ToolsOnly(_) | Scenario::Dm(_)) {
        return Err(Error::new(format!(
            "--sessionless works with tools-only and dm (they poll wait_for_events); {} needs GET streams",
            cli.scenario.name()
        )));
    }
    if kinds.contains(&Kind::Server) && cli.target.url.is_empty() && cli.target.spawn_server.is_none() {
        return Err(Error::new(
            "no server to measure: give --url URL (a running server) or --spawn-server PATH, or --floor only",
        ));
    }
    if let Some(path) = &cli.target.spawn_server
        && !path.is_file()
    {
        return Err(Error::new(format!(
            "--spawn-server {}: no such file (build it with `cargo build --release -p chat-mcp-http`)",
            path.display()
        )));
    }
    check_nodes(cli)?;
    let settings = describe(cli);
    let before = jitter::probe().await;
    let mut runs = Vec::new();
    for round in 1..=cli.run.rounds.max(1) {
        for &kind in kinds {
            let mut report = measure(cli, kind).await?;
            report.target = Some(kind);
            report.round = round;
            runs.push(report);
        }
    }
    let after = jitter::probe().await;
    let summary = Summary::new(cli.scenario.name(), settings, machine, [before, after], runs);
    if cli.run.json {
        eprint!("{}", summary.table());
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.table());
    }
    Ok(summary.failures.is_empty())
}

/// Checks the node flags against each other.
fn check_nodes(cli: &Cli) -> Result<()> {
    let t = &cli.target;
    if !t.url.is_empty() && !t.server_pid.is_empty() && t.server_pid.len() != t.url.len() {
        return Err(Error::new(format!(
            "{} --server-pid for {} --url: give one pid per URL, in the same order (pid i belongs to url i)",
            t.server_pid.len(),
            t.url.len()
        )));
    }
    let nodes = node_count(cli);
    if t.spawn_server.is_some() && nodes > 1 && t.redis_url.is_none() {
        return Err(Error::new(
            "--nodes above 1 needs --redis-url: nodes with their own memory stores are separate chats",
        ));
    }
    if let Some(k) = t.client_nodes
        && usize::from(k) > nodes
    {
        return Err(Error::new(format!("--client-nodes {k} but only {nodes} node(s)")));
    }
    Ok(())
}

/// How many server nodes the run loads.
fn node_count(cli: &Cli) -> usize {
    if cli.target.url.is_empty() { cli.target.nodes.map_or(1, usize::from) } else { cli.target.url.len() }
}

/// The server processes of one run: the --url servers, or freshly spawned ones.
async fn servers(cli: &Cli) -> Result<Vec<Target>> {
    let t = &cli.target;
    if !t.url.is_empty() {
        return Ok(t
            .url
            .iter()
            .enumerate()
            .map(|(i, url)| Target::external(url, t.server_pid.get(i).copied()))
            .collect());
    }
    let Some(path) = &t.spawn_server else { return Err(Error::new("no server to measure")) };
    let mut extra = Vec::new();
    if let Some(redis) = &t.redis_url {
        extra.extend(["--store".to_owned(), redis.clone()]);
    }
    extra.extend(t.server_args.iter().cloned());
    let mut spawned = Vec::new();
    for _ in 0..node_count(cli) {
        // On failure the nodes already started are killed when `spawned` is dropped.
        spawned.push(Target::spawn_server(path, &extra).await?);
    }
    Ok(spawned)
}

/// Starts (or attaches to) the target's processes, runs the scenario on them and stops
/// them.
async fn measure(cli: &Cli, kind: Kind) -> Result<Report> {
    let targets = match kind {
        Kind::Floor => vec![Target::spawn_floor().await?],
        Kind::Server => servers(cli).await?,
    };
    let urls: Vec<&str> = targets.iter().map(|t| t.url.as_str()).collect();
    eprintln!("chat-load {}: measuring the {} at {} ...", cli.scenario.name(), kind.label(), urls.join(", "));
    let token = if kind == Kind::Server { cli.target.auth_token.as_deref() } else { None };
    let result = async {
        let mut endpoints = Vec::with_capacity(targets.len());
        for target in &targets {
            let endpoint = Endpoint::new(&target.url, token, cli.run.max_connections).await?;
            endpoints.push(if cli.target.sessionless { endpoint.sessionless() } else { endpoint });
        }
        let pids = targets.iter().map(|t| t.pid).collect();
        let fleet = match kind {
            Kind::Floor => Fleet::new(endpoints, pids, None, None),
            Kind::Server => {
                Fleet::new(endpoints, pids, cli.target.client_nodes.map(usize::from), cli.target.redis_pid)
            }
        };
        run_on(&fleet, cli).await
    }
    .await;
    for target in targets {
        target.stop().await;
    }
    result.map_err(|e| e.context(&format!("{} run", kind.label())))
}

/// Runs the scenario against the fleet.
async fn run_on(fleet: &Fleet, cli: &Cli) -> Result<Report> {
    match &cli.scenario {
        Scenario::Relay(args) => {
            messaging::run(fleet, &plan(args, Meeting::Roulette, Delivery::Stream), &cli.run).await
        }
        Scenario::ToolsOnly(args) => {
            messaging::run(fleet, &plan(args, Meeting::Roulette, Delivery::Poll), &cli.run).await
        }
        Scenario::Dm(args) => {
            messaging::run(fleet, &plan(args, Meeting::Checkin, dm_delivery(cli)), &cli.run).await
        }
        Scenario::Connect(args) => connect::run(fleet, args, &cli.run).await,
        Scenario::Idle(args) => idle::run(fleet, args, &cli.run).await,
        Scenario::FloorServer(_) => Err(Error::new("floor-server is not a load scenario")),
    }
}

/// How dm receivers get their messages: the GET stream, or polling without sessions.
fn dm_delivery(cli: &Cli) -> Delivery {
    if cli.target.sessionless { Delivery::Poll } else { Delivery::Stream }
}

fn plan(args: &MessagingArgs, meeting: Meeting, delivery: Delivery) -> Plan {
    // Direct messages wait in the mailbox until acknowledged; room events need not be.
    let default_ack_every = if meeting == Meeting::Checkin { 50 } else { 0 };
    Plan { meeting, delivery, args: args.clone(), default_ack_every }
}

/// The scenario's settings in words.
fn describe(cli: &Cli) -> String {
    let settings = describe_scenario(cli);
    if cli.target.sessionless { format!("MCP 2026-07-28 without sessions, {settings}") } else { settings }
}

fn describe_scenario(cli: &Cli) -> String {
    let run = &cli.run;
    match &cli.scenario {
        Scenario::Relay(args) => plan(args, Meeting::Roulette, Delivery::Stream).describe(run),
        Scenario::ToolsOnly(args) => plan(args, Meeting::Roulette, Delivery::Poll).describe(run),
        Scenario::Dm(args) => plan(args, Meeting::Checkin, dm_delivery(cli)).describe(run),
        Scenario::Connect(args) => format!(
            "{} concurrent openers, sessions {}, {} measured after {} warm-up",
            args.concurrency,
            if args.hold { "held to the end" } else { "closed (DELETE) right after opening" },
            run.duration,
            run.warmup
        ),
        Scenario::Idle(args) => format!(
            "{} sessions with open GET streams{}, held {}",
            args.sessions,
            if args.checkin { ", checked in" } else { "" },
            run.duration
        ),
        Scenario::FloorServer(_) => String::new(),
    }
}
