//! Keeps the search index in step with the database through the index queue.
//!
//! Why a queue table rather than consuming our own `post.*` events from the bus: the queue row
//! commits in the same transaction as the change, needs no bus (the index stays correct with
//! Redis down), and is drained by position without consumer-group bookkeeping. Each pass reads
//! queue rows, re-reads the affected posts' **current** rows, upserts or deletes their documents,
//! commits the index (recording the highest applied position in the commit payload) and only
//! then deletes those queue rows. Applying "make post X match the database" is idempotent, so a
//! crash between the index commit and the queue delete just applies the rows again on restart;
//! a crash before the index commit leaves the rows queued. Either way the index catches up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::search::{IndexChange, SearchError, SearchIndex};
use crate::store::{Store, StoreError};

/// How many queue rows one pass applies.
const BATCH: usize = 1000;
/// How often the indexer looks without being woken (covers other writers, e.g. replicas).
const POLL: Duration = Duration::from_millis(500);

/// Why indexing failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    /// Reading the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the index failed.
    #[error(transparent)]
    Search(#[from] SearchError),
    /// The blocking index task panicked or was cancelled.
    #[error("index task failed: {0}")]
    Task(String),
}

/// Applies the index queue to the search index.
#[derive(Clone)]
pub struct Indexer {
    store: Store,
    index: Arc<SearchIndex>,
}

impl Indexer {
    /// An indexer from `store`'s queue into `index`.
    pub fn new(store: Store, index: Arc<SearchIndex>) -> Self {
        Indexer { store, index }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SearchIndex) -> Result<T, SearchError> + Send + 'static,
    ) -> Result<T, IndexerError> {
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || work(&index))
            .await
            .map_err(|e| IndexerError::Task(e.to_string()))?
            .map_err(IndexerError::from)
    }

    /// One pass over up to one batch of queue rows; returns how many rows it applied.
    pub async fn apply_once(&self) -> Result<usize, IndexerError> {
        let entries = self.store.pending_index_changes(BATCH).await?;
        if entries.is_empty() {
            return Ok(0);
        }
        let mut ids: Vec<String> = entries.iter().map(|e| e.post_id.clone()).collect();
        ids.sort();
        ids.dedup();
        let mut current: HashMap<String, _> = self
            .store
            .posts_by_ids(&ids)
            .await?
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        let changes: Vec<IndexChange> = ids
            .into_iter()
            .map(|id| match current.remove(&id) {
                Some(post) => IndexChange::Upsert(post),
                None => IndexChange::Delete(id),
            })
            .collect();
        let position = entries.iter().map(|e| e.seq).max().unwrap_or_default();
        self.blocking(move |index| index.apply(&changes, position))
            .await?;
        let seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
        self.store.ack_index_changes(&seqs).await?;
        Ok(entries.len())
    }

    /// Applies the queue until it is empty; returns how many rows it applied.
    pub async fn catch_up(&self) -> Result<usize, IndexerError> {
        let mut total = 0;
        loop {
            let applied = self.apply_once().await?;
            total += applied;
            if applied < BATCH {
                return Ok(total);
            }
        }
    }

    /// Applies the queue, then purges deleted documents from the index's files (for account
    /// erasure: the member's posts were deleted in the database and queued).
    pub async fn purge_deleted(&self) -> Result<usize, IndexerError> {
        self.catch_up().await?;
        self.blocking(|index| index.purge_deleted()).await
    }

    /// Rebuilds the index from the database (`switchyard-content reindex`); returns how many
    /// posts it indexed. Queue rows read before the posts are acknowledged afterwards (the
    /// rebuild covers them); rows committed later stay for the next pass.
    pub async fn rebuild(&self) -> Result<usize, IndexerError> {
        let queued: Vec<i64> = self
            .store
            .pending_index_changes(usize::MAX)
            .await?
            .iter()
            .map(|e| e.seq)
            .collect();
        self.blocking(|index| index.clear()).await?;
        let mut after = String::new();
        let mut count = 0;
        loop {
            let posts = self.store.posts_page(&after, 5000).await?;
            let Some(last) = posts.last() else { break };
            after = last.id.clone();
            count += posts.len();
            self.blocking(move |index| index.add_new(&posts)).await?;
        }
        let position = queued.iter().copied().max().unwrap_or_default();
        self.blocking(move |index| index.commit_with(position))
            .await?;
        self.store.ack_index_changes(&queued).await?;
        Ok(count)
    }

    /// Applies the queue whenever the store signals a commit (or every poll interval) until
    /// `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.catch_up().await {
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "search indexing pass failed; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.store.index_notifier().notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}
