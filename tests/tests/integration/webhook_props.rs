//! Property: whatever arrives at `POST /webhooks/shopify` — arbitrary bodies (invalid UTF-8,
//! truncated or mutated orders, oversized), arbitrary header sets (garbage, missing or
//! repeated HMACs, topics and shops, any casing, extra headers), other methods, base64 bodies —
//! the handler never panics, never answers a 5xx, and the table changes only when the
//! signature holds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::webhook_support;

use dropsync_app::webhook::WebhookService;
use dropsync_shopify::admin::AdminClient;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Value, json};
use std::sync::LazyLock;
use webhook_support::*;

const OTHER: &str = "other.myshopify.com";
const OTHER_SECRET: &str = "shpss_other_secret";

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
});

/// One table for the whole run: each case compares the whole table before and after itself.
static SVC: LazyLock<WebhookService<AdminClient>> = LazyLock::new(|| {
    let store = RT.block_on(dropsync_tests::fresh_store());
    service_with(
        store,
        credentials(&[(SHOP, &[SECRET]), (OTHER, &[OTHER_SECRET])]),
    )
});

#[derive(Debug, Clone)]
enum Hmac {
    /// Correct for the body under the named shop's secret (when the body is UTF-8).
    Right,
    /// Correct, under the other shop's secret.
    OtherShops,
    /// Correct for other bytes.
    OtherBody,
    Garbage(String),
    Missing,
}

#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    topic: Option<String>,
    shop: Option<String>,
    hmac: Hmac,
    body: Vec<u8>,
    /// Header names (from the set sent) to send a second time, with these values.
    repeats: Vec<(usize, String)>,
    extra: Vec<(String, String)>,
    upper_case_names: bool,
    base64: bool,
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,24}".prop_map(Value::String),
        Just(json!("2026-11-02T10:00:00-05:00")),
        Just(json!("gid://shopify/Order/9120004388517265409")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const ORDER_FIELDS: &[&str] = &[
    "id",
    "admin_graphql_api_id",
    "name",
    "created_at",
    "updated_at",
    "financial_status",
    "cancelled_at",
    "test",
    "fulfillment_status",
    "line_items",
    "fulfillments",
];
const LINE_FIELDS: &[&str] = &[
    "id",
    "quantity",
    "current_quantity",
    "sku",
    "product_id",
    "variant_id",
    "title",
];

/// A real order payload with up to three fields (of the order or of its first line) replaced
/// by arbitrary JSON or removed.
fn mutated_order() -> impl Strategy<Value = Vec<u8>> {
    let edit = (
        any::<bool>(),
        0..ORDER_FIELDS.len(),
        0..LINE_FIELDS.len(),
        prop::option::of(json_value()),
    );
    let edits = prop_oneof![2 => Just(Vec::new()), 3 => prop::collection::vec(edit, 1..3)];
    (any::<u32>(), edits).prop_map(|(updated, edits)| {
        let mut o = order(
            ORDER + u64::from(updated % 4),
            updated % 3000,
            ["paid", "pending", "refunded"][(updated % 3) as usize],
            &[(LINE_A, 2), (LINE_B, 1)],
        );
        for (in_line, f, lf, value) in edits {
            let (target, key) = if in_line {
                (
                    o.get_mut("line_items").and_then(|l| l.get_mut(0)),
                    LINE_FIELDS[lf],
                )
            } else {
                (Some(&mut o), ORDER_FIELDS[f])
            };
            match (value, target.and_then(Value::as_object_mut)) {
                (Some(v), Some(obj)) => {
                    obj.insert(key.to_owned(), v);
                }
                (None, Some(obj)) => {
                    obj.remove(key);
                }
                _ => {}
            }
        }
        shopify_bytes(&o)
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => mutated_order(),
        2 => prop::collection::vec(any::<u8>(), 0..256),
        1 => "\\PC{0,200}".prop_map(String::into_bytes),
        1 => json_value().prop_map(|v| shopify_bytes(&v)),
        1 => (mutated_order(), 1..200usize).prop_map(|(mut b, cut)| { b.truncate(b.len().saturating_sub(cut)); b }),
        // Invalid UTF-8 inside an otherwise valid order.
        1 => mutated_order().prop_map(|mut b| { b.insert(b.len() / 2, 0xff); b }),
        1 => Just(shopify_bytes(&json!({"shop_id": 1, "shop_domain": SHOP, "customer": {"id": 2}, "orders_to_redact": [ORDER]}))),
        1 => Just(shopify_bytes(&json!({"shop_id": 1, "shop_domain": OTHER}))),
    ]
}

fn topic() -> impl Strategy<Value = Option<String>> {
    // Every handled topic, one dropsync does not handle, and one in the wrong case.
    let mut topics = dropsync_tests::HANDLED_TOPICS.to_vec();
    topics.extend(["fulfillments/create", "ORDERS/CREATE"]);
    let known = prop::sample::select(topics);
    prop_oneof![
        6 => known.prop_map(|t| Some(t.to_owned())),
        1 => "[ -~]{0,30}".prop_map(Some),
        1 => Just(None),
    ]
}

fn shop() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        5 => Just(Some(SHOP.to_owned())),
        2 => Just(Some(OTHER.to_owned())),
        1 => Just(Some("EXAMPLE.myshopify.com".to_owned())),
        1 => Just(Some("stranger.myshopify.com".to_owned())),
        1 => "[ -~]{0,40}".prop_map(Some),
        1 => Just(None),
    ]
}

fn hmac() -> impl Strategy<Value = Hmac> {
    prop_oneof![
        12 => Just(Hmac::Right),
        1 => Just(Hmac::OtherShops),
        1 => Just(Hmac::OtherBody),
        1 => "[A-Za-z0-9+/=]{0,60}".prop_map(Hmac::Garbage),
        1 => "[^\\x00-\\x08\\x0a-\\x1f\\x7f]{0,60}".prop_map(Hmac::Garbage),
        1 => Just(Hmac::Missing),
    ]
}

/// Header values API Gateway can carry (no control characters but tab).
fn header_value() -> impl Strategy<Value = String> {
    "[^\\x00-\\x08\\x0a-\\x1f\\x7f]{0,40}"
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![12 => Just("POST"), 1 => Just("GET"), 1 => Just("PUT")],
        topic(),
        shop(),
        hmac(),
        body(),
        prop::collection::vec((0..8usize, header_value()), 0..2),
        prop::collection::vec(("[A-Za-z0-9-]{1,20}", header_value()), 0..3),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(method, topic, shop, hmac, body, repeats, extra, upper_case_names, base64)| Case {
                method,
                topic,
                shop,
                hmac,
                body,
                repeats,
                extra,
                upper_case_names,
                base64,
            },
        )
}

/// The headers of a case, and whether its signature holds (independently of the code under
/// test: a right HMAC, sent once, for a configured shop named exactly once).
fn headers(c: &Case) -> (Vec<(String, String)>, bool) {
    let secret_of = |shop: &str| match shop.to_ascii_lowercase().as_str() {
        SHOP => Some(SECRET),
        OTHER => Some(OTHER_SECRET),
        _ => None,
    };
    let utf8 = std::str::from_utf8(&c.body).is_ok();
    let named = c.shop.as_deref().and_then(secret_of);
    let mut signed = false;
    let hmac = match &c.hmac {
        Hmac::Right => match (named, utf8) {
            (Some(secret), true) => {
                signed = true;
                Some(shopify_hmac(secret, &c.body))
            }
            _ => Some(shopify_hmac(SECRET, b"{}")),
        },
        Hmac::OtherShops => {
            let other = if named == Some(SECRET) {
                OTHER_SECRET
            } else {
                SECRET
            };
            if utf8 {
                Some(shopify_hmac(other, &c.body))
            } else {
                Some(shopify_hmac(other, b"x"))
            }
        }
        Hmac::OtherBody => Some(shopify_hmac(named.unwrap_or(SECRET), b"{\"id\":1}")),
        Hmac::Garbage(g) => Some(g.clone()),
        Hmac::Missing => None,
    };
    let mut h: Vec<(String, String)> = Vec::new();
    let mut push = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            let name = if c.upper_case_names {
                name.to_ascii_uppercase()
            } else {
                name.to_owned()
            };
            h.push((name, v));
        }
    };
    push("X-Shopify-Topic", c.topic.clone());
    push("X-Shopify-Shop-Domain", c.shop.clone());
    push("X-Shopify-Hmac-Sha256", hmac);
    push(
        "X-Shopify-Webhook-Id",
        Some(format!("wid-{}", fastrand::u64(..))),
    );
    push("X-Shopify-API-Version", Some("2026-10".into()));
    push("Content-Type", Some("application/json".into()));
    for (i, value) in &c.repeats {
        if let Some((name, _)) = h.get(i % h.len().max(1)).cloned() {
            // A repeated header reaches the function joined with a comma: it no longer
            // holds one HMAC or one shop.
            if name.eq_ignore_ascii_case("X-Shopify-Hmac-Sha256")
                || name.eq_ignore_ascii_case("X-Shopify-Shop-Domain")
            {
                signed = false;
            }
            h.push((name, value.clone()));
        }
    }
    for (name, value) in &c.extra {
        // API Gateway sets Host and X-Forwarded-* itself (lambda_http builds the URI from them).
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("x-shopify-") || lower.starts_with("x-forwarded-") || lower == "host" {
            continue;
        }
        h.push((name.clone(), value.clone()));
    }
    (h, signed && c.method == "POST")
}

async fn run(c: &Case) -> Result<(), TestCaseError> {
    let svc = &*SVC;
    let (h, signed) = headers(c);
    let before = snapshot(&svc.store).await;
    let req = if c.base64 && c.method == "POST" {
        request_base64(&h, &c.body)
    } else {
        request(c.method, &h, &c.body)
    };
    let res = dropsync_shopify_webhook::handle_request(svc, req).await;
    let status = res.status().as_u16();
    let after = snapshot(&svc.store).await;
    prop_assert!(status < 500, "{status} for {c:?}");
    prop_assert!(
        [200, 400, 401, 405, 413].contains(&status),
        "{status} for {c:?}"
    );
    if !signed {
        prop_assert!(status != 200, "unsigned delivery accepted: {c:?}");
        prop_assert!(before == after, "unsigned delivery wrote: {:?}", c);
    }
    if status != 200 {
        prop_assert!(
            before == after,
            "a refused delivery ({}) wrote: {:?}",
            status,
            c
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_delivery_panics_or_gets_a_5xx_and_only_signed_ones_write(c in case()) {
        LazyLock::force(&SVC); // built outside the runtime it blocks on
        RT.block_on(run(&c))?;
    }
}

#[test]
fn a_body_over_5_mb_with_any_headers_is_413_and_writes_nothing() {
    // Its own table: the property above writes to the shared one meanwhile.
    let svc = &service_with(
        RT.block_on(dropsync_tests::fresh_store()),
        credentials(&[(SHOP, &[SECRET]), (OTHER, &[OTHER_SECRET])]),
    );
    let big = vec![b'{'; 5 * 1024 * 1024 + 1];
    for hmac in [Hmac::Right, Hmac::Missing, Hmac::Garbage("x".into())] {
        let c = Case {
            method: "POST",
            topic: Some("orders/create".into()),
            shop: Some(SHOP.into()),
            hmac,
            body: big.clone(),
            repeats: vec![],
            extra: vec![],
            upper_case_names: false,
            base64: false,
        };
        let (h, _) = headers(&c);
        let (status, _) = RT.block_on(send(svc, request("POST", &h, &big)));
        assert_eq!(status, 413);
        assert_eq!(RT.block_on(item_count(&svc.store)), 0);
    }
}
