//! `--store sqlite:PATH`: the log and its snapshots in one SQLite file.
//!
//! - **Tables.** `inputs(position, at_ms, input)` is the log, `snapshots(position,
//!   taken_ms, state)` the snapshots, `meta` names the format. Positions are the primary
//!   keys, so a log with a gap or a second writer's rows cannot go unnoticed.
//! - **Write-ahead log (WAL) mode.** Readers (a backup, `sqlite3` for a look) never block
//!   the server, and a commit is one append to the WAL. Group commit happens above this
//!   file: the journal hands [`Store::append`] every input that arrived while the last
//!   commit ran, so one flush covers many requests.
//! - **Sync.** `--store-sync full` (the default) flushes the WAL to the disk at every
//!   commit (`PRAGMA synchronous=FULL`); `normal` only at checkpoints; `off` never.
//! - **One server per file.** A lock on `PATH.lock` (held while the server runs, released
//!   by the OS when it dies, `kill -9` included) refuses a second server on the same file.
//! - **Private.** The file holds resume tokens and message text, so it is created with
//!   mode 0600.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

use super::{Record, Store, StoreError, Sync};

/// The `meta.format` of a store this server reads and writes.
pub const FORMAT: &str = "mcp-chat-store/1";

/// An open SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    db: Connection,
    /// Held for as long as the store is open.
    _lock: File,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`: takes its lock, checks that it is an
    /// intact mcp-chat store, sets WAL mode and `sync`.
    pub fn open(path: &Path, sync: Sync) -> Result<SqliteStore, StoreError> {
        let shown = path.display();
        let lock = lock(path)?;
        let fresh = !path.exists();
        if fresh {
            create_private(path)?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let db = Connection::open_with_flags(path, flags)
            .map_err(|e| StoreError(format!("cannot open {shown}: {}", explain(&e))))?;
        let fail = |e: rusqlite::Error| StoreError(format!("cannot use {shown}: {}", explain(&e)));
        // A file that is not SQLite fails at its first read.
        let tables: Vec<String> = db
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .and_then(|mut q| q.query_map([], |row| row.get(0))?.collect())
            .map_err(fail)?;
        let check: String = db.query_row("PRAGMA quick_check", [], |row| row.get(0)).map_err(fail)?;
        if check != "ok" {
            return Err(StoreError(format!(
                "{shown} is damaged (SQLite integrity check: {check}); restore it from a backup, or move it away to start empty"
            )));
        }
        let journal: String =
            db.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(fail)?;
        if !journal.eq_ignore_ascii_case("wal") {
            return Err(StoreError(format!(
                "cannot use {shown}: it refuses write-ahead-log mode ({journal})"
            )));
        }
        let level = match sync {
            Sync::Full => "FULL",
            Sync::Normal => "NORMAL",
            Sync::Off => "OFF",
        };
        db.execute_batch(&format!("PRAGMA synchronous = {level}; PRAGMA foreign_keys = OFF;"))
            .map_err(fail)?;
        if tables.is_empty() {
            db.execute_batch(&format!(
                "BEGIN;
                 CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE inputs (position INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, input BLOB NOT NULL);
                 CREATE TABLE snapshots (position INTEGER PRIMARY KEY, taken_ms INTEGER NOT NULL, state BLOB NOT NULL);
                 INSERT INTO meta (name, value) VALUES ('format', '{FORMAT}');
                 COMMIT;"
            ))
            .map_err(fail)?;
        } else {
            let format: Option<String> = if tables.iter().any(|t| t == "meta") {
                db.query_row("SELECT value FROM meta WHERE name = 'format'", [], |row| row.get(0))
                    .optional()
                    .map_err(fail)?
            } else {
                None
            };
            match format {
                Some(format) if format == FORMAT => {}
                Some(other) => {
                    return Err(StoreError(format!(
                        "{shown} is an mcp-chat store of another format ({other}; this server reads {FORMAT})"
                    )));
                }
                None => {
                    return Err(StoreError(format!(
                        "{shown} is an SQLite database but not an mcp-chat store (its tables: {}); name another file",
                        tables.join(", ")
                    )));
                }
            }
        }
        Ok(SqliteStore { path: path.to_owned(), db, _lock: lock })
    }

    fn fail(&self, doing: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        let doing = doing.to_owned();
        move |e| StoreError(format!("{doing} {}: {}", self.path.display(), explain(&e)))
    }
}

impl Store for SqliteStore {
    fn snapshots(&mut self) -> Result<Vec<u64>, StoreError> {
        let fail = self.fail("cannot read the snapshots of");
        let mut query =
            self.db.prepare("SELECT position FROM snapshots ORDER BY position DESC").map_err(&fail)?;
        let rows = query.query_map([], |row| row.get::<_, i64>(0)).map_err(&fail)?;
        rows.map(|row| row.map(|p| p.max(0) as u64).map_err(&fail)).collect()
    }

    fn read_snapshot(&mut self, position: u64) -> Result<Vec<u8>, StoreError> {
        let fail = self.fail("cannot read a snapshot of");
        self.db
            .query_row("SELECT state FROM snapshots WHERE position = ?1", params![to_sql(position)], |row| {
                row.get(0)
            })
            .map_err(fail)
    }

    fn read_log(
        &mut self,
        after: u64,
        each: &mut dyn FnMut(Record) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let fail = self.fail("cannot read the log of");
        let mut query = self
            .db
            .prepare("SELECT position, at_ms, input FROM inputs WHERE position > ?1 ORDER BY position")
            .map_err(&fail)?;
        let mut rows = query.query(params![to_sql(after)]).map_err(&fail)?;
        while let Some(row) = rows.next().map_err(&fail)? {
            let position: i64 = row.get(0).map_err(&fail)?;
            let at_ms: i64 = row.get(1).map_err(&fail)?;
            let input: Vec<u8> = row.get(2).map_err(&fail)?;
            each(Record { position: position.max(0) as u64, at_ms: at_ms.max(0) as u64, input })?;
        }
        Ok(())
    }

    fn append(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let path = self.path.display().to_string();
        let fail = |e: rusqlite::Error| StoreError(format!("cannot write to {path}: {}", explain(&e)));
        let tx = self.db.transaction().map_err(fail)?;
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO inputs (position, at_ms, input) VALUES (?1, ?2, ?3)")
                .map_err(fail)?;
            for r in records {
                insert.execute(params![to_sql(r.position), to_sql(r.at_ms), r.input]).map_err(fail)?;
            }
        }
        tx.commit().map_err(fail)
    }

    fn save_snapshot(&mut self, position: u64, taken_ms: u64, state: &[u8]) -> Result<(), StoreError> {
        let path = self.path.display().to_string();
        let fail =
            |e: rusqlite::Error| StoreError(format!("cannot write a snapshot to {path}: {}", explain(&e)));
        let tx = self.db.transaction().map_err(fail)?;
        tx.execute(
            "INSERT OR REPLACE INTO snapshots (position, taken_ms, state) VALUES (?1, ?2, ?3)",
            params![to_sql(position), to_sql(taken_ms), state],
        )
        .map_err(fail)?;
        // Keep this one and the one before (a fallback should this one be unreadable),
        // and the inputs after the older of the two.
        let older: Option<i64> = tx
            .query_row("SELECT position FROM snapshots ORDER BY position DESC LIMIT 1 OFFSET 1", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(fail)?;
        if let Some(older) = older {
            tx.execute("DELETE FROM snapshots WHERE position < ?1", params![older]).map_err(fail)?;
            tx.execute("DELETE FROM inputs WHERE position <= ?1", params![older]).map_err(fail)?;
        }
        tx.commit().map_err(fail)
    }
}

fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An SQLite error in words an operator can act on.
fn explain(error: &rusqlite::Error) -> String {
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => "it is not an SQLite database (or it is damaged)".into(),
        Some(ErrorCode::DatabaseCorrupt) => {
            "it is damaged; restore it from a backup, or move it away to start empty".into()
        }
        Some(ErrorCode::CannotOpen) => "it cannot be opened (does its directory exist?)".into(),
        Some(ErrorCode::ReadOnly) => "it is read-only".into(),
        Some(ErrorCode::DiskFull) => "the disk is full".into(),
        Some(ErrorCode::PermissionDenied) => "permission denied".into(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "it is locked by another program; stop it and try again".into()
        }
        _ => error.to_string(),
    }
}

/// Takes the lock file `PATH.lock`, or says who holds it.
fn lock(path: &Path) -> Result<File, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| StoreError(format!("cannot create the lock file {}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
            let holder = holder.trim();
            let who = if holder.is_empty() { String::new() } else { format!(" (process {holder})") };
            return Err(StoreError(format!(
                "{} is in use by another running mcp-chat server{who}; stop it first, or give this one another --store",
                path.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(StoreError(format!("cannot lock {}: {e}", lock_path.display())));
        }
    }
    let _ = file.set_len(0);
    let _ = write!(file, "{}", std::process::id());
    Ok(file)
}

/// Creates an empty file that only its owner may read.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError(format!("cannot create {}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(position: u64) -> Record {
        Record { position, at_ms: 1000 + position, input: format!("{{\"n\":{position}}}").into_bytes() }
    }

    fn log_of(store: &mut SqliteStore, after: u64) -> Vec<u64> {
        let mut seen = Vec::new();
        store
            .read_log(after, &mut |r| {
                seen.push(r.position);
                Ok(())
            })
            .expect("read");
        seen
    }

    #[test]
    fn appends_snapshots_and_trims_behind_the_older_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chat.db");
        {
            let mut store = SqliteStore::open(&path, Sync::Off).expect("open");
            store.save_snapshot(0, 1, b"s0").expect("snapshot");
            store.append(&[record(1), record(2)]).expect("append");
            store.save_snapshot(2, 2, b"s2").expect("snapshot");
            store.append(&[record(3)]).expect("append");
            store.save_snapshot(3, 3, b"s3").expect("snapshot");
            store.append(&[record(4)]).expect("append");
        }
        let mut store = SqliteStore::open(&path, Sync::Off).expect("reopen");
        assert_eq!(store.snapshots().expect("list"), [3, 2]);
        assert_eq!(store.read_snapshot(2).expect("read"), b"s2");
        assert_eq!(log_of(&mut store, 0), [3, 4], "inputs the older kept snapshot covers are gone");
        assert_eq!(log_of(&mut store, 3), [4]);
        let err = store.append(&[record(4)]).expect_err("a position is written once");
        assert!(err.0.contains("cannot write"), "{err}");
        assert_eq!(log_of(&mut store, 3), [4], "a failed append keeps nothing");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn refuses_a_second_server_a_foreign_database_and_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chat.db");
        let _first = SqliteStore::open(&path, Sync::Off).expect("open");
        let Err(second) = SqliteStore::open(&path, Sync::Off) else { panic!("a second open must fail") };
        assert!(second.0.contains("in use by another running mcp-chat server"), "{second}");

        let foreign = dir.path().join("other.db");
        Connection::open(&foreign).and_then(|c| c.execute_batch("CREATE TABLE t (x);")).expect("foreign db");
        let Err(err) = SqliteStore::open(&foreign, Sync::Off) else { panic!("foreign") };
        assert!(err.0.contains("not an mcp-chat store") && err.0.contains("other.db"), "{err}");

        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![b'x'; 8192]).expect("write");
        let Err(err) = SqliteStore::open(&garbage, Sync::Off) else { panic!("garbage") };
        assert!(err.0.contains("garbage.db") && err.0.contains("not an SQLite database"), "{err}");

        let missing = dir.path().join("no/such/dir/chat.db");
        let Err(err) = SqliteStore::open(&missing, Sync::Off) else { panic!("missing dir") };
        assert!(err.0.contains("no/such/dir"), "{err}");
    }
}
