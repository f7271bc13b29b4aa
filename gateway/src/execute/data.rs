//! The executor's own JSON value for subgraph data.
//!
//! The workspace's own Cargo.toml turns on serde_json's `preserve_order` (apollo-compiler does
//! not: `cargo tree -e features -i serde_json`), so every `serde_json::Value` object is an
//! `IndexMap` hashed with SipHash: two allocations, growth copies and a hash per key.
//! Response objects are small and the client response is shaped by walking the operation, so a
//! plain vector of entries with a linear key scan is cheaper to build, look up and drop.

use std::fmt;
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Number;

/// Strings up to this many bytes are stored inline, without a heap allocation.
const INLINE: usize = 22;
// `Str::with_plain_in` and `Str::write_json` take an inline string as 16 bytes and a word.
const _: () = assert!(INLINE > 16 && INLINE < 24);
// A value is a tag and a `Str`; the reader's and merger's moves are sized for 32 bytes.
const _: () = assert!(std::mem::size_of::<Str>() == 24 && std::mem::size_of::<Value>() == 32);

/// An immutable string that keeps short values (most keys, ids and type names) inline.
#[derive(Clone)]
pub(crate) struct Str(Repr);

/// A subgraph response body that the long strings parsed from it are read from in place (see
/// [`Repr::Slice`]): it lives as long as the last of them.
pub(crate) type Source = Arc<bytes::Bytes>;

/// Private so that inline bytes can only come from [`Str::new`], which copies a whole `&str`,
/// and so that the variant always matches the content (which makes `needs_escape` exact).
#[derive(Clone)]
enum Repr {
    /// The first `len` bytes of the array; nothing in them needs JSON escaping.
    Inline(u8, [u8; INLINE]),
    /// A longer string with nothing that needs JSON escaping, read in place from the response
    /// body it was parsed from (`source[start..end]`). Parsing it costs a reference count, not
    /// an allocation and a copy: mimalloc's allocation path was 13% of the gateway's perf
    /// samples on the nested demo query at 50 connections, nearly all of it the first touch
    /// of a cold free block, and long strings (review bodies, names) were about two of every
    /// five allocations the reader made. Only the reader builds it, from text it checked to
    /// be UTF-8, at a string's quotes.
    Slice {
        start: u32,
        end: u32,
        source: Source,
    },
    /// A longer string with nothing that needs JSON escaping, not read from a fetched body
    /// (built by [`Str::new`], or read from text with no [`Source`]). (Boxed, not `Arc`: a shared
    /// response's strings are read in place, not copied, and an `Arc` cost 0.5% more
    /// instructions per request on every parsed string, callgrind, nested demo query.)
    Heap(Box<str>),
    /// A string holding `"`, `\` or a control character, which JSON must escape. Rare, so it
    /// lives apart and the other variants are written out without scanning them again.
    Escaped(Box<str>),
    /// Not a string: the key of a [`Map`]'s base entry (see [`Map::extending`]), equal to no
    /// real key, not even `""`.
    Base,
}

impl Str {
    /// A copy of `s`.
    pub(crate) fn new(s: &str) -> Self {
        if super::json::needs_escape(s.as_bytes()) {
            Str(Repr::Escaped(s.into()))
        } else {
            Self::plain(s)
        }
    }

    /// A copy of `s`, which the caller has checked holds nothing JSON must escape (the JSON
    /// reader knows this of every string it read without escapes).
    pub(crate) fn plain(s: &str) -> Self {
        debug_assert!(!super::json::needs_escape(s.as_bytes()));
        if s.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Str(Repr::Inline(s.len() as u8, bytes))
        } else {
            Str(Repr::Heap(s.into()))
        }
    }

    /// `f` of `text[start..end]` as a string, which the caller has checked holds nothing JSON
    /// must escape. A short string is read as the fixed-size window at `start` with the bytes
    /// past its end masked off, when the text is long enough: copies of known size compile to a
    /// few moves, where [`Str::plain`] calls `memcpy` for each of the thousands of keys and ids
    /// in a response.
    ///
    /// The string is built in each branch (inline or on the heap) apart and handed to `f`
    /// there. Built in one place after the branches meet, the string lives in a
    /// temporary that is written in pieces and then copied in other pieces, a load the CPU
    /// cannot forward from those stores (see `json::Slot`); built in the branch, the compiler
    /// writes it straight to where `f` puts it.
    ///
    /// A long string is read in place from `source` when there is one ([`Repr::Slice`]);
    /// `source` must hold the same bytes as `text`.
    #[inline(always)]
    pub(crate) fn with_plain_in<R>(
        text: &str,
        start: usize,
        end: usize,
        source: Option<&Source>,
        f: impl FnOnce(Str) -> R,
    ) -> R {
        let len = end - start;
        if len <= INLINE {
            if let Some(window) = text.as_bytes().get(start..start + INLINE) {
                debug_assert!(!super::json::needs_escape(&window[..len]));
                let mut low = [0; 16];
                low.copy_from_slice(&window[..16]);
                let mut high = [0; 8];
                high[..INLINE - 16].copy_from_slice(&window[16..]);
                let low = u128::from_le_bytes(low);
                let high = u64::from_le_bytes(high);
                let low = if len >= 16 {
                    low
                } else {
                    low & ((1u128 << (8 * len)) - 1)
                };
                let high = if len <= 16 {
                    0
                } else {
                    high & ((1u64 << (8 * (len - 16))) - 1)
                };
                let mut bytes = [0; INLINE];
                bytes[..16].copy_from_slice(&low.to_le_bytes());
                bytes[16..].copy_from_slice(&high.to_le_bytes()[..INLINE - 16]);
                return f(Str(Repr::Inline(len as u8, bytes)));
            }
        } else {
            // Checked, not assumed: `as_str` reads a slice unchecked, which is sound only for a
            // range of char boundaries of a `&str`'s bytes (a few compares per long string).
            let source = source.filter(|source| {
                std::ptr::eq(source.as_ptr(), text.as_ptr())
                    && source.len() == text.len()
                    && text.is_char_boundary(start)
                    && text.is_char_boundary(end)
            });
            if let (Some(source), Ok(start32), Ok(end32)) =
                (source, u32::try_from(start), u32::try_from(end))
            {
                return f(Str(Repr::Slice {
                    start: start32,
                    end: end32,
                    source: source.clone(),
                }));
            }
            // Built here too, not by a call to `plain` that returns it (see above).
            return f(Str(Repr::Heap(text[start..end].into())));
        }
        f(Self::plain(&text[start..end]))
    }

    /// `s`, reusing its buffer when it is too long to inline.
    pub(crate) fn from_string(s: String) -> Self {
        if super::json::needs_escape(s.as_bytes()) {
            Str(Repr::Escaped(s.into_boxed_str()))
        } else if s.len() <= INLINE {
            Self::plain(&s)
        } else {
            Str(Repr::Heap(s.into_boxed_str()))
        }
    }

    /// Whether writing this string as JSON needs escapes.
    #[cfg(test)]
    pub(crate) fn needs_escape(&self) -> bool {
        matches!(self.0, Repr::Escaped(_))
    }

    /// The UTF-8 bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(len, bytes) => &bytes[..usize::from(*len)],
            Repr::Slice { start, end, source } => &source[*start as usize..*end as usize],
            Repr::Heap(s) | Repr::Escaped(s) => s.as_bytes(),
            Repr::Base => b"",
        }
    }

    /// Appends this string to `out` as a JSON string. An inline string is copied as its whole
    /// fixed-size array and cut back to its length: a copy of known size compiles to a few
    /// moves, where a copy of the exact length calls `memcpy`, which costs more than the copy
    /// for the short keys, ids and type names most strings are.
    // Always inlined: left to itself the compiler inlined it or not depending on unrelated
    // code (a serde_json feature moved it out of line: +1.8% instructions per request).
    #[inline(always)]
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        match &self.0 {
            Repr::Inline(len, bytes) => {
                // The quoted string is put together in two registers (the opening quote, the
                // bytes, the closing quote OR-ed in past them: the bytes past `len` are zero)
                // and written from there. Put together in an array on the stack it was written
                // in pieces and read back at once in other pieces, a load the CPU cannot
                // forward from those stores (see `json::Slot`): a third of the samples of the
                // response writer and of the representation writer went to that load.
                let len = usize::from(*len);
                let mut head = [0; 16];
                head.copy_from_slice(&bytes[..16]);
                let mut tail = [0; 8];
                tail.copy_from_slice(&bytes[INLINE - 8..]);
                let head = u128::from_le_bytes(head);
                // Bytes 16..22, the top two bytes zero.
                let tail = u64::from_le_bytes(tail) >> (8 * (24 - INLINE));
                let mut low = (head << 8) | u128::from(b'"');
                let mut high = ((head >> 120) as u64) | (tail << 8);
                let close = 8 * (len + 1);
                if close < 128 {
                    low |= u128::from(b'"') << close;
                } else {
                    high |= u64::from(b'"') << (close - 128);
                }
                let end = out.len() + len + 2;
                out.reserve(INLINE + 2);
                out.extend_from_slice(&low.to_le_bytes());
                out.extend_from_slice(&high.to_le_bytes());
                out.truncate(end);
            }
            Repr::Heap(s) => super::json::write_quoted(out, s.as_bytes(), false),
            Repr::Slice { .. } => super::json::write_quoted(out, self.as_bytes(), false),
            Repr::Escaped(s) => super::json::write_quoted(out, s.as_bytes(), true),
            Repr::Base => super::json::write_quoted(out, b"", false),
        }
    }

    /// Whether this is the key of a map's base entry.
    fn is_base(&self) -> bool {
        matches!(self.0, Repr::Base)
    }

    /// Whether this string's bytes are `key` (for keys too long for the inline probe).
    #[inline]
    pub(crate) fn is(&self, key: &[u8]) -> bool {
        !self.is_base() && self.as_bytes() == key
    }

    /// The string.
    #[allow(
        unsafe_code,
        reason = "skips re-validating UTF-8 the type guarantees; ~5% of a request (SAFETY below)"
    )]
    pub(crate) fn as_str(&self) -> &str {
        match &self.0 {
            // SAFETY: `Repr::Inline` is only built by `Str::new`, from all the bytes of a `&str`,
            // and never mutated, so the bytes are valid UTF-8. (Checking costs ~5% of a request:
            // every key lookup and every string written to the client goes through here.)
            Repr::Inline(..) => unsafe { std::str::from_utf8_unchecked(self.as_bytes()) },
            // SAFETY: `Repr::Slice` is only built by `with_plain_in`, after checking that its
            // source holds exactly the bytes of a `&str` and that the range's ends are char
            // boundaries of it: the range is valid UTF-8, and `Bytes` are never mutated.
            Repr::Slice { .. } => unsafe { std::str::from_utf8_unchecked(self.as_bytes()) },
            Repr::Heap(s) | Repr::Escaped(s) => s,
            Repr::Base => "",
        }
    }
}

impl PartialEq for Str {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        // Inline bytes past `len` are always zero, so whole arrays compare like the strings
        // and the comparison stays inline instead of calling `memcmp`. Key lookups compare
        // inline keys almost always: the rest stays out of line so this inlines (with the
        // other cases in one function, callgrind counted it as an outlined call per compare).
        if let (Repr::Inline(a_len, a), Repr::Inline(b_len, b)) = (&self.0, &other.0) {
            return a_len == b_len && a == b;
        }
        self.eq_other(other)
    }
}

impl Str {
    #[inline(never)]
    fn eq_other(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Base, other) | (other, Repr::Base) => matches!(other, Repr::Base),
            _ => self.as_bytes() == other.as_bytes(),
        }
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Self {
        Str::new(s)
    }
}

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(StrVisitor)
    }
}

struct StrVisitor;

impl Visitor<'_> for StrVisitor {
    type Value = Str;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E>(self, s: &str) -> Result<Str, E> {
        Ok(Str::new(s))
    }

    fn visit_string<E>(self, s: String) -> Result<Str, E> {
        Ok(Str::from_string(s))
    }
}

/// A JSON value from a subgraph response (or the merged data built from them).
#[derive(Debug, Clone, Default)]
pub(crate) enum Value {
    /// `null`.
    #[default]
    Null,
    /// `true` / `false`.
    Bool(Flag),
    /// Any JSON number.
    Number(Number),
    /// A string.
    String(Str),
    /// A list.
    Array(Vec<Value>),
    /// An object.
    Object(Map),
    /// A list or object that lives in a subgraph response shared with other requests (a
    /// de-duplicated fetch), read in place instead of copied into this request's tree. Only a
    /// request's merged tree holds these, only for lists and objects, never one inside another
    /// (a parsed response has none); writing into one first makes it this tree's own
    /// ([`Value::make_owned`]: an object extending the shared one, a list of references).
    Shared(SharedRef),
    /// An object that several places of this request's tree hold, because they held equal
    /// objects when an entity fetch resolved them (see [`NodeRef`]): what later fetches merge
    /// into it, every place gets, and each place is written out from the one object.
    Node(NodeRef),
}

/// A `bool` with a pointer's alignment. A plain `bool` would sit at byte 1 of a [`Value`], so
/// every move of a value would copy bytes 1..32 as unaligned pieces, and the next read of a
/// list's or object's fields (bytes 8..32) would straddle two of those stores: the CPU cannot
/// forward such a store to the load and stalls until it reaches the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(align(8))]
pub(crate) struct Flag(pub(crate) bool);

/// One object shared by several places of a single request's tree.
///
/// Equal objects at one plan path (the same entity reached through different parents, e.g. the
/// 400 `product` objects of the nested demo query, which are 50 products) are merged into,
/// looked up for representations and shaped once instead of once per place. Only the entity
/// fetch that finds them equal makes one (`execute::Run::merge_entities`), and only entity
/// merges write through it (their writes depend only on the object's content, so every place
/// would have received the same); any other write first gives the place a copy of its own
/// ([`Value::make_owned`]).
///
/// Each alias is a pointer to the object in the same tree: `Clone` copies the object, so no
/// two trees (no two requests) ever hold the same node, and the tree's owner, who needs
/// `&mut` of the whole tree to write anywhere in it, is the only writer.
pub(crate) struct NodeRef(Arc<NodeCell>);

struct NodeCell(std::cell::UnsafeCell<Value>);

// SAFETY: every alias of a node lives in the one tree that holds it (`Clone` copies the
// object into a new node), so sending the tree sends every alias with it, and reading through
// `&` aliases from several threads is reading a `Value` (no interior mutability of its own).
// The only write is `NodeRef::get_mut`, whose contract excludes any other borrow of the tree.
#[allow(
    unsafe_code,
    reason = "a node is written only through &mut of its tree"
)]
unsafe impl Send for NodeCell {}
// SAFETY: as for `Send` above.
#[allow(
    unsafe_code,
    reason = "a node is written only through &mut of its tree"
)]
unsafe impl Sync for NodeCell {}

impl NodeRef {
    /// `value` (an object) as a node; each place holding it takes an [`NodeRef::alias`].
    pub(crate) fn new(value: Value) -> Self {
        debug_assert!(matches!(value, Value::Object(_)));
        NodeRef(Arc::new(NodeCell(std::cell::UnsafeCell::new(value))))
    }

    /// Another place's alias of the same node.
    pub(crate) fn alias(&self) -> Value {
        Value::Node(NodeRef(Arc::clone(&self.0)))
    }

    /// The object.
    #[allow(
        unsafe_code,
        reason = "reads a node that is written only through &mut of its tree"
    )]
    pub(crate) fn get(&self) -> &Value {
        // SAFETY: a write through `get_mut` needs a `&mut` alias with no other borrow of the
        // tree live (its contract), so none is in progress while this `&` exists.
        unsafe { &*self.0 .0.get() }
    }

    /// The object, for writing through this alias: every other place sees the write.
    ///
    /// # Safety
    /// No other reference into the tree holding this node may be live while the result is:
    /// the caller reached `self` through `&mut` of the tree's root and holds nothing else of
    /// it (another alias of the same node could otherwise be read or written at once).
    #[allow(unsafe_code, reason = "see the contract")]
    pub(crate) unsafe fn get_mut(&mut self) -> &mut Value {
        // SAFETY: the caller holds the only live borrow into the tree, and every alias of the
        // node is in that tree.
        unsafe { &mut *self.0 .0.get() }
    }

    /// The node's identity: equal for every alias of it.
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
}

impl Clone for NodeRef {
    /// A new node holding a copy of the object: nodes never cross trees.
    fn clone(&self) -> Self {
        NodeRef::new(self.get().clone())
    }
}

impl fmt::Debug for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.get(), f)
    }
}

/// A list or object inside a shared, parsed subgraph response, kept alive by holding the
/// response. The response is immutable while shared: the executor only moves values out of a
/// response it owns alone (`Arc::try_unwrap`), which cannot succeed while a reference exists.
#[derive(Clone)]
pub(crate) struct SharedRef {
    owner: Arc<super::fetch::Fetched>,
    value: std::ptr::NonNull<Value>,
}

// SAFETY: a `SharedRef` is a `&Value` into `owner`'s data plus the `Arc` that keeps it alive;
// `Value` is `Send` and `Sync` (no interior mutability), so sharing or sending the reference is
// as safe as sending `&Value` with its owner.
#[allow(
    unsafe_code,
    reason = "a reference into an Arc'd response, kept alive by the Arc"
)]
unsafe impl Send for SharedRef {}
// SAFETY: as for `Send` above.
#[allow(
    unsafe_code,
    reason = "a reference into an Arc'd response, kept alive by the Arc"
)]
unsafe impl Sync for SharedRef {}

impl SharedRef {
    /// The value, borrowed for as long as the reference lives.
    #[allow(
        unsafe_code,
        reason = "reads through a pointer into a response the Arc keeps alive and unchanged"
    )]
    pub(crate) fn get(&self) -> &Value {
        // SAFETY: `value` points into `owner`'s parsed data (every constructor borrows it from
        // there), which is neither moved nor mutated while any `Arc` to it exists, and this
        // struct holds one for at least as long as the returned borrow.
        unsafe { self.value.as_ref() }
    }

    /// `value`, a part of this reference's value, as a value of the same response: lists and
    /// objects by reference, scalars copied.
    #[allow(
        unsafe_code,
        reason = "a part of this reference's value lives in the same owner"
    )]
    fn share(&self, value: &Value) -> Value {
        // SAFETY: callers pass a part of `self.get()`, which lives inside `self.owner`.
        unsafe { share(&self.owner, value) }
    }
}

impl fmt::Debug for SharedRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.get(), f)
    }
}

/// `value` as a value for a request's tree: lists and objects by reference, scalars copied.
///
/// # Safety
/// `value` must be borrowed from `owner`'s parsed data (`owner.response.data` or a part of it):
/// the result points at it and relies on `owner` to keep it alive and unchanged.
#[allow(
    unsafe_code,
    reason = "the caller vouches that the value lives inside the owner"
)]
pub(crate) unsafe fn share(owner: &Arc<super::fetch::Fetched>, value: &Value) -> Value {
    match value {
        Value::Array(_) | Value::Object(_) => Value::Shared(SharedRef {
            owner: Arc::clone(owner),
            value: std::ptr::NonNull::from(value),
        }),
        Value::Shared(inner) => Value::Shared(inner.clone()),
        // Responses hold no nodes; a copy keeps nodes inside their own tree.
        Value::Node(node) => Value::Node(node.clone()),
        scalar => scalar.clone(),
    }
}

/// A JSON object: entries in insertion order, keys unique, looked up by linear scan.
///
/// An object of a request's tree may extend a shared object (see [`Map::extending`]): its first
/// entry is then the base (key [`Repr::Base`], value [`Value::Shared`]), whose entries count as
/// the object's own unless an entry of the same key here shadows them. Merging entity fields
/// into an object of a shared response then costs only the new fields, not a copy of it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Map {
    entries: Vec<(Str, Value)>,
}

impl Map {
    /// An empty object.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// An object of `entries`, whose keys the caller guarantees are unique.
    pub(crate) fn from_entries(entries: Vec<(Str, Value)>) -> Self {
        Self { entries }
    }

    /// Makes an empty object one of `entries`, whose keys the caller guarantees are unique.
    /// (The JSON reader writes an empty object into its place and then fills it: a whole
    /// object built first would be copied into the place from a temporary, see `json::Slot`.)
    #[inline(always)]
    pub(crate) fn fill(&mut self, entries: Vec<(Str, Value)>) {
        let empty = std::mem::replace(&mut self.entries, entries);
        debug_assert_eq!(empty.capacity(), 0);
        // Nothing to drop, and a drop call here would make the compiler keep `entries` in a
        // temporary to copy after it.
        std::mem::forget(empty);
    }

    /// An object with `base`'s entries (a shared object) and none of its own yet.
    fn extending(base: SharedRef) -> Self {
        debug_assert!(matches!(base.get(), Value::Object(_)));
        let mut entries = Vec::with_capacity(4);
        entries.push((Str(Repr::Base), Value::Shared(base)));
        Self { entries }
    }

    /// The shared object this one extends, with the reference to it.
    fn base(&self) -> Option<(&SharedRef, &Map)> {
        match self.entries.first() {
            Some((key, Value::Shared(shared))) if key.is_base() => match shared.get() {
                Value::Object(map) => Some((shared, map)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The entries in order, keys with values, of an object that extends no shared one (a
    /// parsed response's); others are read with [`Map::for_each`].
    pub(crate) fn entries(&self) -> &[(Str, Value)] {
        debug_assert!(self.base().is_none());
        &self.entries
    }

    /// Calls `f` with every entry in order: a base's entries first (each as shadowed here, if
    /// it is), then this object's others, which is the order a copy of the base with the new
    /// entries appended would have.
    pub(crate) fn for_each<'m>(&'m self, mut f: impl FnMut(&'m Str, &'m Value)) {
        match self.base() {
            None => self.entries.iter().for_each(|(k, v)| f(k, v)),
            Some((_, base)) => {
                for (k, v) in &base.entries {
                    f(k, self.own(k.as_bytes()).unwrap_or(v));
                }
                for (k, v) in &self.entries[1..] {
                    if base.get(k.as_str()).is_none() {
                        f(k, v);
                    }
                }
            }
        }
    }

    /// The entries in order, of an object that extends no shared one; `None` for one that does.
    pub(crate) fn plain_entries(&self) -> Option<&[(Str, Value)]> {
        self.base().is_none().then_some(&self.entries[..])
    }

    /// Whether `other` starts with this object's entries, in the same order, all of them
    /// scalars that write the same bytes (`0.0` and `-0.0`, equal numbers, are not the same
    /// here): whether `other` is this object with entries added after them. Lists and objects
    /// are not compared (`false`).
    pub(crate) fn scalar_prefix_of(&self, other: &Map) -> bool {
        let (Some(mine), Some(theirs)) = (self.plain_entries(), other.plain_entries()) else {
            return false;
        };
        mine.len() <= theirs.len()
            && mine
                .iter()
                .zip(theirs)
                .all(|((k1, v1), (k2, v2))| k1 == k2 && v1.same_scalar(v2))
    }

    /// How many entries [`Map::for_each`] visits.
    pub(crate) fn len(&self) -> usize {
        match self.base() {
            None => self.entries.len(),
            Some((_, base)) => {
                base.entries.len()
                    + self.entries[1..]
                        .iter()
                        .filter(|(k, _)| base.get(k.as_str()).is_none())
                        .count()
            }
        }
    }

    /// The value under `key` among this object's own entries (not its base's).
    fn own(&self, key: &[u8]) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k.is(key)).map(|(_, v)| v)
    }

    /// The value under `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.own(key.as_bytes())
            .or_else(|| self.base().and_then(|(_, base)| base.get(key)))
    }

    /// The value under `key` (a [`Str`]: a short key compares as two words, not a `memcmp`).
    pub(crate) fn get_key(&self, key: &Str) -> Option<&Value> {
        match self.entries.iter().find(|(k, _)| k == key) {
            Some((_, v)) => Some(v),
            None => self.base().and_then(|(_, base)| base.get_key(key)),
        }
    }

    /// The value under `key`, trying position `*hint` first and leaving `*hint` just past the
    /// entry found. Callers that read keys in the order a subgraph wrote them (the response
    /// shaper walking the operation) then find each one with a single comparison. (In an
    /// object extending a shared one, `*hint` follows the shared object's entries, where the
    /// subgraph's order is, and this object's own entries are searched first.)
    pub(crate) fn get_hinted(&self, key: &Str, hint: &mut usize) -> Option<&Value> {
        let map = match self.base() {
            Some((_, base)) => {
                if let Some((_, v)) = self.entries[1..].iter().find(|(k, _)| k == key) {
                    return Some(v);
                }
                base
            }
            None => self,
        };
        if let Some((k, v)) = map.entries.get(*hint) {
            if k == key {
                *hint += 1;
                return Some(v);
            }
        }
        let index = map.entries.iter().position(|(k, _)| k == key)?;
        *hint = index + 1;
        Some(&map.entries[index].1)
    }

    /// The position of `key` among this object's own entries, trying `*hint` first and leaving
    /// `*hint` there. Walks down a plan path look one key up in many sibling objects, which a
    /// subgraph wrote with their keys in one order: one comparison each instead of a scan
    /// (3.2% fewer instructions per request on the nested demo query, callgrind; under load
    /// the walks still pay for the first touch of each cold object).
    fn own_index_at_hint(&self, key: &Str, hint: &mut usize) -> Option<usize> {
        let index = match self.entries.get(*hint) {
            Some((k, _)) if k == key => *hint,
            _ => self.entries.iter().position(|(k, _)| k == key)?,
        };
        *hint = index;
        Some(index)
    }

    /// The value under `key`, found through `hint` (see [`Map::own_index_at_hint`]); an object
    /// extending a shared one looks `key` up without it, as [`Map::get_key`] does.
    pub(crate) fn get_at_hint(&self, key: &Str, hint: &mut usize) -> Option<&Value> {
        if self.base().is_some() {
            return self.get_key(key);
        }
        let index = self.own_index_at_hint(key, hint)?;
        Some(&self.entries[index].1)
    }

    /// [`Map::get_at_hint`], for writing (through [`Map::get_mut_key`] when extending).
    pub(crate) fn get_mut_at_hint(&mut self, key: &Str, hint: &mut usize) -> Option<&mut Value> {
        if self.base().is_some() {
            return self.get_mut_key(key);
        }
        let index = self.own_index_at_hint(key, hint)?;
        Some(&mut self.entries[index].1)
    }

    /// Makes room for `additional` more entries, and some to spare when it has to grow: an
    /// object that receives entity fields usually receives them from several fetches in turn,
    /// and growing it for each one showed up as a realloc per object per fetch.
    pub(crate) fn reserve(&mut self, additional: usize) {
        if self.entries.capacity() - self.entries.len() < additional {
            self.entries.reserve_exact(additional + additional / 2 + 2);
        }
    }

    /// The value under `key`, for writing.
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        if key.len() <= INLINE {
            let probe = Str::new(key);
            return self.get_mut_key(&probe);
        }
        let bytes = key.as_bytes();
        match self.entries.iter().position(|(k, _)| k.is(bytes)) {
            Some(index) => Some(&mut self.entries[index].1),
            None => self.shadow(|| Str::new(key)),
        }
    }

    /// The value under `key` (a [`Str`], compared without `memcmp` when short), for writing.
    /// An entry of the base is first copied here (its lists and objects stay shared).
    pub(crate) fn get_mut_key(&mut self, key: &Str) -> Option<&mut Value> {
        match self.entries.iter().position(|(k, _)| k == key) {
            Some(index) => Some(&mut self.entries[index].1),
            None => self.shadow(|| key.clone()),
        }
    }

    /// The base's entry under `key`, copied into this object to be written (lists and objects
    /// stay shared), or `None` when the base has no such entry (or there is no base).
    fn shadow(&mut self, key: impl FnOnce() -> Str) -> Option<&mut Value> {
        let (shared, base) = self.base()?;
        let key = key();
        let value = shared.share(base.get_key(&key)?);
        self.entries.push((key, value));
        self.entries.last_mut().map(|(_, v)| v)
    }

    /// Sets `key` (keeping its position when it exists); returns the value it replaced.
    pub(crate) fn insert(&mut self, key: Str, value: Value) -> Option<Value> {
        match self.get_mut_key(&key) {
            Some(slot) => Some(std::mem::replace(slot, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// Appends an entry whose key the caller has just looked up and not found.
    pub(crate) fn push_new(&mut self, key: Str, value: Value) {
        debug_assert!(self.get(key.as_str()).is_none());
        self.entries.push((key, value));
    }

    /// Removes `key`, keeping the order of the other entries.
    pub(crate) fn shift_remove(&mut self, key: &str) -> Option<Value> {
        self.flatten();
        let key = key.as_bytes();
        let index = self.entries.iter().position(|(k, _)| k.is(key))?;
        Some(self.entries.remove(index).1)
    }

    /// Copies the base's entries into this object (lists and objects stay shared), so that the
    /// entries are all its own, in [`Map::for_each`]'s order.
    fn flatten(&mut self) {
        let Some((shared, _)) = self.base() else {
            return;
        };
        let shared = shared.clone();
        let Value::Object(base) = shared.get() else {
            return;
        };
        let mut own: Vec<Option<(Str, Value)>> = self.entries.drain(1..).map(Some).collect();
        let mut entries = Vec::with_capacity(base.entries.len() + own.len());
        for (k, v) in &base.entries {
            let shadowing = own
                .iter_mut()
                .find(|e| e.as_ref().is_some_and(|(ok, _)| ok == k));
            match shadowing.and_then(Option::take) {
                Some(entry) => entries.push(entry),
                None => entries.push((k.clone(), shared.share(v))),
            }
        }
        entries.extend(own.into_iter().flatten());
        self.entries = entries;
    }

    /// The entries in order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        let mut out = Vec::new();
        self.for_each(|k, v| out.push((k.as_str(), v)));
        out.into_iter()
    }
}

impl PartialEq for Map {
    /// The same entries in the same order, whichever object holds them.
    fn eq(&self, other: &Self) -> bool {
        if self.len() != other.len() {
            return false;
        }
        let mut mine = Vec::with_capacity(self.len());
        self.for_each(|k, v| mine.push((k, v)));
        let mut equal = true;
        let mut i = 0;
        other.for_each(|k, v| {
            equal &= mine.get(i).is_some_and(|(mk, mv)| *mk == k && *mv == v);
            i += 1;
        });
        equal
    }
}

impl IntoIterator for Map {
    type Item = (Str, Value);
    type IntoIter = std::vec::IntoIter<(Str, Value)>;
    fn into_iter(mut self) -> Self::IntoIter {
        self.flatten();
        self.entries.into_iter()
    }
}

static NULL: Value = Value::Null;

/// Starts loading, ahead of use, the first entries an object's walk reads (its first entry,
/// which says whether it extends a shared object, and the one at `hint`, where the key looked
/// for usually is) or a list's first items. A walk over many objects parsed long before finds
/// each one cold (with 50 requests in flight the tree a request merges into has left the
/// caches since it was written), and the work done per object keeps the CPU from reaching the
/// next object's loads on its own: started one object ahead, those loads overlap that work.
#[inline(always)]
pub(crate) fn prefetch_contents(value: &Value, hint: usize) {
    match value {
        Value::Object(map) => {
            prefetch(map.entries.as_ptr());
            prefetch(map.entries.as_ptr().wrapping_add(hint));
        }
        Value::Array(items) => prefetch(items.as_ptr()),
        _ => {}
    }
}

/// Starts loading the cache line at `ptr` (any address: nothing is read, nothing can fault).
#[inline(always)]
#[allow(
    unsafe_code,
    reason = "the prefetch intrinsic is `unsafe` only for its target feature (SAFETY below)"
)]
pub(crate) fn prefetch<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE, the intrinsic's target feature, is part of the x86_64 baseline; a prefetch
    // reads nothing into the program and never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(ptr.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

impl Value {
    /// The value itself, or the shared value a [`Value::Shared`] stands for: what every reader
    /// matches on.
    #[inline]
    pub(crate) fn resolved(&self) -> &Value {
        match self {
            Value::Shared(shared) => shared.get(),
            Value::Node(node) => node.get().resolved(),
            value => value,
        }
    }

    /// Turns a [`Value::Shared`] into a value of this tree's own before it is written to: an
    /// object becomes an empty one extending the shared one ([`Map::extending`]), a list a list
    /// of references to the shared items. Other values are left as they are.
    /// A [`Value::Node`] becomes a copy of its object for this place alone: a write that is not
    /// an entity merge need not suit every place holding the node.
    pub(crate) fn make_owned(&mut self) {
        while let Value::Node(node) = self {
            *self = node.get().clone();
        }
        let Value::Shared(shared) = self else {
            return;
        };
        let owned = match shared.get() {
            Value::Object(_) => Value::Object(Map::extending(shared.clone())),
            Value::Array(items) => {
                Value::Array(items.iter().map(|item| shared.share(item)).collect())
            }
            scalar => scalar.clone(),
        };
        *self = owned;
    }

    /// Whether this is a scalar (`null`, a boolean, number or string).
    pub(crate) fn is_scalar(&self) -> bool {
        matches!(
            self,
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_)
        )
    }

    /// Whether both are scalars that write the same bytes (see [`Map::scalar_prefix_of`]).
    fn same_scalar(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(Flag(a)), Value::Bool(Flag(b))) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Number(a), Value::Number(b)) => {
                (a.as_u64(), a.as_i64(), a.as_f64().map(f64::to_bits))
                    == (b.as_u64(), b.as_i64(), b.as_f64().map(f64::to_bits))
            }
            _ => false,
        }
    }

    /// Whether this is `null`.
    pub(crate) fn is_null(&self) -> bool {
        matches!(self.resolved(), Value::Null)
    }

    /// Whether this is an object.
    pub(crate) fn is_object(&self) -> bool {
        matches!(self.resolved(), Value::Object(_))
    }

    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self.resolved() {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// The object, if this is one.
    pub(crate) fn as_object(&self) -> Option<&Map> {
        match self.resolved() {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The member `key` of an object.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?.get(key)
    }
}

impl PartialEq for Value {
    /// Equal JSON, whether either side is shared or this tree's own.
    fn eq(&self, other: &Self) -> bool {
        match (self.resolved(), other.resolved()) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(Flag(a)), Value::Bool(Flag(b))) => a == b,
            (Value::Number(a), Value::Number(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => a == b,
            (Value::Object(a), Value::Object(b)) => a == b,
            _ => false,
        }
    }
}

impl std::ops::Index<&str> for Value {
    type Output = Value;
    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

impl std::ops::Index<usize> for Value {
    type Output = Value;
    fn index(&self, index: usize) -> &Value {
        match self.resolved() {
            Value::Array(items) => items.get(index).unwrap_or(&NULL),
            _ => &NULL,
        }
    }
}

impl From<serde_json::Value> for Value {
    fn from(value: serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(Flag(b)),
            serde_json::Value::Number(n) => Value::Number(n),
            serde_json::Value::String(s) => Value::String(Str::from_string(s)),
            serde_json::Value::Array(items) => {
                Value::Array(items.into_iter().map(Value::from).collect())
            }
            serde_json::Value::Object(object) => Value::Object(Map {
                entries: object
                    .into_iter()
                    .map(|(k, v)| (Str::from_string(k), v.into()))
                    .collect(),
            }),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(Flag(b)) => serializer.serialize_bool(*b),
            Value::Number(n) => n.serialize(serializer),
            Value::String(s) => serializer.serialize_str(s.as_str()),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Object(object) => {
                let mut map = serializer.serialize_map(Some(object.len()))?;
                let mut result = Ok(());
                object.for_each(|k, v| {
                    if result.is_ok() {
                        result = map.serialize_entry(k.as_str(), v);
                    }
                });
                result?;
                map.end()
            }
            Value::Shared(shared) => shared.get().serialize(serializer),
            Value::Node(node) => node.get().serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Deserialize::deserialize(deserializer)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(Flag(b)))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(Str::new(s)))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(Str::from_string(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map {
            entries: Vec::with_capacity(access.size_hint().unwrap_or(4).min(64)),
        };
        while let Some((key, value)) = access.next_entry::<Str, Value>()? {
            // A repeated key keeps its first position and its last value, like serde_json.
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: &mut Value) -> &mut Map {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn a_node_is_one_object_at_every_place_and_copies_are_apart() {
        let node = NodeRef::new(Value::from(json!({"upc": "p1"})));
        let mut tree = Value::Array(vec![node.alias(), node.alias()]);
        drop(node);
        let Value::Array(places) = &mut tree else {
            unreachable!()
        };
        let Value::Node(first) = &mut places[0] else {
            unreachable!()
        };
        // SAFETY: nothing else of `tree` is borrowed.
        #[allow(unsafe_code, reason = "the test holds the only borrow of the tree")]
        let written = unsafe { first.get_mut() };
        object(written).insert(Str::new("name"), Value::from(json!("Table")));
        assert_eq!(
            tree,
            Value::from(json!([{"upc": "p1", "name": "Table"}, {"upc": "p1", "name": "Table"}]))
        );

        // A copy of the tree holds nodes of its own: writes to it stay there.
        let mut copy = tree.clone();
        let Value::Array(copies) = &mut copy else {
            unreachable!()
        };
        let Value::Node(copied) = &mut copies[0] else {
            unreachable!()
        };
        // SAFETY: nothing else of `copy` is borrowed.
        #[allow(unsafe_code, reason = "the test holds the only borrow of the copy")]
        let written = unsafe { copied.get_mut() };
        object(written).insert(Str::new("name"), Value::from(json!("Chair")));
        assert_eq!(copy[0]["name"], Value::from(json!("Chair")));
        assert_eq!(copy[1]["name"], Value::from(json!("Table")));
        assert_eq!(tree[0]["name"], Value::from(json!("Table")));

        // A place made its own leaves the node to the others.
        let Value::Array(places) = &mut tree else {
            unreachable!()
        };
        places[1].make_owned();
        object(&mut places[1]).insert(Str::new("name"), Value::from(json!("Lamp")));
        assert_eq!(tree[0]["name"], Value::from(json!("Table")));
        assert_eq!(tree[1]["name"], Value::from(json!("Lamp")));
        assert_eq!(
            serde_json::to_string(&tree).unwrap(),
            r#"[{"upc":"p1","name":"Table"},{"upc":"p1","name":"Lamp"}]"#
        );
    }

    #[test]
    fn a_scalar_prefix_writes_the_same_bytes() {
        let map = |json: serde_json::Value| match Value::from(json) {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let a = map(json!({"id": "1", "n": 2, "f": 0.5, "b": true, "z": null}));
        assert!(a.scalar_prefix_of(&map(
            json!({"id": "1", "n": 2, "f": 0.5, "b": true, "z": null})
        )));
        assert!(map(json!({"id": "1"})).scalar_prefix_of(&a));
        assert!(!a.scalar_prefix_of(&map(json!({"id": "1"}))));
        let zero: Value = serde_json::from_str(r#"{"x":0.0}"#).unwrap();
        let minus: Value = serde_json::from_str(r#"{"x":-0.0}"#).unwrap();
        // Equal numbers that write differently are not the same object for a response.
        assert_eq!(zero, minus);
        assert!(!zero
            .as_object()
            .unwrap()
            .scalar_prefix_of(minus.as_object().unwrap()));
        assert!(!map(json!({"n": 1})).scalar_prefix_of(&map(json!({"n": 1.0}))));
        assert!(!map(json!({"a": 1, "b": 2})).scalar_prefix_of(&map(json!({"b": 2, "a": 1}))));
        assert!(!map(json!({"o": {}})).scalar_prefix_of(&map(json!({"o": {}}))));
    }

    #[test]
    fn round_trips_and_keeps_order() {
        let text = r#"{"b":1,"a":[true,null,"x",2.5,-3],"c":{"z":{},"y":[]}}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&value).unwrap(), text);
        assert_eq!(
            value,
            Value::from(serde_json::from_str::<serde_json::Value>(text).unwrap())
        );
        assert_eq!(value["a"], Value::from(json!([true, null, "x", 2.5, -3])));
        assert!(value["missing"].is_null());
    }

    /// A string read through the masked window, or in place from its source, is the same `Str`
    /// as one copied exactly: same bytes, equal both ways (which needs inline bytes past the
    /// end to be zero), written the same way, and a copy of it too.
    #[test]
    fn strings_read_through_a_window_or_in_place_equal_exact_copies() {
        let text: String = ('a'..='z')
            .chain('A'..='Z')
            .chain('0'..='9')
            .collect::<String>()
            + "é";
        let source: Source = Arc::new(bytes::Bytes::from(text.clone()));
        let in_source = std::str::from_utf8(&source).unwrap();
        let (mut slices, mut long) = (0, 0);
        for start in 0..text.len() {
            for end in start..=text.len() {
                if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
                    continue;
                }
                let windowed = Str::with_plain_in(&text, start, end, None, |s| s);
                let in_place = Str::with_plain_in(in_source, start, end, Some(&source), |s| s);
                slices += usize::from(matches!(in_place.0, Repr::Slice { .. }));
                // A source that is not the text's own bytes is never pointed into.
                let elsewhere = Str::with_plain_in(&text, start, end, Some(&source), |s| s);
                assert!(!matches!(elsewhere.0, Repr::Slice { .. }));
                long += usize::from(end - start > INLINE);
                let copied = Str::plain(&text[start..end]);
                for read in [&windowed, &in_place, &in_place.clone(), &elsewhere] {
                    assert_eq!(read.as_str(), &text[start..end]);
                    assert!(*read == copied, "{start}..{end}");
                    assert!(copied == *read, "{start}..{end}");
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    read.write_json(&mut a);
                    copied.write_json(&mut b);
                    assert_eq!(a, b);
                }
            }
        }
        // Every string longer than the inline size was read in place.
        assert_eq!(slices, long);
        assert_eq!(
            Arc::strong_count(&source),
            1,
            "every string let go of the body"
        );
    }

    #[test]
    fn repeated_keys_keep_the_last_value() {
        let value: Value = serde_json::from_str(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(serde_json::to_string(&value).unwrap(), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn long_and_short_strings_compare_by_content() {
        let long = "a string that is too long to be stored inline";
        let value: Value = serde_json::from_str(&format!(r#"["ab","{long}"]"#)).unwrap();
        assert_eq!(value[0].as_str(), Some("ab"));
        assert_eq!(value[1].as_str(), Some(long));
        let accented = "é".repeat(INLINE / 2);
        assert!(matches!(Str::new(&accented).0, Repr::Inline(..)));
        assert_eq!(Str::new(&accented).as_str(), accented);
        assert!(matches!(Str::new(long).0, Repr::Heap(_)));
        assert_eq!(Str::new(long), Str::from_string(long.to_owned()));
        for special in [
            "a\"b",
            "back\\slash",
            "tab\there",
            "a much longer line\nthat is not inline",
        ] {
            assert!(Str::new(special).needs_escape(), "{special:?}");
            assert!(Str::from_string(special.to_owned()).needs_escape());
            assert_eq!(Str::new(special).as_str(), special);
        }
        assert!(!Str::new(long).needs_escape() && !Str::new(&accented).needs_escape());
    }

    #[test]
    fn map_edits_keep_positions() {
        let mut map = Map::new();
        map.insert("a".into(), Value::Bool(Flag(true)));
        map.insert("b".into(), Value::Null);
        assert_eq!(
            map.insert("a".into(), Value::Null),
            Some(Value::Bool(Flag(true)))
        );
        assert_eq!(map.shift_remove("a"), Some(Value::Null));
        assert_eq!(map.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["b"]);
    }
}
