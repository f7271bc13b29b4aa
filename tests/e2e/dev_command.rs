//! `cargo run` as a new user meets it: `switchyard dev` in a real process starts the stack, seeds
//! it, prints a ready-to-paste query that answers the headline question, stops cleanly on
//! SIGTERM, and a second run reuses the data.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard::client::GraphQLClient;

use crate::common::{dev_command, line_after, start_dev, start_dev_with};

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
    let data_dir = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(
        line_after(&lines, "Switchyard is up. Data directory:"),
        data_dir.display().to_string(),
        "the banner names the data directory in full"
    );
    let url = line_after(&lines, "GraphiQL:").to_owned();
    let again = ask(&url, &query).await;
    assert_eq!(again, first);

    // GraphiQL opens with the example query (the same ids as the printed one).
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/graphql")
        .to_owned();
    let page = http_get(&addr, "/graphql", "text/html").await;
    let amit = &query[query.find("from: \"").unwrap() + 7..][..36];
    assert!(
        page.contains("connectionDegree(from: ") && page.contains(amit),
        "GraphiQL page without the example query:\n{page}"
    );

    // A second `switchyard dev` on the same address says so, and leaves the first one alone.
    let second = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "dev",
            "--listen",
            &addr,
            "--metrics-listen",
            "off",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .env_remove("REDIS_URL")
        .output()
        .expect("switchyard runs");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "is Switchyard already running on :{}?",
            addr.rsplit(':').next().unwrap()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("LockBusy"), "{stderr}");
    assert_eq!(ask(&url, &query).await, first, "the first one still serves");
    stop(child);
}

/// A GET over a fresh connection; the body as text.
async fn http_get(addr: &str, path: &str, accept: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// `switchyard dev` with profile on FalkorDB (`PROFILE_GRAPH_URL`): the same headline answer
/// through the gateway, kept in the graph server across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchyard_dev_runs_profile_on_falkordb() {
    let Some(falkordb) = switchyard_profile::testing::falkordb_url().await else {
        return;
    };
    let graph = switchyard_profile::testing::test_graph_name();
    let env = [
        ("PROFILE_GRAPH_URL", falkordb.as_str()),
        ("PROFILE_GRAPH_NAME", graph.as_str()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let (child, lines) = start_dev_with(dir.path(), &env);
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
    // The graph is in FalkorDB, not under the data dir: remove profile's files, and the
    // restarted stack still answers from the graph server.
    std::fs::remove_dir_all(dir.path().join("profile")).unwrap();
    let (child, lines) = start_dev_with(dir.path(), &env);
    let url = line_after(&lines, "GraphiQL:").to_owned();
    assert_eq!(ask(&url, &query).await, first);
    stop(child);
    switchyard_profile::testing::delete_graph(&falkordb, &graph).await;
}

/// Reads the seed record, if there is one yet: `(members recorded, complete)`.
fn seed_progress(data_dir: &std::path::Path) -> Option<(usize, bool)> {
    let text = std::fs::read_to_string(data_dir.join("seed.json")).ok()?;
    let record: Value = serde_json::from_str(&text).ok()?;
    Some((
        record["members"].as_object()?.len(),
        record["complete"].as_bool().unwrap_or(true),
    ))
}

/// Starts `switchyard dev` and kills it (SIGKILL, no chance to clean up) once `ready` says so
/// about the seed record; returns whether the kill landed before the seed completed.
fn kill_during_seed(
    data_dir: &std::path::Path,
    ready: impl Fn(Option<(usize, bool)>) -> bool,
) -> bool {
    let mut child = dev_command(data_dir)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("switchyard starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready(seed_progress(data_dir)) {
        assert!(
            Instant::now() < deadline,
            "the seed never reached the kill point"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("switchyard dev exited on its own with {status}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    seed_progress(data_dir).is_none_or(|(_, complete)| !complete)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_killed_at_any_point_of_seeding_is_completed_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    // Kill points, in order: before the record exists (the stack still starting), with the
    // record but no member, after the first member, half-way through the members, and after
    // the last member (connections, posts, chat still to come).
    let mut interrupted = 0;
    let start = Instant::now();
    interrupted += usize::from(kill_during_seed(dir.path(), |_| {
        start.elapsed() > Duration::from_millis(300)
    }));
    for members in [0, 1, 4, 8] {
        interrupted += usize::from(kill_during_seed(dir.path(), |p| {
            p.is_some_and(|(n, _)| n >= members)
        }));
    }
    assert!(interrupted >= 4, "only {interrupted} kills landed mid-seed");

    // The next run finishes the seed: everything exactly once.
    let (child, lines) = start_dev(dir.path());
    let url = line_after(&lines, "GraphiQL:").to_owned();
    let query = line_after(&lines, "Try:").to_owned();
    assert_eq!(
        ask(&url, &query).await["connectionDegree"]["degree"],
        "SECOND",
        "{lines:#?}"
    );
    assert_eq!(seed_progress(dir.path()), Some((8, true)));
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("seed.json")).unwrap())
            .unwrap();
    let password = record["password"].as_str().unwrap();
    let client = GraphQLClient::new(&url);
    let login = client
        .data(
            "mutation($p: String!) { logIn(email: \"amit@example.com\", password: $p) { accessToken } }",
            json!({ "p": password }),
        )
        .await
        .unwrap();
    let amit = client.with_token(login["logIn"]["accessToken"].as_str().unwrap());
    let data = amit
        .data(
            "query($id: ID!) { member(id: $id) {
                 connectionCount
                 posts { totalCount edges { node { reactions { total } comments { totalCount } } } }
                 conversations { totalCount edges { node { messages { totalCount } } } }
             } }",
            json!({ "id": record["members"]["amit"] }),
        )
        .await
        .unwrap();
    let member = &data["member"];
    assert_eq!(member["connectionCount"], 2, "{data}");
    assert_eq!(member["posts"]["totalCount"], 1, "{data}");
    let post = &member["posts"]["edges"][0]["node"];
    assert_eq!(post["reactions"]["total"], 2, "{data}");
    assert_eq!(post["comments"]["totalCount"], 1, "{data}");
    assert_eq!(member["conversations"]["totalCount"], 1, "{data}");
    assert_eq!(
        member["conversations"]["edges"][0]["node"]["messages"]["totalCount"], 2,
        "{data}"
    );
    stop(child);
}
