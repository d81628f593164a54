use std::collections::HashMap;

use tokio::sync::OnceCell;

use crate::error::ApiResult;

/// What a set of items resolved together (one loader batch, one list) refers to, loaded for all
/// of them when the first one asks. A DataLoader batches the keys that arrive within its short
/// window, but the items of a list ask one after another for as long as resolving them takes,
/// which on a busy machine (or in a debug build) is longer: 50 products then cost a dozen
/// stock and category queries instead of one each.
pub struct Related<T> {
    keys: Box<dyn Fn() -> Vec<String> + Send + Sync>,
    loaded: OnceCell<HashMap<String, T>>,
}

impl<T: Clone> Related<T> {
    /// The set whose keys `keys` lists, asked only when an item first needs them: many sets are
    /// never loaded (a cart's 90 products show no stock), and listing them was a cost of its own.
    pub fn new(keys: impl Fn() -> Vec<String> + Send + Sync + 'static) -> Self {
        Related { keys: Box::new(keys), loaded: OnceCell::new() }
    }

    /// The value related to `key`; the first call runs `load` with every key of the set.
    pub async fn get<F, Fut>(&self, key: &str, load: F) -> ApiResult<Option<T>>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = ApiResult<HashMap<String, T>>>,
    {
        let loaded = self
            .loaded
            .get_or_try_init(|| {
                let mut keys = (self.keys)();
                keys.sort_unstable();
                keys.dedup();
                load(keys)
            })
            .await?;
        Ok(loaded.get(key).cloned())
    }
}
