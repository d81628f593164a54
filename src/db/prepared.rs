//! Prepared-statement caching for the statements diesel will not cache on its own.
//!
//! diesel caches a statement's preparation only when the statement's Rust type alone fixes its
//! SQL, so it never caches UPDATEs (their changesets may skip `None` fields) nor INSERTs of
//! optional or batched values. On PostgreSQL each such statement costs a parse, a plan and an
//! extra round trip every time; a purchase sends dozens. `.prepared()` marks a statement
//! cacheable with its SQL text as the cache key (its type has no static id), which is right
//! whatever the values: statements that differ in text are cached apart.

use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};

#[derive(Debug, Clone, Copy)]
pub struct Prepared<Statement>(pub Statement);

impl<Statement, DB> QueryFragment<DB> for Prepared<Statement>
where
    DB: Backend,
    Statement: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Statement> QueryId for Prepared<Statement> {
    type QueryId = ();
    /// No static id: the cache is keyed by the SQL text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Statement: Query> Query for Prepared<Statement> {
    type SqlType = Statement::SqlType;
}

/// `statement.prepared()`: the statement, its preparation cached per connection.
pub trait PrepareOnce: Sized {
    fn prepared(self) -> Prepared<Self> {
        Prepared(self)
    }
}

impl<Statement> PrepareOnce for Statement {}
