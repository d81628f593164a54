//! One pool type for both backends, and the `on_conn!` macro that runs one diesel-async
//! expression on whichever connection the pool handed out, so that every query is written once
//! and type-checked against both PostgreSQL and SQLite.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use deadpool::managed::Manager;
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::{ConnectionResult, SqliteConnection};
use diesel_async::pooled_connection::deadpool::{Object, Pool as DeadPool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, PoolError, RecyclingMethod};
use diesel_async::sync_connection_wrapper::{SpawnBlocking, SyncConnectionWrapper};
use diesel_async::{
    AnsiTransactionManager, AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection,
    TransactionManager,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::Notify;

use super::log_sync::LogSync;
use crate::ports::{Event, EventBus, StoreError};

/// A SQLite connection whose statements run right where they are called. The pool runs a whole
/// transaction (or read) in one blocking call (`blocking`), instead of handing every statement
/// to another thread while the writer is held.
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, Inline>;

/// Runs the wrapper's "blocking" work on the calling thread: the caller is already off the
/// async workers (see `blocking`).
pub struct Inline;

impl SpawnBlocking for Inline {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        futures::future::ready(Ok(task())).boxed()
    }

    fn get_runtime() -> Self {
        Inline
    }
}

/// Runs SQLite work (which blocks) in one hand-off: the worker thread gives its async work to
/// another thread for the duration. A current-thread runtime (a CLI command) just runs it. The
/// work's futures are ready at once (`Inline`), so `futures::executor::block_on` completes them.
/// The SQLite writer connection, replaced first if a transaction panicked while holding it (the
/// connection may still be inside that transaction).
fn lock_writer<'a>(pool: &DeadPool<SqliteConn>, writer: &'a Mutex<SqliteConn>) -> MutexGuard<'a, SqliteConn> {
    writer.lock().unwrap_or_else(|poisoned| {
        let mut conn = poisoned.into_inner();
        match futures::executor::block_on(pool.manager().create()) {
            Ok(fresh) => *conn = fresh,
            Err(err) => tracing::error!(error = %err, "replacing the SQLite writer connection"),
        }
        writer.clear_poison();
        conn
    })
}

/// `AsyncConnection::transaction`, begun with `BEGIN IMMEDIATE`: the write lock is taken at the
/// start (waiting out `busy_timeout` if another connection writes), not when the first write
/// comes after reads, where SQLite fails at once ("database is locked") if anyone committed
/// since those reads.
async fn immediate_transaction<T, E, F>(conn: &mut SqliteConn, f: F) -> Result<T, E>
where
    for<'r> F: AsyncFnOnce(&'r mut SqliteConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    let begin = async |conn: &mut SqliteConn| {
        conn.spawn_blocking(|inner| {
            diesel::connection::AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")
        })
        .await
    };
    transaction_begun_by(conn, begin, f).await
}

/// A PostgreSQL transaction. One off the money path commits without waiting for its log to
/// reach the disk (`synchronous_commit = off`, set in the BEGIN's own round trip): like SQLite's
/// `synchronous = NORMAL`, a crash may lose the last such commits, never part of one, and a
/// durable commit flushes every commit before it. A reservation's commit then no longer holds a
/// hot product's stock row while the disk syncs.
async fn postgres_transaction<T, E, F>(conn: &mut AsyncPgConnection, durable: bool, f: F) -> Result<T, E>
where
    for<'r> F: AsyncFnOnce(&'r mut AsyncPgConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    let sql = if durable { "BEGIN" } else { "BEGIN; SET LOCAL synchronous_commit TO OFF" };
    let begin = async |conn: &mut AsyncPgConnection| AnsiTransactionManager::begin_transaction_sql(conn, sql).await;
    transaction_begun_by(conn, begin, f).await
}

/// `AsyncConnection::transaction`, with the transaction opened by `begin`.
async fn transaction_begun_by<C, T, E, F>(
    conn: &mut C,
    begin: impl AsyncFnOnce(&mut C) -> diesel::QueryResult<()>,
    f: F,
) -> Result<T, E>
where
    C: AsyncConnection,
    for<'r> F: AsyncFnOnce(&'r mut C) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    type Manager<C> = <C as AsyncConnection>::TransactionManager;
    begin(conn).await?;
    match f(conn).await {
        Ok(value) => {
            Manager::<C>::commit_transaction(conn).await?;
            Ok(value)
        }
        Err(refused) => match Manager::<C>::rollback_transaction(conn).await {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(refused),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

pub(super) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(work),
        _ => work(),
    }
}

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// The PostgreSQL advisory lock migrations run under (any number only this program uses: "SHOPMIG").
const MIGRATION_LOCK: i64 = 0x0053_484f_504d_4947;

/// Called once per statement sent to the store, with the scope it was sent in (see `scoped`):
/// feeds the `shop_store_statements_total` metric.
pub type StatementObserver = Arc<dyn Fn(&'static str) + Send + Sync>;

tokio::task_local! {
    static STATEMENT_SCOPE: &'static str;
}

/// Runs `work` with its statements counted under `scope` (a GraphQL root field, a worker).
pub async fn scoped<F: Future>(scope: &'static str, work: F) -> F::Output {
    STATEMENT_SCOPE.scope(scope, work).await
}

/// The scope of the running task's statements; `other` outside any.
pub fn statement_scope() -> &'static str {
    STATEMENT_SCOPE.try_with(|scope| *scope).unwrap_or("other")
}

/// Background work that a committed write hands over: the pool wakes its worker after commit,
/// so no service has to remember to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Outbox = 1,
    Notifications = 2,
    /// A saga was leased for charging or refunding: recovery must look when the lease ends.
    SagaLeases = 4,
    /// An order sold units: the stock-sales worker takes them out of reserved.
    StockSales = 8,
}

impl Queue {
    const ALL: [Queue; 4] = [Queue::Outbox, Queue::Notifications, Queue::SagaLeases, Queue::StockSales];
}

/// What committed writes set off: one wake-up per queue, shared by the pool (which wakes) and
/// the workers (which wait), and the listener told of products whose catalog data changed.
#[derive(Default)]
pub struct Wakers {
    outbox: Notify,
    notifications: Notify,
    saga_leases: Notify,
    stock_sales: Notify,
    catalog_changed: OnceLock<CatalogChanged>,
}

/// Told, after commit, of each catalog or stock event the committed work wrote.
pub type CatalogChanged = Box<dyn Fn(&Event) + Send + Sync>;

impl Wakers {
    pub fn of(&self, queue: Queue) -> &Notify {
        match queue {
            Queue::Outbox => &self.outbox,
            Queue::Notifications => &self.notifications,
            Queue::SagaLeases => &self.saga_leases,
            Queue::StockSales => &self.stock_sales,
        }
    }

    /// Sets the one listener of catalog changes (the catalog read cache); later calls are ignored.
    pub fn on_catalog_changed(&self, listener: CatalogChanged) {
        let _ = self.catalog_changed.set(listener);
    }

    fn committed(&self, work: AfterCommit) {
        let queued = work.queued.into_inner();
        for queue in Queue::ALL {
            if queued & queue as u8 != 0 {
                self.of(queue).notify_one();
            }
        }
        let catalog = work.catalog.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(listener) = self.catalog_changed.get() {
            for event in &catalog {
                listener(event);
            }
        }
        let published = work.published.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !published.is_empty() {
            // In a task of its own, so that publishing never holds up the committer.
            tokio::spawn(async move {
                for (bus, event) in published {
                    if let Err(err) = bus.publish(std::slice::from_ref(&event)).await {
                        tracing::warn!(error = %err, topic = %event.topic, "publishing a committed change failed");
                    }
                }
            });
        }
    }
}

/// What one unit of work's writes leave for after its commit.
#[derive(Default)]
struct AfterCommit {
    queued: AtomicU8,
    /// The catalog and stock events written.
    catalog: std::sync::Mutex<Vec<Event>>,
    /// Events to publish once committed, each with its bus.
    published: std::sync::Mutex<Vec<(Arc<dyn EventBus>, Event)>>,
}

/// A borrowed connection of either backend, and what its writes leave for after commit. Repository
/// functions take `&mut Conn` so that they compose inside a transaction as well as on a plain
/// pooled connection.
pub struct Conn<'a> {
    pub backend: Backend<'a>,
    after_commit: &'a AfterCommit,
}

pub enum Backend<'a> {
    Postgres(&'a mut AsyncPgConnection),
    Sqlite(&'a mut SqliteConn),
}

impl Conn<'_> {
    /// Notes that this write gave `queue` work; its worker wakes once the write is committed.
    pub fn queued(&mut self, queue: Queue) {
        self.after_commit.queued.fetch_or(queue as u8, Ordering::Relaxed);
    }

    /// Notes a catalog event this work wrote: cached reads of its products are dropped once the
    /// work is committed.
    pub fn catalog_changed(&mut self, event: Event) {
        self.after_commit.catalog.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(event);
    }

    /// Notes an event to publish on `bus` once this work is committed.
    pub fn publish_at_commit(&mut self, bus: Arc<dyn EventBus>, event: Event) {
        self.after_commit.published.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((bus, event));
    }
}

/// Runs `$body` with `$c` bound to the concrete connection inside a `&mut Conn`. UPDATEs end in
/// `.prepared()` (see `prepared`): diesel alone would prepare them afresh on every call.
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match &mut $conn.backend {
            $crate::db::pool::Backend::Postgres(inner) => {
                let $c: &mut ::diesel_async::AsyncPgConnection = &mut **inner;
                $body
            }
            $crate::db::pool::Backend::Sqlite(inner) => {
                let $c: &mut $crate::db::pool::SqliteConn = &mut **inner;
                $body
            }
        }
    };
}
pub(crate) use on_conn;

/// Executes an owned write statement built by `$stmt`. Multi-row INSERTs (with ON CONFLICT) only
/// compile for SQLite through diesel's synchronous connection, so the SQLite arm runs the very
/// same statement on the wrapper's connection. On PostgreSQL the statement's preparation is
/// cached (see `prepared`).
macro_rules! execute_batch {
    ($conn:expr, $stmt:expr) => {
        match &mut $conn.backend {
            $crate::db::pool::Backend::Postgres(inner) => {
                ::diesel_async::RunQueryDsl::execute($crate::db::prepared::Prepared($stmt), &mut **inner).await
            }
            $crate::db::pool::Backend::Sqlite(inner) => {
                let stmt = $stmt;
                inner.spawn_blocking(move |sync| ::diesel::RunQueryDsl::execute(stmt, sync)).await
            }
        }
    };
}
pub(crate) use execute_batch;

#[derive(Clone)]
pub struct Pool {
    backend: Backends,
    wakers: Arc<Wakers>,
}

#[derive(Clone)]
enum Backends {
    Postgres(DeadPool<AsyncPgConnection>),
    /// SQLite allows one writer at a time: every transaction runs on the one `writer`
    /// connection, so that two never both start reading and then fail to upgrade to a write
    /// lock (SQLITE_BUSY). Its lock is taken off the async workers (in `blocking`): a fair async
    /// lock hands the writer to the next waiting task, which then holds it until a worker gets
    /// round to running it.
    Sqlite {
        pool: DeadPool<SqliteConn>,
        writer: Arc<std::sync::Mutex<SqliteConn>>,
        /// Makes the money path's commits durable (`Pool::durable_transaction`).
        log: Arc<LogSync>,
    },
}

impl Pool {
    /// Opens a pool for `database_url` (`postgres://…` or a SQLite file path) and migrates it.
    pub async fn open(database_url: &str, max_size: usize, observer: StatementObserver) -> Result<Self, StoreError> {
        let backend = if is_postgres_url(database_url) {
            let manager = AsyncDieselConnectionManager::new_with_config(
                database_url,
                manager_config(observer, |conn| prepare_postgres(conn).boxed()),
            );
            Backends::Postgres(build_pool(manager, max_size)?)
        } else {
            let manager = AsyncDieselConnectionManager::new_with_config(
                database_url,
                manager_config(observer, |conn| prepare_sqlite(conn).boxed()),
            );
            // One more than asked: the writer leaves the pool for good.
            let pool = build_pool(manager, max_size + 1)?;
            let writer = Object::take(checkout(&pool).await?);
            let log = Arc::new(LogSync::new(database_url));
            Backends::Sqlite { pool, writer: Arc::new(std::sync::Mutex::new(writer)), log }
        };
        let pool = Pool { backend, wakers: Arc::default() };
        pool.migrate(database_url).await?;
        Ok(pool)
    }

    /// The wake-ups of the queues this pool's writes feed.
    pub fn wakers(&self) -> &Arc<Wakers> {
        &self.wakers
    }

    /// Runs pending migrations on a dedicated connection, under a lock (PostgreSQL: an advisory
    /// lock; SQLite: a lock file beside the database), so that instances starting together do
    /// not migrate at once. The harness blocks on the runtime, which
    /// is only allowed off the async worker threads.
    async fn migrate(&self, database_url: &str) -> Result<(), StoreError> {
        let url = database_url.to_owned();
        let outcome = match &self.backend {
            Backends::Postgres(_) => {
                let mut conn = AsyncPgConnection::establish(&url)
                    .await
                    .map_err(|err| StoreError::internal("connecting to the store", err))?;
                // Instances starting together take turns; the lock goes with the connection.
                conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
                    .await
                    .map_err(|err| StoreError::internal("waiting for the migration lock", err))?;
                tokio::task::spawn_blocking(move || {
                    AsyncMigrationHarness::new(conn).run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ())
                })
                .await
            }
            Backends::Sqlite { .. } => {
                let conn = SqliteConn::establish(&url)
                    .await
                    .map_err(|err| StoreError::internal("connecting to the store", err))?;
                let conn =
                    prepare_sqlite(conn).await.map_err(|err| StoreError::internal("connecting to the store", err))?;
                tokio::task::spawn_blocking(move || {
                    // Processes opening one file together (a server and `shop migrate`) take turns.
                    let lock = std::fs::File::create(format!("{url}.migration-lock"))?;
                    lock.lock()?;
                    AsyncMigrationHarness::new(conn).run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ())
                })
                .await
            }
        };
        outcome
            .map_err(|join| StoreError::internal("migrations", join))?
            .map_err(|err| StoreError::internal("migrations", std::io::Error::other(err.to_string())))
    }

    /// One round trip to the store, for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.with_conn(async |c| {
            on_conn!(c, conn => conn.batch_execute("SELECT 1").await)
                .map_err(|err| StoreError::internal("pinging the store", err))
        })
        .await
    }

    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backends::Postgres(_) => "postgres",
            Backends::Sqlite { .. } => "sqlite",
        }
    }

    /// Runs `f` on a pooled connection outside any transaction.
    pub async fn with_conn<T, E, F>(&self, f: F) -> Result<T, E>
    where
        for<'r, 's> F:
            AsyncFnOnce(&'r mut Conn<'s>) -> Result<T, E> + AsyncFunc<&'r mut Conn<'s>, Result<T, E>, Fut: Send> + Send,
        T: Send,
        E: From<StoreError> + Send,
    {
        let after_commit = AfterCommit::default();
        let outcome = match &self.backend {
            Backends::Postgres(pool) => {
                let mut obj = checkout(pool).await?;
                f(&mut Conn { backend: Backend::Postgres(&mut obj), after_commit: &after_commit }).await
            }
            Backends::Sqlite { pool, .. } => {
                let mut obj = checkout(pool).await?;
                blocking(|| {
                    futures::executor::block_on(f(&mut Conn {
                        backend: Backend::Sqlite(&mut obj),
                        after_commit: &after_commit,
                    }))
                })
            }
        };
        self.wakers.committed(after_commit);
        outcome
    }

    /// Runs `f` in one transaction: committed when it returns Ok, rolled back on Err (a store
    /// error, or a domain error that refuses the change). The queues its writes fed are woken
    /// after the commit. Off the money path, its commit does not wait for the disk.
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        for<'r, 's> F:
            AsyncFnOnce(&'r mut Conn<'s>) -> Result<T, E> + AsyncFunc<&'r mut Conn<'s>, Result<T, E>, Fut: Send> + Send,
        T: Send,
        E: From<StoreError> + From<diesel::result::Error> + Send,
    {
        self.run_transaction(f, false).await
    }

    /// A transaction that must survive a power cut once committed: the money path (a payment
    /// claimed before the gateway is called, an order made after it). PostgreSQL commits it
    /// with `synchronous_commit` on (other transactions turn it off); SQLite, which otherwise
    /// syncs its log only at checkpoints (`synchronous = NORMAL`), returns once a sync of the
    /// log has covered this commit (`LogSync`: one sync for all the durable commits waiting,
    /// outside the writer lock).
    pub async fn durable_transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        for<'r, 's> F:
            AsyncFnOnce(&'r mut Conn<'s>) -> Result<T, E> + AsyncFunc<&'r mut Conn<'s>, Result<T, E>, Fut: Send> + Send,
        T: Send,
        E: From<StoreError> + From<diesel::result::Error> + Send,
    {
        self.run_transaction(f, true).await
    }

    async fn run_transaction<T, E, F>(&self, f: F, durable: bool) -> Result<T, E>
    where
        for<'r, 's> F:
            AsyncFnOnce(&'r mut Conn<'s>) -> Result<T, E> + AsyncFunc<&'r mut Conn<'s>, Result<T, E>, Fut: Send> + Send,
        T: Send,
        E: From<StoreError> + From<diesel::result::Error> + Send,
    {
        let after_commit = AfterCommit::default();
        let (value, durable_commit) = match &self.backend {
            Backends::Postgres(pool) => {
                let mut obj = checkout(pool).await?;
                let value = postgres_transaction(&mut obj, durable, async |c| {
                    f(&mut Conn { backend: Backend::Postgres(c), after_commit: &after_commit }).await
                })
                .await?;
                (value, None)
            }
            Backends::Sqlite { pool, writer, log } => blocking(|| {
                let mut conn = lock_writer(pool, writer);
                futures::executor::block_on(immediate_transaction(&mut conn, async |c| {
                    f(&mut Conn { backend: Backend::Sqlite(c), after_commit: &after_commit }).await
                }))
                .map(|value| (value, durable.then(|| (log, log.committed()))))
            })?,
        };
        let synced = match durable_commit {
            Some((log, commit)) => log.synced_through(commit).await,
            None => Ok(()),
        };
        // Committed, synced or not: what follows a commit follows this one.
        self.wakers.committed(after_commit);
        synced?;
        Ok(value)
    }

    /// Runs one statement (`f` sends no more) where writes go: on SQLite the writer connection,
    /// without a transaction of its own (one statement is atomic by itself), so that it neither
    /// races the writer's transactions nor pays a BEGIN and a COMMIT; on PostgreSQL any connection.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        for<'r, 's> F:
            AsyncFnOnce(&'r mut Conn<'s>) -> Result<T, E> + AsyncFunc<&'r mut Conn<'s>, Result<T, E>, Fut: Send> + Send,
        T: Send,
        E: From<StoreError> + Send,
    {
        let (pool, writer) = match &self.backend {
            Backends::Postgres(_) => return self.with_conn(f).await,
            Backends::Sqlite { pool, writer, .. } => (pool, writer),
        };
        let after_commit = AfterCommit::default();
        let outcome = blocking(|| {
            let mut conn = lock_writer(pool, writer);
            futures::executor::block_on(f(&mut Conn {
                backend: Backend::Sqlite(&mut conn),
                after_commit: &after_commit,
            }))
        });
        if outcome.is_ok() {
            self.wakers.committed(after_commit);
        }
        outcome
    }

    /// Runs `f` atomically where that costs nothing extra: on PostgreSQL as it is (each of its
    /// statements is atomic by itself), on SQLite in a transaction. For a single `Writes`.
    pub async fn atomically<T, E, F>(&self, f: F) -> Result<T, E>
    where
        for<'r, 's> F:
            AsyncFnOnce(&'r mut Conn<'s>) -> Result<T, E> + AsyncFunc<&'r mut Conn<'s>, Result<T, E>, Fut: Send> + Send,
        T: Send,
        E: From<StoreError> + From<diesel::result::Error> + Send,
    {
        self.single_change(f, false).await
    }

    /// `atomically`, and durable (the money path): on PostgreSQL as it is (a statement commits
    /// durably by itself), on SQLite in a durable transaction.
    pub async fn durably<T, E, F>(&self, f: F) -> Result<T, E>
    where
        for<'r, 's> F:
            AsyncFnOnce(&'r mut Conn<'s>) -> Result<T, E> + AsyncFunc<&'r mut Conn<'s>, Result<T, E>, Fut: Send> + Send,
        T: Send,
        E: From<StoreError> + From<diesel::result::Error> + Send,
    {
        self.single_change(f, true).await
    }

    async fn single_change<T, E, F>(&self, f: F, durable: bool) -> Result<T, E>
    where
        for<'r, 's> F:
            AsyncFnOnce(&'r mut Conn<'s>) -> Result<T, E> + AsyncFunc<&'r mut Conn<'s>, Result<T, E>, Fut: Send> + Send,
        T: Send,
        E: From<StoreError> + From<diesel::result::Error> + Send,
    {
        match &self.backend {
            Backends::Postgres(_) => self.with_conn(f).await,
            Backends::Sqlite { .. } => self.run_transaction(f, durable).await,
        }
    }
}

pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn build_pool<C>(manager: AsyncDieselConnectionManager<C>, max_size: usize) -> Result<DeadPool<C>, StoreError>
where
    AsyncDieselConnectionManager<C>: Manager<Type = C, Error = PoolError>,
{
    DeadPool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(10)))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|err| StoreError::internal("building the connection pool", err))
}

async fn checkout<C>(pool: &DeadPool<C>) -> Result<Object<C>, StoreError>
where
    AsyncDieselConnectionManager<C>: Manager<Type = C, Error = PoolError>,
{
    pool.get().await.map_err(|err| StoreError::internal("getting a pooled connection", err))
}

/// Every pooled connection counts its statements and is prepared once after connecting.
fn manager_config<C>(
    observer: StatementObserver,
    prepare: fn(C) -> BoxFuture<'static, ConnectionResult<C>>,
) -> ManagerConfig<C>
where
    C: AsyncConnection + 'static,
{
    let mut config = ManagerConfig::default();
    // The default verifies every checkout with a `SELECT 1`, a round trip per store call;
    // broken connections are still detected (and replaced) without it.
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(move |url| {
        let observer = observer.clone();
        let url = url.to_owned();
        async move {
            let mut conn = prepare(C::establish(&url).await?).await?;
            conn.set_instrumentation(QueryCounter(observer));
            Ok(conn)
        }
        .boxed()
    });
    config
}

struct QueryCounter(StatementObserver);

impl Instrumentation for QueryCounter {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { .. } = event {
            (self.0)(statement_scope());
        }
    }
}

/// The store's statements are prepared once per connection and look rows up by key, so one plan
/// serves every execution. Left to itself, PostgreSQL plans a prepared statement's first five
/// executions afresh, and keeps doing so for any statement whose custom plans look cheaper than
/// its generic one: that cost 4% of purchases (472-474 -> 491-493/s in the checkout bench).
async fn prepare_postgres(mut conn: AsyncPgConnection) -> ConnectionResult<AsyncPgConnection> {
    conn.batch_execute("SET plan_cache_mode = force_generic_plan")
        .await
        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// WAL lets readers run beside the writer; the busy timeout (set first, since switching the
/// journal mode needs the lock too) covers other processes and pools writing to the same file.
/// `synchronous = NORMAL` syncs the log at checkpoints: a power cut may lose the last commits,
/// never the file; the money path waits for its commits to be synced (`Pool::durable_transaction`).
async fn prepare_sqlite(mut conn: SqliteConn) -> ConnectionResult<SqliteConn> {
    conn.batch_execute(
        "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )
    .await
    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// Names the future of an async closure so that callers can require it to be `Send` (the same
/// device diesel-async uses for its own `transaction`).
pub trait AsyncFunc<A, R>: AsyncFnOnce(A) -> R + FnOnce(A) -> <Self as AsyncFunc<A, R>>::Fut {
    type Fut: Future<Output = R>;
}

impl<F, A, Fut, R> AsyncFunc<A, R> for F
where
    F: AsyncFnOnce(A) -> R + FnOnce(A) -> Fut,
    Fut: Future<Output = R>,
{
    type Fut = Fut;
}
