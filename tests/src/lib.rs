//! Test support: the emulator (moto) and sandboxes that `make test` starts, fresh tables and
//! queues per test (created from `template.yaml`'s definitions), and sample data.
//!
//! Nothing here skips: a missing service is a loud failure telling how to run the tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod chaos;
pub mod chaos_place;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use dropsync_domain::{FinancialStatus, LineItem, ShopDomain, ShopifyFacts};
use dropsync_store::Store;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other test (or test process) uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        fastrand::u32(..)
    )
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with `make test`, which starts the DynamoDB/SQS \
             emulator and the sandboxes (python tests/tools/services.py -- cargo test)"
        )
    })
}

/// The AWS SDK configuration pointing at the emulator.
pub async fn aws_config() -> aws_config::SdkConfig {
    required_env("AWS_ENDPOINT_URL");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(dropsync_http::aws_http_client())
        .load()
        .await
}

/// Creates an SQS queue on the emulator, named `prefix` made [`unique`]; returns its URL.
pub async fn create_queue(client: &aws_sdk_sqs::Client, prefix: &str) -> String {
    create_queue_named(client, unique(prefix), None).await
}

/// As [`create_queue`], with a visibility timeout (seconds) other than SQS's default 30.
pub async fn create_queue_with_visibility(
    client: &aws_sdk_sqs::Client,
    prefix: &str,
    seconds: u32,
) -> String {
    create_queue_named(client, unique(prefix), Some(seconds)).await
}

async fn create_queue_named(
    client: &aws_sdk_sqs::Client,
    name: String,
    visibility_seconds: Option<u32>,
) -> String {
    let mut req = client.create_queue().queue_name(&name);
    if let Some(seconds) = visibility_seconds {
        req = req.attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            seconds.to_string(),
        );
    }
    let out = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("create queue {name}: {e:?}"));
    out.queue_url().unwrap().to_owned()
}

/// Every webhook topic dropsync handles, written out here (not taken from the product) so a topic
/// the product stops handling fails the tests that replay or generate deliveries under each.
pub const HANDLED_TOPICS: [&str; 10] = [
    "orders/create",
    "orders/updated",
    "orders/paid",
    "orders/cancelled",
    "orders/fulfilled",
    "orders/partially_fulfilled",
    "app/uninstalled",
    "customers/data_request",
    "customers/redact",
    "shop/redact",
];

/// The router of `make local` (`local/src/main.rs`'s `Local`) over the real handlers: Shopify's
/// webhooks to the webhook function, everything else to the API.
pub struct LocalRouter {
    pub webhook: dropsync_app::webhook::WebhookService<dropsync_shopify::admin::AdminClient>,
    pub api: std::sync::Arc<
        dropsync_api::Api<dropsync_aliexpress::IopClient, dropsync_app::queue::SqsQueue>,
    >,
}

impl std::fmt::Debug for LocalRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRouter").finish_non_exhaustive()
    }
}

impl dropsync_local::server::Handler for LocalRouter {
    async fn call(&self, req: lambda_http::Request) -> lambda_http::Response<lambda_http::Body> {
        if req.uri().path().trim_end_matches('/') == "/webhooks/shopify" {
            dropsync_shopify_webhook::handle_request(&self.webhook, req).await
        } else {
            self.api.handle(req).await
        }
    }
}

/// The infrastructure definitions extracted from template.yaml.
pub fn infra() -> Value {
    let path = required_env("DROPSYNC_INFRA");
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&raw).unwrap()
}

fn key_schema(v: &Value) -> Vec<KeySchemaElement> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(k["AttributeName"].as_str().unwrap())
                .key_type(KeyType::from(k["KeyType"].as_str().unwrap()))
                .build()
                .unwrap()
        })
        .collect()
}

/// Creates a table named `name` exactly as template.yaml defines `OrdersTable`.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    let def = &infra()["tables"]["OrdersTable"];
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::from(
            def["BillingMode"].as_str().unwrap_or("PAY_PER_REQUEST"),
        ))
        .set_key_schema(Some(key_schema(&def["KeySchema"])));
    for a in def["AttributeDefinitions"].as_array().unwrap() {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(a["AttributeName"].as_str().unwrap())
                .attribute_type(ScalarAttributeType::from(
                    a["AttributeType"].as_str().unwrap(),
                ))
                .build()
                .unwrap(),
        );
    }
    for g in def["GlobalSecondaryIndexes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let p = &g["Projection"];
        let mut proj = Projection::builder()
            .projection_type(ProjectionType::from(p["ProjectionType"].as_str().unwrap()));
        for a in p["NonKeyAttributes"].as_array().into_iter().flatten() {
            proj = proj.non_key_attributes(a.as_str().unwrap());
        }
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(g["IndexName"].as_str().unwrap())
                .set_key_schema(Some(key_schema(&g["KeySchema"])))
                .projection(proj.build())
                .build()
                .unwrap(),
        );
    }
    req.send()
        .await
        .unwrap_or_else(|e| panic!("create table {name}: {e:?}"));
}

/// A store on a fresh table of its own.
pub async fn fresh_store() -> Store {
    let conf = aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&conf);
    let name = unique("orders");
    create_table(&client, &name).await;
    Store::new(client, name)
}

pub fn shop(name: &str) -> ShopDomain {
    ShopDomain::parse(&format!("{name}.myshopify.com")).unwrap()
}

/// Shopify facts for an order with the given line items `(id, quantity)`.
pub fn facts(financial: &str, updated_at_ms: i64, lines: &[(u64, u32)]) -> ShopifyFacts {
    ShopifyFacts {
        name: "#1001".into(),
        created_at_ms: 1_700_000_000_000,
        updated_at_ms,
        financial_status: FinancialStatus::parse(financial),
        cancelled: false,
        test: false,
        fulfillment_status: None,
        line_items: lines
            .iter()
            .map(|(id, q)| LineItem {
                sku: Some(format!("SKU-{id}")),
                ..LineItem::new(*id, *q)
            })
            .collect(),
        fulfillment_tracking: vec![],
    }
}

/// A `lambda_http::Request` exactly as Lambda builds it from an API Gateway (HTTP API, v2)
/// event for this method, path (with query) and headers.
pub fn apigw_request(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> lambda_http::Request {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let event =
        dropsync_local::server::apigw_event(method, path, query, &headers, body, "127.0.0.1");
    let req: lambda_http::request::LambdaRequest = serde_json::from_value(event).unwrap();
    lambda_http::Request::from(req)
}

/// Status and JSON body of a handler's response.
pub fn response_json(res: lambda_http::Response<lambda_http::Body>) -> (u16, Value) {
    let status = res.status().as_u16();
    let body = match res.into_body() {
        lambda_http::Body::Text(t) => t.into_bytes(),
        lambda_http::Body::Binary(b) => b,
        _ => Vec::new(),
    };
    let v = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    (status, v)
}

/// Base URL of the sandbox Shopify started by `make test`.
pub fn shopify_sandbox() -> String {
    required_env("DROPSYNC_SHOPIFY_SANDBOX")
}

/// Base URL of the sandbox AliExpress started by `make test`.
pub fn aliexpress_sandbox() -> String {
    required_env("DROPSYNC_ALIEXPRESS_SANDBOX")
}

/// POSTs JSON to a sandbox admin endpoint; panics unless it answers 2xx.
pub async fn sandbox_post(base: &str, path: &str, body: Value) -> Value {
    let res = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = res.status();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path} -> {status}: {v}");
    v
}

/// Registers an app with the sandbox AliExpress at `base` (`app`: its `app_key`, `app_secret` and
/// any limits or faults) and has the sandbox issue it a session (`session`: the tokens, account
/// and lifetimes to use; the sandbox makes up what is missing): the session's tokens.
pub async fn sandbox_ae_app(
    base: &str,
    app: Value,
    mut session: Value,
) -> dropsync_aliexpress::Tokens {
    sandbox_post(base, "/_admin/apps", app.clone()).await;
    session["app_key"] = app["app_key"].clone();
    let t = sandbox_post(base, "/_admin/tokens", session).await;
    dropsync_aliexpress::Tokens {
        access_token: t["access_token"].as_str().unwrap().to_owned(),
        refresh_token: t["refresh_token"].as_str().unwrap().to_owned(),
        expire_time_ms: t["expire_time"].as_i64(),
    }
}

/// GETs JSON from a sandbox admin endpoint.
pub async fn sandbox_get(base: &str, path: &str) -> Value {
    let res = reqwest::get(format!("{base}{path}"))
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = res.status();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path} -> {status}: {v}");
    v
}

/// Parses a credentials document.
pub fn credentials(doc: Value) -> std::sync::Arc<dropsync_app::Credentials> {
    std::sync::Arc::new(dropsync_app::Credentials::parse(doc.to_string().as_bytes()).unwrap())
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
