//! The headline, end to end: members sign up through the gateway (auth), become members of the
//! profile service through `account.created` events, connect, log in, and ask the graph-backed
//! profile service for their degree of connection — always through the gateway.

use crate::common;

use common::{connect, error_codes, sign_up, start_stack, PostgresDb, TestStack, PASSWORD};
use serde_json::json;

async fn second_degree_scenario(stack: &TestStack) {
    let client = &stack.client;
    let amit = sign_up(client, "amit", "Amit Sharma").await;
    let amrita = sign_up(client, "amrita", "Amrita Rao").await;
    let priya = sign_up(client, "priya", "Priya Nair").await;
    let loner = sign_up(client, "loner", "Lone Member").await;
    connect(client, &amit, &priya).await;
    connect(client, &priya, &amrita).await;

    // Log in again (a new session), as a returning user would.
    let login = client
        .data(
            "mutation($e: String!, $p: String!) { logIn(email: $e, password: $p) { accessToken } }",
            json!({ "e": "amit@example.com", "p": PASSWORD }),
        )
        .await
        .unwrap();
    let token = login["logIn"]["accessToken"].as_str().unwrap().to_owned();
    let as_amit = client.with_token(token);

    let data = as_amit
        .data(
            "query($amit: ID!, $amrita: ID!, $priya: ID!, $loner: ID!) {
               me { handle member { displayName connectionCount } }
               second: connectionDegree(from: $amit, to: $amrita) { degree path { id handle } }
               first: connectionDegree(from: $amit, to: $priya) { degree path { handle } }
               none: connectionDegree(from: $amit, to: $loner) { degree path { handle } }
             }",
            json!({ "amit": amit.id, "amrita": amrita.id, "priya": priya.id, "loner": loner.id }),
        )
        .await
        .unwrap();
    // `me` is answered by auth from the forwarded Authorization header; `member` by profile.
    assert_eq!(data["me"]["handle"], "amit");
    assert_eq!(data["me"]["member"]["displayName"], "Amit Sharma");
    assert_eq!(data["me"]["member"]["connectionCount"], 1);
    assert_eq!(data["second"]["degree"], "SECOND");
    let path: Vec<&str> = data["second"]["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["handle"].as_str().unwrap())
        .collect();
    assert_eq!(path, ["amit", "priya", "amrita"]);
    assert_eq!(data["second"]["path"][2]["id"], amrita.id.as_str());
    assert_eq!(data["first"]["degree"], "FIRST");
    assert_eq!(data["none"]["degree"], "OUT_OF_NETWORK");
    assert_eq!(data["none"]["path"], json!([]));

    // Without a token `me` is null, and mutations that need a caller say so.
    let anonymous = client.data("{ me { handle } }", json!({})).await.unwrap();
    assert!(anonymous["me"].is_null());
    let refused = client
        .send(
            "mutation($to: ID!) { requestConnection(to: $to) { __typename } }",
            json!({ "to": loner.id }),
        )
        .await
        .unwrap();
    assert!(
        error_codes(&refused.errors()).contains(&"UNAUTHENTICATED".to_owned()),
        "{:?}",
        refused.body
    );

    // Amrita is a people-you-may-know suggestion for Amit, with Priya as the mutual.
    let pymk = as_amit
        .data(
            "{ peopleYouMayKnow(first: 5) { member { handle } mutualCount } }",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(pymk["peopleYouMayKnow"][0]["member"]["handle"], "amrita");
    assert_eq!(pymk["peopleYouMayKnow"][0]["mutualCount"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amit_and_amrita_are_second_degree_through_the_gateway() {
    let stack = start_stack(|_| {}).await;
    second_degree_scenario(&stack).await;
    stack.stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_with_auth_on_postgresql() {
    let Some(db) = PostgresDb::create("auth").await else {
        return;
    };
    let stack = start_stack(|options| {
        options
            .database_urls
            .insert("auth".to_owned(), db.url.clone());
    })
    .await;
    second_degree_scenario(&stack).await;
    stack.stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeded_stack_answers_the_headline_query_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let options = switchyard::stack::StackOptions::embedded(dir.path(), common::any_port());
    let stack = switchyard::stack::Stack::start(options.clone())
        .await
        .unwrap();
    let client = switchyard::client::GraphQLClient::new(stack.graphql_url());
    let seeded = switchyard::seed::seed_once(&client, dir.path())
        .await
        .unwrap();
    let query =
        "query($a: ID!, $b: ID!) { connectionDegree(from: $a, to: $b) { degree path { handle } } }";
    let vars = json!({ "a": seeded.id("amit"), "b": seeded.id("amrita") });
    let data = client.data(query, vars.clone()).await.unwrap();
    assert_eq!(data["connectionDegree"]["degree"], "SECOND");
    assert_eq!(data["connectionDegree"]["path"][1]["handle"], "priya");
    let third = client
        .data(
            query,
            json!({ "a": seeded.id("amit"), "b": seeded.id("kwame") }),
        )
        .await
        .unwrap();
    assert_eq!(third["connectionDegree"]["degree"], "THIRD");
    stack.shutdown().await.unwrap();

    // A second run over the same directory reuses the data and does not seed twice.
    let stack = switchyard::stack::Stack::start(options).await.unwrap();
    let client = switchyard::client::GraphQLClient::new(stack.graphql_url());
    let again = switchyard::seed::seed_once(&client, dir.path())
        .await
        .unwrap();
    assert_eq!(again.members, seeded.members);
    let data = client.data(query, vars).await.unwrap();
    assert_eq!(data["connectionDegree"]["degree"], "SECOND");
    let login = client
        .data(
            "mutation($e: String!, $p: String!) { logIn(email: $e, password: $p) { account { handle } } }",
            json!({ "e": "amit@example.com", "p": seeded.password }),
        )
        .await
        .unwrap();
    assert_eq!(login["logIn"]["account"]["handle"], "amit");
    stack.shutdown().await.unwrap();
}
