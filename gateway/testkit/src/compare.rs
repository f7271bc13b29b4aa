//! Response matching per the suite's rules, with a readable diff on mismatch.

use serde_json::Value;

/// Checks `actual` against `expected`: `data` equal including key order; as many `errors` as
/// expected, each matching on the keys the expected error has. `Err` holds an explanation and a
/// unified diff of the two responses.
pub fn match_response(expected: &Value, actual: &Value) -> Result<(), String> {
    let mut problems = Vec::new();
    match expected.get("data") {
        Some(data) => match actual.get("data") {
            Some(actual_data) if ordered_eq(data, actual_data) => {}
            Some(_) => problems.push("`data` differs".to_string()),
            None => problems.push("`data` is missing".to_string()),
        },
        None => {
            if actual.get("data").is_some_and(|d| !d.is_null()) {
                problems.push("expected no `data`, got some".to_string());
            }
        }
    }
    let no_errors = Vec::new();
    let expected_errors = expected
        .get("errors")
        .and_then(Value::as_array)
        .unwrap_or(&no_errors);
    let actual_errors = actual
        .get("errors")
        .and_then(Value::as_array)
        .unwrap_or(&no_errors);
    if expected_errors.len() != actual_errors.len() {
        problems.push(format!(
            "expected {} error(s), got {}",
            expected_errors.len(),
            actual_errors.len()
        ));
    } else {
        for (i, (want, got)) in expected_errors.iter().zip(actual_errors).enumerate() {
            if let Some(key) = subset_mismatch(want, got, "") {
                problems.push(format!("errors[{i}]: `{key}` differs"));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{}\n{}",
        problems.join("\n"),
        diff(&pretty(expected), &pretty(actual))
    ))
}

/// Equality that also requires object keys in the same order (`Value`'s `==` ignores key order).
pub fn ordered_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && ordered_eq(va, vb))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ordered_eq(x, y))
        }
        _ => a == b,
    }
}

/// The first key path where `want` is not contained in `got` (objects compare on `want`'s keys,
/// everything else exactly).
fn subset_mismatch(want: &Value, got: &Value, at: &str) -> Option<String> {
    match (want, got) {
        (Value::Object(want), Value::Object(got)) => want.iter().find_map(|(k, w)| {
            let key = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            match got.get(k) {
                Some(g) => subset_mismatch(w, g, &key),
                None => Some(key),
            }
        }),
        _ if want == got => None,
        _ => Some(if at.is_empty() {
            "error".into()
        } else {
            at.into()
        }),
    }
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

/// A unified diff of two texts, `expected` first.
pub fn diff(expected: &str, actual: &str) -> String {
    similar::TextDiff::from_lines(expected, actual)
        .unified_diff()
        .context_radius(4)
        .header("expected", "actual")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_must_match_in_order() {
        let want = json!({"data": {"a": 1, "b": 2}});
        assert!(match_response(&want, &json!({"data": {"a": 1, "b": 2}})).is_ok());
        let err = match_response(&want, &json!({"data": {"b": 2, "a": 1}})).unwrap_err();
        assert!(err.contains("`data` differs"), "{err}");
        assert!(err.contains("-    \"a\": 1,"), "{err}");
    }

    #[test]
    fn errors_match_on_expected_keys_only() {
        let want =
            json!({"data": null, "errors": [{"message": "boom", "extensions": {"code": "X"}}]});
        let got = json!({"data": null, "errors": [{"message": "boom", "path": ["a"], "extensions": {"code": "X", "serviceName": "s"}}]});
        assert!(match_response(&want, &got).is_ok());
        let wrong =
            json!({"data": null, "errors": [{"message": "boom", "extensions": {"code": "Y"}}]});
        let err = match_response(&want, &wrong).unwrap_err();
        assert!(err.contains("extensions.code"), "{err}");
        let none = json!({"data": null});
        assert!(match_response(&want, &none)
            .unwrap_err()
            .contains("expected 1 error(s), got 0"));
        assert!(match_response(&none, &got).is_err());
    }

    #[test]
    fn absent_data_accepts_null_or_absent() {
        let want = json!({"errors": [{"message": "bad"}]});
        assert!(match_response(&want, &json!({"errors": [{"message": "bad"}]})).is_ok());
        assert!(match_response(
            &want,
            &json!({"data": null, "errors": [{"message": "bad"}]})
        )
        .is_ok());
        assert!(
            match_response(&want, &json!({"data": {}, "errors": [{"message": "bad"}]})).is_err()
        );
    }
}
