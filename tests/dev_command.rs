//! `cargo run` as a new user meets it: `switchyard dev` in a real process starts the stack, seeds
//! it, prints a ready-to-paste query that answers the headline question, stops cleanly on
//! SIGTERM, and a second run reuses the data.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard::client::GraphQLClient;

/// Starts `switchyard dev` and returns it with the lines it printed up to "Ctrl-C stops".
fn start_dev(data_dir: &std::path::Path) -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .env_remove("REDIS_URL")
        .stdout(Stdio::piped())
        .spawn()
        .expect("switchyard starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.starts_with("Ctrl-C stops");
                lines.push(line);
                if done {
                    return (child, lines);
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("switchyard dev did not come up; it printed: {lines:#?}");
            }
        }
    }
}

fn line_after<'l>(lines: &'l [String], label: &str) -> &'l str {
    lines
        .iter()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in {lines:#?}"))
        .trim()
}

fn stop(mut child: Child) {
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "switchyard dev exited with {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("switchyard dev did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn ask(url: &str, query: &str) -> Value {
    GraphQLClient::new(url)
        .data(query, json!({}))
        .await
        .expect("the printed query runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchyard_dev_seeds_answers_stops_and_reuses_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines) = start_dev(dir.path());
    let url = line_after(&lines, "GraphiQL:").to_owned();
    let query = line_after(&lines, "Try:").to_owned();
    let first = ask(&url, &query).await;
    assert_eq!(first["connectionDegree"]["degree"], "SECOND", "{first}");
    let path: Vec<&str> = first["connectionDegree"]["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["handle"].as_str().unwrap())
        .collect();
    assert_eq!(path, ["amit", "priya", "amrita"]);
    stop(child);

    let (child, lines) = start_dev(dir.path());
    assert_eq!(
        line_after(&lines, "Try:"),
        query,
        "the second run reuses the seeded members"
    );
    let url = line_after(&lines, "GraphiQL:").to_owned();
    let again = ask(&url, &query).await;
    assert_eq!(again, first);
    stop(child);
}
