//! Counts each request's store statements under its root field (`addCartItem`), so that
//! `shop_store_statements_total{scope}` shows what every operation costs (the statement-budget
//! test reads it). A request with several root fields counts under `multiple`.

use std::collections::HashSet;
use std::sync::{LazyLock, PoisonError, RwLock};

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, Selection};

/// The one root field the document's (first) operation selects, or `multiple`.
pub(super) fn root_field(document: &ExecutableDocument) -> &'static str {
    let operation = match &document.operations {
        DocumentOperations::Single(operation) => Some(operation),
        DocumentOperations::Multiple(operations) => operations.values().next(),
    };
    let mut names =
        operation.into_iter().flat_map(|op| &op.node.selection_set.node.items).map(|item| match &item.node {
            Selection::Field(field) => Some(field.node.name.node.as_str()),
            Selection::FragmentSpread(_) | Selection::InlineFragment(_) => None,
        });
    match (names.next(), names.next()) {
        (Some(Some(name)), None) => interned(name),
        _ => "multiple",
    }
}

/// Field names live as long as the process; validation has already refused unknown ones, so
/// there are only as many as the schema has. Every request looks its name up: readers share
/// the lock, and only a name's first request writes.
fn interned(name: &str) -> &'static str {
    static NAMES: LazyLock<RwLock<HashSet<&'static str>>> = LazyLock::new(RwLock::default);
    if let Some(known) = NAMES.read().unwrap_or_else(PoisonError::into_inner).get(name) {
        return known;
    }
    let mut names = NAMES.write().unwrap_or_else(PoisonError::into_inner);
    match names.get(name) {
        Some(known) => known,
        None => {
            let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
            names.insert(leaked);
            leaked
        }
    }
}
