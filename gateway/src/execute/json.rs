//! A JSON reader and writer specialised for the executor's [`Value`].
//!
//! Subgraph bodies are the bulk of the gateway's input, and going through serde's visitor
//! machinery cost a string validation per string, a `String` for every escaped one and a
//! generic number parser per number. This reader validates the body's UTF-8 once, then copies
//! each unescaped string straight from the bytes. The writer copies strings that need no
//! escaping in one `extend_from_slice` instead of serde_json's byte-by-byte escaper.

use serde_json::Number;

use super::data::{Flag, Map, Source, Str, Value};

/// Nesting at this depth is refused, so 127 levels are the most accepted: serde_json's default
/// recursion limit, so that both accept the same bodies.
const MAX_DEPTH: usize = 128;

/// Why a body is not valid JSON: a message with the byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonError {
    message: &'static str,
    offset: usize,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

/// A parsed subgraph response: `data`, and the raw `errors` list (kept as loose JSON).
#[derive(Debug, Default)]
pub(crate) struct Response {
    /// The `data` member, if present and not null.
    pub(crate) data: Option<Value>,
    /// The `errors` member, if present and not null.
    pub(crate) errors: Option<Vec<serde_json::Value>>,
}

/// Parses a GraphQL response body (`{"data":...,"errors":[...],"extensions":...}`).
pub(crate) fn parse_response(bytes: &[u8]) -> Result<Response, JsonError> {
    parse_response_with(bytes, None)
}

/// [`parse_response`] of a body the long strings read from it point into, which then lives
/// as long as they do (see [`Source`]).
pub(crate) fn parse_response_in(body: bytes::Bytes) -> Result<Response, JsonError> {
    let source = Source::new(body);
    parse_response_with(&source, Some(&source))
}

fn parse_response_with(bytes: &[u8], source: Option<&Source>) -> Result<Response, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|err| JsonError {
        message: "invalid UTF-8",
        offset: err.valid_up_to(),
    })?;
    let mut reader = Reader::new(text);
    reader.source = source;
    let mut response = Response::default();
    reader.skip_ws();
    reader.expect(b'{', "expected a JSON object")?;
    reader.skip_ws();
    if reader.peek() == Some(b'}') {
        reader.pos += 1;
    } else {
        loop {
            reader.skip_ws();
            let key = reader.string_key()?;
            reader.skip_ws();
            reader.expect(b':', "expected `:`")?;
            reader.skip_ws();
            // Members sit at depth 1: the response object counts, as it does for serde_json.
            match key {
                "data" => {
                    let value = reader.value(1)?;
                    response.data = (!value.is_null()).then_some(value);
                }
                "errors" => {
                    let start = reader.pos;
                    let value = reader.value(1)?;
                    response.errors = match value {
                        Value::Null => None,
                        Value::Array(_) => {
                            // Errors are rare and small: let serde_json build its own values.
                            let raw = &bytes[start..reader.pos];
                            Some(serde_json::from_slice(raw).map_err(|_| JsonError {
                                message: "invalid `errors` list",
                                offset: start,
                            })?)
                        }
                        _ => {
                            return Err(JsonError {
                                message: "`errors` is not a list",
                                offset: start,
                            })
                        }
                    };
                }
                _ => {
                    reader.value(1)?;
                }
            }
            reader.skip_ws();
            match reader.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(reader.error("expected `,` or `}`")),
            }
        }
    }
    reader.skip_ws();
    if reader.pos != bytes.len() {
        return Err(reader.error("trailing characters"));
    }
    Ok(response)
}

/// Parses one JSON value (the whole input).
pub(crate) fn parse_value(text: &str) -> Result<Value, JsonError> {
    let mut reader = Reader::new(text);
    reader.skip_ws();
    let value = reader.value(0)?;
    reader.skip_ws();
    if reader.pos != text.len() {
        return Err(reader.error("trailing characters"));
    }
    Ok(value)
}

struct Reader<'a> {
    /// The same bytes as `bytes`, already checked to be UTF-8.
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Entries of the objects being read, innermost last. Each object collects here and then
    /// moves out into a vector of exactly its size, so no object or list vector ever regrows.
    entries: Vec<(Str, Value)>,
    /// Items of the lists being read, the same way.
    items: Vec<Value>,
    /// Per entry on the entry stack, the range of the text its key was read from, or
    /// `(0, ESCAPED_KEY)` for a key with escapes (compared as a `Str` instead).
    keys: Vec<(usize, usize)>,
    /// Where a value read at the top (not inside a list or object) is put.
    top: Value,
    /// The body `text` is, when long strings are to be read in place from it.
    source: Option<&'a Source>,
}

/// The end of the key range that marks a key read with escapes.
const ESCAPED_KEY: usize = usize::MAX;

/// Where [`Reader::value_into`] puts the value it read: an entry reserved (with `null`) on the
/// entry stack, an item reserved on the item stack, or the reader's `top`.
///
/// Values are written straight into their place, never returned: a value built in one place
/// and copied at once to another is read back in other pieces (16-byte moves) than it was
/// written in (a tag byte, then words), a load the CPU cannot forward from those stores, so
/// each such copy stalled until the stores reached the cache. perf put two thirds of the
/// reader's samples on such copies (of returned `Result<Value, _>`s, of `Str`s, of entries
/// pushed from a temporary); the compiler writes a value straight into its place only when
/// the place is known before the value is built and nothing that may panic lies between.
#[derive(Clone, Copy)]
enum Slot {
    Entry(usize),
    Item(usize),
    Top,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Reader {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            entries: Vec::new(),
            items: Vec::new(),
            keys: Vec::new(),
            top: Value::Null,
            source: None,
        }
    }

    fn error(&self, message: &'static str) -> JsonError {
        JsonError {
            message,
            offset: self.pos,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8, message: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(message))
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// The place `slot` names. A function of the fields, not a method, so that the text can
    /// still be read while the place is held: each value is built after its place is found,
    /// which lets the compiler write it straight into the place (see [`Slot`]).
    #[inline(always)]
    fn place<'p>(
        entries: &'p mut [(Str, Value)],
        items: &'p mut [Value],
        top: &'p mut Value,
        slot: Slot,
    ) -> &'p mut Value {
        match slot {
            Slot::Entry(index) => &mut entries[index].1,
            Slot::Item(index) => &mut items[index],
            Slot::Top => top,
        }
    }

    /// Puts `value` into `slot` (see [`Reader::place`]; for values that come out of a call).
    #[inline(always)]
    fn put(&mut self, slot: Slot, value: Value) {
        store(
            Self::place(&mut self.entries, &mut self.items, &mut self.top, slot),
            value,
        );
    }

    fn literal(&mut self, word: &'static [u8], value: Value, slot: Slot) -> Result<(), JsonError> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            self.put(slot, value);
            Ok(())
        } else {
            Err(self.error("expected a JSON value"))
        }
    }

    /// One value, read whole (for the top of a document or a response member).
    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.value_into(depth, Slot::Top)?;
        Ok(std::mem::take(&mut self.top))
    }

    /// One value, put into `slot`.
    fn value_into(&mut self, depth: usize, slot: Slot) -> Result<(), JsonError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1, slot),
            Some(b'[') => self.array(depth + 1, slot),
            Some(b'"') => match self.plain_range()? {
                // Read without escapes, so it holds no `"`, `\\` or control character.
                Some((start, end)) => {
                    let (text, source) = (self.text, self.source);
                    let place =
                        Self::place(&mut self.entries, &mut self.items, &mut self.top, slot);
                    Str::with_plain_in(text, start, end, source, |s| {
                        store(place, Value::String(s))
                    });
                    Ok(())
                }
                None => {
                    let string = Str::from_string(self.escaped_string()?);
                    self.put(slot, Value::String(string));
                    Ok(())
                }
            },
            Some(b'n') => self.literal(b"null", Value::Null, slot),
            Some(b't') => self.literal(b"true", Value::Bool(Flag(true)), slot),
            Some(b'f') => self.literal(b"false", Value::Bool(Flag(false)), slot),
            Some(b'-' | b'0'..=b'9') => {
                let number = self.number()?;
                let place = Self::place(&mut self.entries, &mut self.items, &mut self.top, slot);
                store(place, Value::Number(number));
                Ok(())
            }
            _ => Err(self.error("expected a JSON value")),
        }
    }

    fn object(&mut self, depth: usize, slot: Slot) -> Result<(), JsonError> {
        if depth >= MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.put(slot, Value::Object(Map::new()));
            return Ok(());
        }
        let start = self.entries.len();
        loop {
            self.skip_ws();
            let index = self.key(start)?;
            self.skip_ws();
            self.expect(b':', "expected `:`")?;
            self.skip_ws();
            self.value_into(depth, Slot::Entry(index))?;
            self.skip_ws();
            match self.next() {
                Some(b',') => continue,
                Some(b'}') => {
                    self.keys.truncate(start);
                    let (pointer, length, capacity) = take_tail(&mut self.entries, start);
                    let place =
                        Self::place(&mut self.entries, &mut self.items, &mut self.top, slot);
                    store(place, Value::Object(Map::new()));
                    #[allow(unsafe_code, reason = "the parts `take_tail` returned")]
                    // SAFETY: `take_tail` allocated this buffer as a vector's and filled it.
                    let entries = unsafe { Vec::from_raw_parts(pointer, length, capacity) };
                    if let Value::Object(object) = place {
                        object.fill(entries);
                    }
                    return Ok(());
                }
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    /// Reads an object member's key and returns the index of its entry on the entry stack: a
    /// new entry holding `null`, or, for a key the object already has, that entry, whose value
    /// is dropped (a repeated key keeps its first position and its last value, like
    /// serde_json). `start` is where the object's entries begin.
    ///
    /// Keys are compared as the text they were read from, not as `Str`s: a `Str` just written
    /// and read back at once is read in other pieces than it was written in (see [`Slot`]).
    #[inline(always)]
    fn key(&mut self, start: usize) -> Result<usize, JsonError> {
        let text = self.text;
        let found = match self.plain_range()? {
            Some((key_start, key_end)) => {
                let key = &text.as_bytes()[key_start..key_end];
                let found = self.keys[start..]
                    .iter()
                    .zip(&self.entries[start..])
                    .position(|(&(other_start, other_end), (other, _))| match other_end {
                        ESCAPED_KEY => other.is(key),
                        _ => {
                            other_end - other_start == key.len()
                                && &text.as_bytes()[other_start..other_end] == key
                        }
                    });
                if found.is_none() {
                    push_plain_entry(&mut self.entries, text, key_start, key_end);
                    self.keys.push((key_start, key_end));
                }
                found
            }
            None => {
                let key = Str::from_string(self.escaped_string()?);
                let found = self.entries[start..].iter().position(|(k, _)| *k == key);
                if found.is_none() {
                    self.entries.push((key, Value::Null));
                    self.keys.push((0, ESCAPED_KEY));
                }
                found
            }
        };
        Ok(match found {
            Some(offset) => {
                self.entries[start + offset].1 = Value::Null;
                start + offset
            }
            None => self.entries.len() - 1,
        })
    }

    fn array(&mut self, depth: usize, slot: Slot) -> Result<(), JsonError> {
        if depth >= MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.put(slot, Value::Array(Vec::new()));
            return Ok(());
        }
        let start = self.items.len();
        loop {
            self.skip_ws();
            self.items.push(Value::Null);
            self.value_into(depth, Slot::Item(self.items.len() - 1))?;
            self.skip_ws();
            match self.next() {
                Some(b',') => continue,
                Some(b']') => {
                    let (pointer, length, capacity) = take_tail(&mut self.items, start);
                    let place =
                        Self::place(&mut self.entries, &mut self.items, &mut self.top, slot);
                    store(place, Value::Array(Vec::new()));
                    #[allow(unsafe_code, reason = "the parts `take_tail` returned")]
                    // SAFETY: `take_tail` allocated this buffer as a vector's and filled it.
                    let items = unsafe { Vec::from_raw_parts(pointer, length, capacity) };
                    if let Value::Array(list) = place {
                        // The empty list written above holds no allocation: nothing to drop.
                        std::mem::forget(std::mem::replace(list, items));
                    }
                    return Ok(());
                }
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    /// The raw text between the quotes of a string with no escapes, or `None` (position
    /// unchanged) when it has some.
    fn plain_string(&mut self) -> Result<Option<&'a str>, JsonError> {
        Ok(self
            .plain_range()?
            .map(|(start, end)| &self.text[start..end]))
    }

    /// [`Reader::plain_string`] as the range of the text between the quotes.
    #[inline(always)]
    fn plain_range(&mut self) -> Result<Option<(usize, usize)>, JsonError> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string"));
        }
        let start = self.pos + 1;
        let end = find_special(self.bytes, start);
        match self.bytes.get(end) {
            Some(b'"') => {
                self.pos = end + 1;
                Ok(Some((start, end)))
            }
            Some(b'\\') => Ok(None),
            Some(_) => {
                self.pos = end;
                Err(self.error("control character in a string"))
            }
            None => {
                self.pos = end;
                Err(self.error("unterminated string"))
            }
        }
    }

    /// An object key in the top-level response (names without escapes are all it looks for).
    fn string_key(&mut self) -> Result<&'a str, JsonError> {
        match self.plain_string()? {
            Some(key) => Ok(key),
            None => {
                // An escaped key is never one the gateway reads; decode and ignore it.
                self.escaped_string()?;
                Ok("")
            }
        }
    }

    #[inline(never)]
    fn escaped_string(&mut self) -> Result<String, JsonError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let start = self.pos;
            self.pos = find_special(self.bytes, start);
            out.push_str(&self.text[start..self.pos]);
            match self.next() {
                Some(b'"') => return Ok(out),
                Some(b'\\') => {}
                Some(_) => {
                    self.pos -= 1;
                    return Err(self.error("control character in a string"));
                }
                None => return Err(self.error("unterminated string")),
            }
            let escaped = match self.next() {
                Some(b'"') => '"',
                Some(b'\\') => '\\',
                Some(b'/') => '/',
                Some(b'b') => '\u{8}',
                Some(b'f') => '\u{c}',
                Some(b'n') => '\n',
                Some(b'r') => '\r',
                Some(b't') => '\t',
                Some(b'u') => self.unicode_escape()?,
                _ => return Err(self.error("invalid escape")),
            };
            out.push(escaped);
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("invalid \\u escape"))?;
        let mut code = 0u32;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(self.error("invalid \\u escape")),
            };
            code = code * 16 + u32::from(v);
        }
        self.pos += 4;
        Ok(code)
    }

    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let first = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&first) {
            // A high surrogate must be followed by `\u` and a low one.
            if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                return Err(self.error("lone surrogate in \\u escape"));
            }
            self.pos += 2;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(self.error("lone surrogate in \\u escape"));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| self.error("lone surrogate in \\u escape"))
    }

    fn number(&mut self) -> Result<Number, JsonError> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        // The integer part's value, accumulated while scanning (exact up to 19 digits, which
        // cannot overflow a u64), so a plain integer is not parsed a second time.
        let mut int = 0u64;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                while let Some(digit @ b'0'..=b'9') = self.peek() {
                    int = int.wrapping_mul(10).wrapping_add(u64::from(digit - b'0'));
                    self.pos += 1;
                }
            }
            _ => return Err(self.error("invalid number")),
        }
        let int_end = self.pos;
        let mut float = false;
        if self.peek() == Some(b'.') {
            float = true;
            self.pos += 1;
            let digits = self.pos;
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
            if self.pos == digits {
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            float = true;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            let digits = self.pos;
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
            if self.pos == digits {
                return Err(self.error("invalid number"));
            }
        }
        if !float {
            // Integers that fit stay exact, as serde_json keeps them; longer ones become floats.
            let digits = &self.text[int_start..int_end];
            if negative {
                // `-0` is left to serde_json, which reads it as the float -0.0 (found by
                // `fuzz/json_reader`: this read it as the integer 0).
                if let Ok(n @ ..=-1) = self.text[start..int_end].parse::<i64>() {
                    return Ok(n.into());
                }
            } else if digits.len() <= 19 {
                return Ok(int.into());
            } else if let Ok(n) = digits.parse::<u64>() {
                return Ok(n.into());
            }
        }
        // Floats are rare in GraphQL data; serde_json parses them so values stay bit-identical
        // to what the gateway produced before this reader existed.
        let n: Number = serde_json::from_str(&self.text[start..self.pos])
            .map_err(|_| self.error("invalid number"))?;
        Ok(n)
    }
}

/// Writes `value` into `place`, which holds the `null` it was reserved with (so nothing is
/// dropped: a drop call between building the value and writing it would make the compiler
/// keep the value in a temporary and copy it, see [`Slot`]).
#[inline(always)]
fn store(place: &mut Value, value: Value) {
    let reserved = std::mem::replace(place, value);
    debug_assert!(reserved.is_null());
    std::mem::forget(reserved);
}

/// Appends `(text[start..end], null)` to `entries` (a key without escapes), written in place
/// with the key built where the pair is written (see [`Slot`]; `Vec::push` builds the pair in
/// a temporary and copies it).
#[allow(
    unsafe_code,
    reason = "writes the entry in place; `Vec::push` copied it from a temporary (SAFETY below)"
)]
#[inline(always)]
fn push_plain_entry(entries: &mut Vec<(Str, Value)>, text: &str, start: usize, end: usize) {
    entries.reserve(1);
    let len = entries.len();
    let spare = &mut entries.spare_capacity_mut()[0];
    // Keys longer than the inline size are rare: copied, they keep no body alive.
    Str::with_plain_in(text, start, end, None, |key| {
        spare.write((key, Value::Null));
    });
    // SAFETY: `reserve` made room for the element at `len`, which `with_plain_in` initialised:
    // it returns what its closure returns, so it calls it (or unwinds and this is not reached).
    unsafe { entries.set_len(len + 1) };
}

/// Moves `stack[start..]` into a new buffer of exactly that size, returned as a vector's raw
/// parts (pointer, length, capacity) for [`Vec::from_raw_parts`]: the caller builds the vector
/// straight into its place from them (a vector returned whole was kept in a temporary and
/// copied into its place in other pieces than it was written in, see [`Slot`]).
///
/// `Vec::split_off` would do one copy too, but at `start == 0` it hands over the whole stack
/// buffer (with its high-water capacity) and allocates a new one; `drain(..).collect()` moves
/// the entries one by one, which showed up in profiles.
#[allow(
    unsafe_code,
    reason = "one bitwise move instead of per-entry moves, which profiles showed (SAFETY below)"
)]
#[inline(always)]
fn take_tail<T>(stack: &mut Vec<T>, start: usize) -> (*mut T, usize, usize) {
    let count = stack.len() - start;
    let mut buffer = std::mem::ManuallyDrop::new(Vec::<T>::with_capacity(count));
    let (pointer, capacity) = (buffer.as_mut_ptr(), buffer.capacity());
    // SAFETY: the `count` values after `start` are initialised and are moved bitwise into the
    // fresh buffer (they cannot overlap); `stack` is then shortened to `start` without dropping
    // them, so the buffer's `count` values have exactly one owner: the vector the caller makes
    // of the parts.
    unsafe {
        std::ptr::copy_nonoverlapping(stack.as_ptr().add(start), pointer, count);
        stack.set_len(start);
    }
    (pointer, count, capacity)
}

/// The index of the first byte at or after `from` that ends a plain run inside a JSON string
/// (`"`, `\\` or a control character), or `bytes.len()`.
///
/// Eight bytes at a time: for each test, `(w - 0x01..) & !w & 0x80..` flags the bytes that are
/// zero (or below the constant), and the lowest flag is always a true match, so the first one
/// found is exact.
fn find_special(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let flags = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word))
            & HIGH;
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

/// Appends `value` as JSON.
pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(Flag(true)) => out.extend_from_slice(b"true"),
        Value::Bool(Flag(false)) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => s.write_json(out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(object) => {
            out.push(b'{');
            let mut first = true;
            object.for_each(|key, item| {
                if !first {
                    out.push(b',');
                }
                first = false;
                key.write_json(out);
                out.push(b':');
                write_value(out, item);
            });
            out.push(b'}');
        }
        Value::Shared(shared) => write_value(out, shared.get()),
        Value::Node(node) => write_value(out, node.get()),
    }
}

fn write_number(out: &mut Vec<u8>, n: &Number) {
    if let Some(i) = n.as_u64() {
        write_u64(out, i);
    } else if let Some(i) = n.as_i64() {
        out.push(b'-');
        write_u64(out, i.unsigned_abs());
    } else {
        serde_json::to_writer(out, n).expect("writing to a Vec cannot fail");
    }
}

fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    // Most numbers in responses (prices, counts, ratings, ids) have one to four digits: written
    // as a copy of known size, not through the digit buffer and a `memcpy` call of its length.
    let digit = |n: u64| b'0' + (n % 10) as u8;
    match n {
        0..=9 => return out.push(digit(n)),
        10..=99 => return out.extend_from_slice(&[digit(n / 10), digit(n)]),
        100..=999 => return out.extend_from_slice(&[digit(n / 100), digit(n / 10), digit(n)]),
        1000..=9999 => {
            return out.extend_from_slice(&[
                digit(n / 1000),
                digit(n / 100),
                digit(n / 10),
                digit(n),
            ])
        }
        _ => {}
    }
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Whether `bytes` hold a character JSON strings must escape.
pub(crate) fn needs_escape(bytes: &[u8]) -> bool {
    find_special(bytes, 0) != bytes.len()
}

/// Appends `bytes` in quotes, escaped when `escape` is set; callers that know a string holds
/// nothing JSON must escape (GraphQL names, strings read without escapes) pass `false`.
pub(crate) fn write_quoted(out: &mut Vec<u8>, bytes: &[u8], escape: bool) {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if escape {
        write_escaped(out, bytes);
    } else {
        out.extend_from_slice(bytes);
    }
    out.push(b'"');
}

fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        let value = parse_value(text).unwrap();
        let mut out = Vec::new();
        write_value(&mut out, &value);
        String::from_utf8(out).unwrap()
    }

    /// A float passes through the gateway unchanged: read to the nearest double (as std's
    /// parser does) and written back in its shortest form. Without serde_json's
    /// `float_roundtrip` feature, `7.038531e-26` came back as `7.038530999999999e-26`.
    #[test]
    fn floats_pass_through_exactly() {
        let hard = [
            "7.038531e-26",
            "2.2250738585072011e-308",
            "8.988465674311579e+307",
            "1.00000000000000011102230246251565404236316680908203125",
            "9007199254740993.0",
            "1e-45",
            "0.1",
            "-3.5e300",
        ];
        for text in hard {
            let written = round_trip(&format!("[{text}]"));
            let back: f64 = written
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .unwrap();
            assert_eq!(
                back,
                text.parse::<f64>().unwrap(),
                "{text} came back as {written}"
            );
        }
    }

    /// A small deterministic generator of JSON texts that stress what the reader writes in
    /// place: repeated keys (plain, escaped, short and long), nesting, lists of objects,
    /// strings inline and on the heap, and every kind of scalar.
    struct Generator(u64);

    impl Generator {
        fn next(&mut self) -> u64 {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn key(&mut self, out: &mut String) {
            const KEYS: [&str; 7] = [
                "a",
                "\\u0061",
                "b",
                "ab",
                "id",
                "a key longer than twenty-two bytes",
                "",
            ];
            out.push('"');
            out.push_str(KEYS[self.below(KEYS.len() as u64) as usize]);
            out.push('"');
        }

        fn value(&mut self, depth: u32, out: &mut String) {
            let kinds = if depth > 4 { 6 } else { 8 };
            match self.below(kinds) {
                0 => out.push_str("null"),
                1 => out.push_str(if self.below(2) == 0 { "true" } else { "false" }),
                2 => {
                    const NUMBERS: [&str; 6] =
                        ["0", "-1", "42", "1.5", "-2e3", "18446744073709551615"];
                    out.push_str(NUMBERS[self.below(NUMBERS.len() as u64) as usize]);
                }
                3 => {
                    let len = self.below(40) as usize;
                    out.push('"');
                    out.extend((0..len).map(|i| char::from(b'a' + (i % 26) as u8)));
                    out.push('"');
                }
                4 => out.push_str("\"esc\\\"aped\\n\""),
                5 => out.push_str(if self.below(2) == 0 { "{}" } else { "[]" }),
                6 => {
                    out.push('{');
                    for i in 0..=self.below(6) {
                        if i > 0 {
                            out.push(',');
                        }
                        self.key(out);
                        out.push(':');
                        self.value(depth + 1, out);
                    }
                    out.push('}');
                }
                _ => {
                    out.push('[');
                    for i in 0..=self.below(5) {
                        if i > 0 {
                            out.push(',');
                        }
                        self.value(depth + 1, out);
                    }
                    out.push(']');
                }
            }
        }
    }

    #[test]
    fn generated_documents_read_as_serde_json_reads_them() {
        let mut generator = Generator(0x9E37_79B9_7F4A_7C15);
        let (mut repeated_keys, mut in_place) = (0, 0);
        for _ in 0..3000 {
            let mut text = String::new();
            generator.value(0, &mut text);
            let theirs: serde_json::Value = serde_json::from_str(&text).unwrap();
            let ours = parse_value(&text).unwrap();
            assert_eq!(ours, Value::from(theirs.clone()), "{text}");
            // The same bytes as serde_json writes, so key order (first position) is compared too.
            assert_eq!(
                round_trip(&text),
                serde_json::to_string(&Value::from(theirs)).unwrap(),
                "{text}"
            );
            repeated_keys += usize::from(text.contains(r#""a":"#) && text.contains(r#""\u0061":"#));
            // As a response's `data`, its long strings read in place from the body: the same
            // value, the same bytes written, and the body let go of with the value.
            let body = bytes::Bytes::from(format!(r#"{{"data":{text}}}"#));
            let data = parse_response_in(body.clone()).unwrap().data;
            let mut written = Vec::new();
            if let Some(data) = &data {
                assert_eq!(*data, ours, "{text}");
                write_value(&mut written, data);
                assert_eq!(written, round_trip(&text).into_bytes(), "{text}");
                // Held by the value's strings, besides `body`.
                in_place += usize::from(!body.is_unique());
            } else {
                assert!(ours.is_null(), "{text}");
            }
            drop(data);
            assert!(body.is_unique(), "{text}");
        }
        // The generator does reach the cases it is for.
        assert!(repeated_keys > 100, "{repeated_keys}");
        assert!(in_place > 100, "{in_place}");
    }

    #[test]
    fn agrees_with_serde_json() {
        let samples = [
            r#"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#,
            r#"[0,-1,18446744073709551615,-9223372036854775808,1.5,-2.5e-3,1E+2]"#,
            "[-0,0,-0.0,-0e1]",
            "[9999999999999999999,10000000000000000000,18446744073709551616,7,42,999,1000,9999,10000]",
            r#"["plain","quote \" backslash \\ slash \/ ctl \b\f\n\r\t","\u00e9\u4e2d\ud83d\ude00","\u0001"]"#,
            "  { \"sp\" : [ 1 , 2 ] , \"é\" : \"ü\" }  ",
            r#"{"a":1,"b":2,"a":3}"#,
            // Repeated keys, compared as text, as text against escapes, and nested.
            r#"{"a":1,"\u0061":2,"b":3}"#,
            r#"{"\u0061":1,"a":2,"\u0061":{"b":1}}"#,
            r#"{"ab":1,"ba":2,"ab":3,"b\u0061":4}"#,
            r#"{"a":{"x":1},"b":0,"a":[1,{"a":2,"a":{"a":3,"a":true}}],"c":null,"b":"s"}"#,
            r#"[{"a":1},{"a":2,"a":{"a":3}},{"":1,"":2}]"#,
            r#"{"a key longer than twenty-two bytes":1,"a key longer than twenty-two bytes":[2]}"#,
            r#""a string that is long enough to be stored on the heap, with an escape\n""#,
            "{}",
            "[]",
        ];
        // An integer too long for 64 bits becomes the nearest float, as std's parser rounds it
        // (serde_json without its `float_roundtrip` feature read this one a unit off).
        let long = "123456789012345678901234";
        let Value::Number(read) = &parse_value(&format!("[{long}]")).unwrap()[0] else {
            panic!("not a number");
        };
        assert_eq!(read.as_f64(), long.parse::<f64>().ok());
        for text in samples {
            let ours = round_trip(text);
            let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
            let reparsed: serde_json::Value = serde_json::from_str(&ours).unwrap();
            assert_eq!(reparsed, theirs, "{text}");
            assert_eq!(
                parse_value(text).unwrap(),
                Value::from(theirs.clone()),
                "{text}"
            );
            // Same bytes as serde_json writes (compact form).
            assert_eq!(
                ours,
                serde_json::to_string(&Value::from(theirs)).unwrap(),
                "{text}"
            );
        }
    }

    #[test]
    fn special_bytes_are_found_exactly() {
        let text = "abcdefghijklmnopqrstuvwxyz0123456789";
        for special in ["\"", "\\", "\n", "\u{1}", "\u{1f}"] {
            for at in 0..text.len() {
                let mut s = text.to_owned();
                s.insert_str(at, special);
                // A later special byte must not hide the first one.
                s.push('"');
                assert_eq!(find_special(s.as_bytes(), 0), at, "{s:?}");
                assert_eq!(find_special(s.as_bytes(), at.min(3)), at, "{s:?}");
            }
        }
        assert_eq!(find_special(b"plain text, no quote", 0), 20);
        // Bytes at or above 0x80 (UTF-8) and 0x20..0x7f other than `"` / `\\` are plain.
        assert_eq!(
            find_special("é ü 中文 ~!#$%&'()*+,-./:;<=>?@[]^_`{|}".as_bytes(), 0),
            43
        );
    }

    #[test]
    fn rejects_malformed_input() {
        for text in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "{\"a\":1,}",
            "\"unterminated",
            "\"bad \\x escape\"",
            "\"\\ud800\"",
            "\"\\ud800\\u0041\"",
            "\"raw \n newline\"",
            "01",
            "-",
            "1.",
            "1e",
            "tru",
            "nul",
            "[1] 2",
        ] {
            assert!(parse_value(text).is_err(), "{text:?} parsed");
            assert!(
                serde_json::from_str::<serde_json::Value>(text).is_err(),
                "serde_json accepts {text:?}"
            );
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse_value(&deep).is_err());
    }

    #[test]
    fn nesting_limit_is_serde_jsons() {
        for depth in [126, 127, 128, 129] {
            for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
                let text = open.repeat(depth) + "1" + &close.repeat(depth);
                let theirs = serde_json::from_str::<serde_json::Value>(&text).is_ok();
                assert_eq!(parse_value(&text).is_ok(), theirs, "{depth} x {open}");
                assert_eq!(theirs, depth <= 127, "{depth} x {open}");
            }
        }
    }

    #[test]
    fn responses_split_data_and_errors() {
        let body = br#"{"errors":[{"message":"boom","path":["a",0]}],"data":{"a":[{"id":"1"}]},"extensions":{"x":[1,{"y":null}]}}"#;
        let response = parse_response(body).unwrap();
        assert_eq!(
            response.data.unwrap(),
            Value::from(serde_json::json!({"a":[{"id":"1"}]}))
        );
        assert_eq!(
            response.errors.unwrap(),
            vec![serde_json::json!({"message":"boom","path":["a",0]})]
        );
        let response = parse_response(br#"{"data":null,"errors":null}"#).unwrap();
        assert!(response.data.is_none() && response.errors.is_none());
        assert!(parse_response(br#"{"errors":{"message":"x"}}"#).is_err());
        assert!(parse_response(b"<html>oops</html>").is_err());
        assert!(parse_response(b"[1]").is_err());
        let err = parse_response(b"{\"data\":\xff}").unwrap_err();
        assert!(err.to_string().contains("invalid UTF-8"), "{err}");
    }
}
