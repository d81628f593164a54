use std::collections::{BTreeSet, HashMap};

use tokio::sync::OnceCell;

use crate::error::ApiResult;

/// What a set of items resolved together (one loader batch, one list) refers to, loaded for all
/// of them when the first one asks. A DataLoader batches the keys that arrive within its short
/// window, but the items of a list ask one after another for as long as resolving them takes,
/// which on a busy machine (or in a debug build) is longer: 50 products then cost a dozen
/// stock and category queries instead of one each.
pub struct Related<T> {
    keys: Vec<String>,
    loaded: OnceCell<HashMap<String, T>>,
}

impl<T: Clone> Related<T> {
    pub fn new(keys: impl IntoIterator<Item = String>) -> Self {
        Related { keys: keys.into_iter().collect::<BTreeSet<_>>().into_iter().collect(), loaded: OnceCell::new() }
    }

    /// The value related to `key`; the first call runs `load` with every key of the set.
    pub async fn get<F, Fut>(&self, key: &str, load: F) -> ApiResult<Option<T>>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = ApiResult<HashMap<String, T>>>,
    {
        let loaded = self.loaded.get_or_try_init(|| load(self.keys.clone())).await?;
        Ok(loaded.get(key).cloned())
    }
}
