//! Hostile HTTP input against the local stack's server (real sockets, the API Gateway event
//! conversion, the real handlers, a fresh table in the emulator): malformed and mistyped JSON,
//! huge and deeply nested bodies, invalid UTF-8, missing and repeated headers, wrong methods,
//! path traversal, over-long ids and shop names, and query-string abuse, on every route.
//!
//! Every case must get a 4xx (never a 5xx, a reset connection or a hang: each request has a
//! timeout), a JSON `{"error": "..."}` body wherever a handler answered, and afterwards the
//! table must hold no item at all.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests --test integration hostile_http::`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::hostile_support;

use aws_sdk_dynamodb::types::AttributeValue;
use hostile_support::*;
use serde_json::json;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);
const MB: usize = 1024 * 1024;

/// One hostile request and what, besides a 4xx, is acceptable.
struct Case {
    name: String,
    req: Raw,
    /// Statuses other than 4xx that are right for this request (a route that takes no body
    /// ignores one: it answers as it would without it).
    also: Vec<u16>,
    /// Rejected by the HTTP layer before any handler: the body may be empty.
    server_layer: bool,
}

fn case(name: impl Into<String>, req: Raw) -> Case {
    Case {
        name: name.into(),
        req,
        also: Vec::new(),
        server_layer: false,
    }
}

impl Case {
    fn or(mut self, status: u16) -> Self {
        if !(400..500).contains(&status) {
            self.also.push(status);
        }
        self
    }

    fn server_layer(mut self) -> Self {
        self.server_layer = true;
        self
    }
}

/// Sends every case; fails with the name of each one mishandled, then if anything was written.
async fn check(stack: &Stack, cases: Vec<Case>) {
    let total = cases.len();
    let mut failures = Vec::new();
    for c in &cases {
        let label = format!("[{}] {} {}", c.name, c.req.method, short(&c.req.target));
        let res = match send(stack.addr, &c.req.to_bytes(), TIMEOUT).await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{label}: {e}"));
                continue;
            }
        };
        let client_error = (400..500).contains(&res.status);
        if !client_error && !c.also.contains(&res.status) {
            failures.push(format!(
                "{label}: answered {} (want a 4xx{}): {}",
                res.status,
                if c.also.is_empty() {
                    String::new()
                } else {
                    format!(" or {:?}", c.also)
                },
                res.text()
            ));
            continue;
        }
        if !client_error || c.req.method == "HEAD" {
            continue;
        }
        let json_error = res
            .json()
            .is_some_and(|v| v.get("error").is_some_and(|e| e.is_string()));
        let empty_ok = c.server_layer && res.body.is_empty();
        if !json_error && !empty_ok {
            failures.push(format!(
                "{label}: {} without a JSON {{\"error\": ...}} body: {:?}",
                res.status,
                res.text()
            ));
        }
    }
    // A body-less route answered as it would without the body (a shop sync) records its
    // one-at-a-time gate, and one listing a shop's tabs stores their first count: bookkeeping of
    // an accepted request, not something the body wrote.
    let items: Vec<_> = stack
        .scan()
        .await
        .into_iter()
        .filter(|i| {
            !matches!(i.get("sk"), Some(AttributeValue::S(sk)) if sk == "SYNCGATE" || sk == "TABS")
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {total} hostile requests were mishandled:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    assert!(
        items.is_empty(),
        "{total} hostile requests, and the table holds {} items: {:?}",
        items.len(),
        keys(&items)
    );
    eprintln!("{total} hostile requests: each answered as it should, nothing written");
}

/// A route of `dropsync_api::ROUTES` (or the webhook) made concrete for shop A and order 1.
struct Route {
    method: &'static str,
    template: &'static str,
    path: String,
    webhook: bool,
    /// Whether the route reads a request body.
    takes_body: bool,
}

fn routes(stack: &Stack) -> Vec<Route> {
    let mut out: Vec<Route> = dropsync_api::ROUTES
        .iter()
        .map(|(m, t)| {
            let mut path = t
                .replace("{shop}", stack.a.domain.as_str())
                .replace("{order_id}", "1")
                .replace("{variant_id}", "1");
            if *t == "/shops/{shop}/orders" {
                path.push_str("?status=awaiting_order");
            }
            Route {
                method: m,
                template: t,
                path,
                webhook: false,
                takes_body: *m == "PUT",
            }
        })
        .collect();
    out.push(Route {
        method: "POST",
        template: "/webhooks/shopify",
        path: "/webhooks/shopify".into(),
        webhook: true,
        takes_body: true,
    });
    out
}

impl Stack {
    /// The route's request with everything right but the body: the admin token on merchant
    /// routes, shop A's signature over `body` on the webhook (so the parser is reached).
    fn authorised(&self, r: &Route, body: &[u8]) -> Raw {
        if r.webhook {
            self.delivery(
                &self.a.domain,
                &self.a.webhook_secret,
                "orders/create",
                body,
            )
        } else if r.template == "/health" {
            Raw::new(r.method, &r.path).body(body.to_vec())
        } else {
            self.api(r.method, &r.path, Some(&self.admin_token), body)
        }
    }

    /// What a route answers with an empty body: a route that takes no body must answer the
    /// same whatever body comes with it.
    async fn baseline(&self, r: &Route) -> u16 {
        self.send(&self.authorised(r, b"")).await.status
    }
}

fn nested(levels: usize, open: &str, inner: &str, close: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(levels * (open.len() + close.len()) + inner.len());
    for _ in 0..levels {
        v.extend_from_slice(open.as_bytes());
    }
    v.extend_from_slice(inner.as_bytes());
    for _ in 0..levels {
        v.extend_from_slice(close.as_bytes());
    }
    v
}

/// A JSON document of exactly `len` bytes.
fn padded_json(len: usize) -> Vec<u8> {
    let mut v = br#"{"pad":""#.to_vec();
    v.resize(len - 2, b'a');
    v.extend_from_slice(br#""}"#);
    v
}

const TS: &str = "2026-11-02T10:00:00-05:00";

/// Bodies that no route may accept: (name, bytes).
fn bad_bodies_for(r: &Route) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = [
        (
            "malformed JSON: truncated",
            &br#"{"aliexpress_order_id": "1", "line_item_ids": ["#[..],
        ),
        ("malformed JSON: not JSON at all", b"not json"),
        (
            "malformed JSON: single quotes",
            b"{'notify_customer': true}",
        ),
        (
            "malformed JSON: trailing garbage",
            br#"{"notify_customer": true} x"#,
        ),
        (
            "malformed JSON: trailing comma",
            br#"{"notify_customer": true,}"#,
        ),
        ("malformed JSON: NaN", br#"{"notify_customer": NaN}"#),
        (
            "malformed JSON: byte order mark",
            b"\xEF\xBB\xBF{\"notify_customer\": true}",
        ),
        ("empty body", b""),
        ("JSON null", b"null"),
        ("wrong type: an array", b"[]"),
        ("wrong type: a string", br#""hello""#),
        ("wrong type: a number", b"42"),
        ("invalid UTF-8: raw bytes", b"\xff\xfe\xfd"),
        (
            "invalid UTF-8: inside a string",
            b"{\"notify_customer\": true, \"x\": \"\xff\"}",
        ),
        ("invalid UTF-8: overlong slash", b"{\"a\": \"\xc0\xaf\"}"),
        (
            "lone surrogate escape",
            br#"{"aliexpress_order_id": "\ud800", "notify_customer": "\ud800"}"#,
        ),
    ]
    .into_iter()
    .map(|(n, b)| (n.to_owned(), b.to_vec()))
    .collect();
    let typed: Vec<serde_json::Value> = if r.webhook {
        vec![
            json!({"id": "abc", "updated_at": TS, "line_items": []}),
            json!({"id": -5, "updated_at": TS, "line_items": []}),
            json!({"id": 1.5, "updated_at": TS, "line_items": []}),
            json!({"id": 7, "updated_at": 5, "line_items": []}),
            json!({"id": 7, "updated_at": "yesterday", "line_items": []}),
            json!({"id": 7, "updated_at": TS, "line_items": {}}),
            json!({"id": 7, "updated_at": TS, "line_items": [{"id": "x", "quantity": 1}]}),
            json!({"id": 7, "updated_at": TS, "line_items": [{"id": 1, "quantity": "many"}]}),
            json!({"id": 7, "updated_at": TS, "financial_status": 5, "line_items": []}),
            json!({"id": 7, "updated_at": TS, "test": "yes", "line_items": []}),
            json!({"id": {"nested": 1}, "updated_at": TS}),
        ]
    } else if r.template.ends_with("/supplier-orders") {
        vec![
            json!({"aliexpress_order_id": true, "line_item_ids": ["1"]}),
            json!({"aliexpress_order_id": "1", "line_item_ids": "1"}),
            json!({"aliexpress_order_id": -1, "line_item_ids": [1]}),
            json!({"aliexpress_order_id": 1.5, "line_item_ids": [1]}),
            json!({"aliexpress_order_id": "１２３", "line_item_ids": [1]}),
            json!({"aliexpress_order_id": "0x10", "line_item_ids": [1]}),
            json!({"aliexpress_order_id": "1", "line_item_ids": [null]}),
            json!({"aliexpress_order_id": "1", "line_item_ids": []}),
            json!({"aliexpress_order_id": "1", "line_item_ids": ["1"], "items": "x"}),
            json!({"aliexpress_order_id": "1", "line_item_ids": ["1"], "items": [{"line_item_id": {}}]}),
            json!({"aliexpress_order_id": "1", "line_item_ids": vec!["1"; 251]}),
            json!({"aliexpress_order_id": "1", "line_item_ids": ["1"], "admin": true}),
        ]
    } else {
        vec![
            json!({"notify_customer": "true"}),
            json!({"notify_customer": null}),
            json!({"notify_customer": 1}),
            json!({"notify_customer": true, "carrier_mapping": []}),
            json!({"notify_customer": true, "carrier_mapping": {"a": 1}}),
            json!({"notify_customer": true, "tracking_url_template": 5}),
            json!({"notify_customer": true, "tracking_url_template": "javascript:alert(1)//{number}"}),
            json!({"notify_customer": true, "shop": "other.myshopify.com"}),
        ]
    };
    for t in typed {
        v.push((
            format!("wrong type: {}", short(&t.to_string())),
            t.to_string().into_bytes(),
        ));
    }
    v.push((
        "duplicate key".into(),
        br#"{"aliexpress_order_id": "1", "aliexpress_order_id": "2", "line_item_ids": ["1"], "notify_customer": true, "notify_customer": false}"#.to_vec(),
    ));
    if r.webhook {
        v.push((
            "number out of range".into(),
            format!(r#"{{"id": 1e400, "updated_at": "{TS}", "line_items": []}}"#).into_bytes(),
        ));
        v.push((
            "invalid UTF-8 in a field the parser reads".into(),
            [
                format!(r#"{{"id": 7, "updated_at": "{TS}", "line_items": [], "name": ""#)
                    .as_bytes(),
                b"\xff\xfe",
                br#""}"#,
            ]
            .concat(),
        ));
    }
    v
}

#[tokio::test]
async fn the_test_signer_agrees_with_the_projects_hmac() {
    assert_eq!(
        sha256(b"abc")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    for (key, body) in [
        ("shpss_test_secret", "{\"id\":1}".to_owned()),
        (&"k".repeat(100)[..], "x".repeat(1000)),
        ("", String::new()),
    ] {
        let theirs = dropsync_aliexpress::sign::sign(key, None, &[(String::new(), body.clone())]);
        let ours: String = hmac_sha256(key.as_bytes(), body.as_bytes())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert_eq!(ours, theirs);
    }
    // And Shopify accepts it: the webhook verifier agrees.
    let body = b"\xff{not utf-8";
    let sig = shopify_hmac(b"s3cret", body);
    assert!(dropsync_shopify::webhook::verify_hmac(
        &["s3cret"],
        body,
        &sig
    ));
}

#[tokio::test]
async fn malformed_mistyped_and_non_utf8_bodies_get_a_4xx_on_every_route_and_nothing_is_written() {
    let stack = Stack::start().await;
    let mut cases = Vec::new();
    for r in routes(&stack) {
        let base = stack.baseline(&r).await;
        for (name, body) in bad_bodies_for(&r) {
            let mut c = case(
                format!("{} {}: {name}", r.method, r.template),
                stack.authorised(&r, &body),
            );
            if !r.takes_body {
                c = c.or(base);
            }
            cases.push(c);
        }
    }
    check(&stack, cases).await;
}

#[tokio::test]
async fn huge_and_deeply_nested_bodies_get_a_4xx_on_every_route_and_nothing_is_written() {
    let stack = Stack::start().await;
    let over_gateway = padded_json(10 * MB + 1);
    let under_gateway = padded_json(10 * MB - 1024);
    let over_api = padded_json(dropsync_api::MAX_BODY + 1);
    let over_webhook = padded_json(dropsync_app::webhook::MAX_BODY + 1);
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("over API Gateway's 10 MB", over_gateway),
        ("just under 10 MB", under_gateway),
        ("just over the API's limit", over_api),
        ("just over the webhook's limit", over_webhook),
        ("100k nested arrays", nested(100_000, "[", "", "]")),
        ("100k nested objects", nested(100_000, "{\"a\":", "1", "}")),
        // Under the API's 64 KB, so its parser, not its size check, meets them.
        ("30k nested arrays", nested(30_000, "[", "", "]")),
        ("12k nested objects", nested(12_000, "{\"a\":", "1", "}")),
        ("a 60 KB string of escapes", {
            let mut v = b"{\"notify_customer\": \"".to_vec();
            v.extend(std::iter::repeat_n(*b"\\u0000", 10_000).flatten());
            v.extend_from_slice(b"\"}");
            v
        }),
    ];
    let mut cases = Vec::new();
    for r in routes(&stack) {
        let base = stack.baseline(&r).await;
        for (name, body) in &bodies {
            let mut c = case(
                format!("{} {}: {name}", r.method, r.template),
                stack.authorised(&r, body),
            );
            if !r.takes_body && body.len() <= dropsync_api::MAX_BODY {
                c = c.or(base);
            }
            cases.push(c);
        }
    }
    check(&stack, cases).await;
}

#[tokio::test]
async fn missing_duplicated_and_non_utf8_headers_get_a_4xx_on_every_route() {
    let stack = Stack::start().await;
    let admin = format!("Bearer {}", stack.admin_token);
    let mut cases = Vec::new();
    for r in routes(&stack) {
        let n = |what: &str| format!("{} {}: {what}", r.method, r.template);
        if r.webhook {
            let body =
                serde_json::to_vec(&json!({"shop_domain": stack.a.domain, "shop_id": 1})).unwrap();
            let good = stack.delivery(
                &stack.a.domain,
                &stack.a.webhook_secret,
                "shop/redact",
                &body,
            );
            let sig = shopify_hmac(stack.a.webhook_secret.as_bytes(), &body);
            let b_sig = shopify_hmac(stack.b.webhook_secret.as_bytes(), &body);
            cases.extend([
                case(
                    n("no X-Shopify-Hmac-Sha256"),
                    good.clone().without("X-Shopify-Hmac-Sha256"),
                ),
                case(
                    n("no X-Shopify-Shop-Domain"),
                    good.clone().without("X-Shopify-Shop-Domain"),
                ),
                case(
                    n("no X-Shopify-Topic"),
                    good.clone().without("X-Shopify-Topic"),
                ),
                case(
                    n("two X-Shopify-Hmac-Sha256, both right"),
                    good.clone().header("X-Shopify-Hmac-Sha256", &sig),
                ),
                case(
                    n("two X-Shopify-Hmac-Sha256, wrong then right"),
                    good.clone()
                        .replace("X-Shopify-Hmac-Sha256", b"AAAA")
                        .header("X-Shopify-Hmac-Sha256", &sig),
                ),
                case(
                    n("two X-Shopify-Shop-Domain, A then B"),
                    good.clone()
                        .header("X-Shopify-Shop-Domain", stack.b.domain.as_str()),
                ),
                case(
                    n("two X-Shopify-Shop-Domain, B then A, signed with B's secret"),
                    good.clone()
                        .replace("X-Shopify-Shop-Domain", stack.b.domain.as_str().as_bytes())
                        .header("X-Shopify-Shop-Domain", stack.a.domain.as_str())
                        .replace("X-Shopify-Hmac-Sha256", b_sig.as_bytes()),
                ),
                case(
                    n("two X-Shopify-Shop-Domain, A twice"),
                    good.clone()
                        .header("X-Shopify-Shop-Domain", stack.a.domain.as_str()),
                ),
                case(
                    n("two X-Shopify-Topic"),
                    good.clone().header("X-Shopify-Topic", "orders/create"),
                )
                .or(200),
                case(
                    n("X-Shopify-Hmac-Sha256 not UTF-8"),
                    good.clone().replace("X-Shopify-Hmac-Sha256", b"\xff\xfe=="),
                ),
                case(
                    n("X-Shopify-Shop-Domain not UTF-8"),
                    good.clone()
                        .replace("X-Shopify-Shop-Domain", b"a\xff.myshopify.com"),
                ),
                case(
                    n("X-Shopify-Topic not UTF-8"),
                    good.clone().replace("X-Shopify-Topic", b"shop/redact\xff"),
                ),
                case(
                    n("signed with B's secret"),
                    good.clone()
                        .replace("X-Shopify-Hmac-Sha256", b_sig.as_bytes()),
                ),
                case(
                    n("empty signature"),
                    good.clone().replace("X-Shopify-Hmac-Sha256", b""),
                ),
                case(
                    n("a 16 KB signature"),
                    good.clone()
                        .replace("X-Shopify-Hmac-Sha256", "A".repeat(16 * 1024).as_bytes()),
                ),
                case(
                    n("the signature in hex"),
                    good.clone().replace(
                        "X-Shopify-Hmac-Sha256",
                        hmac_sha256(stack.a.webhook_secret.as_bytes(), &body)
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<String>()
                            .as_bytes(),
                    ),
                ),
                case(
                    n("shop domain with traversal"),
                    good.clone().replace(
                        "X-Shopify-Shop-Domain",
                        format!("../{}", stack.b.domain).as_bytes(),
                    ),
                ),
                case(
                    n("a shop that is not configured"),
                    good.clone()
                        .replace("X-Shopify-Shop-Domain", b"stranger.myshopify.com"),
                ),
                case(
                    n("an over-long shop domain"),
                    good.clone().replace(
                        "X-Shopify-Shop-Domain",
                        format!("{}.myshopify.com", "a".repeat(100_000)).as_bytes(),
                    ),
                ),
                case(
                    n("an over-long X-Shopify-Webhook-Id on a compliance topic"),
                    stack
                        .delivery(
                            &stack.a.domain,
                            &stack.a.webhook_secret,
                            "customers/data_request",
                            &serde_json::to_vec(&json!({"shop_domain": stack.a.domain,
                                "shop_id": 1, "customer": {"id": 1}, "orders_requested": [],
                                "data_request": {"id": 1}}))
                            .unwrap(),
                        )
                        .replace("X-Shopify-Webhook-Id", "w".repeat(4096).as_bytes()),
                ),
            ]);
            continue;
        }
        if r.template == "/health" {
            continue;
        }
        let good = stack.authorised(&r, b"");
        let body: &[u8] = if r.takes_body { b"{}" } else { b"" };
        let good = good.body(body.to_vec());
        cases.extend([
            case(n("no Authorization"), good.clone().without("Authorization")),
            case(
                n("two Authorization headers, both the admin token"),
                good.clone().header("Authorization", &admin),
            ),
            case(
                n("two Authorization headers, a wrong one first"),
                good.clone()
                    .replace("Authorization", b"Bearer wrong-token-0123456789")
                    .header("Authorization", &admin),
            ),
            case(
                n("two Authorization headers, A's token and the admin token"),
                good.clone()
                    .replace(
                        "Authorization",
                        format!("Bearer {}", stack.b.api_token).as_bytes(),
                    )
                    .header("Authorization", &admin),
            ),
            case(
                n("Authorization not UTF-8"),
                good.clone()
                    .replace("Authorization", b"Bearer \xff\xfe\xfd"),
            ),
            case(
                n("Authorization: the admin token with a non-ASCII byte"),
                good.clone()
                    .replace("Authorization", &[admin.as_bytes(), b"\xe9"].concat()),
            ),
            case(
                n("Authorization: a 16 KB token"),
                good.clone().replace(
                    "Authorization",
                    format!("Bearer {}", "t".repeat(16 * 1024)).as_bytes(),
                ),
            ),
            case(
                n("Authorization: Basic"),
                good.clone().replace(
                    "Authorization",
                    format!("Basic {}", base64(stack.admin_token.as_bytes())).as_bytes(),
                ),
            ),
            case(
                n("Authorization: Bearer and nothing"),
                good.clone().replace("Authorization", b"Bearer "),
            ),
            case(
                n("Authorization: the token without Bearer"),
                good.clone()
                    .replace("Authorization", stack.admin_token.as_bytes()),
            ),
        ]);
    }
    check(&stack, cases).await;
}

#[tokio::test]
async fn wrong_methods_get_405_on_every_route() {
    let stack = Stack::start().await;
    let mut cases = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in routes(&stack) {
        if !seen.insert(r.template) {
            continue;
        }
        let allowed: Vec<&str> = if r.webhook {
            vec!["POST"]
        } else {
            dropsync_api::ROUTES
                .iter()
                .filter(|(_, t)| *t == r.template)
                .map(|(m, _)| *m)
                .collect()
        };
        for m in [
            "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "get", "FOO",
            "PROPFIND",
        ] {
            if allowed.contains(&m) {
                continue;
            }
            let req = stack.authorised(&r, b"{}").method(m);
            cases.push(case(format!("{m} {}", r.template), req));
        }
    }
    // Every answer is a 405 that says what is allowed.
    for c in &cases {
        let res = stack.send(&c.req).await;
        assert_eq!(res.status, 405, "[{}]: {}", c.name, res.text());
        assert!(
            res.header("allow").is_some(),
            "[{}]: no Allow header",
            c.name
        );
    }
    check(&stack, cases).await;
}

#[tokio::test]
async fn path_traversal_and_over_long_ids_and_shop_names_get_a_4xx_and_never_reach_another_shop() {
    let stack = Stack::start().await;
    let (a, b) = (stack.a.domain.as_str(), stack.b.domain.as_str());
    let a_token = stack.a.api_token.clone();
    let as_a = |m: &str, p: &str| stack.api(m, p, Some(&a_token), b"");
    let as_admin = |m: &str, p: &str| stack.api(m, p, Some(&stack.admin_token), b"");
    let mut cases = vec![
        // With A's token: whatever the path resolves to, it is never B's data.
        case(
            "dot-dot into B's settings",
            as_a("GET", &format!("/shops/{a}/../{b}/settings")),
        ),
        case(
            "encoded dot-dot into B's orders",
            as_a(
                "GET",
                &format!("/shops/{a}/%2e%2e/{b}/orders?status=pending"),
            ),
        ),
        case(
            "upper-case encoded dot-dot into B's settings",
            as_a("PUT", &format!("/shops/{a}/%2E%2E/{b}/settings"))
                .body(br#"{"notify_customer": false}"#.to_vec()),
        ),
        case(
            "dot segment into B's sync",
            as_a("POST", &format!("/shops/./{b}/./sync")),
        ),
        case(
            "encoded slashes in the shop",
            as_a("GET", &format!("/shops/{a}%2f..%2f{b}/settings")),
        ),
        case(
            "encoded slashes in the order id",
            as_a("GET", &format!("/shops/{a}/orders/1%2f..%2f..%2f{b}")),
        ),
        case(
            "encoded dot-dot slash as the shop",
            as_a("GET", &format!("/shops/..%2f{b}/settings")),
        ),
        case(
            "double-encoded dot-dot",
            as_a("GET", &format!("/shops/{a}/%252e%252e/{b}/settings")),
        ),
        case(
            "dot-dot past the root",
            as_admin("GET", "/../../../etc/passwd"),
        ),
        case(
            "dot-dot in place of the shop",
            as_admin("GET", "/shops/../orders"),
        ),
        case(
            "empty first segment",
            as_admin("GET", &format!("//shops/{a}/settings")),
        ),
        case(
            "NUL in the shop",
            as_admin("GET", "/shops/%00/orders?status=pending"),
        ),
        case(
            "encoded digit in the order id",
            as_admin("GET", &format!("/shops/{a}/orders/%31")),
        ),
        case(
            "shop with a suffix",
            as_admin("GET", &format!("/shops/{a}.evil.com/settings")),
        ),
        case(
            "shop that is an IP",
            as_admin("GET", "/shops/127.0.0.1/settings"),
        ),
        case(
            "the webhook path with dot-dot",
            stack
                .delivery(
                    &stack.a.domain,
                    &stack.a.webhook_secret,
                    "orders/create",
                    b"{}",
                )
                .target(&format!("/webhooks/shopify/../../shops/{b}/settings")),
        ),
        case(
            "the webhook path with encoded slashes",
            stack
                .delivery(
                    &stack.a.domain,
                    &stack.a.webhook_secret,
                    "orders/create",
                    b"{}",
                )
                .target("/webhooks%2fshopify"),
        ),
        case(
            "unconfigured shop with the admin token",
            as_admin("GET", "/shops/stranger.myshopify.com/settings"),
        ),
    ];
    let long_name = format!("{}.myshopify.com", "a".repeat(64));
    let huge_name = format!("{}.myshopify.com", "a".repeat(60_000));
    let unicode = "%C3%A4.myshopify.com";
    for (m, t) in dropsync_api::ROUTES {
        if t.contains("{shop}") {
            for (what, shop) in [
                ("a 64-character shop name", long_name.as_str()),
                ("a 60 KB shop name", huge_name.as_str()),
                ("a non-ASCII shop name", unicode),
            ] {
                let p = t
                    .replace("{shop}", shop)
                    .replace("{order_id}", "1")
                    .replace("{variant_id}", "1");
                cases.push(case(format!("{m} {t}: {what}"), as_admin(m, &p)));
            }
        }
        if t.contains("{order_id}") {
            for (what, id) in [
                ("a 21-digit id", "9".repeat(21)),
                ("a 60 KB id", "9".repeat(60_000)),
                ("u64::MAX + 1", "18446744073709551616".into()),
                ("a negative id", "-1".into()),
                ("an id with a sign", "+1".into()),
                ("an id in hex", "0x1f".into()),
                ("an id with exponent", "1e3".into()),
                ("a GID", "gid:%2F%2Fshopify%2FOrder%2F1".into()),
            ] {
                let p = t.replace("{shop}", a).replace("{order_id}", &id);
                let mut req = as_admin(m, &p);
                if *m == "PUT" {
                    req = req
                        .body(br#"{"aliexpress_order_id": "1", "line_item_ids": ["1"]}"#.to_vec());
                }
                cases.push(case(format!("{m} {t}: {what}"), req));
            }
        }
    }
    check(&stack, cases).await;
}

#[tokio::test]
async fn query_string_abuse_gets_a_4xx() {
    let stack = Stack::start().await;
    let a = stack.a.domain.as_str();
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let tab = format!("{a}#pending");
    let queries: Vec<(&str, String)> = vec![
        ("no status", String::new()),
        ("status twice", "status=pending&status=pending".into()),
        (
            "status twice, different",
            "status=pending&status=failed".into(),
        ),
        ("status without a value", "status".into()),
        ("status in upper case", "status=PENDING".into()),
        ("status with a NUL", "status=pending%00".into()),
        ("status as an array", "status[]=pending".into()),
        ("50k ampersands", "&".repeat(50_000)),
        ("cursor twice", "status=pending&cursor=00&cursor=00".into()),
        (
            "a 100 KB cursor",
            format!("status=pending&cursor={}", "a".repeat(100_000)),
        ),
        ("a cursor of odd length", "status=pending&cursor=abc".into()),
        ("a cursor not hex", "status=pending&cursor=zz".into()),
        (
            "a cursor of another shop's tab",
            format!(
                "status=pending&cursor={}",
                hex(&json!({"gsi2pk": format!("{}#pending", stack.b.domain)}).to_string())
            ),
        ),
        (
            "a cursor with only the tab key",
            format!(
                "status=pending&cursor={}",
                hex(&json!({"gsi2pk": tab}).to_string())
            ),
        ),
        (
            "a cursor with empty keys",
            format!(
                "status=pending&cursor={}",
                hex(&json!({"gsi2pk": tab, "gsi2sk": "", "pk": "", "sk": ""}).to_string())
            ),
        ),
        (
            "a cursor pointing into another shop's partition",
            format!(
                "status=pending&cursor={}",
                hex(
                    &json!({"gsi2pk": tab, "gsi2sk": "000000000000001#00000000000000000001",
                        "pk": format!("SHOP#{}#ORDER#1", stack.b.domain), "sk": "ORDER"})
                    .to_string()
                )
            ),
        ),
        (
            "a cursor with a 1.5 KB sort key",
            format!(
                "status=pending&cursor={}",
                hex(&json!({"gsi2pk": tab, "gsi2sk": "9".repeat(1500),
                        "pk": format!("SHOP#{a}#ORDER#1"), "sk": "ORDER"})
                .to_string())
            ),
        ),
        (
            "a cursor that is JSON but not an object",
            format!("status=pending&cursor={}", hex("[1,2]")),
        ),
        (
            "a cursor with an unknown key",
            format!(
                "status=pending&cursor={}",
                hex(&json!({"gsi2pk": tab, "admin": "1"}).to_string())
            ),
        ),
        ("limit 0", "status=pending&limit=0".into()),
        ("limit negative", "status=pending&limit=-1".into()),
        (
            "limit huge",
            "status=pending&limit=99999999999999999999".into(),
        ),
        ("limit with exponent", "status=pending&limit=1e2".into()),
        ("limit empty", "status=pending&limit=".into()),
        ("limit twice", "status=pending&limit=1&limit=2".into()),
    ];
    let cases = queries
        .into_iter()
        .map(|(name, q)| {
            let sep = if q.is_empty() { "" } else { "?" };
            let c = case(
                name,
                stack.api(
                    "GET",
                    &format!("/shops/{a}/orders{sep}{q}"),
                    Some(&stack.admin_token),
                    b"",
                ),
            );
            // Past hyper's URI limit the HTTP layer answers 414 itself.
            if q.len() > 60_000 {
                c.server_layer()
            } else {
                c
            }
        })
        .collect();
    check(&stack, cases).await;
}

#[tokio::test]
async fn malformed_http_gets_a_4xx_and_the_server_keeps_serving() {
    let stack = Stack::start().await;
    let a = stack.a.domain.as_str();
    let settings = format!("/shops/{a}/settings");
    let get = stack.api("GET", &settings, Some(&stack.admin_token), b"");
    let mut many_headers = get.clone();
    for i in 0..200 {
        many_headers = many_headers.header(&format!("X-Junk-{i}"), "1");
    }
    let mut chunked_bad = get
        .clone()
        .method("PUT")
        .header("Transfer-Encoding", "chunked");
    chunked_bad.content_length = false;
    chunked_bad.body = b"zz\r\nnot a chunk\r\n0\r\n\r\n".to_vec();
    let mut smuggle = get
        .clone()
        .method("PUT")
        .header("Transfer-Encoding", "chunked");
    smuggle.body = b"0\r\n\r\n".to_vec();
    let cases = vec![
        case(
            "two different Content-Length headers",
            get.clone()
                .method("PUT")
                .header("Content-Length", "3")
                .body(b"{}".to_vec()),
        )
        .server_layer(),
        case("a malformed chunked body", chunked_bad).server_layer(),
        case("Content-Length and Transfer-Encoding together", smuggle).server_layer(),
        case(
            "a non-ASCII path",
            get.clone().target("/shops/\u{e4}/settings"),
        )
        .server_layer(),
        case(
            "a DEL in the path",
            get.clone().target(&format!("{settings}\u{7f}")),
        )
        .server_layer(),
        case("invalid UTF-8 in the path", {
            let mut r = get.clone();
            r.raw_target = Some([settings.as_bytes(), b"\xff\xfe"].concat());
            r
        })
        .server_layer(),
        case(
            "a request target that is only a query",
            get.clone().target("?status=pending"),
        )
        .server_layer(),
        case(
            "an asterisk-form target",
            get.clone().method("OPTIONS").target("*"),
        )
        .server_layer(),
        case(
            "an authority-form target",
            get.clone().method("CONNECT").target("127.0.0.1:80"),
        )
        .server_layer(),
        case(
            "a space in the Host header",
            get.clone().replace("Host", b"exa mple"),
        )
        .server_layer(),
        case(
            "a Host header with a bad port",
            get.clone().replace("Host", b"127.0.0.1:99999"),
        )
        .server_layer(),
        case(
            "a Host header that is a URL",
            get.clone().replace("Host", b"http://x/y"),
        )
        .server_layer(),
        case(
            "a Host header not UTF-8",
            get.clone().replace("Host", b"h\xffst"),
        )
        .server_layer(),
        // The server sets the scheme itself, as API Gateway does: the client's value is dropped.
        case(
            "X-Forwarded-Proto that is not a scheme",
            get.clone().header("X-Forwarded-Proto", "1 nvalid"),
        )
        .or(200),
        case(
            "X-Forwarded-Proto with a colon",
            get.clone().header("X-Forwarded-Proto", "https://evil"),
        )
        .or(200),
        case(
            "a 500 KB header",
            get.clone().header("X-Big", &"b".repeat(500 * 1024)),
        )
        .server_layer(),
        case("200 headers", many_headers).server_layer(),
        case(
            "an absolute-form target for another host",
            get.clone()
                .target(&format!("http://evil.example{settings}")),
        )
        .or(200)
        .server_layer(),
    ];
    check(&stack, cases).await;
    // A client that stalls half-way through its headers does not hold up anyone else.
    let stalled = tokio::net::TcpStream::connect(stack.addr).await.unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut s = stalled;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        let res = stack.send(&Raw::new("GET", "/health")).await;
        assert_eq!(res.status, 200);
        drop(s);
    }
}
