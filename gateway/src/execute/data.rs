//! The executor's own JSON value for subgraph data.
//!
//! The workspace's own Cargo.toml turns on serde_json's `preserve_order` (apollo-compiler does
//! not: `cargo tree -e features -i serde_json`), so every `serde_json::Value` object is an
//! `IndexMap` hashed with SipHash: two allocations, growth copies and a hash per key.
//! Response objects are small and the client response is shaped by walking the operation, so a
//! plain vector of entries with a linear key scan is cheaper to build, look up and drop.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Number;

/// Strings up to this many bytes are stored inline, without a heap allocation.
const INLINE: usize = 22;

/// An immutable string that keeps short values (most keys, ids and type names) inline.
#[derive(Clone)]
pub(crate) struct Str(Repr);

/// Private so that inline bytes can only come from [`Str::new`], which copies a whole `&str`,
/// and so that the variant always matches the content (which makes `needs_escape` exact).
#[derive(Clone)]
enum Repr {
    /// The first `len` bytes of the array; nothing in them needs JSON escaping.
    Inline(u8, [u8; INLINE]),
    /// A longer string with nothing that needs JSON escaping.
    Heap(Box<str>),
    /// A string holding `"`, `\` or a control character, which JSON must escape. Rare, so it
    /// lives apart and the other variants are written out without scanning them again.
    Escaped(Box<str>),
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
    pub(crate) fn needs_escape(&self) -> bool {
        matches!(self.0, Repr::Escaped(_))
    }

    /// The UTF-8 bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(len, bytes) => &bytes[..usize::from(*len)],
            Repr::Heap(s) | Repr::Escaped(s) => s.as_bytes(),
        }
    }

    /// Whether this string's bytes are `key` (for keys too long for the inline probe).
    #[inline]
    pub(crate) fn is(&self, key: &[u8]) -> bool {
        self.as_bytes() == key
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
            Repr::Heap(s) | Repr::Escaped(s) => s,
        }
    }
}

impl PartialEq for Str {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            // Inline bytes past `len` are always zero, so whole arrays compare like the strings
            // and the comparison stays inline instead of calling `memcmp`.
            (Repr::Inline(a_len, a), Repr::Inline(b_len, b)) => a_len == b_len && a == b,
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
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Value {
    /// `null`.
    #[default]
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// Any JSON number.
    Number(Number),
    /// A string.
    String(Str),
    /// A list.
    Array(Vec<Value>),
    /// An object.
    Object(Map),
}

/// A JSON object: entries in insertion order, keys unique, looked up by linear scan.
#[derive(Debug, Clone, Default, PartialEq)]
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

    /// The entries in order, keys with values.
    pub(crate) fn entries(&self) -> &[(Str, Value)] {
        &self.entries
    }

    /// The value under `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        let key = key.as_bytes();
        self.entries.iter().find(|(k, _)| k.is(key)).map(|(_, v)| v)
    }

    /// The value under `key`, trying position `*hint` first and leaving `*hint` just past the
    /// entry found. Callers that read keys in the order a subgraph wrote them (the response
    /// shaper walking the operation) then find each one with a single comparison.
    pub(crate) fn get_hinted(&self, key: &str, hint: &mut usize) -> Option<&Value> {
        let key = key.as_bytes();
        if let Some((k, v)) = self.entries.get(*hint) {
            if k.is(key) {
                *hint += 1;
                return Some(v);
            }
        }
        let index = self.entries.iter().position(|(k, _)| k.is(key))?;
        *hint = index + 1;
        Some(&self.entries[index].1)
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
        let key = key.as_bytes();
        self.entries
            .iter_mut()
            .find(|(k, _)| k.is(key))
            .map(|(_, v)| v)
    }

    /// The value under `key` (a [`Str`], compared without `memcmp` when short), for writing.
    pub(crate) fn get_mut_key(&mut self, key: &Str) -> Option<&mut Value> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
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
        let key = key.as_bytes();
        let index = self.entries.iter().position(|(k, _)| k.is(key))?;
        Some(self.entries.remove(index).1)
    }

    /// The entries in order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl IntoIterator for Map {
    type Item = (Str, Value);
    type IntoIter = std::vec::IntoIter<(Str, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

static NULL: Value = Value::Null;

impl Value {
    /// Whether this is `null`.
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Whether this is an object.
    pub(crate) fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }

    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// The object, if this is one.
    pub(crate) fn as_object(&self) -> Option<&Map> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The member `key` of an object.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?.get(key)
    }

    /// The member `key` of an object, for writing.
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        match self {
            Value::Object(o) => o.get_mut(key),
            _ => None,
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
        match self {
            Value::Array(items) => items.get(index).unwrap_or(&NULL),
            _ => &NULL,
        }
    }
}

impl From<serde_json::Value> for Value {
    fn from(value: serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
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
            Value::Bool(b) => serializer.serialize_bool(*b),
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
                let mut map = serializer.serialize_map(Some(object.entries.len()))?;
                for (k, v) in &object.entries {
                    map.serialize_entry(k.as_str(), v)?;
                }
                map.end()
            }
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
        Ok(Value::Bool(b))
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
        map.insert("a".into(), Value::Bool(true));
        map.insert("b".into(), Value::Null);
        assert_eq!(map.insert("a".into(), Value::Null), Some(Value::Bool(true)));
        assert_eq!(map.shift_remove("a"), Some(Value::Null));
        assert_eq!(map.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["b"]);
    }
}
