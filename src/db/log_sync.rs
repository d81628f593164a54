//! Durable commits on SQLite by group sync. A money-path transaction commits like any other
//! (`synchronous = NORMAL`: its log frames reach the OS, not yet the disk), then waits here until
//! the log file has been synced past its commit. One sync covers every commit made before it
//! began, and it runs after the writer lock is released, so the writer goes on with the next
//! transaction meanwhile; committing with `synchronous = FULL` synced inside the lock, once per
//! transaction. Either way the caller hears of the commit only once it is on disk.
//!
//! Syncing the log file through a descriptor of our own is enough: fsync writes out the file,
//! not one descriptor's writes. A commit no longer in the log was copied into the database file
//! by a checkpoint, which syncs the log before it and the database file after it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::pool::blocking;
use crate::ports::StoreError;

pub(crate) struct LogSync {
    log: PathBuf,
    database: PathBuf,
    /// Durable commits made so far; a commit's number is its place in this count.
    committed: AtomicU64,
    /// The number of commits known synced; held while a sync runs, so callers queue behind it.
    synced: tokio::sync::Mutex<u64>,
}

impl LogSync {
    /// For the SQLite database file at `database` (its write-ahead log is `<database>-wal`).
    pub(crate) fn new(database: &str) -> Self {
        Self {
            log: PathBuf::from(format!("{database}-wal")),
            database: PathBuf::from(database),
            committed: AtomicU64::new(0),
            synced: tokio::sync::Mutex::new(0),
        }
    }

    /// Counts a durable commit, once it has committed; its number, for `synced_through`.
    pub(crate) fn committed(&self) -> u64 {
        self.committed.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Returns once the commit numbered `commit` is on disk: at once if a sync that began after
    /// it has finished, else after the next sync, which this caller runs if no one else is.
    pub(crate) async fn synced_through(&self, commit: u64) -> Result<(), StoreError> {
        let mut synced = self.synced.lock().await;
        if *synced >= commit {
            return Ok(());
        }
        // Every commit counted by now wrote its log frames before it was counted.
        let through = self.committed.load(Ordering::SeqCst);
        blocking(|| self.sync_files()).map_err(|err| StoreError::internal("syncing SQLite's log", err))?;
        *synced = through;
        Ok(())
    }

    fn sync_files(&self) -> std::io::Result<()> {
        match std::fs::File::open(&self.log) {
            Ok(log) => log.sync_data(),
            // No log: every commit is in the database file.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => std::fs::File::open(&self.database)?.sync_data(),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn database_with_log(dir: &tempfile::TempDir) -> String {
        let database = dir.path().join("shop.db").to_string_lossy().into_owned();
        std::fs::write(&database, b"pages").expect("database file");
        std::fs::write(format!("{database}-wal"), b"frames").expect("log file");
        database
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_sync_covers_every_commit_counted_before_it_began() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = LogSync::new(&database_with_log(&dir));
        let (first, second) = (log.committed(), log.committed());
        log.synced_through(first).await.expect("synced");
        assert_eq!(*log.synced.lock().await, second, "the second commit was synced with the first");
        log.synced_through(second).await.expect("already synced");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_made_while_a_sync_runs_waits_for_the_next_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Arc::new(LogSync::new(&database_with_log(&dir)));
        let running = log.synced.lock().await;
        let commit = log.committed();
        let waiting = tokio::spawn({
            let log = log.clone();
            async move { log.synced_through(commit).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "answered before any sync covered its commit");
        drop(running);
        waiting.await.expect("joined").expect("synced");
        assert_eq!(*log.synced.lock().await, commit);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_sync_fails_its_callers_and_counts_nothing_as_synced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = LogSync::new(&dir.path().join("gone").join("shop.db").to_string_lossy());
        let commit = log.committed();
        assert!(log.synced_through(commit).await.is_err());
        assert_eq!(*log.synced.lock().await, 0);
    }
}
