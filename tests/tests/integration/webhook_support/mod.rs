//! Shared by the `webhook_*` test files: signed deliveries as API Gateway (HTTP API, payload v2)
//! hands them to the function, order bodies serialised the way Shopify signs them, the
//! credentials document, a DynamoDB request log, and stores that fail in the ways production
//! ones do.
#![allow(dead_code)] // each test file uses its own subset

use aws_lambda_events::encodings::Base64Data;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use dropsync_app::Credentials;
use dropsync_app::webhook::WebhookService;
use dropsync_domain::ShopDomain;
use dropsync_shopify::admin::AdminClient;
use dropsync_store::Store;
use lambda_http::{Body, Request};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The documented test secret (Shopify's documented vector uses it too) and the sample shop.
pub const SECRET: &str = "shpss_test_secret";
pub const SHOP: &str = "example.myshopify.com";
pub const PATH: &str = "/webhooks/shopify";

/// Ids above 2^53, as in production (neighbours collapse when read as f64).
pub const ORDER: u64 = 9_120_004_388_517_265_409;
pub const LINE_A: u64 = 9_120_004_388_517_265_501;
pub const LINE_B: u64 = 9_120_004_388_517_265_502;

pub fn shop_domain(name: &str) -> ShopDomain {
    ShopDomain::parse(name).unwrap()
}

/// base64(HMAC-SHA256(secret, body)), what Shopify puts in `X-Shopify-Hmac-Sha256`.
///
/// Computed with AliExpress's request signer, not with the code under test: with a single
/// parameter whose name is empty, the string it signs is exactly the body, and it answers the
/// HMAC-SHA256 in hex. `the_test_signer_reproduces_the_spec_vector` (webhook_handler.rs) checks
/// it against Shopify's documented vector. Bodies signed here must be UTF-8; the sandbox (Python) signs anything.
pub fn shopify_hmac(secret: &str, body: &[u8]) -> String {
    let text = std::str::from_utf8(body).expect("bodies signed in tests are UTF-8");
    let hex = dropsync_aliexpress::sign::sign(secret, None, &[(String::new(), text.to_owned())]);
    base64(&hex_decode(&hex))
}

pub fn base64(bytes: &[u8]) -> String {
    let mut data = Base64Data::default();
    data.extend_from_slice(bytes);
    match serde_json::to_value(data).unwrap() {
        Value::String(s) => s,
        other => panic!("Base64Data serialised as {other}"),
    }
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// Compact JSON with Shopify's escapes (`/` → `\/`, `&` → `\u0026`, `<`, `>` too), as the
/// signed bytes of a real delivery look. JSON syntax never uses these characters, so replacing
/// them in the text only touches strings.
pub fn shopify_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_string(v)
        .unwrap()
        .replace('/', "\\/")
        .replace('&', "\\u0026")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .into_bytes()
}

/// A time on 2026-11-02 in the shop's zone (UTC-5), `secs` after 10:00, as REST payloads
/// write it.
pub fn ts(secs: u32) -> String {
    format!(
        "2026-11-02T{:02}:{:02}:{:02}-05:00",
        10 + secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// `ts(secs)` in ms since the epoch (2026-11-02T15:00:00Z is 1_793_631_600_000).
pub fn ts_ms(secs: u32) -> i64 {
    1_793_631_600_000 + i64::from(secs) * 1000
}

/// A REST order payload as Shopify sends it for the order topics, with customer data the
/// webhook must not keep (email, address, note) and Shopify-escaped characters in it.
pub fn order(id: u64, updated: u32, financial: &str, lines: &[(u64, u32)]) -> Value {
    let line_items: Vec<Value> = lines
        .iter()
        .map(|(lid, q)| {
            json!({
                "id": lid, "admin_graphql_api_id": format!("gid://shopify/LineItem/{lid}"),
                "variant_id": 44_000_000_000_000_000_u64 + lid % 1000,
                "product_id": 8_000_000_000_000_000_u64 + lid % 1000,
                "sku": format!("SKU-{}", lid % 1000), "title": "Steel bottle 750 ml",
                "name": "Steel bottle 750 ml - Silver", "variant_title": "Silver", "vendor": "Acme",
                "quantity": q, "current_quantity": q, "fulfillable_quantity": q,
                "fulfillment_status": null, "fulfillment_service": "manual",
                "requires_shipping": true, "gift_card": false, "price": "19.90",
                "price_set": {"shop_money": {"amount": "19.90", "currency_code": "USD"},
                              "presentment_money": {"amount": "19.90", "currency_code": "USD"}},
                "properties": [{"name": "engraving", "value": "A & B"}], "grams": 300,
                "tax_lines": [], "discount_allocations": []
            })
        })
        .collect();
    json!({
        "id": id, "admin_graphql_api_id": format!("gid://shopify/Order/{id}"),
        "name": "#1001", "order_number": 1001,
        "email": "bob@example.com", "contact_email": "bob@example.com", "phone": "+15555550123",
        "created_at": ts(0), "updated_at": ts(updated), "processed_at": ts(0),
        "cancelled_at": null, "cancel_reason": null, "closed_at": null,
        "financial_status": financial, "fulfillment_status": null, "test": false,
        "currency": "USD", "presentment_currency": "USD",
        "total_price": "39.80", "subtotal_price": "39.80", "total_tax": "0.00",
        "tags": "vip, wholesale", "note": "leave at the door / back & front",
        "note_attributes": [{"name": "gift", "value": "<yes>"}],
        "shipping_address": {"first_name": "Bob", "last_name": "Buyer", "name": "Bob Buyer",
            "address1": "1 Main St", "address2": null, "city": "Ottawa", "province": "Ontario",
            "province_code": "ON", "zip": "K1A 0B1", "country": "Canada", "country_code": "CA",
            "phone": "+15555550123", "company": null},
        "billing_address": null,
        "customer": {"id": 115_310_627_314_723_954_u64, "email": "bob@example.com",
                     "first_name": "Bob", "last_name": "Buyer"},
        "line_items": line_items, "fulfillments": [], "refunds": [], "shipping_lines": [],
        "discount_codes": []
    })
}

/// A successful Shopify fulfillment of `lines` `(line id, quantity)`.
pub fn fulfillment(id: u64, tracking: &str, lines: &[(u64, u32)]) -> Value {
    json!({
        "id": id, "admin_graphql_api_id": format!("gid://shopify/Fulfillment/{id}"),
        "status": "success", "created_at": ts(100), "tracking_company": "UPS",
        "tracking_number": tracking, "tracking_numbers": [tracking],
        "tracking_url": format!("https://www.ups.com/track?tracknum={tracking}&loc=en_US"),
        "line_items": lines.iter().map(|(l, q)| json!({"id": l, "quantity": q})).collect::<Vec<_>>()
    })
}

/// A credentials document serving `shops` (domain, webhook secrets: current first).
pub fn credentials(shops: &[(&str, &[&str])]) -> Arc<Credentials> {
    let mut doc = json!({"admin_token": "admin-token-0123456789abcdef", "shops": {}});
    for (i, (shop, secrets)) in shops.iter().enumerate() {
        doc["shops"][*shop] =
            json!({"access_token": format!("shpat_test_{i}"), "webhook_secrets": secrets});
    }
    dropsync_tests::credentials(doc)
}

/// The webhook service over `store`, serving [`SHOP`] with [`SECRET`].
pub fn service(store: Store) -> WebhookService<AdminClient> {
    service_with(store, credentials(&[(SHOP, &[SECRET])]))
}

/// With the sandbox Shopify when it runs: it does not know the test tokens, so it answers 401,
/// which is how Shopify confirms an `app/uninstalled` (the app's tokens are revoked).
pub fn service_with(store: Store, credentials: Arc<Credentials>) -> WebhookService<AdminClient> {
    let admin = std::env::var("DROPSYNC_SHOPIFY_SANDBOX").ok().map(|base| {
        Arc::new(
            AdminClient::new(dropsync_shopify::admin::AdminConfig {
                base_override: Some(base.trim_end_matches('/').to_owned()),
                ..Default::default()
            })
            .unwrap(),
        )
    });
    WebhookService {
        store,
        credentials,
        admin,
    }
}

/// A Shopify `app/uninstalled` body (the shop resource) for `shop`.
pub fn uninstall_body(shop: &str) -> Vec<u8> {
    shopify_bytes(
        &serde_json::json!({"id": 548_380_009, "name": "Example", "domain": "example.com",
        "myshopify_domain": shop, "email": "owner@example.com"}),
    )
}

/// Milliseconds since the epoch, `hours_ago` hours back: for an uninstall 48 h before a redact.
pub fn ms_hours_ago(hours_ago: i64) -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - hours_ago * 3600 * 1000
}

/// The headers of a delivery signed with `secret`, spelled as Shopify spells them.
pub fn signed_headers(topic: &str, shop: &str, secret: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("Content-Type".into(), "application/json".into()),
        ("X-Shopify-Topic".into(), topic.into()),
        ("X-Shopify-Hmac-Sha256".into(), shopify_hmac(secret, body)),
        ("X-Shopify-Shop-Domain".into(), shop.into()),
        ("X-Shopify-API-Version".into(), "2026-10".into()),
        (
            "X-Shopify-Webhook-Id".into(),
            format!("b54557e4-0000-4000-8000-{:012x}", fastrand::u64(..1 << 48)),
        ),
        (
            "X-Shopify-Event-Id".into(),
            format!("98880550-0000-4000-8000-{:012x}", fastrand::u64(..1 << 48)),
        ),
        (
            "X-Shopify-Triggered-At".into(),
            "2026-11-02T15:06:59.110521905Z".into(),
        ),
    ]
}

pub fn with_header(
    mut headers: Vec<(String, String)>,
    name: &str,
    value: &str,
) -> Vec<(String, String)> {
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    headers.push((name.to_owned(), value.to_owned()));
    headers
}

pub fn without_header(mut headers: Vec<(String, String)>, name: &str) -> Vec<(String, String)> {
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    headers
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap()
}

/// The request Lambda builds from the API Gateway v2 event for this delivery.
pub fn request(method: &str, headers: &[(String, String)], body: &[u8]) -> Request {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    dropsync_tests::apigw_request(method, PATH, &pairs, body)
}

/// Like [`request`], with the body base64-encoded and `isBase64Encoded: true`, as API Gateway
/// sends bodies it does not treat as text.
pub fn request_base64(headers: &[(String, String)], body: &[u8]) -> Request {
    let mut event =
        dropsync_local::server::apigw_event("POST", PATH, "", headers, b"x", "203.0.113.7");
    event["body"] = Value::String(base64(body));
    event["isBase64Encoded"] = Value::Bool(true);
    from_event(event)
}

/// Deserialises an API Gateway v2 event and converts it exactly as the Lambda runtime does.
pub fn from_event(event: Value) -> Request {
    let req: lambda_http::request::LambdaRequest = serde_json::from_value(event).unwrap();
    Request::from(req)
}

/// Runs one delivery through the function's handler: `(status, JSON body)`.
pub async fn deliver(
    svc: &WebhookService<AdminClient>,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, Value) {
    send(svc, request("POST", headers, body)).await
}

pub async fn send(svc: &WebhookService<AdminClient>, req: Request) -> (u16, Value) {
    dropsync_tests::response_json(dropsync_shopify_webhook::handle_request(svc, req).await)
}

/// Signs `body` for `topic` with [`SECRET`] for [`SHOP`] and delivers it.
pub async fn deliver_signed(
    svc: &WebhookService<AdminClient>,
    topic: &str,
    body: &[u8],
) -> (u16, Value) {
    deliver(svc, &signed_headers(topic, SHOP, SECRET, body), body).await
}

/// Every item in the table but the shops' tab counters (a scan: test tables are small).
pub async fn item_count(store: &Store) -> i32 {
    let out = store
        .client()
        .scan()
        .table_name(store.table())
        .select(Select::Count)
        // The shops' tab counters follow the orders: not items a delivery wrote for itself.
        .filter_expression("sk <> :tabs")
        .expression_attribute_values(":tabs", AttributeValue::S("TABS".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(
        out.last_evaluated_key().is_none(),
        "test tables fit one page"
    );
    out.count()
}

/// Every item in the table, canonically ordered: two snapshots are equal iff nothing was
/// written in between (a write bumps `version` or `updated_at` or adds an item).
pub async fn snapshot(store: &Store) -> Vec<std::collections::BTreeMap<String, String>> {
    let out = store
        .client()
        .scan()
        .table_name(store.table())
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(
        out.last_evaluated_key().is_none(),
        "test tables fit one page"
    );
    let mut items: Vec<std::collections::BTreeMap<String, String>> = out
        .items()
        .iter()
        .map(|item| {
            item.iter()
                .map(|(k, v)| (k.clone(), format!("{v:?}")))
                .collect()
        })
        .collect();
    items.sort();
    items
}

/// The order item as stored, attribute by attribute.
pub async fn raw_order(
    store: &Store,
    shop: &ShopDomain,
    id: u64,
) -> Option<HashMap<String, AttributeValue>> {
    store
        .client()
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(dropsync_store::order_pk(shop, id)))
        .key("sk", AttributeValue::S("ORDER".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// The DynamoDB requests a client sent (its `X-Amz-Target` operation names, retries included),
/// recorded by an SDK interceptor just before each goes on the wire.
#[derive(Debug, Clone, Default)]
pub struct CallLog(Arc<Mutex<Vec<String>>>);

impl CallLog {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "dropsync-test-call-log"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("?");
        let op = target.rsplit('.').next().unwrap_or(target).to_owned();
        self.0.lock().unwrap().push(op);
        Ok(())
    }
}

/// The same table as `store`, through a client that logs every request it sends.
pub async fn logged(store: &Store) -> (Store, CallLog) {
    let conf = dropsync_tests::aws_config().await;
    let log = CallLog::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&conf)
            .interceptor(log.clone())
            .build(),
    );
    (Store::new(client, store.table()), log)
}

/// A store whose DynamoDB endpoint is `endpoint`, one attempt per call.
pub async fn store_at(endpoint: &str, table: &str) -> Store {
    let conf = dropsync_tests::aws_config().await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&conf)
            .endpoint_url(endpoint)
            .retry_config(
                aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(1),
            )
            .build(),
    );
    Store::new(client, table)
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A fake DynamoDB endpoint that answers every request with `ThrottlingException`, as DynamoDB
/// does when the table's capacity is exceeded. Serves on a background thread until the test
/// process ends; returns its URL and a counter of the requests it answered.
pub fn throttling_dynamodb() -> (String, Arc<Mutex<u32>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(Mutex::new(0u32));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            loop {
                // One request: headers up to the blank line, then Content-Length bytes.
                let mut length = 0usize;
                let mut line = String::new();
                let mut got_any = false;
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    got_any = true;
                    if line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.trim().eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                if !got_any {
                    break;
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    break;
                }
                *counter.lock().unwrap() += 1;
                let payload = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;
                let res = format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-RequestId: T1\r\nContent-Length: {}\r\n\r\n{payload}",
                    payload.len()
                );
                if reader.get_mut().write_all(res.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    (url, hits)
}

/// Reads the body of a `Body` as bytes.
pub fn body_bytes(body: &Body) -> Vec<u8> {
    match body {
        Body::Text(t) => t.as_bytes().to_vec(),
        Body::Binary(b) => b.clone(),
        _ => Vec::new(),
    }
}
