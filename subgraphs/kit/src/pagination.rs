//! Cursor pagination shared by every service, so the `PageInfo` type is identical in every
//! subgraph (composition requires a value type defined in several subgraphs to agree and to be
//! `@shareable`).

use async_graphql::SimpleObject;

/// Relay-style page information, returned beside every list that pages with `first`/`after`.
#[derive(Debug, Clone, Default, PartialEq, Eq, SimpleObject)]
#[graphql(shareable)]
pub struct PageInfo {
    /// More items follow the last one returned.
    pub has_next_page: bool,
    /// Items precede the first one returned.
    pub has_previous_page: bool,
    /// Cursor of the first item returned.
    pub start_cursor: Option<String>,
    /// Cursor of the last item returned; pass it as `after` for the next page.
    pub end_cursor: Option<String>,
}

/// Encodes a service-internal sort key as an opaque cursor (clients must not parse cursors, and
/// hex keeps them URL- and JSON-safe).
pub fn encode_cursor(key: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(key.len() * 2);
    for byte in key.bytes() {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Decodes a cursor made by [`encode_cursor`]; `None` for anything else, which callers report
/// as a bad `after` argument.
pub fn decode_cursor(cursor: &str) -> Option<String> {
    if !cursor.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let key = "2026-11-26T00:00:00Z|0192f1";
        assert_eq!(decode_cursor(&encode_cursor(key)).as_deref(), Some(key));
        assert_eq!(decode_cursor("zz"), None);
        assert_eq!(decode_cursor("abc"), None);
    }
}
