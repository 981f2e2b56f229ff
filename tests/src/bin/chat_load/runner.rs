//! Runs one scenario on each target (floor first, then the server; `--rounds` times,
//! alternating), builds the summary and prints it.

use crate::cli::{Cli, FloorMode, MessagingArgs, Scenario};
use crate::error::{Error, Result};
use crate::events::Delivery;
use crate::messaging::{self, Meeting, Plan};
use crate::procfs::Machine;
use crate::report::{Report, Summary};
use crate::target::{Kind, Target};
use crate::wire::Endpoint;
use crate::{connect, idle, jitter};

/// Runs the scenario of `cli`; `Ok(true)` when every correctness check passed.
pub async fn run(cli: &Cli) -> Result<bool> {
    let machine = Machine::probe();
    let kinds: &[Kind] = match cli.target.floor {
        FloorMode::Compare => &[Kind::Floor, Kind::Server],
        FloorMode::Skip => &[Kind::Server],
        FloorMode::Only => &[Kind::Floor],
    };
    if kinds.contains(&Kind::Server) && cli.target.url.is_none() && cli.target.spawn_server.is_none() {
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

/// Starts (or attaches to) one target, runs the scenario on it and stops it.
async fn measure(cli: &Cli, kind: Kind) -> Result<Report> {
    let target = match kind {
        Kind::Floor => Target::spawn_floor().await?,
        Kind::Server => match (&cli.target.url, &cli.target.spawn_server) {
            (Some(url), _) => Target::external(url, cli.target.server_pid),
            (None, Some(path)) => Target::spawn_server(path, &cli.target.server_args).await?,
            (None, None) => return Err(Error::new("no server to measure")),
        },
    };
    eprintln!("chat-load {}: measuring the {} at {} ...", cli.scenario.name(), kind.label(), target.url);
    let token = if kind == Kind::Server { cli.target.auth_token.as_deref() } else { None };
    let result = match Endpoint::new(&target.url, token, cli.run.max_connections).await {
        Ok(endpoint) => run_on(&endpoint, target.pid, cli).await,
        Err(e) => Err(e),
    };
    target.stop().await;
    result.map_err(|e| e.context(&format!("{} run", kind.label())))
}

/// Runs the scenario against one endpoint.
async fn run_on(endpoint: &Endpoint, pid: Option<u32>, cli: &Cli) -> Result<Report> {
    match &cli.scenario {
        Scenario::Relay(args) => {
            messaging::run(endpoint, pid, &plan(args, Meeting::Roulette, Delivery::Stream), &cli.run).await
        }
        Scenario::ToolsOnly(args) => {
            messaging::run(endpoint, pid, &plan(args, Meeting::Roulette, Delivery::Poll), &cli.run).await
        }
        Scenario::Dm(args) => {
            messaging::run(endpoint, pid, &plan(args, Meeting::Checkin, Delivery::Stream), &cli.run).await
        }
        Scenario::Connect(args) => connect::run(endpoint, pid, args, &cli.run).await,
        Scenario::Idle(args) => idle::run(endpoint, pid, args, &cli.run).await,
        Scenario::FloorServer(_) => Err(Error::new("floor-server is not a load scenario")),
    }
}

fn plan(args: &MessagingArgs, meeting: Meeting, delivery: Delivery) -> Plan {
    // Direct messages wait in the mailbox until acknowledged; room events need not be.
    let default_ack_every = if meeting == Meeting::Checkin { 50 } else { 0 };
    Plan { meeting, delivery, args: args.clone(), default_ack_every }
}

/// The scenario's settings in words.
fn describe(cli: &Cli) -> String {
    let run = &cli.run;
    match &cli.scenario {
        Scenario::Relay(args) => plan(args, Meeting::Roulette, Delivery::Stream).describe(run),
        Scenario::ToolsOnly(args) => plan(args, Meeting::Roulette, Delivery::Poll).describe(run),
        Scenario::Dm(args) => plan(args, Meeting::Checkin, Delivery::Stream).describe(run),
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
