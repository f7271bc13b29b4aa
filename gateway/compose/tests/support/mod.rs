//! Shared loader for the composition case files in `tests/cases/`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use switchyard_compose::SubgraphSource;

/// A parsed case file.
pub struct Case {
    pub name: String,
    pub expect: Vec<String>,
    pub subgraphs: Vec<SubgraphSource>,
}

pub fn load_cases() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "graphql"))
        .collect();
    files.sort();
    files.iter().map(|p| parse_case(p)).collect()
}

fn parse_case(path: &Path) -> Case {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_stem().unwrap().to_string_lossy().to_string();
    let mut expect = Vec::new();
    let mut subgraphs: Vec<SubgraphSource> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("--- subgraph:") {
            let mut parts = rest.split_whitespace();
            let sname = parts.next().expect("subgraph name").to_string();
            let url = parts
                .next()
                .map(str::to_string)
                .unwrap_or_else(|| format!("http://{sname}.invalid/graphql"));
            let mut s = SubgraphSource::new(sname, url, "");
            s.file = Some(path.to_path_buf());
            subgraphs.push(s);
        } else if let Some(s) = subgraphs.last_mut() {
            s.sdl.push_str(line);
            s.sdl.push('\n');
        } else if let Some(codes) = line.strip_prefix("# expect:") {
            expect.extend(
                codes
                    .split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty()),
            );
        }
    }
    assert!(!subgraphs.is_empty(), "{name}: no subgraphs");
    Case {
        name,
        expect,
        subgraphs,
    }
}
