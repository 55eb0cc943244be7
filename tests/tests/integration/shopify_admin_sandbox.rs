//! The Admin client against the sandbox Shopify (real schema, cost bucket, fault injection).
//!
//! Run with the sandbox up: `tests/tools/services.py --sandboxes shopify -- cargo test -p dropsync-shopify`.
//! Every test makes its own shop (domain and token), so they run in parallel.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use dropsync_domain::{FinancialStatus, ShopDomain};
use dropsync_shopify::admin::{
    AdminClient, AdminConfig, AdminError, FulfillmentRequest, FulfillmentState, MutationOutcome,
    ShopifyAdmin, TrackingInfo,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

// ---- harness ----

fn sandbox() -> String {
    dropsync_tests::shopify_sandbox()
}

async fn post(path: &str, body: Value) -> Value {
    dropsync_tests::sandbox_post(&sandbox(), &format!("/_admin{path}"), body).await
}

async fn get(path: &str) -> Value {
    dropsync_tests::sandbox_get(&sandbox(), &format!("/_admin{path}")).await
}

/// A fresh shop with its own token; `extra` is merged into the shop config.
async fn shop(label: &str, extra: Value) -> (ShopDomain, String) {
    let n = fastrand::u64(..);
    let domain = format!("{label}-{n:x}.myshopify.com");
    let token = format!("shpat_{label}_{n:x}");
    let mut cfg = json!({"shop": domain, "access_token": token});
    if let (Some(cfg), Some(extra)) = (cfg.as_object_mut(), extra.as_object()) {
        cfg.extend(extra.clone());
    }
    post("/shops", cfg).await;
    (ShopDomain::parse(&domain).unwrap(), token)
}

async fn configure(shop: &ShopDomain, cfg: Value) {
    let mut cfg = cfg;
    cfg["shop"] = json!(shop.as_str());
    post("/shops", cfg).await;
}

async fn create_order(shop: &ShopDomain, order: Value, fos: Option<Value>) -> Value {
    let mut body = json!({"shop": shop.as_str(), "order": order});
    if let Some(fos) = fos {
        body["fulfillment_orders"] = fos;
    }
    post("/orders", body).await
}

async fn order_admin(shop: &ShopDomain, id: u64) -> Value {
    get(&format!("/orders/{id}?shop={}", shop.as_str())).await
}

async fn stats(shop: &ShopDomain) -> Value {
    get(&format!("/stats?shop={}", shop.as_str())).await
}

fn client() -> AdminClient {
    AdminClient::new(AdminConfig {
        base_override: Some(sandbox()),
        ..AdminConfig::default()
    })
    .unwrap()
}

/// Ids in the sandbox's admin JSON are integers or strings.
fn id(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not an id: {v}"))
}

const LINE_A: u64 = 9_007_199_254_740_993; // 2^53 + 1: an f64 would make it 2^53
const LINE_B: u64 = 9_007_199_254_740_995;

fn two_line_order(order_id: u64) -> Value {
    json!({"id": order_id, "name": "#1001", "financial_status": "paid",
           "line_items": [
               {"id": LINE_A, "sku": "LAMP-1", "title": "Lamp", "quantity": 2, "price": "19.90"},
               {"id": LINE_B, "sku": "BULB-1", "title": "Bulb", "quantity": 1, "price": "2.50"}]})
}

fn order_id() -> u64 {
    // Above 2^53, distinct per test run.
    9_007_199_254_740_993 + fastrand::u64(1..1_000_000_000) * 2
}

async fn state(c: &AdminClient, shop: &ShopDomain, token: &str, order: u64) -> FulfillmentState {
    c.fulfillment_state(shop, token, order)
        .await
        .unwrap()
        .expect("the order exists")
}

// ---- tests ----

#[tokio::test]
async fn fulfillment_state_returns_every_fulfillment_order_and_line_item_with_exact_ids() {
    let (shop, token) = shop("state", json!({})).await;
    let oid = order_id();
    let created = create_order(
        &shop,
        two_line_order(oid),
        Some(json!([
            {"status": "OPEN", "location": "Main", "line_items": [{"line_item_id": LINE_A.to_string(), "quantity": 2}]},
            {"status": "OPEN", "location": "Shenzhen", "line_items": [{"line_item_id": LINE_B.to_string(), "quantity": 1}]}])),
    )
    .await;
    let c = client();
    let s = state(&c, &shop, &token, oid).await;

    assert_eq!(s.display_fulfillment_status, "UNFULFILLED");
    assert!(s.fulfillments.is_empty());
    assert_eq!(s.fulfillment_orders.len(), 2);
    let expected = created["fulfillment_orders"].as_array().unwrap();
    for (fo, want) in s.fulfillment_orders.iter().zip(expected) {
        assert_eq!(fo.id, want["id"].as_str().unwrap());
        assert_eq!(fo.status, "OPEN");
        assert!(fo.can_create_fulfillment(), "{:?}", fo.supported_actions);
        assert_eq!(fo.line_items.len(), 1);
        assert_eq!(
            fo.line_items[0].id,
            want["line_items"][0]["id"].as_str().unwrap()
        );
    }
    let main = &s.fulfillment_orders[0];
    assert_eq!(main.location.as_deref(), Some("Main"));
    assert_eq!(main.line_items[0].line_item_id, LINE_A);
    assert_eq!(
        (
            main.line_items[0].remaining_quantity,
            main.line_items[0].total_quantity
        ),
        (2, 2)
    );
    let other = &s.fulfillment_orders[1];
    assert_eq!(other.location.as_deref(), Some("Shenzhen"));
    assert_eq!(other.line_items[0].line_item_id, LINE_B);

    // Exactly one GraphQL request for an order of this size.
    assert_eq!(stats(&shop).await["requests"], json!(1));
    // An unknown order is None, not an error.
    assert_eq!(c.fulfillment_state(&shop, &token, 42).await, Ok(None));
}

#[tokio::test]
async fn create_fulfillment_for_one_package_creates_exactly_that_fulfillment() {
    let (shop, token) = shop("create", json!({})).await;
    let oid = order_id();
    create_order(&shop, two_line_order(oid), None).await;
    let c = client();
    let before = state(&c, &shop, &token, oid).await;
    let fo = &before.fulfillment_orders[0];
    let lamp = fo
        .line_items
        .iter()
        .find(|l| l.line_item_id == LINE_A)
        .unwrap();

    let req = FulfillmentRequest {
        order_id: oid,
        line_items_by_fo: vec![(fo.id.clone(), vec![(lamp.id.clone(), 1)])],
        tracking: TrackingInfo {
            company: Some("YunExpress".into()),
            number: "YT2601234567890123".into(),
            url: Some("https://t.17track.net/en#nums=YT2601234567890123".into()),
        },
        notify_customer: true,
    };
    let outcome = c.create_fulfillment(&shop, &token, &req).await.unwrap();
    let MutationOutcome::Done {
        fulfillment_id: Some(fulfillment_id),
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert!(fulfillment_id.starts_with("gid://shopify/Fulfillment/"));

    let seen = order_admin(&shop, oid).await;
    let fulfillments = seen["fulfillments"].as_array().unwrap();
    assert_eq!(fulfillments.len(), 1, "{seen}");
    let f = &fulfillments[0];
    assert_eq!(f["id"], json!(fulfillment_id));
    assert_eq!(f["tracking"]["number"], json!("YT2601234567890123"));
    assert_eq!(f["tracking"]["company"], json!("YunExpress"));
    assert_eq!(
        f["tracking"]["url"],
        json!("https://t.17track.net/en#nums=YT2601234567890123")
    );
    assert_eq!(f["notify_customer"], json!(true));
    assert_eq!(seen["emails_sent"], json!(1));
    let items = f["line_items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(id(&items[0]["line_item_id"]), LINE_A);
    assert_eq!(items[0]["quantity"], json!(1));

    // The pusher's next read sees it: tracking number, items, and what is left.
    let after = state(&c, &shop, &token, oid).await;
    assert_eq!(after.display_fulfillment_status, "PARTIALLY_FULFILLED");
    assert_eq!(after.fulfillments.len(), 1);
    let existing = &after.fulfillments[0];
    assert_eq!(existing.id, fulfillment_id);
    assert_eq!(existing.status, "SUCCESS");
    assert_eq!(
        existing.tracking_numbers,
        vec!["YT2601234567890123".to_owned()]
    );
    assert_eq!(existing.line_items, vec![(LINE_A, 1)]);
    let fo = &after.fulfillment_orders[0];
    assert_eq!(fo.status, "IN_PROGRESS");
    let lamp = fo
        .line_items
        .iter()
        .find(|l| l.line_item_id == LINE_A)
        .unwrap();
    assert_eq!(lamp.remaining_quantity, 1);
    assert_eq!(c.stats().requests, 3);
}

#[tokio::test]
async fn a_request_over_the_remaining_quantity_comes_back_as_user_errors_and_changes_nothing() {
    let (shop, token) = shop("over", json!({})).await;
    let oid = order_id();
    create_order(&shop, two_line_order(oid), None).await;
    let c = client();
    let s = state(&c, &shop, &token, oid).await;
    let fo = &s.fulfillment_orders[0];
    let bulb = fo
        .line_items
        .iter()
        .find(|l| l.line_item_id == LINE_B)
        .unwrap();
    let req = FulfillmentRequest {
        order_id: oid,
        line_items_by_fo: vec![(fo.id.clone(), vec![(bulb.id.clone(), 5)])],
        tracking: TrackingInfo {
            company: None,
            number: "LP001".into(),
            url: None,
        },
        notify_customer: false,
    };
    match c.create_fulfillment(&shop, &token, &req).await.unwrap() {
        MutationOutcome::UserErrors(errors) => {
            assert!(!errors.is_empty());
            // Messages carry their field path.
            assert!(errors.iter().any(|e| e.contains(": ")), "{errors:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        order_admin(&shop, oid).await["fulfillments"],
        json!([]),
        "nothing created"
    );
}

#[tokio::test]
async fn an_on_hold_fulfillment_order_is_reported_with_its_status_and_no_create_action() {
    let (shop, token) = shop("hold", json!({})).await;
    let oid = order_id();
    create_order(
        &shop,
        two_line_order(oid),
        Some(
            json!([{"status": "ON_HOLD", "hold_reason": "AWAITING_PAYMENT", "location": "Main",
                     "line_items": [{"line_item_id": LINE_A.to_string(), "quantity": 2},
                                    {"line_item_id": LINE_B.to_string(), "quantity": 1}]}]),
        ),
    )
    .await;
    let c = client();
    let s = state(&c, &shop, &token, oid).await;
    assert_eq!(s.display_fulfillment_status, "ON_HOLD");
    let fo = &s.fulfillment_orders[0];
    assert_eq!(fo.status, "ON_HOLD");
    assert!(!fo.can_create_fulfillment(), "{:?}", fo.supported_actions);
    assert!(fo.supported_actions.iter().any(|a| a == "RELEASE_HOLD"));

    // Trying anyway is refused with userErrors, not an exception.
    let req = FulfillmentRequest {
        order_id: oid,
        line_items_by_fo: vec![(fo.id.clone(), vec![])],
        tracking: TrackingInfo {
            company: None,
            number: "LP002".into(),
            url: None,
        },
        notify_customer: false,
    };
    assert!(matches!(
        c.create_fulfillment(&shop, &token, &req).await,
        Ok(MutationOutcome::UserErrors(_))
    ));
}

#[tokio::test]
async fn with_a_tiny_bucket_a_burst_of_queries_ends_without_errors_and_few_throttles() {
    // The bucket holds two OrderFulfillmentState reads (66 points each) and refills slowly:
    // unpaced, a burst would bounce off THROTTLED; paced, it waits its turn.
    let (shop, token) = shop(
        "burst",
        json!({"bucket_size": 160, "restore_rate": 25, "max_query_cost": 1000}),
    )
    .await;
    let oid = order_id();
    create_order(&shop, two_line_order(oid), None).await;
    let c = client();
    let started = Instant::now();
    let burst = 10;
    let results = {
        let calls = (0..burst).map(|_| c.fulfillment_state(&shop, &token, oid));
        join_all(calls).await
    };
    for r in &results {
        assert!(matches!(r, Ok(Some(_))), "{r:?}");
    }
    let sandbox_stats = stats(&shop).await;
    eprintln!(
        "burst: {:?} in {:?}; sandbox {sandbox_stats}",
        c.stats(),
        started.elapsed()
    );
    let throttled = sandbox_stats["throttled"].as_u64().unwrap();
    assert!(throttled <= 2, "{sandbox_stats}");
    assert_eq!(c.stats().throttled, throttled);
    assert!(c.stats().requested_cost >= 66 * burst);
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn injected_throttled_answers_with_http_200_are_retried_until_the_calls_succeed() {
    let (shop, token) = shop(
        "throttled200",
        json!({"throttle_mode": "200", "seed": 7, "faults": {"throttled": 0.4}}),
    )
    .await;
    let oid = order_id();
    create_order(&shop, two_line_order(oid), None).await;
    let c = client();
    for _ in 0..8 {
        state(&c, &shop, &token, oid).await;
    }
    let s = stats(&shop).await;
    assert!(s["throttled"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(c.stats().throttled, s["throttled"].as_u64().unwrap());
    assert_eq!(c.stats().retries, c.stats().throttled);
}

#[tokio::test]
async fn injected_429_answers_with_retry_after_are_retried_until_the_calls_succeed() {
    let (shop, token) = shop(
        "throttled429",
        json!({"throttle_mode": "429", "seed": 11,
               "faults": {"throttled": 0.2, "http_429": 0.2, "retry_after": 0.2}}),
    )
    .await;
    let oid = order_id();
    create_order(&shop, two_line_order(oid), None).await;
    let c = client();
    for _ in 0..8 {
        state(&c, &shop, &token, oid).await;
    }
    let s = stats(&shop).await;
    assert!(s["http_429"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(c.stats().throttled, s["http_429"].as_u64().unwrap());
}

#[tokio::test]
async fn a_mutation_that_was_throttled_is_retried_because_nothing_ran() {
    let (shop, token) = shop("mutthrottle", json!({})).await;
    let oid = order_id();
    create_order(&shop, two_line_order(oid), None).await;
    let c = client();
    let s = state(&c, &shop, &token, oid).await;
    configure(
        &shop,
        json!({"throttle_mode": "200", "seed": 3, "faults": {"throttled": 0.5}}),
    )
    .await;
    let fo = &s.fulfillment_orders[0];
    let mut created = 0;
    for (i, line) in fo.line_items.iter().enumerate() {
        let req = FulfillmentRequest {
            order_id: oid,
            line_items_by_fo: vec![(fo.id.clone(), vec![(line.id.clone(), 1)])],
            tracking: TrackingInfo {
                company: None,
                number: format!("LP10{i}"),
                url: None,
            },
            notify_customer: false,
        };
        let out = c.create_fulfillment(&shop, &token, &req).await.unwrap();
        assert!(matches!(out, MutationOutcome::Done { .. }), "{out:?}");
        created += 1;
    }
    assert!(c.stats().throttled >= 1, "{:?}", c.stats());
    let seen = order_admin(&shop, oid).await;
    assert_eq!(seen["fulfillments"].as_array().unwrap().len(), created);
}

#[tokio::test]
async fn server_errors_on_queries_are_retried_inside_the_client() {
    let (shop, token) = shop(
        "fivexx",
        json!({"seed": 5, "faults": {"server_error": 0.3}}),
    )
    .await;
    let oid = order_id();
    create_order(&shop, two_line_order(oid), None).await;
    let c = client();
    for _ in 0..10 {
        state(&c, &shop, &token, oid).await;
    }
    let s = stats(&shop).await;
    assert!(s["server_errors"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(c.stats().retries, s["server_errors"].as_u64().unwrap());
}

#[tokio::test]
async fn a_mutation_that_times_out_is_retryable_and_not_resent_because_its_outcome_is_unknown() {
    let (shop, token) = shop("timeout", json!({})).await;
    let oid = order_id();
    create_order(&shop, two_line_order(oid), None).await;
    let c = AdminClient::new(AdminConfig {
        base_override: Some(sandbox()),
        timeout: Duration::from_millis(800),
        ..AdminConfig::default()
    })
    .unwrap();
    let s = state(&c, &shop, &token, oid).await;
    configure(
        &shop,
        json!({"faults": {"timeout_after_success": 1.0, "timeout_ms": 2500, "timeout_mode": "drop"}}),
    )
    .await;
    let fo = &s.fulfillment_orders[0];
    let req = FulfillmentRequest {
        order_id: oid,
        line_items_by_fo: vec![(fo.id.clone(), vec![])],
        tracking: TrackingInfo {
            company: None,
            number: "LP-UNKNOWN".into(),
            url: None,
        },
        notify_customer: false,
    };
    let before = c.stats().requests;
    let err = c.create_fulfillment(&shop, &token, &req).await.unwrap_err();
    assert!(matches!(err, AdminError::Retryable(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(c.stats().requests - before, 1, "a mutation is never resent");
    // It did happen: the caller's re-read finds it by its tracking number (DESIGN rule 3).
    configure(&shop, json!({"faults": {}})).await;
    let after = state(&c, &shop, &token, oid).await;
    assert_eq!(after.fulfillments.len(), 1);
    assert_eq!(
        after.fulfillments[0].tracking_numbers,
        vec!["LP-UNKNOWN".to_owned()]
    );
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized() {
    let (shop, _token) = shop("unauth", json!({})).await;
    let c = client();
    let r = c.fulfillment_state(&shop, "shpat_not_a_token", 1).await;
    assert_eq!(r, Err(AdminError::Unauthorized));
    assert_eq!(c.stats().requests, 1, "not retried");
}

#[tokio::test]
async fn update_tracking_changes_the_number() {
    let (shop, token) = shop("update", json!({})).await;
    let oid = order_id();
    create_order(&shop, two_line_order(oid), None).await;
    let c = client();
    let s = state(&c, &shop, &token, oid).await;
    let fo = &s.fulfillment_orders[0];
    let req = FulfillmentRequest {
        order_id: oid,
        line_items_by_fo: vec![(fo.id.clone(), vec![])],
        tracking: TrackingInfo {
            company: Some("Cainiao".into()),
            number: "LP00111".into(),
            url: Some("https://global.cainiao.com/detail.htm?mailNoList=LP00111".into()),
        },
        notify_customer: false,
    };
    let MutationOutcome::Done {
        fulfillment_id: Some(fid),
    } = c.create_fulfillment(&shop, &token, &req).await.unwrap()
    else {
        panic!("not created");
    };
    let new = TrackingInfo {
        company: Some("USPS".into()),
        number: "9400111899223197428490".into(),
        url: Some(
            "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400111899223197428490".into(),
        ),
    };
    let out = c
        .update_tracking(&shop, &token, &fid, &new, false)
        .await
        .unwrap();
    assert_eq!(
        out,
        MutationOutcome::Done {
            fulfillment_id: Some(fid.clone())
        }
    );
    let seen = order_admin(&shop, oid).await;
    let f = &seen["fulfillments"][0];
    assert_eq!(f["tracking"]["number"], json!("9400111899223197428490"));
    assert_eq!(f["tracking"]["company"], json!("USPS"));
    assert_eq!(seen["emails_sent"], json!(0));
    let after = state(&c, &shop, &token, oid).await;
    assert_eq!(
        after.fulfillments[0].tracking_numbers,
        vec!["9400111899223197428490".to_owned()]
    );
    // An unknown fulfillment is a userError on fulfillmentId.
    match c
        .update_tracking(&shop, &token, "gid://shopify/Fulfillment/1", &new, false)
        .await
        .unwrap()
    {
        MutationOutcome::UserErrors(e) => {
            assert!(e.iter().any(|m| m.starts_with("fulfillmentId")), "{e:?}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn fetch_order_round_trips_the_order_as_facts() {
    let (shop, token) = shop("fetch", json!({})).await;
    let oid = order_id();
    let created = create_order(
        &shop,
        json!({"id": oid, "name": "#2002", "financial_status": "partially_refunded", "test": true,
               "created_at": "2026-10-31T19:00:00-05:00",
               "line_items": [
                   {"id": LINE_A, "sku": "LAMP-1", "title": "Lamp", "quantity": 2, "price": "19.90",
                    "product_id": 1_000_000_000_000_000_111u64, "variant_id": 1_000_000_000_000_000_222u64},
                   {"id": LINE_B, "sku": "", "title": "Custom engraving", "quantity": 1, "price": "5.00",
                    "product_id": null, "variant_id": null}]}),
        None,
    )
    .await;
    let c = client();
    let (id, facts) = c
        .fetch_order(&shop, &token, oid)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(id, oid);
    assert_eq!(facts.name, "#2002");
    assert_eq!(facts.financial_status, FinancialStatus::PartiallyRefunded);
    assert!(facts.test);
    assert!(!facts.cancelled);
    assert_eq!(facts.fulfillment_status, None);
    assert_eq!(facts.created_at_ms, 1_793_491_200_000);
    let rest_updated = created["order"]["updated_at"].as_str().unwrap();
    let rest_updated =
        time::OffsetDateTime::parse(rest_updated, &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert_eq!(
        facts.updated_at_ms,
        (rest_updated.unix_timestamp_nanos() / 1_000_000) as i64
    );
    assert!(facts.fulfillment_tracking.is_empty());
    assert_eq!(facts.line_items.len(), 2);
    let lamp = &facts.line_items[0];
    assert_eq!(lamp.id, LINE_A);
    assert_eq!(lamp.quantity, 2);
    assert_eq!(lamp.sku.as_deref(), Some("LAMP-1"));
    assert_eq!(lamp.product_id, Some(1_000_000_000_000_000_111));
    assert_eq!(lamp.variant_id, Some(1_000_000_000_000_000_222));
    assert_eq!(lamp.title.as_deref(), Some("Lamp"));
    assert_eq!(lamp.fulfilled_quantity, 0);
    let custom = &facts.line_items[1];
    assert_eq!(custom.id, LINE_B);
    assert_eq!(
        (custom.sku.as_deref(), custom.product_id, custom.variant_id),
        (None, None, None)
    );

    // A fulfilment by hand shows up in the facts, then a cancellation.
    post(
        &format!("/orders/{oid}/fulfill"),
        json!({"shop": shop.as_str(), "tracking_number": "1Z999", "company": "UPS",
               "line_items": [{"line_item_id": LINE_A.to_string(), "quantity": 2}]}),
    )
    .await;
    post(
        &format!("/orders/{oid}/update"),
        json!({"shop": shop.as_str(), "cancelled_at": true, "cancel_reason": "customer"}),
    )
    .await;
    let (_, facts) = c.fetch_order(&shop, &token, oid).await.unwrap().unwrap();
    assert_eq!(facts.fulfillment_tracking, vec!["1Z999".to_owned()]);
    assert_eq!(facts.line_items[0].fulfilled_quantity, 2);
    assert!(facts.cancelled);

    assert_eq!(c.fetch_order(&shop, &token, 7).await, Ok(None));
}

#[tokio::test]
async fn large_orders_are_read_completely_through_the_follow_up_pages() {
    let (shop, token) = shop("large", json!({})).await;
    let oid = order_id();
    // 16 lines: 12 in one FO (more than a first page), then four FOs of one line each (five
    // FOs: more than a first page), and 7 fulfillments by hand (more than the short list).
    let first_line = 1_000_000_000_000_100_000u64;
    let lines: Vec<Value> = (0..16)
        .map(|i| json!({"id": first_line + i, "title": format!("Item {i}"), "quantity": 1, "price": "1.00"}))
        .collect();
    let mut fos = vec![json!({"status": "OPEN", "location": "Main",
        "line_items": (0..12).map(|i| json!({"line_item_id": (first_line + i).to_string(), "quantity": 1})).collect::<Vec<_>>()})];
    for i in 12..16 {
        fos.push(json!({"status": "OPEN", "location": format!("L{i}"),
            "line_items": [{"line_item_id": (first_line + i).to_string(), "quantity": 1}]}));
    }
    create_order(
        &shop,
        json!({"id": oid, "line_items": lines}),
        Some(json!(fos)),
    )
    .await;
    for i in 0..7 {
        post(
            &format!("/orders/{oid}/fulfill"),
            json!({"shop": shop.as_str(), "tracking_number": format!("T{i}"), "company": "UPS",
                   "line_items": [{"line_item_id": (first_line + i).to_string(), "quantity": 1}]}),
        )
        .await;
    }
    let c = client();
    let s = state(&c, &shop, &token, oid).await;
    assert_eq!(s.fulfillment_orders.len(), 5);
    assert_eq!(s.fulfillment_orders[0].line_items.len(), 12);
    let all_lines: Vec<u64> = s
        .fulfillment_orders
        .iter()
        .flat_map(|fo| fo.line_items.iter().map(|l| l.line_item_id))
        .collect();
    assert_eq!(
        all_lines,
        (0..16).map(|i| first_line + i).collect::<Vec<_>>()
    );
    assert_eq!(s.fulfillments.len(), 7);
    for (i, f) in s.fulfillments.iter().enumerate() {
        assert_eq!(f.tracking_numbers, vec![format!("T{i}")]);
        assert_eq!(f.line_items, vec![(first_line + i as u64, 1)]);
    }
    let docs = stats(&shop).await["documents"].clone();
    // Pages of 2 fulfillment orders (5: two more pages), a first page of 5 line items (12: one
    // follow-up page of the rest) and 3 fulfillments (7: the id list, then the four not yet
    // seen in detail).
    assert_eq!(docs["OrderFulfillmentState"], json!(1));
    assert_eq!(docs["FulfillmentOrdersPage"], json!(2));
    assert_eq!(docs["FulfillmentOrderLineItemsPage"], json!(1));
    assert_eq!(docs["OrderFulfillmentIds"], json!(1));
    assert_eq!(
        docs["FulfillmentDetail"],
        json!(4),
        "only the four not yet seen"
    );
}

#[tokio::test]
async fn fetch_order_reads_every_line_item_and_fulfillment_of_a_large_order() {
    let (shop, token) = shop("largefetch", json!({})).await;
    let oid = order_id();
    let first_line = 1_000_000_000_000_200_000u64;
    let lines: Vec<Value> = (0..60)
        .map(|i| json!({"id": first_line + i, "title": format!("Item {i}"), "quantity": 1, "price": "1.00"}))
        .collect();
    create_order(&shop, json!({"id": oid, "line_items": lines}), None).await;
    for i in 0..12 {
        post(
            &format!("/orders/{oid}/fulfill"),
            json!({"shop": shop.as_str(), "tracking_number": format!("N{i}"), "company": "UPS",
                   "line_items": [{"line_item_id": (first_line + i).to_string(), "quantity": 1}]}),
        )
        .await;
    }
    let c = client();
    let (_, facts) = c.fetch_order(&shop, &token, oid).await.unwrap().unwrap();
    assert_eq!(facts.line_items.len(), 60);
    assert_eq!(
        facts.fulfillment_tracking,
        (0..12).map(|i| format!("N{i}")).collect::<Vec<_>>()
    );
    assert_eq!(facts.fulfillment_status.as_deref(), Some("partial"));
    let docs = stats(&shop).await["documents"].clone();
    assert_eq!(docs["OrderLineItemsPage"], json!(1));
    assert_eq!(docs["OrderFulfillmentIds"], json!(1));
}

/// `futures::join_all` without the dependency: tasks on the current runtime, results in order.
async fn join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    // The futures borrow the client, so they cannot be spawned; poll them together instead.
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<T>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, fut) in out.iter_mut().zip(pinned.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.unwrap()).collect()
}
