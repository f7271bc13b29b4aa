//! A small parser for federation field sets (`@key(fields:)`, `@requires(fields:)`), and the JSON
//! operations the fixture server needs on them: projecting a key out of an object and checking that
//! an object carries every required field.

use serde_json::{Map, Value};

use crate::TestkitError;

/// One element of a field set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// A field, with its sub-selection (empty for leaves). Arguments are parsed and dropped: the
    /// representation carries the value under the field's name either way.
    Field {
        /// The field's name.
        name: String,
        /// What is selected inside it.
        selections: Vec<Selection>,
    },
    /// `... on T { ... }` (or `... { ... }` without a condition).
    InlineFragment {
        /// The type condition, if any.
        type_condition: Option<String>,
        /// What is selected when it applies.
        selections: Vec<Selection>,
    },
}

/// Parses a field set such as `id org { id }` or `... on Book { isbn }`.
pub fn parse(source: &str) -> Result<Vec<Selection>, TestkitError> {
    let tokens = tokenize(source)?;
    let mut pos = 0;
    let selections = parse_selections(&tokens, &mut pos, source)?;
    if pos != tokens.len() {
        return Err(TestkitError::FieldSet(format!(
            "unexpected `{}` in `{source}`",
            tokens[pos]
        )));
    }
    Ok(selections)
}

fn tokenize(source: &str) -> Result<Vec<String>, TestkitError> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = source.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() || c == ',' {
            i += 1;
        } else if c == '{' || c == '}' || c == ':' {
            tokens.push(c.to_string());
            i += 1;
        } else if c == '(' {
            // Arguments do not change what a representation carries, so they are skipped whole,
            // string literals included (they may contain parentheses).
            let mut depth = 0;
            let mut in_string = false;
            while i < chars.len() {
                let ch = chars[i];
                if in_string {
                    if ch == '\\' {
                        i += 1;
                    } else if ch == '"' {
                        in_string = false;
                    }
                } else if ch == '"' {
                    in_string = true;
                } else if ch == '(' {
                    depth += 1;
                } else if ch == ')' {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                i += 1;
            }
            if depth != 0 {
                return Err(TestkitError::FieldSet(format!(
                    "unbalanced parentheses in `{source}`"
                )));
            }
            i += 1;
        } else if source[char_offset(&chars, i)..].starts_with("...") {
            tokens.push("...".into());
            i += 3;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        } else {
            return Err(TestkitError::FieldSet(format!(
                "unexpected character `{c}` in `{source}`"
            )));
        }
    }
    Ok(tokens)
}

fn char_offset(chars: &[char], index: usize) -> usize {
    chars[..index].iter().map(|c| c.len_utf8()).sum()
}

fn parse_selections(
    tokens: &[String],
    pos: &mut usize,
    source: &str,
) -> Result<Vec<Selection>, TestkitError> {
    let mut selections = Vec::new();
    while *pos < tokens.len() && tokens[*pos] != "}" {
        let token = &tokens[*pos];
        if token == "..." {
            *pos += 1;
            let mut type_condition = None;
            if tokens.get(*pos).map(String::as_str) == Some("on") {
                type_condition = tokens.get(*pos + 1).cloned();
                *pos += 2;
            }
            let selections_inner = parse_braced(tokens, pos, source)?;
            selections.push(Selection::InlineFragment {
                type_condition,
                selections: selections_inner,
            });
            continue;
        }
        if token == "{" || token == ":" {
            return Err(TestkitError::FieldSet(format!(
                "unexpected `{token}` in `{source}`"
            )));
        }
        let mut name = token.clone();
        *pos += 1;
        // An alias (`a: b`) is legal GraphQL; the representation key is the field name.
        if tokens.get(*pos).map(String::as_str) == Some(":") {
            name = tokens
                .get(*pos + 1)
                .cloned()
                .ok_or_else(|| TestkitError::FieldSet(format!("dangling alias in `{source}`")))?;
            *pos += 2;
        }
        let sub = if tokens.get(*pos).map(String::as_str) == Some("{") {
            parse_braced(tokens, pos, source)?
        } else {
            Vec::new()
        };
        selections.push(Selection::Field {
            name,
            selections: sub,
        });
    }
    Ok(selections)
}

fn parse_braced(
    tokens: &[String],
    pos: &mut usize,
    source: &str,
) -> Result<Vec<Selection>, TestkitError> {
    if tokens.get(*pos).map(String::as_str) != Some("{") {
        return Err(TestkitError::FieldSet(format!(
            "expected `{{` in `{source}`"
        )));
    }
    *pos += 1;
    let inner = parse_selections(tokens, pos, source)?;
    if tokens.get(*pos).map(String::as_str) != Some("}") {
        return Err(TestkitError::FieldSet(format!(
            "expected `}}` in `{source}`"
        )));
    }
    *pos += 1;
    Ok(inner)
}

/// Copies the fields of `selections` out of `object`; `None` when one of them is absent.
pub fn project(object: &Map<String, Value>, selections: &[Selection]) -> Option<Value> {
    let mut out = Map::new();
    project_into(object, selections, &mut out)?;
    Some(Value::Object(out))
}

fn project_into(
    object: &Map<String, Value>,
    selections: &[Selection],
    out: &mut Map<String, Value>,
) -> Option<()> {
    for selection in selections {
        match selection {
            Selection::Field { name, selections } => {
                let value = object.get(name)?;
                let projected = if selections.is_empty() {
                    value.clone()
                } else {
                    project_value(value, selections)?
                };
                out.insert(name.clone(), projected);
            }
            Selection::InlineFragment {
                type_condition,
                selections,
            } => {
                let applies = match type_condition {
                    None => true,
                    Some(t) => object.get("__typename").and_then(Value::as_str) == Some(t),
                };
                if applies {
                    project_into(object, selections, out)?;
                }
            }
        }
    }
    Some(())
}

fn project_value(value: &Value, selections: &[Selection]) -> Option<Value> {
    match value {
        Value::Object(map) => project(map, selections),
        Value::Array(items) => items
            .iter()
            .map(|item| project_value(item, selections))
            .collect::<Option<Vec<_>>>()
            .map(Value::Array),
        other => Some(other.clone()),
    }
}

/// The first field of `selections` that `object` does not carry (nulls count as carried).
/// Fragments whose type condition names another type than the object's `__typename` are skipped.
pub fn first_missing(object: &Map<String, Value>, selections: &[Selection]) -> Option<String> {
    for selection in selections {
        match selection {
            Selection::Field { name, selections } => {
                let Some(value) = object.get(name) else {
                    return Some(name.clone());
                };
                if !selections.is_empty() {
                    if let Some(missing) = first_missing_in_value(value, selections) {
                        return Some(missing);
                    }
                }
            }
            Selection::InlineFragment {
                type_condition,
                selections,
            } => {
                let applies = match (type_condition, object.get("__typename")) {
                    (None, _) => true,
                    (Some(t), Some(Value::String(actual))) => t == actual,
                    // Without a `__typename` the object's type is unknown; do not guess.
                    (Some(_), _) => false,
                };
                if applies {
                    if let Some(missing) = first_missing(object, selections) {
                        return Some(missing);
                    }
                }
            }
        }
    }
    None
}

fn first_missing_in_value(value: &Value, selections: &[Selection]) -> Option<String> {
    match value {
        Value::Object(map) => first_missing(map, selections),
        Value::Array(items) => items
            .iter()
            .find_map(|item| first_missing_in_value(item, selections)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_nested_fragments_and_arguments() {
        let parsed =
            parse("id org { id } price(currency: \"U(SD)\") ... on Book { isbn }").unwrap();
        assert_eq!(parsed.len(), 4);
        assert_eq!(
            parsed[1],
            Selection::Field {
                name: "org".into(),
                selections: vec![Selection::Field {
                    name: "id".into(),
                    selections: vec![]
                }]
            }
        );
        assert!(matches!(&parsed[2], Selection::Field { name, .. } if name == "price"));
        assert!(
            matches!(&parsed[3], Selection::InlineFragment { type_condition: Some(t), .. } if t == "Book")
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("id {").is_err());
        assert!(parse("id }").is_err());
        assert!(parse("a(b: 1").is_err());
    }

    #[test]
    fn projects_nested_keys() {
        let sels = parse("id org { id }").unwrap();
        let obj = json!({"id": "1", "name": "x", "org": {"id": "o", "name": "y"}});
        assert_eq!(
            project(obj.as_object().unwrap(), &sels),
            Some(json!({"id": "1", "org": {"id": "o"}}))
        );
        let partial = json!({"id": "1"});
        assert_eq!(project(partial.as_object().unwrap(), &sels), None);
    }

    #[test]
    fn finds_missing_required_fields() {
        let sels = parse("weight dims { size } ... on Book { isbn }").unwrap();
        let ok = json!({"weight": null, "dims": [{"size": 1}], "__typename": "Dvd"});
        assert_eq!(first_missing(ok.as_object().unwrap(), &sels), None);
        let nested = json!({"weight": 1, "dims": {"other": 1}});
        assert_eq!(
            first_missing(nested.as_object().unwrap(), &sels),
            Some("size".into())
        );
        let book = json!({"weight": 1, "dims": {"size": 1}, "__typename": "Book"});
        assert_eq!(
            first_missing(book.as_object().unwrap(), &sels),
            Some("isbn".into())
        );
    }
}
