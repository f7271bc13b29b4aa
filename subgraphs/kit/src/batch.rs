//! Coalescing of per-item lookups: when the gateway asks for fifty posts (or their reactions,
//! or fifty members' stats) in one `_entities` request, answer with one SQL query instead of
//! fifty. Every service's store loads what a list asks for through a [`Batcher`].
//!
//! async-graphql resolves the representations of `_entities`, and the fields of each object,
//! as concurrent futures inside one task. The first lookup opens a batch and becomes its
//! leader: it yields a few times before running the batch, and while it is parked the task
//! polls the sibling futures, which reach their own lookups and join the open batch as
//! followers. Unlike a timer-based data loader this adds no fixed delay (a yield costs well
//! under a microsecond), and nothing is spawned: the leader runs the load inside its own
//! resolver. A follower whose leader was cancelled before loading simply tries again. Lookups
//! from concurrent requests may share a batch, which is fine: every batch reads fresh data.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;
use tokio::sync::watch;

/// What a batch resolves to: a value per key found, or the load's error (shared by every
/// waiter, hence the `Arc`).
type BatchResult<K, V, E> = Result<Arc<HashMap<K, V>>, Arc<E>>;
type LoadFn<K, V, E> = dyn Fn(Vec<K>) -> BoxFuture<'static, Result<HashMap<K, V>, E>> + Send + Sync;

/// How often a leader yields before loading: one pass over the sibling futures is enough for
/// `_entities`; the margin covers futures nested deeper.
const GATHER_YIELDS: usize = 3;

struct OpenBatch<K, V, E> {
    /// `None` once the leader started loading: later lookups open a new batch.
    keys: Arc<Mutex<Option<Vec<K>>>>,
    result: watch::Receiver<Option<BatchResult<K, V, E>>>,
}

enum Role<K, V, E> {
    Leader(
        Arc<Mutex<Option<Vec<K>>>>,
        watch::Sender<Option<BatchResult<K, V, E>>>,
    ),
    Follower(watch::Receiver<Option<BatchResult<K, V, E>>>),
}

/// Groups concurrent single-key lookups into one `load` call.
pub struct Batcher<K, V, E = sqlx::Error> {
    open: Mutex<Option<OpenBatch<K, V, E>>>,
    load: Arc<LoadFn<K, V, E>>,
    max_batch: usize,
    batches: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data is a plain list; a panic elsewhere cannot leave it inconsistent.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl<K, V, E> Batcher<K, V, E>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// A batcher calling `load` with at most `max_batch` distinct keys at a time.
    pub fn new(
        max_batch: usize,
        load: impl Fn(Vec<K>) -> BoxFuture<'static, Result<HashMap<K, V>, E>> + Send + Sync + 'static,
    ) -> Self {
        Batcher {
            open: Mutex::new(None),
            load: Arc::new(load),
            max_batch: max_batch.max(1),
            batches: AtomicU64::new(0),
        }
    }

    /// How many batches have been loaded (for tests and metrics).
    pub fn batches_loaded(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// The value for `key` (`None` when the load returned nothing for it).
    pub async fn load_one(&self, key: K) -> Result<Option<V>, Arc<E>> {
        loop {
            let result = match self.join_or_lead(&key) {
                Role::Leader(keys, done) => {
                    for _ in 0..GATHER_YIELDS {
                        tokio::task::yield_now().await;
                    }
                    let keys = lock(&keys).take().unwrap_or_default();
                    self.batches.fetch_add(1, Ordering::Relaxed);
                    let result: BatchResult<K, V, E> =
                        (self.load)(keys).await.map(Arc::new).map_err(Arc::new);
                    done.send_replace(Some(result.clone()));
                    result
                }
                Role::Follower(mut done) => match done.wait_for(Option::is_some).await {
                    Ok(result) => match &*result {
                        Some(result) => result.clone(),
                        None => continue,
                    },
                    // The leader was dropped (its request cancelled) before loading.
                    Err(_) => continue,
                },
            };
            return Ok(result?.get(&key).cloned());
        }
    }

    fn join_or_lead(&self, key: &K) -> Role<K, V, E> {
        let mut open = lock(&self.open);
        // A batch whose leader was dropped before sending is dead: its sender is gone.
        if let Some(batch) = open.as_ref().filter(|b| b.result.has_changed().is_ok()) {
            let mut keys = lock(&batch.keys);
            if let Some(keys) = keys.as_mut().filter(|k| k.len() < self.max_batch) {
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
                return Role::Follower(batch.result.clone());
            }
        }
        let keys = Arc::new(Mutex::new(Some(vec![key.clone()])));
        let (done, result) = watch::channel(None);
        *open = Some(OpenBatch {
            keys: Arc::clone(&keys),
            result,
        });
        Role::Leader(keys, done)
    }
}

/// `$first, $first+1, …` for `n` bind parameters: the `IN (…)` list of a set-based load.
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Groups a batch's `keys` by `group`, keeping each group's distinct `item`s in first-seen
/// order: one query per group (e.g. per viewer) with its items as the set.
pub fn grouped<K, G: Eq + Hash + Clone, I: PartialEq>(
    keys: &[K],
    group: impl Fn(&K) -> G,
    item: impl Fn(&K) -> I,
) -> Vec<(G, Vec<I>)> {
    let mut groups: Vec<(G, Vec<I>)> = Vec::new();
    let mut index: HashMap<G, usize> = HashMap::new();
    for key in keys {
        let g = group(key);
        let slot = *index.entry(g.clone()).or_insert_with(|| {
            groups.push((g, Vec::new()));
            groups.len() - 1
        });
        let it = item(key);
        if !groups[slot].1.contains(&it) {
            groups[slot].1.push(it);
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::sync::atomic::AtomicUsize;

    fn doubling(calls: Arc<AtomicUsize>) -> Batcher<u32, u32> {
        Batcher::new(3, move |keys: Vec<u32>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok(keys
                    .into_iter()
                    .filter(|k| *k != 0)
                    .map(|k| (k, k * 2))
                    .collect())
            }
            .boxed()
        })
    }

    #[tokio::test]
    async fn concurrent_lookups_share_batches_of_bounded_size() {
        let calls = Arc::new(AtomicUsize::new(0));
        let batcher = doubling(Arc::clone(&calls));
        let lookups = [1, 2, 2, 0, 3, 4].map(|k| batcher.load_one(k));
        let got = futures::future::join_all(lookups).await;
        let got: Vec<Option<u32>> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got, [Some(2), Some(4), Some(4), None, Some(6), Some(8)]);
        // Keys 1, 2, 0 fill the first batch (3 distinct); 3, 4 go to a second.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(batcher.batches_loaded(), 2);

        // A later lookup opens a fresh batch.
        assert_eq!(batcher.load_one(5).await.unwrap(), Some(10));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn errors_reach_every_waiter() {
        let batcher: Batcher<u32, u32> =
            Batcher::new(10, |_| async { Err(sqlx::Error::PoolClosed) }.boxed());
        let (a, b) = futures::join!(batcher.load_one(1), batcher.load_one(2));
        assert!(a.is_err() && b.is_err());
        assert_eq!(batcher.batches_loaded(), 1);
    }

    #[tokio::test]
    async fn followers_of_a_cancelled_leader_load_themselves() {
        let calls = Arc::new(AtomicUsize::new(0));
        let batcher = doubling(Arc::clone(&calls));
        let mut leader = Box::pin(batcher.load_one(1));
        // Poll the leader once so it opens the batch, then drop it before it loads.
        assert!(futures::poll!(leader.as_mut()).is_pending());
        let follower = batcher.load_one(2);
        let mut follower = Box::pin(follower);
        assert!(futures::poll!(follower.as_mut()).is_pending());
        drop(leader);
        assert_eq!(follower.await.unwrap(), Some(4));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn placeholders_and_groups_for_set_based_loads() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(placeholders(1, 0), "");
        let keys = [("v1", 1), ("v2", 7), ("v1", 2), ("v1", 1)];
        assert_eq!(
            grouped(&keys, |k| k.0, |k| k.1),
            vec![("v1", vec![1, 2]), ("v2", vec![7])]
        );
    }
}
