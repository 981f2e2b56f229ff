//! Start-up on a durable store: open it, restore the chat it keeps, and log from now on.
//!
//! The order matters and is the same on every start:
//! 1. open the store (refused if another server holds it, or if it is not ours);
//! 2. restore: the newest readable snapshot plus the inputs logged after it;
//! 3. give every restored session its slot back (same `Mcp-Session-Id`);
//! 4. log and apply `Configure` (this start's limits) and `Recover` (every session gets a
//!    fresh stream grace and reconnect grace from now, and timers that fell due while the
//!    server was down fire, e.g. `message.expired`);
//! 5. start the journal: every later input is logged before it is applied.

use std::sync::Arc;
use std::time::Instant;

use chat_core::{Input, Time};
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::state::clock;
use crate::state::hub::Hub;
use crate::state::journal::{self, Cadence, Journal};
use crate::store::sqlite::SqliteStore;
use crate::store::{Record, Store, StoreError, StoreUrl};

/// What start-up did, for its log line.
#[derive(Debug)]
pub struct Started {
    /// The store's log position after start-up.
    pub position: u64,
    /// The snapshot restored.
    pub snapshot: u64,
    /// Inputs replayed after it.
    pub replayed: u64,
    /// Sessions restored.
    pub sessions: usize,
    /// Whether the store was new.
    pub fresh: bool,
    /// From opening the store to ready to serve.
    pub took: std::time::Duration,
    /// Of which: opening the store, restoring the snapshot and replaying the log.
    pub restore: std::time::Duration,
}

/// Opens `config.store` and returns the hub restored from it, journal attached.
/// Every error names the store and what is wrong.
pub fn open(
    config: Arc<ServerConfig>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(Arc<Hub>, Started), String> {
    let started = Instant::now();
    let url = config.store.clone();
    let named = |error: StoreError| format!("store {url}: {error}");
    let mut store: Box<dyn Store> = match &url {
        StoreUrl::Memory => return Err("the memory store keeps nothing to open".into()),
        StoreUrl::Redis(_) => return crate::state::replica::open(config, metrics, shutdown),
        StoreUrl::Sqlite(path) => Box::new(SqliteStore::open(path, config.store_sync).map_err(named)?),
    };
    // Made in any case (it is cheap): a store that turns out empty starts from it.
    let fresh = Hub::fresh_core(&config)?;
    let recovered = journal::recover(store.as_mut(), move || fresh).map_err(named)?;
    let restore = started.elapsed();
    let at = clock::now().as_millis().max(recovered.chat.now().as_millis());
    let hub = Hub::restored(config.clone(), metrics, shutdown, recovered.chat);
    let sessions = hub.sessions().len();
    let slots = started.elapsed();
    let first = [
        Input::Configure { limits: Box::new(config.limits.clone()), registered: config.registered.clone() },
        Input::Recover,
    ];
    let mut records = Vec::with_capacity(first.len());
    for (i, input) in first.iter().enumerate() {
        let bytes = serde_json::to_vec(input).map_err(|e| format!("cannot encode an input: {e}"))?;
        records.push(Record { position: recovered.position + 1 + i as u64, at_ms: at, input: bytes });
    }
    store.append(&records).map_err(named)?;
    hub.apply_logged(Time::from_millis(at), first.into(), false, drop);
    tracing::debug!(
        restore_ms = restore.as_millis() as u64,
        slots_ms = (slots - restore).as_millis() as u64,
        recover_ms = (started.elapsed() - slots).as_millis() as u64,
        "start-up phases"
    );
    let position = recovered.position + records.len() as u64;
    let cadence = Cadence {
        batch: config.journal_batch.max(1),
        every: config.snapshot_every.max(1),
        interval: config.snapshot_interval,
    };
    let journal = Journal::start(hub.clone(), store, position, at, cadence);
    hub.attach_log(crate::state::log::Log::Journal(journal));
    let report = Started {
        position,
        snapshot: recovered.snapshot,
        replayed: recovered.replayed,
        sessions,
        fresh: recovered.fresh,
        took: started.elapsed(),
        restore,
    };
    Ok((hub, report))
}
