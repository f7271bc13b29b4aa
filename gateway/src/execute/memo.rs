//! Reuse of work derived from subgraph responses that concurrent requests share.
//!
//! With in-flight collapsing on, requests for one hot operation join each other's fetches: they
//! receive the very same parsed responses (`Arc<Fetched>`), in the same order. Everything the
//! executor derives from those responses is then the same for each of them: the merged data, an
//! entity fetch's representations and the objects they came from, and (for equal variables)
//! the client response. A request records which responses it merged, in order (its
//! [`History`]). What it derives is kept on the last response it merged, with that history and
//! the plan node it was derived for, and a request with the same history at the same node takes
//! it instead of deriving it again. Merging is deferred until something has to be derived
//! afresh, so a request whose every derivation is reused never builds its merged data at all.
//!
//! Why identity is enough: a response is immutable once parsed, and the merged data is a
//! function of the responses merged into it and their order (nothing else writes to it; a
//! failed fetch ends reuse for the request). Histories hold the responses weakly: a `Weak`
//! keeps the allocation, so no other response can appear at the same address while a history
//! that names it exists, and holding it keeps neither the parsed data alive nor the sole owner
//! of a response from moving values out of it.
//!
//! Why on the response: what is kept lives exactly as long as the response it was derived from,
//! which lives as long as some request holds it. Nothing outlives the requests that share it, so
//! however many operations clients send, kept results cost memory only while those run.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::fetch::Fetched;

/// A fresh plan-node identity: the key under which results derived for that node are kept.
/// Never reused (unlike an address), so a result can never be taken for another plan's node.
pub(crate) fn node_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

type Merged = Box<[(u32, Weak<Fetched>)]>;

/// One result kept on a response.
struct Kept {
    node: u64,
    merged: Merged,
    value: Arc<dyn Any + Send + Sync>,
}

/// The results derived from data whose last merged response is this one (a field of
/// [`Fetched`]).
#[derive(Default)]
pub(crate) struct Derived(Mutex<Vec<Kept>>);

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived")
    }
}

impl Derived {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Kept>> {
        // Nothing panics while the list is held (lookups, a push, a removal), and a list left
        // by one that did is still a valid list.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The responses a request's merged data was built from, in the order they were merged, each
/// with the plan order of its fetch.
#[derive(Default)]
pub(crate) struct History {
    merged: Vec<(u32, Weak<Fetched>)>,
    /// The last response merged, where results derived from this history are kept; `None`
    /// while the history is private (see `exclusive`).
    last: Option<Arc<Fetched>>,
    /// Whether a response merged so far was waited for by this request alone: no other request
    /// can then have the same history, so nothing derived from it is kept or looked up.
    exclusive: bool,
}

impl History {
    /// Records that `fetched`, the response to the fetch at plan position `order`, is merged
    /// next.
    pub(crate) fn push(&mut self, order: u32, fetched: &Arc<Fetched>) {
        // This only decides whether results are worth keeping; reuse is decided by identity.
        self.exclusive |= fetched.waiters <= 1;
        self.merged.push((order, Arc::downgrade(fetched)));
        // Held only while shared: a response held here cannot be moved out of by its sole
        // owner, which is what a private response is for.
        self.last = (!self.exclusive).then(|| Arc::clone(fetched));
    }

    /// Whether another request can have this history (see `exclusive`).
    pub(crate) fn shareable(&self) -> bool {
        self.last.is_some()
    }

    fn same(&self, other: &[(u32, Weak<Fetched>)]) -> bool {
        self.merged.len() == other.len()
            && self
                .merged
                .iter()
                .zip(other)
                .all(|((a, x), (b, y))| a == b && Weak::ptr_eq(x, y))
    }

    /// What was derived for plan node `node` from data with this history, if `also` accepts it.
    pub(crate) fn get<T: Any + Send + Sync>(
        &self,
        node: u64,
        also: impl FnOnce(&T) -> bool,
    ) -> Option<Arc<T>> {
        let last = self.last.as_ref()?;
        let found = last
            .derived
            .lock()
            .iter()
            .find(|kept| kept.node == node && self.same(&kept.merged))
            .map(|kept| Arc::clone(&kept.value))?;
        let found = found.downcast::<T>().ok()?;
        also(&found).then_some(found)
    }

    /// Keeps `value`, derived for plan node `node` from data with this history, in place of
    /// what was kept for that node on the same response before.
    pub(crate) fn put<T: Any + Send + Sync>(&self, node: u64, value: Arc<T>) {
        let Some(last) = &self.last else {
            return;
        };
        let mut kept = last.derived.lock();
        kept.retain(|k| k.node != node);
        kept.push(Kept {
            node,
            merged: self.merged.clone().into_boxed_slice(),
            value,
        });
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
            derived: Derived::default(),
        })
    }

    fn fetched() -> Arc<Fetched> {
        fetched_by(2)
    }

    fn history(merged: &[(u32, &Arc<Fetched>)]) -> History {
        let mut history = History::default();
        for (order, fetched) in merged {
            history.push(*order, fetched);
        }
        history
    }

    #[test]
    fn a_value_is_reused_only_for_the_same_responses_in_the_same_order_at_the_same_node() {
        let (a, b) = (fetched(), fetched());
        let node = node_id();
        history(&[(1, &a), (2, &b)]).put(node, Arc::new("derived"));

        let same = history(&[(1, &a), (2, &b)]);
        assert_eq!(
            same.get::<&str>(node, |_| true).as_deref(),
            Some(&"derived")
        );
        assert!(
            same.get::<&str>(node, |_| false).is_none(),
            "the caller's check counts"
        );
        assert!(
            same.get::<String>(node, |_| true).is_none(),
            "another type is another result"
        );
        assert!(
            same.get::<&str>(node_id(), |_| true).is_none(),
            "another node"
        );

        let swapped = history(&[(2, &b), (1, &a)]);
        assert!(
            swapped.get::<&str>(node, |_| true).is_none(),
            "order matters"
        );
        let shorter = history(&[(2, &b)]);
        assert!(shorter.get::<&str>(node, |_| true).is_none());
        // An equal response that is another allocation is another response.
        let copy = fetched();
        let other = history(&[(1, &copy), (2, &b)]);
        assert!(other.get::<&str>(node, |_| true).is_none());
        let renumbered = history(&[(1, &a), (3, &b)]);
        assert!(
            renumbered.get::<&str>(node, |_| true).is_none(),
            "fetch positions count"
        );

        // A later result for the node replaces the earlier one.
        same.put(node, Arc::new("again"));
        assert_eq!(same.get::<&str>(node, |_| true).as_deref(), Some(&"again"));
        assert_eq!(b.derived.lock().len(), 1);
    }

    #[test]
    fn kept_results_go_with_the_response_they_were_derived_from() {
        let a = fetched();
        let kept = Arc::new(String::from("derived"));
        {
            let b = fetched();
            history(&[(1, &a), (2, &b)]).put(node_id(), Arc::clone(&kept));
            assert_eq!(Arc::strong_count(&kept), 2);
        }
        assert_eq!(Arc::strong_count(&kept), 1, "dropped with its response");
    }

    #[test]
    fn a_dropped_response_keeps_its_address_while_a_history_names_it() {
        let gone = fetched();
        let last = fetched();
        let node = node_id();
        let address = Arc::as_ptr(&gone);
        history(&[(1, &gone), (2, &last)]).put(node, Arc::new(()));
        drop(gone);
        // Responses allocated now cannot take the dropped one's place.
        let later: Vec<Arc<Fetched>> = (0..64).map(|_| fetched()).collect();
        assert!(later.iter().all(|l| Arc::as_ptr(l) != address));
        let reused = history(&[(1, &later[0]), (2, &last)]);
        assert!(reused.get::<()>(node, |_| true).is_none());
    }

    #[test]
    fn a_response_only_this_request_waited_for_makes_the_history_private() {
        let shared = fetched_by(3);
        let mut private = history(&[(1, &shared)]);
        assert!(private.shareable());
        let alone = fetched_by(1);
        private.push(2, &alone);
        assert!(!private.shareable());
        // Nothing is kept for it, and the private response is not held.
        private.put(node_id(), Arc::new(()));
        assert!(alone.derived.lock().is_empty());
        assert_eq!(Arc::strong_count(&alone), 1);
    }
}
