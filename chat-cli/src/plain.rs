//! Plain line mode: one line in per message or command, one line out per event.
//!
//! For scripts, tests and terminals where a full-screen interface is unwelcome. Output
//! is either IRC-like text (`[12:00:01] <Bob> hi`, `* ` for system lines, `! ` for
//! errors) or, with `--json`, one [`Entry`](crate::app::entry::Entry) object per line
//! (and `info` lines, which are for people, on stderr as text). Input is read once the
//! client is connected. End of input quits (closing the session), as does Ctrl-C.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::app::entry::Entry;
use crate::app::{Action, App, NetEvent, Settings};
use crate::clock::now;
use crate::net::{self, NetConfig};
use crate::signals::QuitSignals;

/// How long quitting may take before we exit anyway.
pub const QUIT_LIMIT: Duration = Duration::from_secs(5);

/// Writes entries as text or JSON lines.
struct Printer {
    json: bool,
    offset_secs: i32,
}

impl Printer {
    fn print(&self, entries: Vec<Entry>) {
        let mut out = std::io::stdout().lock();
        for entry in entries {
            // Help, hints and the like are for people: with --json they go to stderr as
            // text, so stdout carries only typed objects.
            if self.json && matches!(entry, Entry::Info { .. }) {
                if let Some(text) = entry.plain_text(self.offset_secs) {
                    eprintln!("{text}");
                }
                continue;
            }
            let line = if self.json {
                serde_json::to_string(&entry).ok()
            } else {
                entry.plain_text(self.offset_secs)
            };
            if let Some(line) = line {
                let _ = writeln!(out, "{line}");
            }
        }
        let _ = out.flush();
    }
}

/// Reads stdin lines on a plain thread (a blocking read must not hold up the runtime
/// or its shutdown); `None` marks the end of input.
fn stdin_lines() -> mpsc::UnboundedReceiver<Option<String>> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(line) => {
                    if tx.send(Some(line)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });
    rx
}

/// Runs plain mode until the session ends.
pub async fn run(settings: Settings, net: NetConfig, initial_target: Option<String>, json: bool) -> ExitCode {
    let printer = Printer { json, offset_secs: settings.offset_secs };
    let mut app = App::new(settings);
    app.set_line_mode();
    let handle = match net::spawn(net) {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("chat-cli: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (actions, mut events) = (handle.actions, handle.events);
    let mut lines = stdin_lines();
    let mut stdin_open = true;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut quit_deadline: Option<tokio::time::Instant> = None;
    let mut pending_target = initial_target;
    let mut signals = QuitSignals::new();
    loop {
        // Input waits until we are connected (or have failed): lines typed meanwhile
        // are sent then, and an input that ends at once quits after `connected`.
        let ready = app.me().is_some() || app.is_done();
        let out: Vec<Action> = tokio::select! {
            line = lines.recv(), if stdin_open && ready => match line {
                Some(Some(line)) => app.submit(&line, now()),
                _ => {
                    stdin_open = false;
                    app.quit(now())
                }
            },
            event = events.recv() => match event {
                Some(event) => {
                    let mut out = app.on_net(event, now());
                    if app.me().is_some()
                        && let Some(target) = pending_target.take()
                    {
                        out.extend(app.submit(&format!("/to {target}"), now()));
                    }
                    out
                }
                None => {
                    if !app.is_done() {
                        app.on_net(NetEvent::Fatal("the network task stopped unexpectedly".into()), now());
                    }
                    break;
                }
            },
            _ = tick.tick() => app.tick(now()),
            () = signals.recv() => app.quit(now()),
        };
        for action in out {
            if action == Action::Quit {
                quit_deadline.get_or_insert_with(|| tokio::time::Instant::now() + QUIT_LIMIT);
            }
            let _ = actions.send(action);
        }
        printer.print(app.take_emitted());
        if app.is_done() || quit_deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            break;
        }
    }
    printer.print(app.take_emitted());
    match app.failure() {
        Some(message) => {
            eprintln!("chat-cli: {message}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}
