//! `--store redis://HOST:PORT[/DB]`: the input log as one Redis Stream that several
//! nodes share (see `state/replica.rs` for how nodes use it).
//!
//! Keys, all under `--redis-prefix` (`P`):
//!
//! | key                 | what                                                          |
//! | ------------------- | ------------------------------------------------------------- |
//! | `P:log`             | the stream: one entry per batch of inputs, in apply order     |
//! | `P:position`        | the position of the newest entry (1, 2, 3…, no gaps)          |
//! | `P:snapshots`       | sorted set of the snapshots kept (score = position)           |
//! | `P:snapshot:N`      | hash: the snapshot after entry `N` (`id`, `taken_ms`, `state`) |
//! | `P:snapshot-lock`   | held (a few seconds) by the node writing a snapshot           |
//! | `P:batches`         | hash: each node's newest batch number appended                |
//!
//! An entry has the fields `p` (its position), `n` (the node that proposed it), `b` (that
//! node's batch number, to find the requests waiting for it) and `i` (the inputs, a JSON
//! array). It is appended by a Lua script, so the position and the entry are written
//! together: a reader that sees position 7 after 5 knows it missed one. The script also
//! refuses a batch number the node appended already, so a node whose connection broke
//! before the reply came can append the same batch again without doubling it. The entry id's
//! milliseconds (Redis's clock, never going back within a stream) are the time every
//! replica applies its inputs at.
//!
//! Every call here is synchronous, on a connection of its own thread, with timeouts: a
//! Redis that does not answer is an error after `--redis-timeout`, never a hang.

use std::time::Duration;

use ::redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use ::redis::{Client, Connection, Value};

use crate::store::StoreError;

/// Appends one entry and its position atomically; returns `[position, id]`, or `[0, ""]`
/// if this node's batch was appended already (a retry after a lost reply: appending
/// twice would apply its inputs twice).
const APPEND: &str = r"
local last = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
if tonumber(ARGV[2]) <= last then
  return {0, ''}
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
local p = redis.call('INCR', KEYS[2])
local id = redis.call('XADD', KEYS[1], '*', 'p', p, 'n', ARGV[1], 'b', ARGV[2], 'i', ARGV[3])
return {p, id}
";

/// Writes the first snapshot of a new chat, unless a chat is there already; 1 if written.
const GENESIS: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then
  return 0
end
redis.call('HSET', KEYS[2], 'id', '0-0', 'taken_ms', ARGV[1], 'state', ARGV[2])
redis.call('ZADD', KEYS[1], 0, '0')
redis.call('SET', KEYS[4], 0)
return 1
";

/// Deletes the snapshot lock if this node still holds it.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// How long a node may take to write a snapshot before another may try.
const SNAPSHOT_LOCK: Duration = Duration::from_secs(60);

/// Snapshots kept (the log is trimmed behind the oldest).
const SNAPSHOTS_KEPT: usize = 2;

/// One entry of the shared log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its position: 1, 2, 3…
    pub position: u64,
    /// Its stream id (`ms-seq`).
    pub id: String,
    /// The id's milliseconds: the time its inputs are applied at.
    pub at_ms: u64,
    /// The node that proposed it.
    pub node: u64,
    /// The proposer's batch number.
    pub batch: u64,
    /// The inputs, a JSON array of [`chat_core::Input`].
    pub inputs: Vec<u8>,
}

/// A snapshot kept in Redis.
pub struct Snapshot {
    /// The position of the last entry it covers.
    pub position: u64,
    /// That entry's stream id (`0-0` for the first snapshot of a chat).
    pub id: String,
    /// The core's bytes ([`chat_core::Chat::snapshot`]).
    pub state: Vec<u8>,
}

/// Where a chat's keys are, and how to reach them.
#[derive(Clone)]
pub struct RedisLog {
    client: Client,
    url: String,
    timeout: Duration,
    log: String,
    position: String,
    batches: String,
    snapshots: String,
    lock: String,
    prefix: String,
}

/// A connection to Redis, with the scripts it runs.
pub struct Link {
    connection: Connection,
    keys: RedisLog,
    append: ::redis::Script,
}

impl RedisLog {
    /// The chat under `prefix` in the Redis at `url` (nothing is contacted yet).
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<RedisLog, StoreError> {
        let client = Client::open(url).map_err(|e| StoreError(format!("not a Redis URL ({e})")))?;
        Ok(RedisLog {
            client,
            url: url.to_owned(),
            timeout,
            log: format!("{prefix}:log"),
            position: format!("{prefix}:position"),
            batches: format!("{prefix}:batches"),
            snapshots: format!("{prefix}:snapshots"),
            lock: format!("{prefix}:snapshot-lock"),
            prefix: prefix.to_owned(),
        })
    }

    /// The Redis URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new connection whose every call times out after `--redis-timeout` (plus
    /// `block` for a blocking read).
    pub fn connect(&self, block: Duration) -> Result<Link, StoreError> {
        let connection = self.client.get_connection_with_timeout(self.timeout).map_err(|e| self.error(e))?;
        connection.set_read_timeout(Some(self.timeout + block)).map_err(|e| self.error(e))?;
        connection.set_write_timeout(Some(self.timeout)).map_err(|e| self.error(e))?;
        Ok(Link { connection, keys: self.clone(), append: ::redis::Script::new(APPEND) })
    }

    fn error(&self, error: ::redis::RedisError) -> StoreError {
        StoreError(format!("Redis at {}: {error}", self.url))
    }

    fn snapshot_key(&self, position: u64) -> String {
        format!("{}:snapshot:{position}", self.prefix)
    }
}

impl Link {
    fn error(&self, error: ::redis::RedisError) -> StoreError {
        self.keys.error(error)
    }

    /// Appends one entry (or nothing, if this batch of `node` is in the log already);
    /// returns its position and stream id (`0` if it was there).
    pub fn append(&mut self, node: u64, batch: u64, inputs: &[u8]) -> Result<(u64, String), StoreError> {
        let mut call = self.append.key(&self.keys.log);
        call.key(&self.keys.position).key(&self.keys.batches).arg(node).arg(batch).arg(inputs);
        call.invoke::<(u64, String)>(&mut self.connection).map_err(|e| self.keys.error(e))
    }

    /// The entries after stream id `after`, waiting up to `block` for one to come.
    pub fn read(&mut self, after: &str, block: Duration, count: usize) -> Result<Vec<Entry>, StoreError> {
        let reply: Option<StreamReadReply> = ::redis::cmd("XREAD")
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1))
            .arg("STREAMS")
            .arg(&self.keys.log)
            .arg(after)
            .query(&mut self.connection)
            .map_err(|e| self.error(e))?;
        let ids = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
        ids.map(|id| entry(&id)).collect()
    }

    /// Up to `count` entries after stream id `after`, without waiting (catching up).
    pub fn range(&mut self, after: &str, count: usize) -> Result<Vec<Entry>, StoreError> {
        let reply: StreamRangeReply = ::redis::cmd("XRANGE")
            .arg(&self.keys.log)
            .arg(format!("({after}"))
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query(&mut self.connection)
            .map_err(|e| self.error(e))?;
        reply.ids.iter().map(entry).collect()
    }

    /// Positions of the snapshots kept, newest first.
    pub fn snapshots(&mut self) -> Result<Vec<u64>, StoreError> {
        let kept: Vec<u64> = ::redis::cmd("ZREVRANGEBYSCORE")
            .arg(&self.keys.snapshots)
            .arg("+inf")
            .arg("-inf")
            .query(&mut self.connection)
            .map_err(|e| self.error(e))?;
        Ok(kept)
    }

    /// The snapshot at `position`.
    pub fn read_snapshot(&mut self, position: u64) -> Result<Snapshot, StoreError> {
        let key = self.keys.snapshot_key(position);
        let (id, state): (Option<String>, Option<Vec<u8>>) = ::redis::cmd("HMGET")
            .arg(&key)
            .arg("id")
            .arg("state")
            .query(&mut self.connection)
            .map_err(|e| self.error(e))?;
        match (id, state) {
            (Some(id), Some(state)) => Ok(Snapshot { position, id, state }),
            _ => Err(StoreError(format!("{key} is missing or incomplete"))),
        }
    }

    /// Writes the first snapshot of a new chat if the keys are empty; `false` if a chat
    /// is there (another node made it first).
    pub fn genesis(&mut self, taken_ms: u64, state: &[u8]) -> Result<bool, StoreError> {
        let keys = &self.keys;
        let written: i64 = ::redis::Script::new(GENESIS)
            .key(&keys.snapshots)
            .key(keys.snapshot_key(0))
            .key(&keys.log)
            .key(&keys.position)
            .arg(taken_ms)
            .arg(state)
            .invoke(&mut self.connection)
            .map_err(|e| keys.error(e))?;
        Ok(written == 1)
    }

    /// Whether the log holds anything.
    pub fn has_log(&mut self) -> Result<bool, StoreError> {
        let exists: bool = ::redis::cmd("EXISTS")
            .arg(&self.keys.log)
            .query(&mut self.connection)
            .map_err(|e| self.error(e))?;
        Ok(exists)
    }

    /// Takes the snapshot lock for `node`; `false` if another node holds it.
    pub fn lock_snapshots(&mut self, node: u64) -> Result<bool, StoreError> {
        let ms = u64::try_from(SNAPSHOT_LOCK.as_millis()).unwrap_or(u64::MAX);
        let taken: Option<String> = ::redis::cmd("SET")
            .arg(&self.keys.lock)
            .arg(node)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .query(&mut self.connection)
            .map_err(|e| self.error(e))?;
        Ok(taken.is_some())
    }

    /// Gives the snapshot lock back (if `node` still holds it).
    pub fn unlock_snapshots(&mut self, node: u64) -> Result<(), StoreError> {
        let keys = &self.keys;
        let _: i64 = ::redis::Script::new(UNLOCK)
            .key(&keys.lock)
            .arg(node)
            .invoke(&mut self.connection)
            .map_err(|e| keys.error(e))?;
        Ok(())
    }

    /// Keeps `snapshot`, drops all but the newest [`SNAPSHOTS_KEPT`], and trims the log
    /// behind the oldest one kept.
    pub fn save_snapshot(&mut self, snapshot: &Snapshot, taken_ms: u64) -> Result<(), StoreError> {
        let key = self.keys.snapshot_key(snapshot.position);
        ::redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(&key)
            .arg("id")
            .arg(&snapshot.id)
            .arg("taken_ms")
            .arg(taken_ms)
            .arg("state")
            .arg(&snapshot.state)
            .ignore()
            .cmd("ZADD")
            .arg(&self.keys.snapshots)
            .arg(snapshot.position)
            .arg(snapshot.position)
            .ignore()
            .exec(&mut self.connection)
            .map_err(|e| self.error(e))?;
        let kept = self.snapshots()?;
        let Some(&oldest) = kept.get(SNAPSHOTS_KEPT - 1) else { return Ok(()) };
        let oldest_id = self.read_snapshot_id(oldest)?;
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        for &old in kept.iter().skip(SNAPSHOTS_KEPT) {
            pipe.cmd("DEL").arg(self.keys.snapshot_key(old)).ignore();
            pipe.cmd("ZREM").arg(&self.keys.snapshots).arg(old).ignore();
        }
        if oldest_id != "0-0" {
            pipe.cmd("XTRIM").arg(&self.keys.log).arg("MINID").arg(&oldest_id).ignore();
        }
        pipe.exec(&mut self.connection).map_err(|e| self.error(e))
    }

    fn read_snapshot_id(&mut self, position: u64) -> Result<String, StoreError> {
        let id: Option<String> = ::redis::cmd("HGET")
            .arg(self.keys.snapshot_key(position))
            .arg("id")
            .query(&mut self.connection)
            .map_err(|e| self.error(e))?;
        id.ok_or_else(|| StoreError(format!("snapshot {position} has no id")))
    }
}

/// An entry as read back; anything malformed names the entry.
fn entry(raw: &StreamId) -> Result<Entry, StoreError> {
    let bad = |what: &str| StoreError(format!("log entry {} is damaged ({what})", raw.id));
    let bytes = |name: &str| match raw.map.get(name) {
        Some(Value::BulkString(bytes)) => Ok(bytes.as_slice()),
        _ => Err(bad(&format!("no field {name}"))),
    };
    let number = |name: &str| -> Result<u64, StoreError> {
        std::str::from_utf8(bytes(name)?)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| bad(&format!("field {name} is not a number")))
    };
    let at_ms = raw.id.split_once('-').and_then(|(ms, _)| ms.parse().ok()).ok_or_else(|| bad("its id"))?;
    Ok(Entry {
        position: number("p")?,
        id: raw.id.clone(),
        at_ms,
        node: number("n")?,
        batch: number("b")?,
        inputs: bytes("i")?.to_vec(),
    })
}
