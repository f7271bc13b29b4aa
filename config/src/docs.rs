//! Checks a README's settings table against the keys and variables a loader really reads, so
//! the documentation cannot drift from the code (each program's tests call it).

use std::collections::{BTreeMap, BTreeSet};

/// One row of a settings table: the keys it documents and the variables it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsRow {
    /// Dotted keys: `listen`, `cors.max_age` (from `` `[cors] max_age` ``),
    /// `subgraphs.<name>.url`.
    pub keys: Vec<String>,
    /// Variable names in the environment column (none when it says `none`).
    pub variables: BTreeSet<String>,
}

/// Reads the first table in `markdown` whose header starts with a key column (`TOML key`,
/// `setting` or `field`) and an environment column (`environment` or `env`). Rows whose key
/// cell names no key in backticks (`—`: a variable read outside the config) are left out.
pub fn settings_table(markdown: &str) -> Result<Vec<SettingsRow>, String> {
    let mut lines = markdown.lines().map(str::trim).peekable();
    while let Some(line) = lines.next() {
        let header = cells(line);
        let is_settings = header.len() >= 2
            && ["toml key", "setting", "field"].contains(&header[0].to_ascii_lowercase().as_str())
            && ["environment", "env"].contains(&header[1].to_ascii_lowercase().as_str());
        if !is_settings {
            continue;
        }
        lines.next(); // |---|---|
        let mut rows = Vec::new();
        while let Some(line) = lines.next_if(|l| l.starts_with('|')) {
            let cells = cells(line);
            let keys = row_keys(cells.first().map_or("", String::as_str));
            if keys.is_empty() {
                continue;
            }
            let variables = code_spans(cells.get(1).map_or("", String::as_str))
                .into_iter()
                .filter(|span| {
                    span.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || "_<>".contains(c))
                })
                .collect();
            rows.push(SettingsRow { keys, variables });
        }
        return Ok(rows);
    }
    Err("no settings table (| TOML key / setting / field | environment / env | …)".to_owned())
}

/// Checks the settings table in `markdown` (a README) against `keys` as
/// [`check_settings_table`] does: `Err` with every problem, one per line, for a test to fail
/// with.
pub fn check_readme(markdown: &str, keys: &BTreeMap<String, Vec<String>>) -> Result<(), String> {
    let problems = check_settings_table(&settings_table(markdown)?, keys);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the README's settings table and the config disagree:\n{}",
            problems.join("\n")
        ))
    }
}

/// Compares `rows` with `keys` (every key and the variables that set it, as
/// [`crate::ConfigLoader::variables`] gives them) in both directions; one line per problem,
/// naming the key or the variable.
pub fn check_settings_table(
    rows: &[SettingsRow],
    keys: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut documented = BTreeSet::new();
    for row in rows {
        let mut read = BTreeSet::new();
        for key in &row.keys {
            documented.insert(key.clone());
            match keys.get(key) {
                Some(variables) => read.extend(variables.iter().cloned()),
                None => problems.push(format!(
                    "the table has a row for `{key}`, which is not a key of the config"
                )),
            }
        }
        let name = row.keys.join("`, `");
        for variable in row.variables.difference(&read) {
            problems.push(format!(
                "row `{name}` names {variable}, which the loader does not read for it"
            ));
        }
        for variable in read.difference(&row.variables) {
            problems.push(format!(
                "row `{name}` does not name {variable}, which the loader reads for it"
            ));
        }
    }
    for key in keys.keys() {
        if !documented.contains(key) {
            problems.push(format!("`{key}` has no row in the table"));
        }
    }
    problems
}

fn cells(line: &str) -> Vec<String> {
    let Some(inner) = line.strip_prefix('|') else {
        return Vec::new();
    };
    // `\|` inside a cell is an escaped pipe, not a column break.
    let inner = inner.replace("\\|", "\u{0}");
    let mut cells: Vec<String> = inner
        .split('|')
        .map(|c| c.trim().replace('\u{0}', "|"))
        .collect();
    if cells.last().is_some_and(String::is_empty) {
        cells.pop();
    }
    cells
}

fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.trim().to_owned())
        .collect()
}

/// `` `listen` `` → `listen`; `` `[cors] max_age` `` → `cors.max_age`; every further span in
/// the cell is another key of the same section (`` `[subgraphs.<name>] timeout`, `max_inflight` ``).
fn row_keys(cell: &str) -> Vec<String> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for span in code_spans(cell) {
        let name = match span.strip_prefix('[').and_then(|s| s.split_once(']')) {
            Some((table, name)) => {
                section = format!("{}.", table.trim());
                name.trim().to_owned()
            }
            None => span,
        };
        keys.push(format!("{section}{name}"));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = "\
# x

| what | how |
|---|---|
| `a` | b |

| TOML key | environment | default | meaning |
|---|---|---|---|
| `listen` | `GW_LISTEN` | `1` | where |
| `a`, `b` | `GW_A`, `GW_B` | none | pair |
| `[cors] max_age` | `GW_CORS_MAX_AGE` (or `OTHER`) | `10m` | x \\| y |
| `[subgraphs.<name>] url`, `timeout` | none | none | z |
| — | `GW_SECRET` | none | read elsewhere |

after
";

    #[test]
    fn reads_the_settings_table_and_reports_both_directions() {
        let rows = settings_table(README).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1].keys, ["a", "b"]);
        assert_eq!(rows[2].keys, ["cors.max_age"]);
        assert_eq!(
            rows[2].variables,
            BTreeSet::from(["GW_CORS_MAX_AGE".to_owned(), "OTHER".to_owned()])
        );
        assert_eq!(
            rows[3].keys,
            ["subgraphs.<name>.url", "subgraphs.<name>.timeout"]
        );
        assert!(rows[3].variables.is_empty());

        let keys = |pairs: &[(&str, &[&str])]| -> BTreeMap<String, Vec<String>> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect()
        };
        let matching = keys(&[
            ("listen", &["GW_LISTEN"]),
            ("a", &["GW_A"]),
            ("b", &["GW_B"]),
            ("cors.max_age", &["GW_CORS_MAX_AGE", "OTHER"]),
            ("subgraphs.<name>.url", &[]),
            ("subgraphs.<name>.timeout", &[]),
        ]);
        assert_eq!(check_settings_table(&rows, &matching), Vec::<String>::new());

        let drifted = keys(&[
            ("listen", &["GW_LISTEN", "GW_ADDR"]),
            ("a", &["GW_A"]),
            ("cors.max_age", &["GW_CORS_MAX_AGE", "OTHER"]),
            ("subgraphs.<name>.url", &[]),
            ("subgraphs.<name>.timeout", &[]),
            ("watch", &["GW_WATCH"]),
        ]);
        let problems = check_settings_table(&rows, &drifted).join("\n");
        assert!(problems.contains("`b`, which is not a key"), "{problems}");
        assert!(problems.contains("names GW_B"), "{problems}");
        assert!(problems.contains("does not name GW_ADDR"), "{problems}");
        assert!(problems.contains("`watch` has no row"), "{problems}");
        assert!(settings_table("| a | b |\n|---|---|\n").is_err());
    }
}
