//! One pool type for both backends, and the `on_conn!` macro that runs one diesel-async
//! expression on whichever connection the pool handed out, so that every query is written once
//! and type-checked against both PostgreSQL and SQLite.

use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::Manager;
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::{ConnectionResult, SqliteConnection};
use diesel_async::pooled_connection::deadpool::{Object, Pool as DeadPool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, PoolError, RecyclingMethod};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::Mutex;

use crate::domain::ports::StoreError;

pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Called once per statement sent to the store; feeds the `shop_store_queries_total` metric.
pub type QueryObserver = Arc<dyn Fn() + Send + Sync>;

/// A borrowed connection of either backend. Repository functions take `&mut Conn` so that they
/// compose inside a transaction as well as on a plain pooled connection.
pub enum Conn<'a> {
    Postgres(&'a mut AsyncPgConnection),
    Sqlite(&'a mut SqliteConn),
}

/// Runs `$body` with `$c` bound to the concrete connection inside a `&mut Conn`. UPDATEs end in
/// `.prepared()` (see `prepared`): diesel alone would prepare them afresh on every call.
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::pool::Conn::Postgres(inner) => {
                let $c: &mut ::diesel_async::AsyncPgConnection = &mut **inner;
                $body
            }
            $crate::db::pool::Conn::Sqlite(inner) => {
                let $c: &mut $crate::db::pool::SqliteConn = &mut **inner;
                $body
            }
        }
    };
}
pub(crate) use on_conn;

/// Executes an owned write statement built by `$stmt`. Multi-row INSERTs (with ON CONFLICT) only
/// compile for SQLite through diesel's synchronous connection, so the SQLite arm runs the very
/// same statement on the wrapper's blocking thread. On PostgreSQL the statement's preparation is
/// cached (see `prepared`).
macro_rules! execute_batch {
    ($conn:expr, $stmt:expr) => {
        match $conn {
            $crate::db::pool::Conn::Postgres(inner) => {
                ::diesel_async::RunQueryDsl::execute($crate::db::prepared::Prepared($stmt), &mut **inner).await
            }
            $crate::db::pool::Conn::Sqlite(inner) => {
                let stmt = $stmt;
                inner.spawn_blocking(move |sync| ::diesel::RunQueryDsl::execute(stmt, sync)).await
            }
        }
    };
}
pub(crate) use execute_batch;

#[derive(Clone)]
pub enum Pool {
    Postgres(DeadPool<AsyncPgConnection>),
    /// SQLite allows one writer at a time; write transactions take `writer` first so that two of
    /// them never both start reading and then fail to upgrade to a write lock (SQLITE_BUSY).
    Sqlite {
        pool: DeadPool<SqliteConn>,
        writer: Arc<Mutex<()>>,
    },
}

impl Pool {
    /// Opens a pool for `database_url` (`postgres://…` or a SQLite file path) and migrates it.
    pub async fn open(database_url: &str, max_size: usize, observer: QueryObserver) -> Result<Self, StoreError> {
        let pool = if is_postgres_url(database_url) {
            let manager = AsyncDieselConnectionManager::new_with_config(
                database_url,
                manager_config(observer, |conn| futures::future::ok(conn).boxed()),
            );
            Pool::Postgres(build_pool(manager, max_size)?)
        } else {
            let manager = AsyncDieselConnectionManager::new_with_config(
                database_url,
                manager_config(observer, |conn| prepare_sqlite(conn).boxed()),
            );
            Pool::Sqlite { pool: build_pool(manager, max_size)?, writer: Arc::new(Mutex::new(())) }
        };
        pool.migrate(database_url).await?;
        Ok(pool)
    }

    /// Runs pending migrations on a dedicated connection. The harness blocks on the runtime, which
    /// is only allowed off the async worker threads.
    async fn migrate(&self, database_url: &str) -> Result<(), StoreError> {
        let url = database_url.to_owned();
        let outcome = match self {
            Pool::Postgres(_) => {
                let conn = AsyncPgConnection::establish(&url)
                    .await
                    .map_err(|err| StoreError::internal("connecting to the store", err))?;
                tokio::task::spawn_blocking(move || {
                    AsyncMigrationHarness::new(conn).run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ())
                })
                .await
            }
            Pool::Sqlite { .. } => {
                let conn = SqliteConn::establish(&url)
                    .await
                    .map_err(|err| StoreError::internal("connecting to the store", err))?;
                let conn =
                    prepare_sqlite(conn).await.map_err(|err| StoreError::internal("connecting to the store", err))?;
                tokio::task::spawn_blocking(move || {
                    AsyncMigrationHarness::new(conn).run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ())
                })
                .await
            }
        };
        outcome
            .map_err(|join| StoreError::internal("migrations", join))?
            .map_err(|err| StoreError::internal("migrations", std::io::Error::other(err.to_string())))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Pool::Postgres(_) => "postgres",
            Pool::Sqlite { .. } => "sqlite",
        }
    }

    /// Runs `f` on a pooled connection outside any transaction.
    pub async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        for<'r, 's> F: AsyncFnOnce(&'r mut Conn<'s>) -> Result<T, StoreError>
            + AsyncFunc<&'r mut Conn<'s>, Result<T, StoreError>, Fut: Send>
            + Send,
        T: Send,
    {
        match self {
            Pool::Postgres(pool) => {
                let mut obj = checkout(pool).await?;
                f(&mut Conn::Postgres(&mut obj)).await
            }
            Pool::Sqlite { pool, .. } => {
                let mut obj = checkout(pool).await?;
                f(&mut Conn::Sqlite(&mut obj)).await
            }
        }
    }

    /// Runs `f` in one transaction: committed when it returns Ok, rolled back on Err (a store
    /// error, or a domain error that refuses the change).
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        for<'r, 's> F:
            AsyncFnOnce(&'r mut Conn<'s>) -> Result<T, E> + AsyncFunc<&'r mut Conn<'s>, Result<T, E>, Fut: Send> + Send,
        T: Send,
        E: From<StoreError> + From<diesel::result::Error> + Send,
    {
        match self {
            Pool::Postgres(pool) => {
                let mut obj = checkout(pool).await?;
                obj.transaction(async move |c| f(&mut Conn::Postgres(c)).await).await
            }
            Pool::Sqlite { pool, writer } => {
                let _write_lock = writer.lock().await;
                let mut obj = checkout(pool).await?;
                obj.transaction(async move |c| f(&mut Conn::Sqlite(c)).await).await
            }
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
    observer: QueryObserver,
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

struct QueryCounter(QueryObserver);

impl Instrumentation for QueryCounter {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { .. } = event {
            (self.0)();
        }
    }
}

/// WAL lets readers run beside the writer; the busy timeout covers other processes (the CLI)
/// writing to the same file.
async fn prepare_sqlite(mut conn: SqliteConn) -> ConnectionResult<SqliteConn> {
    conn.batch_execute(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
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
