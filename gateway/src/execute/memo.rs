//! Reuse of work derived from subgraph responses that concurrent requests share.
//!
//! With in-flight collapsing on, requests for one hot operation join each other's fetches: they
//! receive the very same parsed responses (`Arc<Fetched>`), in the same order. Everything the
//! executor derives from those responses is then the same for each of them: the merged data, an
//! entity fetch's representations and the objects they came from, and (for equal variables)
//! the client response. A request records which responses it merged, in order (its
//! [`History`]); a plan's fetch nodes and the plan itself keep the last result they derived
//! with the history it came from ([`Memo`]), and a request with the same history takes that
//! result instead of deriving it again. Merging is deferred until something has to be derived
//! afresh, so a request whose every derivation is reused never builds its merged data at all.
//!
//! Why identity is enough: a response is immutable once parsed, and the merged data is a
//! function of the responses merged into it and their order (nothing else writes to it; a
//! failed fetch ends reuse for the request). The histories hold the responses weakly: a `Weak`
//! keeps the allocation, so no other response can appear at the same address while a history
//! that names it exists, and holding it does not keep the parsed data alive or stop the sole
//! owner of a response from moving values out of it.

use std::sync::{Arc, Mutex, Weak};

use super::fetch::Fetched;

/// The responses a request's merged data was built from, in the order they were merged, each
/// with the plan order of its fetch.
#[derive(Default)]
pub(crate) struct History {
    merged: Vec<(u32, Weak<Fetched>)>,
    /// Whether a response merged so far was waited for by this request alone: no other request
    /// can then have the same history, so nothing derived from it is kept.
    exclusive: bool,
}

impl History {
    /// Records that `fetched`, the response to the fetch at plan position `order`, is merged
    /// next.
    pub(crate) fn push(&mut self, order: u32, fetched: &Arc<Fetched>) {
        // No collapsed request waited for this response, so no request but this one merges
        // it. (This only decides whether results are worth keeping; reuse is decided by
        // identity.)
        self.exclusive |= fetched.waiters <= 1;
        self.merged.push((order, Arc::downgrade(fetched)));
    }

    /// Whether another request can have this history (see `exclusive`).
    pub(crate) fn shareable(&self) -> bool {
        !self.exclusive
    }

    fn same(&self, other: &[(u32, Weak<Fetched>)]) -> bool {
        self.merged.len() == other.len()
            && self
                .merged
                .iter()
                .zip(other)
                .all(|((a, x), (b, y))| a == b && Weak::ptr_eq(x, y))
    }
}

/// A value derived from merged data, with the history of the data it was derived from.
pub(crate) struct Entry<T> {
    merged: Box<[(u32, Weak<Fetched>)]>,
    /// The derived value.
    pub(crate) value: T,
}

/// The last value one plan node derived, kept for the next request with the same history.
/// One slot, not a cache: requests that share responses run together, so the one before is
/// the one that matches, and a slot bounds what is kept to one value per node.
pub(crate) struct Memo<T>(Mutex<Option<Arc<Entry<T>>>>);

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo(Mutex::new(None))
    }
}

impl<T> std::fmt::Debug for Memo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}

impl<T> Memo<T> {
    /// The value derived from data with `history`, if it is the one kept and `also` accepts it.
    pub(crate) fn get(
        &self,
        history: &History,
        also: impl FnOnce(&T) -> bool,
    ) -> Option<Arc<Entry<T>>> {
        let kept = self.lock().clone()?;
        (history.same(&kept.merged) && also(&kept.value)).then_some(kept)
    }

    /// Keeps `value`, derived from data with `history`, in place of the value kept before.
    pub(crate) fn put(&self, history: &History, value: T) -> Arc<Entry<T>> {
        let entry = Arc::new(Entry {
            merged: history.merged.clone().into_boxed_slice(),
            value,
        });
        *self.lock() = Some(Arc::clone(&entry));
        entry
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<Entry<T>>>> {
        // A panic while the slot is held leaves a whole `Option` behind (one assignment or
        // clone), so a poisoned slot is still sound to use.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched_by(waiters: usize) -> Arc<Fetched> {
        Arc::new(Fetched {
            response: super::super::json::parse_response(br#"{"data":{}}"#).expect("parses"),
            bytes: 11,
            headers: Vec::new(),
            waiters,
        })
    }

    fn fetched() -> Arc<Fetched> {
        fetched_by(2)
    }

    #[test]
    fn a_value_is_reused_only_for_the_same_responses_in_the_same_order() {
        let (a, b) = (fetched(), fetched());
        let memo = Memo::default();
        let mut first = History::default();
        first.push(1, &a);
        first.push(2, &b);
        memo.put(&first, "derived");

        let mut same = History::default();
        same.push(1, &a);
        same.push(2, &b);
        assert_eq!(memo.get(&same, |_| true).map(|e| e.value), Some("derived"));
        assert!(
            memo.get(&same, |_| false).is_none(),
            "the caller's check counts"
        );

        let mut swapped = History::default();
        swapped.push(2, &b);
        swapped.push(1, &a);
        assert!(memo.get(&swapped, |_| true).is_none(), "order matters");

        let mut shorter = History::default();
        shorter.push(1, &a);
        assert!(memo.get(&shorter, |_| true).is_none());

        // An equal response that is another allocation is another response.
        let copy = fetched();
        let mut other = History::default();
        other.push(1, &a);
        other.push(2, &copy);
        assert!(memo.get(&other, |_| true).is_none());

        let mut renumbered = History::default();
        renumbered.push(1, &a);
        renumbered.push(3, &b);
        assert!(
            memo.get(&renumbered, |_| true).is_none(),
            "fetch positions count"
        );
    }

    #[test]
    fn a_dropped_response_keeps_its_address_while_a_history_names_it() {
        let memo = Memo::default();
        let mut history = History::default();
        let gone = fetched();
        history.push(1, &gone);
        let address = Arc::as_ptr(&gone);
        drop(gone);
        memo.put(&history, ());
        // Responses allocated now cannot take the dropped one's place.
        let later: Vec<Arc<Fetched>> = (0..64).map(|_| fetched()).collect();
        assert!(later.iter().all(|l| Arc::as_ptr(l) != address));
        let mut reused = History::default();
        reused.push(1, &later[0]);
        assert!(memo.get(&reused, |_| true).is_none());
    }

    #[test]
    fn a_response_only_this_request_waited_for_makes_the_history_private() {
        let mut history = History::default();
        history.push(1, &fetched_by(3));
        assert!(history.shareable());
        history.push(2, &fetched_by(1));
        assert!(!history.shareable());
    }
}
