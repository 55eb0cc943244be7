//! Every GraphQL document dropsync sends validates against the real 2026-10 Admin schema, through
//! the sandbox's validator (graphql-core over Shopify's own introspection), and costs what the
//! client's limiter expects.
//!
//! Run with the sandbox up: `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests --test integration shopify_documents::`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use dropsync_shopify::admin::{DOCUMENTS, OPERATIONS};
use serde_json::{Value, json};

fn sandbox() -> String {
    std::env::var("DROPSYNC_SHOPIFY_SANDBOX")
        .map(|s| s.trim_end_matches('/').to_owned())
        .expect(
            "DROPSYNC_SHOPIFY_SANDBOX is not set: run the tests through \
             `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests --test integration shopify_documents::`",
        )
}

async fn validate(query: &str) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{}/_admin/validate", sandbox()))
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("the sandbox answers /_admin/validate");
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json().await.expect("a JSON answer")
}

#[tokio::test]
async fn every_document_the_project_sends_validates_against_the_real_schema() {
    assert!(!DOCUMENTS.is_empty());
    for (name, document) in DOCUMENTS {
        let answer = validate(document).await;
        assert_eq!(answer["valid"], json!(true), "{name}: {answer}");
        assert_eq!(answer["errors"], json!([]), "{name}");
    }
}

#[tokio::test]
async fn every_document_costs_what_the_limiter_expects_and_stays_well_under_1000() {
    let mut report = Vec::new();
    for op in OPERATIONS {
        let answer = validate(op.document).await;
        let cost = answer["requested_cost"]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: no requested_cost in {answer}", op.name));
        assert_eq!(cost, u64::from(op.expected_cost), "{}", op.name);
        assert!(cost < 1000, "{}: {cost}", op.name);
        report.push(format!("{} = {cost}", op.name));
    }
    println!("requested costs: {}", report.join(", "));
}

#[tokio::test]
async fn a_deliberately_wrong_document_is_reported_invalid() {
    // UserError has no `code` in the Admin API: the check must be able to fail.
    let wrong = "mutation FulfillmentCreate($fulfillment: FulfillmentInput!) {
      fulfillmentCreate(fulfillment: $fulfillment) {
        fulfillment { id status }
        userErrors { field message code }
      }
    }";
    let answer = validate(wrong).await;
    assert_eq!(answer["valid"], json!(false), "{answer}");
    let errors = answer["errors"].as_array().unwrap();
    assert!(!errors.is_empty());
    assert!(
        errors
            .iter()
            .any(|e| e["message"].as_str().unwrap_or("").contains("code")),
        "{answer}"
    );
}

#[tokio::test]
async fn a_tracking_input_field_the_schema_lacks_is_reported_invalid() {
    // `trackingNumber` is the REST name; the GraphQL input only has number/numbers.
    let wrong = "mutation X($id: ID!) {
      fulfillmentTrackingInfoUpdate(fulfillmentId: $id, trackingInfoInput: {trackingNumber: \"1\"}) {
        fulfillment { id }
        userErrors { field message }
      }
    }";
    assert_eq!(validate(wrong).await["valid"], json!(false));
}

#[tokio::test]
async fn the_shipping_address_document_read_at_placement_time_validates() {
    let (_, document) = DOCUMENTS
        .iter()
        .find(|(name, _)| *name == "OrderShippingAddress")
        .expect("the placement's address document is listed");
    let answer = validate(document).await;
    assert_eq!(answer["valid"], json!(true), "{answer}");
    assert!(document.contains("countryCodeV2") && document.contains("phone"));
}
