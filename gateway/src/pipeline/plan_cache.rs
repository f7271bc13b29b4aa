//! The plan cache (step 5, with `plan.rs`): prepared operations (validated document + plan)
//! bounded by an estimate of the memory they hold, keyed by a hash of the request text,
//! planning each operation once however many requests ask for it at the same time.
//!
//! - **Bytes, not entries.** A 1.9 MB operation keeps ~11 MiB (its AST, the validated document,
//!   the plan); bounding entries let 1,024 of them take ~11 GB. Each entry is weighed when it is
//!   inserted ([`weigh`]) and the oldest unreferenced entries go when the budget is exceeded.
//! - **Hash keys.** A lookup hashes the text (a keyed hash, so nobody can aim collisions) and
//!   compares it with the text the entry's document was parsed from: no copy per request.
//! - **Second-chance eviction.** A hit marks its entry; eviction walks insertion order and spares
//!   (once) an entry marked since it was last passed. A flood of one-off operations evicts
//!   itself, not the operations clients keep sending.
//! - **Single flight.** Concurrent misses for the same operation wait for one planning run.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::prepared::PreparedOperation;

/// The outcome of preparing an operation, shared by every request that waited for it.
pub(crate) type Prepared<E> = Result<Arc<PreparedOperation>, E>;

/// Bytes an entry is charged per byte of operation text: the text itself, apollo-compiler's AST
/// and validated document built from it, measured on large operations (`scripts/attack-plan-cache.sh`).
const BYTES_PER_TEXT_BYTE: usize = 6;
/// Bytes an entry is charged per byte of its plan serialized as JSON (the in-memory plan holds
/// the fetch operations as text plus their selection trees).
const BYTES_PER_PLAN_BYTE: usize = 3;
/// Fixed cost of an entry (map slot, `Arc`s, executor bindings).
const ENTRY_OVERHEAD: usize = 2048;

/// The memory an entry is charged when it is cached: its text, its general plan and a slot for
/// each plan specialised by condition values it may come to hold (`specialise.rs`), which are
/// charged as they are planned ([`PlanCache::charge`]).
pub(crate) fn weigh(query: &str, prepared: &PreparedOperation) -> usize {
    let slots = prepared
        .variants
        .as_ref()
        .map_or(0, |v| v.len().saturating_mul(VARIANT_SLOT_BYTES));
    query
        .len()
        .saturating_mul(BYTES_PER_TEXT_BYTE)
        .saturating_add(weigh_plan(prepared))
        .saturating_add(slots)
}

/// What one plan of an entry and its bindings are charged.
pub(crate) fn weigh_plan(prepared: &PreparedOperation) -> usize {
    let plan = serde_json::to_vec(prepared.plan()).map_or(0, |json| json.len());
    plan.saturating_mul(BYTES_PER_PLAN_BYTE)
        .saturating_add(ENTRY_OVERHEAD)
}

/// An empty slot for a specialised plan (a `tokio::sync::OnceCell`, with its semaphore).
const VARIANT_SLOT_BYTES: usize = 64;

struct Entry {
    prepared: Arc<PreparedOperation>,
    operation_name: Option<Box<str>>,
    weight: usize,
    referenced: AtomicBool,
}

impl Entry {
    /// Whether this entry was made for exactly `query` and `operation_name` (the hash matched).
    fn is_for(&self, query: &str, operation_name: Option<&str>) -> bool {
        self.operation_name.as_deref() == operation_name
            && self
                .prepared
                .document()
                .sources
                .values()
                .next()
                .is_some_and(|source| source.source_text() == query)
    }
}

type Flight<E> = Arc<OnceCell<Prepared<E>>>;

struct State<E> {
    entries: HashMap<u64, Entry>,
    /// Insertion order, for eviction; may hold hashes of entries already removed.
    order: VecDeque<u64>,
    bytes: usize,
    flights: HashMap<u64, Flight<E>>,
}

/// Prepared operations by request, within a byte budget and an entry cap.
pub(crate) struct PlanCache<E> {
    budget_bytes: usize,
    max_entries: usize,
    hasher: ahash::RandomState,
    state: Mutex<State<E>>,
}

/// How a lookup went.
pub(crate) enum Lookup<E> {
    /// Cached.
    Hit(Arc<PreparedOperation>),
    /// Not cached; either this caller prepares it (`leader`) or waits for whoever does.
    Miss {
        /// The key hash.
        hash: u64,
        /// Where the result will appear.
        flight: Flight<E>,
    },
}

impl<E: Clone> PlanCache<E> {
    /// A cache holding at most `budget_bytes` (as weighed) and `max_entries` operations.
    pub(crate) fn new(budget_bytes: usize, max_entries: usize) -> Self {
        Self {
            budget_bytes,
            max_entries: max_entries.max(1),
            hasher: ahash::RandomState::new(),
            state: Mutex::new(State {
                entries: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
                flights: HashMap::new(),
            }),
        }
    }

    fn hash(&self, query: &str, operation_name: Option<&str>) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        hasher.write(query.as_bytes());
        match operation_name {
            Some(name) => {
                hasher.write_u8(1);
                hasher.write(name.as_bytes());
            }
            None => hasher.write_u8(0),
        }
        hasher.finish()
    }

    /// The cached operation for this request, if any (no single flight: for synchronous callers).
    pub(crate) fn get(
        &self,
        query: &str,
        operation_name: Option<&str>,
    ) -> Option<Arc<PreparedOperation>> {
        let hash = self.hash(query, operation_name);
        let state = self.state.lock().expect("plan cache lock poisoned");
        let entry = state.entries.get(&hash)?;
        if !entry.is_for(query, operation_name) {
            return None;
        }
        entry.referenced.store(true, Ordering::Relaxed);
        Some(Arc::clone(&entry.prepared))
    }

    /// The cached operation, or the flight its result will arrive on.
    pub(crate) fn lookup(&self, query: &str, operation_name: Option<&str>) -> Lookup<E> {
        let hash = self.hash(query, operation_name);
        let mut state = self.state.lock().expect("plan cache lock poisoned");
        if let Some(entry) = state.entries.get(&hash) {
            if entry.is_for(query, operation_name) {
                entry.referenced.store(true, Ordering::Relaxed);
                return Lookup::Hit(Arc::clone(&entry.prepared));
            }
        }
        let flight = Arc::clone(state.flights.entry(hash).or_default());
        Lookup::Miss { hash, flight }
    }

    /// Ends the flight for `hash` (whoever prepared it calls this once) and caches a success.
    pub(crate) fn land(
        &self,
        hash: u64,
        flight: &Flight<E>,
        query: &str,
        operation_name: Option<&str>,
        result: &Prepared<E>,
    ) {
        {
            let mut state = self.state.lock().expect("plan cache lock poisoned");
            if state
                .flights
                .get(&hash)
                .is_some_and(|current| Arc::ptr_eq(current, flight))
            {
                state.flights.remove(&hash);
            }
        }
        if let Ok(prepared) = result {
            self.insert(query, operation_name, prepared);
        }
    }

    /// Caches `prepared` for this request (an operation weighing more than the whole budget
    /// is not cached: it is planned for each request instead).
    pub(crate) fn insert(
        &self,
        query: &str,
        operation_name: Option<&str>,
        prepared: &Arc<PreparedOperation>,
    ) {
        let hash = self.hash(query, operation_name);
        let weight = weigh(query, prepared);
        if weight > self.budget_bytes {
            return;
        }
        let mut state = self.state.lock().expect("plan cache lock poisoned");
        if state.entries.contains_key(&hash) {
            return;
        }
        state.bytes += weight;
        state.order.push_back(hash);
        state.entries.insert(
            hash,
            Entry {
                prepared: Arc::clone(prepared),
                operation_name: operation_name.map(Box::from),
                weight,
                referenced: AtomicBool::new(false),
            },
        );
        self.evict(&mut state);
    }

    /// Adds `bytes` to the charge of the entry holding `prepared` for this request (a plan it
    /// came to hold), evicting others if the budget is exceeded; nothing if `prepared` is not
    /// (or no longer) cached.
    pub(crate) fn charge(
        &self,
        query: &str,
        operation_name: Option<&str>,
        prepared: &Arc<PreparedOperation>,
        bytes: usize,
    ) {
        let hash = self.hash(query, operation_name);
        let mut state = self.state.lock().expect("plan cache lock poisoned");
        let Some(entry) = state.entries.get_mut(&hash) else {
            return;
        };
        if !Arc::ptr_eq(&entry.prepared, prepared) {
            return;
        }
        entry.weight = entry.weight.saturating_add(bytes);
        state.bytes = state.bytes.saturating_add(bytes);
        self.evict(&mut state);
    }

    fn evict(&self, state: &mut State<E>) {
        // Each pass over `order` clears the marks it passes, so this ends within two passes.
        while state.bytes > self.budget_bytes || state.entries.len() > self.max_entries {
            let Some(hash) = state.order.pop_front() else {
                break;
            };
            let Some(entry) = state.entries.get(&hash) else {
                continue;
            };
            if entry.referenced.swap(false, Ordering::Relaxed) && state.entries.len() > 1 {
                state.order.push_back(hash);
                continue;
            }
            if let Some(entry) = state.entries.remove(&hash) {
                state.bytes -= entry.weight;
            }
        }
        // Keep the order queue from growing without bound when entries are replaced.
        if state.order.len() > 2 * state.entries.len() + 16 {
            let entries = &state.entries;
            state.order.retain(|h| entries.contains_key(h));
        }
    }

    /// How many operations are cached.
    pub(crate) fn len(&self) -> usize {
        self.state
            .lock()
            .expect("plan cache lock poisoned")
            .entries
            .len()
    }

    /// What the cached operations weigh.
    pub(crate) fn bytes(&self) -> usize {
        self.state.lock().expect("plan cache lock poisoned").bytes
    }
}
