//! `Writes`: several writes that belong together, and the events they cause, sent as ONE
//! statement on PostgreSQL (data-modifying CTEs) and run one after another on SQLite, inside the
//! one blocking call that SQLite work gets anyway. A service uses it for the write step of its
//! script, so that a change costs one round trip whatever it touches.
//!
//! PostgreSQL runs every member of one statement on the same snapshot: members must touch
//! different rows, and none may depend on another's effect. Each member's rows-affected count
//! comes back, so a conditional member (`UPDATE … WHERE available >= n`) can refuse the whole
//! change by rolling the transaction back; or, for a write the change cannot stand without
//! (`require`), the statement itself fails, so that it needs no transaction.

use std::sync::Arc;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::sql_types::{Array, BigInt, Text, Timestamp};
use diesel::{QueryResult, SqliteConnection};
use diesel_async::RunQueryDsl;

use super::outbox::OutboxRow;
use super::pool::{Backend, Conn, Queue};
use super::store_error;
use crate::ports::{Event, EventBus, StoreError, StoreResult};

/// A write statement that runs on both backends.
pub trait Write: Send + Sync + 'static {
    fn postgres(&self) -> &dyn QueryFragment<Pg>;
    fn run_sqlite(self: Box<Self>, conn: &mut SqliteConnection) -> QueryResult<usize>;
}

impl<T> Write for T
where
    T: QueryFragment<Pg> + ExecuteDsl<SqliteConnection> + Send + Sync + 'static,
{
    fn postgres(&self) -> &dyn QueryFragment<Pg> {
        self
    }

    fn run_sqlite(self: Box<Self>, conn: &mut SqliteConnection) -> QueryResult<usize> {
        ExecuteDsl::execute(*self, conn)
    }
}

/// The constraint named by `refuse_change()`: PostgreSQL refused a change whose required write changed nothing.
const REFUSED: &str = "change_refused";

/// Writes and their events. The events are written (or published at commit) only if the first
/// write changed a row: the first write is the change the events announce.
pub struct Writes {
    /// Each write, and whether the change stands only if it changes a row (`require`).
    writes: Vec<(Box<dyn Write>, bool)>,
    events: Vec<OutboxRow>,
    at_commit: Vec<(Arc<dyn EventBus>, Event)>,
    queues: Vec<Queue>,
}

impl Writes {
    pub fn new(first: impl Write) -> Self {
        Self::of(Box::new(first))
    }

    pub fn of(first: Box<dyn Write>) -> Self {
        Self { writes: vec![(first, false)], events: Vec::new(), at_commit: Vec::new(), queues: Vec::new() }
    }

    /// Makes the change stand only if the write added last changes a row: otherwise running it
    /// fails with `StoreError::Refused` and nothing of it stays. On PostgreSQL the statement
    /// fails, so a change sent alone needs no transaction; on SQLite the error must roll back the
    /// transaction it runs in.
    pub fn require(mut self) -> Self {
        if let Some((_, required)) = self.writes.last_mut() {
            *required = true;
        }
        self
    }

    /// The writes in order, as one change; `None` when there are none.
    pub fn each<W: Write>(writes: impl IntoIterator<Item = W>) -> Option<Self> {
        let mut writes = writes.into_iter();
        let first = Self::new(writes.next()?);
        Some(writes.fold(first, Self::and))
    }

    pub fn and(self, write: impl Write) -> Self {
        self.and_boxed(Box::new(write))
    }

    pub fn and_boxed(mut self, write: Box<dyn Write>) -> Self {
        self.writes.push((write, false));
        self
    }

    /// Notes that these writes give `queue` work (see `Conn::queued`).
    pub fn wakes(mut self, queue: Queue) -> Self {
        self.queues.push(queue);
        self
    }

    pub fn event(mut self, event: OutboxRow) -> Self {
        self.events.push(event);
        self
    }

    /// An event published on `bus` once these writes commit (by the pool, whoever waits for
    /// them), not kept in the outbox: for events whose readers would not outlive this process.
    pub fn publish_at_commit(mut self, bus: Arc<dyn EventBus>, event: Event) -> Self {
        self.at_commit.push((bus, event));
        self
    }

    /// Runs them; returns the rows each write changed, in order.
    pub async fn run(self, conn: &mut Conn<'_>, operation: &'static str) -> StoreResult<Vec<usize>> {
        let mut counts = Self::run_together(vec![self], conn, operation).await?;
        Ok(counts.pop().unwrap_or_default())
    }

    /// Runs several independent changes (each touching rows no other one touches) in one go:
    /// one statement on PostgreSQL, one after another on SQLite. Returns each change's counts.
    pub async fn run_together(
        mut changes: Vec<Writes>,
        conn: &mut Conn<'_>,
        operation: &'static str,
    ) -> StoreResult<Vec<Vec<usize>>> {
        // Per change, what follows its commit: catalog events name products whose cached reads
        // go stale, and events to publish.
        let mut after_commit: Vec<(Vec<Event>, Vec<_>)> = Vec::with_capacity(changes.len());
        for change in &mut changes {
            if !change.events.is_empty() {
                conn.queued(Queue::Outbox);
            }
            for queue in &change.queues {
                conn.queued(*queue);
            }
            let catalog = change.events.iter().filter_map(OutboxRow::catalog_event).collect();
            after_commit.push((catalog, std::mem::take(&mut change.at_commit)));
        }
        let counts = match &mut conn.backend {
            Backend::Postgres(pg) => {
                let counts: Vec<i64> = RunQueryDsl::get_result(PgWrites { changes: &changes }, &mut **pg)
                    .await
                    .map_err(|err| match &err {
                        diesel::result::Error::DatabaseError(_, info) if info.constraint_name() == Some(REFUSED) => {
                            StoreError::Refused(operation)
                        }
                        _ => store_error(operation)(err),
                    })?;
                let mut counts = counts.into_iter().map(|n| usize::try_from(n).unwrap_or_default());
                changes.iter().map(|change| counts.by_ref().take(change.writes.len()).collect()).collect()
            }
            Backend::Sqlite(sqlite) => {
                let counts = sqlite
                    .spawn_blocking(move |sync| {
                        changes.into_iter().map(|change| change.run_sqlite(sync)).collect::<QueryResult<Vec<_>>>()
                    })
                    .await
                    .map_err(store_error(operation))?;
                // A refused change stopped at its required write; the error rolls back what ran.
                counts.into_iter().collect::<Option<Vec<_>>>().ok_or(StoreError::Refused(operation))?
            }
        };
        // A change's events, and so the changes they name, were written only if its first write was.
        for ((catalog, at_commit), counts) in after_commit.into_iter().zip(&counts) {
            if counts.as_slice().first().is_some_and(|&n| n > 0) {
                for event in catalog {
                    conn.catalog_changed(event);
                }
                for (bus, event) in at_commit {
                    conn.publish_at_commit(bus, event);
                }
            }
        }
        Ok(counts)
    }

    /// The rows each write changed; `None` when a required one changed none (the rest not run).
    fn run_sqlite(self, sync: &mut SqliteConnection) -> QueryResult<Option<Vec<usize>>> {
        let mut counts = Vec::with_capacity(self.writes.len());
        for (write, required) in self.writes {
            let count = write.run_sqlite(sync)?;
            if required && count == 0 {
                return Ok(None);
            }
            counts.push(count);
        }
        if matches!(counts.as_slice(), [first, ..] if *first > 0) {
            // One row at a time: diesel wraps a multi-row INSERT on SQLite in a savepoint, two
            // statements more than the one or two events cost.
            for event in self.events {
                let insert = diesel::insert_into(super::schema::outbox::table).values(event);
                ExecuteDsl::execute(insert, sync)?;
            }
        }
        Ok(Some(counts))
    }
}

/// `WITH w0 AS (… RETURNING 1), …, e0 AS (INSERT INTO outbox … WHERE EXISTS w0) SELECT
/// ARRAY[count(w0), …]`: every write and event of the changes in one statement, each change's
/// events on its own first write.
struct PgWrites<'a> {
    changes: &'a [Writes],
}

impl QueryFragment<Pg> for PgWrites<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH ");
        let (mut written, mut announced) = (0, 0);
        for change in self.changes {
            let first = written;
            for (write, _) in &change.writes {
                if written > 0 {
                    out.push_sql(", ");
                }
                out.push_sql(&format!("w{written} AS ("));
                write.postgres().walk_ast(out.reborrow())?;
                out.push_sql(" RETURNING 1)");
                written += 1;
            }
            for event in &change.events {
                out.push_sql(&format!(", e{announced} AS (INSERT INTO outbox (topic, payload, created_at) SELECT "));
                out.push_bind_param::<Text, _>(&event.topic)?;
                out.push_sql(", ");
                out.push_bind_param::<Text, _>(&event.payload)?;
                out.push_sql(", ");
                out.push_bind_param::<Timestamp, _>(&event.created_at)?;
                out.push_sql(&format!(" WHERE EXISTS (SELECT 1 FROM w{first}))"));
                announced += 1;
            }
        }
        out.push_sql(" SELECT ARRAY[");
        let required = self.changes.iter().flat_map(|change| change.writes.iter().map(|(_, required)| *required));
        for (i, required) in required.enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            if required {
                out.push_sql(&format!(
                    "(SELECT CASE WHEN count(*) = 0 THEN refuse_change() ELSE count(*) END FROM w{i})"
                ));
            } else {
                out.push_sql(&format!("(SELECT count(*) FROM w{i})"));
            }
        }
        out.push_sql("]::bigint[]");
        Ok(())
    }

    /// The SQL text names the shape (which writes, how many events): it is the cache key. One
    /// change, or two (an order with its cart), repeats a few shapes, and preparing such a
    /// statement afresh cost more than the transaction it replaced; rounds of many changes
    /// rarely repeat a shape, so they are not kept.
    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(self.changes.len() <= 2)
    }
}

impl QueryId for PgWrites<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for PgWrites<'_> {
    type SqlType = Array<BigInt>;
}
