//! Group commit: callers queue their writes, and a few writers write what is queued in rounds,
//! each round in one transaction (or one statement). Under load a round holds many callers'
//! writes, so the store pays one commit (and, on SQLite, one turn at the writer) per round
//! instead of one per caller; alone, a caller's round holds just its own write and starts at once.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::oneshot;

use super::pool::statement_scope;
use super::scoped;
use crate::ports::{StoreError, StoreResult};

/// Writes one round: the outcome of each item, in the order given.
type WriteRound<I, O> = Box<dyn Fn(Vec<I>) -> BoxFuture<'static, Vec<O>> + Send + Sync>;

/// A queue of items written in rounds of up to `per_round`, by at most `at_once` writers at a
/// time (several let PostgreSQL flush one round while the next is sent; on SQLite they take
/// turns at the writer). A writer is started when an item is queued and fewer are at work, and
/// writes rounds until nothing is queued.
pub struct Rounds<I, O> {
    queue: Mutex<Queue<I, O>>,
    per_round: usize,
    at_once: usize,
    write: WriteRound<I, O>,
}

struct Queue<I, O> {
    queued: Vec<(I, oneshot::Sender<O>)>,
    writers: usize,
}

impl<I: Send + 'static, O: Send + 'static> Rounds<I, O> {
    pub fn new(
        per_round: usize,
        at_once: usize,
        write: impl Fn(Vec<I>) -> BoxFuture<'static, Vec<O>> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Queue { queued: Vec::new(), writers: 0 }),
            per_round,
            at_once,
            write: Box::new(write),
        })
    }

    /// Queues `item` and answers what its round made of it; `None` if the round was lost (its
    /// writer panicked).
    pub async fn submit(self: &Arc<Self>, item: I) -> Option<O> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.queued.push((item, reply));
            let start = queue.writers < self.at_once;
            queue.writers += usize::from(start);
            start
        };
        if start {
            // The writer's statements count under the operation of the caller that started it.
            tokio::spawn(scoped(statement_scope(), self.clone().write_rounds()));
        }
        answer.await.ok()
    }

    async fn write_rounds(self: Arc<Self>) {
        loop {
            let (items, replies): (Vec<I>, Vec<oneshot::Sender<O>>) = {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if queue.queued.is_empty() {
                    queue.writers -= 1;
                    return;
                }
                let taken = queue.queued.len().min(self.per_round);
                queue.queued.drain(..taken).unzip()
            };
            // A panicking round drops its replies (its callers learn it was lost); the writer
            // goes on with the next.
            if let Ok(outcomes) = AssertUnwindSafe((self.write)(items)).catch_unwind().await {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
        }
    }
}

impl<I: Send + 'static, T: Send + 'static> Rounds<I, Result<T, String>> {
    /// `submit`, with a failed or lost round as the store error of `operation`.
    pub async fn write(self: &Arc<Self>, item: I, operation: &'static str) -> StoreResult<T> {
        let written = self.submit(item).await.unwrap_or_else(|| Err("its round was lost".to_owned()));
        written.map_err(|err| StoreError::internal(operation, std::io::Error::other(err)))
    }
}

/// The round split into layers of distinct keys, in queue order (a key's n-th change goes in
/// layer n); each change with its place. Changes of distinct keys can be written together in
/// one statement; a key's later change goes in a later layer, after the first, so that
/// PostgreSQL (which runs a statement on one snapshot) sees each change of a row after the one
/// before.
pub fn layers<T>(round: Vec<(String, T)>) -> Vec<Vec<(usize, T)>> {
    let mut changes_of: HashMap<String, usize> = HashMap::new();
    let mut layers: Vec<Vec<(usize, T)>> = Vec::new();
    for (place, (key, writes)) in round.into_iter().enumerate() {
        let depth = changes_of.entry(key).or_default();
        if *depth == layers.len() {
            layers.push(Vec::new());
        }
        layers[*depth].push((place, writes));
        *depth += 1;
    }
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keys_later_changes_go_in_later_layers_in_queue_order() {
        let round: Vec<(String, char)> =
            [("a", 'a'), ("b", 'b'), ("a", 'A'), ("c", 'c'), ("a", '!')].map(|(k, v)| (k.to_owned(), v)).into();
        assert_eq!(layers(round), [vec![(0, 'a'), (1, 'b'), (3, 'c')], vec![(2, 'A')], vec![(4, '!')]]);
    }

    #[tokio::test]
    async fn every_caller_gets_its_own_outcome_and_rounds_gather_callers() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let rounds = Rounds::new(8, 1, move |round: Vec<u32>| {
            seen.lock().expect("sizes").push(round.len());
            async move {
                tokio::task::yield_now().await;
                round.into_iter().map(|n| n * 2).collect()
            }
            .boxed()
        });
        let callers: Vec<_> = (0..20)
            .map(|n| {
                tokio::spawn({
                    let rounds = rounds.clone();
                    async move { rounds.submit(n).await }
                })
            })
            .collect();
        for (n, caller) in callers.into_iter().enumerate() {
            assert_eq!(caller.await.expect("caller"), Some(n as u32 * 2));
        }
        let sizes = sizes.lock().expect("sizes").clone();
        assert_eq!(sizes.iter().sum::<usize>(), 20);
        assert!(sizes.iter().all(|&size| size <= 8), "at most a round's worth: {sizes:?}");
        assert!(sizes.len() < 20, "callers queued meanwhile share a round: {sizes:?}");
    }
}
