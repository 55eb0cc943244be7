//! The tracking pusher end to end: SQS batches through `handle_batch`, the moto emulator's
//! DynamoDB, and the sandbox Shopify (real schema, cost bucket, faults).
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests --test integration pusher_flow::`.
//! Every test has its own table, its own sandbox shops and tokens, and its own credentials. Orders
//! are seeded the way the system does it: the Shopify facts (with the sandbox order's real ids)
//! through `Store::save_shopify_facts`, the supplier order through `link_supplier_order`, and what the
//! AliExpress poller saw (a tracking line) through `apply_ae_observation`, so each package is
//! genuinely pending when its message arrives.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodb::types::AttributeValue;
use dropsync_app::Credentials;
use dropsync_app::push::{BatchLimits, PushService};
use dropsync_app::queue::PushMessage;
use dropsync_domain::ops::{
    AeObservation, AeParcelItem, AeTrackingLine, apply_ae_observation, link_supplier_order,
};
use dropsync_domain::{
    Attention, ItemLink, Order, OrderStatus, Package, PushState, ShopDomain, ShopSettings,
};
use dropsync_shopify::admin::{
    AdminClient, AdminConfig, FulfillmentRequest, MutationOutcome, ShopifyAdmin, TrackingInfo,
};
use dropsync_store::Store;
use dropsync_tests::{facts, fresh_store};
use dropsync_tracking_pusher::handle_batch;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

// ---- the sandbox ----

fn sandbox() -> String {
    dropsync_tests::shopify_sandbox()
}

async fn post(path: &str, body: Value) -> Value {
    dropsync_tests::sandbox_post(&sandbox(), &format!("/_admin{path}"), body).await
}

async fn get(path: &str) -> Value {
    dropsync_tests::sandbox_get(&sandbox(), &format!("/_admin{path}")).await
}

/// Ids in the sandbox's admin JSON are integers or strings.
fn id_of(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not an id: {v}"))
}

/// A fresh id above 2^53 (an f64 would lose it).
fn big_id() -> u64 {
    9_007_199_254_740_993 + fastrand::u64(1..1_000_000_000_000) * 2
}

fn now_ms() -> i64 {
    dropsync_app::now_ms()
}

// ---- the world of one test ----

#[derive(Debug, Clone)]
struct Shop {
    domain: ShopDomain,
    token: String,
}

impl Shop {
    /// Changes the sandbox shop's configuration (faults are replaced as a whole).
    async fn configure(&self, cfg: Value) {
        let mut cfg = cfg;
        cfg["shop"] = json!(self.domain.as_str());
        post("/shops", cfg).await;
    }

    async fn stats(&self) -> Value {
        get(&format!("/stats?shop={}", self.domain.as_str())).await
    }

    /// The sandbox's view of an order: fulfillments with tracking, FOs, emails sent.
    async fn order(&self, order_id: u64) -> Value {
        get(&format!("/orders/{order_id}?shop={}", self.domain.as_str())).await
    }

    async fn fulfillments(&self, order_id: u64) -> Vec<Value> {
        self.order(order_id).await["fulfillments"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

struct World {
    store: Store,
    shops: Vec<Shop>,
    admin_config: AdminConfig,
}

/// Builds an order's fulfillment orders (sandbox admin JSON) from its line item ids.
type FoSpec = dyn Fn(&[u64]) -> Value;

/// A parcel AliExpress shows: `(mail_no, carrier, items as (line index, quantity))`.
type Parcel<'a> = (&'a str, Option<&'a str>, &'a [(usize, u32)]);

/// An order seeded in the sandbox and the table.
#[derive(Debug, Clone)]
struct Seeded {
    order_id: u64,
    ae: u64,
    lines: Vec<u64>,
    /// The sandbox's answer to creating it (FOs with their ids).
    created: Value,
}

impl World {
    async fn new() -> Self {
        Self {
            store: fresh_store().await,
            shops: Vec::new(),
            admin_config: AdminConfig {
                base_override: Some(sandbox()),
                ..AdminConfig::default()
            },
        }
    }

    /// A sandbox shop of its own (domain and token), a 1,000-point bucket restoring 100/s unless
    /// `extra` says otherwise.
    async fn shop(&mut self, label: &str, extra: Value) -> Shop {
        let n = fastrand::u64(..);
        let domain = format!("push-{label}-{n:x}.myshopify.com");
        let token = format!("shpat_{label}_{n:x}");
        let mut cfg = json!({"shop": domain, "access_token": token, "bucket_size": 1000,
                             "restore_rate": 100, "seed": 1});
        if let (Some(cfg), Some(extra)) = (cfg.as_object_mut(), extra.as_object()) {
            cfg.extend(extra.clone());
        }
        post("/shops", cfg).await;
        let shop = Shop {
            domain: ShopDomain::parse(&domain).unwrap(),
            token,
        };
        self.shops.push(shop.clone());
        shop
    }

    /// The credentials document for every shop made so far.
    fn credentials(&self) -> Credentials {
        let shops: serde_json::Map<String, Value> = self
            .shops
            .iter()
            .map(|s| {
                (
                    s.domain.to_string(),
                    json!({"access_token": s.token, "webhook_secrets": ["shpss_test"]}),
                )
            })
            .collect();
        let doc = json!({"admin_token": "admin-token-for-the-pusher-tests", "shops": shops});
        Credentials::parse(doc.to_string().as_bytes()).unwrap()
    }

    fn admin(&self) -> AdminClient {
        AdminClient::new(self.admin_config.clone()).unwrap()
    }

    /// The pusher, as the Lambda builds it at cold start.
    fn service(&self) -> Arc<PushService<AdminClient>> {
        Arc::new(PushService {
            store: self.store.clone(),
            admin: Arc::new(self.admin()),
            credentials: Arc::new(self.credentials()),
        })
    }

    async fn settings(&self, shop: &Shop, notify_customer: bool) {
        self.store
            .put_settings(
                &shop.domain,
                &ShopSettings {
                    notify_customer,
                    ..ShopSettings::default()
                },
            )
            .await
            .unwrap();
    }

    /// A paid order with these line quantities, in the sandbox (`fos`: its fulfillment orders,
    /// default one OPEN FO at "Main") and in the table, with one AliExpress order linked to all
    /// its lines (with product/SKU links `P{i}`/`S{i}`).
    async fn order(&self, shop: &Shop, quantities: &[u32], fos: Option<&FoSpec>) -> Seeded {
        let order_id = big_id();
        let lines: Vec<u64> = quantities.iter().map(|_| big_id()).collect();
        let line_items: Vec<Value> = lines
            .iter()
            .zip(quantities)
            .enumerate()
            .map(|(i, (id, q))| {
                json!({"id": id, "sku": format!("SKU-{id}"), "title": format!("Item {i}"),
                       "quantity": q, "price": "9.90"})
            })
            .collect();
        let mut body = json!({"shop": shop.domain.as_str(),
            "order": {"id": order_id, "name": "#1001", "financial_status": "paid",
                      "line_items": line_items}});
        if let Some(fos) = fos {
            body["fulfillment_orders"] = fos(&lines);
        }
        let created = post("/orders", body).await;
        assert_eq!(id_of(&created["order"]["id"]), order_id);

        let pairs: Vec<(u64, u32)> = lines
            .iter()
            .copied()
            .zip(quantities.iter().copied())
            .collect();
        self.store
            .save_shopify_facts(
                &shop.domain,
                order_id,
                facts("paid", now_ms(), &pairs),
                "orders/create",
                now_ms(),
            )
            .await
            .unwrap();
        let ae = big_id() / 1000;
        let links: Vec<ItemLink> = lines
            .iter()
            .enumerate()
            .map(|(i, id)| ItemLink {
                line_item_id: *id,
                product_id: Some(format!("P{i}")),
                sku_id: Some(format!("S{i}")),
            })
            .collect();
        let linked = self
            .store
            .update_order(&shop.domain, order_id, |o| {
                link_supplier_order(o, ae, &lines, links.clone(), now_ms()).unwrap()
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(linked.order.status, OrderStatus::AwaitingPayment);
        Seeded {
            order_id,
            ae,
            lines,
            created,
        }
    }

    /// What the poller records when AliExpress shows these parcels: `(mail_no, carrier, items)`
    /// with items as `(line index, quantity)`; an empty item list is the whole supplier order.
    async fn ship(&self, shop: &Shop, seeded: &Seeded, parcels: &[Parcel<'_>]) {
        let obs = AeObservation {
            order_status: "WAIT_BUYER_ACCEPT_GOODS".into(),
            logistics_status: Some("SELLER_SEND_GOODS".into()),
            children: vec![],
            tracking: Some(
                parcels
                    .iter()
                    .map(|(mail_no, carrier, items)| AeTrackingLine {
                        mail_no: (*mail_no).to_owned(),
                        carrier_name: carrier.map(str::to_owned),
                        items: items
                            .iter()
                            .map(|(i, q)| AeParcelItem {
                                product_id: Some(format!("P{i}")),
                                sku_id: Some(format!("S{i}")),
                                quantity: *q,
                            })
                            .collect(),
                    })
                    .collect(),
            ),
        };
        self.store
            .update_order(&shop.domain, seeded.order_id, |o| {
                apply_ae_observation(o, seeded.ae, &obs, now_ms()).is_some()
            })
            .await
            .unwrap();
    }

    async fn stored(&self, shop: &Shop, order_id: u64) -> Order {
        self.store
            .get_order(&shop.domain, order_id)
            .await
            .unwrap()
            .expect("the order is in the table")
            .order
    }

    async fn package(&self, shop: &Shop, seeded: &Seeded, tn: &str) -> Package {
        self.stored(shop, seeded.order_id)
            .await
            .supplier_order(seeded.ae)
            .and_then(|so| so.package(tn))
            .cloned()
            .unwrap_or_else(|| panic!("package {tn} is recorded"))
    }
}

fn body(shop: &Shop, seeded: &Seeded, tn: &str) -> String {
    PushMessage::new(&shop.domain, seeded.order_id, seeded.ae, tn).to_body()
}

/// An SQS batch as Lambda hands it over, from its JSON.
fn event(messages: &[(String, String)]) -> SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1767225600000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:TrackingQueue",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// The tracking queue's redrive policy: dead-lettered after 8 receives.
fn last_at_8() -> BatchLimits {
    BatchLimits {
        max_receives: Some(8),
        deadline: None,
    }
}

fn one(id: &str, body: String) -> SqsEvent {
    event(&[(id.to_owned(), body)])
}

fn failures(resp: &SqsBatchResponse) -> Vec<String> {
    let mut ids: Vec<String> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    ids.sort();
    ids
}

/// `(line item id, quantity)` of a sandbox fulfillment, sorted.
fn lines_of(f: &Value) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = f["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (id_of(&l["line_item_id"]), l["quantity"].as_u64().unwrap()))
        .collect();
    v.sort_unstable();
    v
}

fn pushed_id(p: &Package) -> Option<String> {
    match &p.push {
        PushState::Pushed { fulfillment_id } => fulfillment_id.clone(),
        other => panic!("expected pushed, got {other:?}"),
    }
}

// ---- one package ----

#[tokio::test]
async fn one_package_becomes_one_fulfillment_with_its_lines_tracking_and_the_customer_emailed() {
    let mut w = World::new().await;
    let shop = w.shop("one", json!({})).await;
    w.settings(&shop, true).await;
    let order = w.order(&shop, &[2, 1], None).await;
    let tn = "YT2601234567890123";
    w.ship(&shop, &order, &[(tn, Some("YunExpress"), &[])])
        .await;
    assert_eq!(
        w.stored(&shop, order.order_id).await.status,
        OrderStatus::AwaitingFulfillment
    );

    let resp = handle_batch(w.service(), one("m-1", body(&shop, &order, tn))).await;
    assert!(failures(&resp).is_empty(), "{resp:?}");

    let sb = shop.order(order.order_id).await;
    let fs = sb["fulfillments"].as_array().unwrap();
    assert_eq!(fs.len(), 1, "{sb}");
    let f = &fs[0];
    assert_eq!(f["created_by"], "api");
    assert_eq!(f["status"], "SUCCESS");
    let mut expected = vec![(order.lines[0], 2), (order.lines[1], 1)];
    expected.sort_unstable();
    assert_eq!(lines_of(f), expected);
    assert_eq!(f["tracking"]["number"], tn);
    assert_eq!(f["tracking"]["company"], "YunExpress");
    assert_eq!(
        f["tracking"]["url"],
        format!("https://global.cainiao.com/detail.htm?mailNoList={tn}")
    );
    assert_eq!(f["notify_customer"], true);
    assert_eq!(sb["emails_sent"], 1);
    assert_eq!(sb["display_fulfillment_status"], "FULFILLED");

    let p = w.package(&shop, &order, tn).await;
    assert_eq!(pushed_id(&p).as_deref(), f["id"].as_str());
    let stored = w.stored(&shop, order.order_id).await;
    assert_eq!(stored.status, OrderStatus::Fulfilled);
    assert!(stored.attention().is_empty(), "{:?}", stored.attention());

    // One read and one mutation: two GraphQL calls for the whole push.
    let stats = shop.stats().await;
    assert_eq!(stats["requests"], 2, "{stats}");
    assert_eq!(stats["fulfillments_created"], 1);
}

#[tokio::test]
async fn with_notify_customer_off_no_email_goes_out_and_an_unknown_carrier_is_free_text_with_a_url()
{
    let mut w = World::new().await;
    let shop = w.shop("quiet", json!({})).await;
    w.settings(&shop, false).await;
    let order = w.order(&shop, &[1], None).await;
    let tn = "LP00123456789012";
    w.ship(
        &shop,
        &order,
        &[(tn, Some("Cainiao Super Economy Global"), &[])],
    )
    .await;

    let resp = handle_batch(w.service(), one("m-1", body(&shop, &order, tn))).await;
    assert!(failures(&resp).is_empty(), "{resp:?}");

    let sb = shop.order(order.order_id).await;
    let fs = sb["fulfillments"].as_array().unwrap();
    assert_eq!(fs.len(), 1);
    assert_eq!(fs[0]["notify_customer"], false);
    assert_eq!(sb["emails_sent"], 0);
    assert_eq!(fs[0]["tracking"]["company"], "Cainiao Super Economy Global");
    assert_eq!(fs[0]["tracking"]["number"], tn);
    assert_eq!(
        fs[0]["tracking"]["url"],
        format!("https://global.cainiao.com/detail.htm?mailNoList={tn}")
    );
    assert_eq!(
        w.stored(&shop, order.order_id).await.status,
        OrderStatus::Fulfilled
    );
}

#[tokio::test]
async fn the_shops_carrier_mapping_and_tracking_url_template_are_used() {
    let mut w = World::new().await;
    let shop = w.shop("mapped", json!({})).await;
    let mut settings = ShopSettings {
        notify_customer: false,
        tracking_url_template: "https://t.17track.net/en#nums={number}".into(),
        ..ShopSettings::default()
    };
    settings
        .carrier_mapping
        .insert("AliExpress Selection Standard".into(), "China Post".into());
    w.store.put_settings(&shop.domain, &settings).await.unwrap();
    let order = w.order(&shop, &[1], None).await;
    let tn = "AE01234567890CN";
    w.ship(
        &shop,
        &order,
        &[(tn, Some("AliExpress Selection Standard"), &[])],
    )
    .await;

    let resp = handle_batch(w.service(), one("m-1", body(&shop, &order, tn))).await;
    assert!(failures(&resp).is_empty(), "{resp:?}");
    let fs = shop.fulfillments(order.order_id).await;
    assert_eq!(fs.len(), 1);
    assert_eq!(fs[0]["tracking"]["company"], "China Post");
    assert_eq!(
        fs[0]["tracking"]["url"],
        format!("https://t.17track.net/en#nums={tn}")
    );
}

// ---- several packages ----

#[tokio::test]
async fn a_two_package_order_gets_two_fulfillments_and_ends_fulfilled() {
    let mut w = World::new().await;
    let shop = w.shop("two", json!({})).await;
    w.settings(&shop, true).await;
    let order = w.order(&shop, &[2, 1], None).await;
    // AliExpress split the supplier order: the lamps in one parcel, the bulb in another.
    let (first, second) = ("YT2600000000000001", "YT2600000000000002");
    w.ship(&shop, &order, &[(first, Some("YunExpress"), &[(0, 2)])])
        .await;
    let svc = w.service();

    let resp = handle_batch(svc.clone(), one("m-1", body(&shop, &order, first))).await;
    assert!(failures(&resp).is_empty(), "{resp:?}");
    assert_eq!(shop.fulfillments(order.order_id).await.len(), 1);
    assert_eq!(
        w.stored(&shop, order.order_id).await.status,
        OrderStatus::AwaitingFulfillment
    );

    w.ship(
        &shop,
        &order,
        &[
            (first, Some("YunExpress"), &[(0, 2)]),
            (second, Some("4PX"), &[(1, 1)]),
        ],
    )
    .await;
    // The first package's message again, with the second's, in one batch.
    let resp = handle_batch(
        svc,
        event(&[
            ("m-1".into(), body(&shop, &order, first)),
            ("m-2".into(), body(&shop, &order, second)),
        ]),
    )
    .await;
    assert!(failures(&resp).is_empty(), "{resp:?}");

    let fs = shop.fulfillments(order.order_id).await;
    assert_eq!(fs.len(), 2);
    let by_number = |n: &str| {
        fs.iter()
            .find(|f| f["tracking"]["number"] == n)
            .unwrap_or_else(|| panic!("a fulfillment for {n}"))
    };
    assert_eq!(lines_of(by_number(first)), vec![(order.lines[0], 2)]);
    assert_eq!(lines_of(by_number(second)), vec![(order.lines[1], 1)]);
    assert_eq!(by_number(second)["tracking"]["company"], "4PX");
    let stored = w.stored(&shop, order.order_id).await;
    assert_eq!(stored.status, OrderStatus::Fulfilled);
    assert!(stored.due_pushes().is_empty());
    assert!(dropsync_domain::history_is_valid(&stored.history));
}

// ---- exactly once ----

#[tokio::test]
async fn the_same_message_delivered_three_times_creates_one_fulfillment() {
    let mut w = World::new().await;
    let shop = w.shop("thrice", json!({})).await;
    let order = w.order(&shop, &[1], None).await;
    let tn = "YT2600000000000003";
    w.ship(&shop, &order, &[(tn, Some("YunExpress"), &[])])
        .await;
    let svc = w.service();
    for _ in 0..3 {
        let resp = handle_batch(svc.clone(), one("m-1", body(&shop, &order, tn))).await;
        assert!(failures(&resp).is_empty(), "{resp:?}");
    }
    assert_eq!(shop.fulfillments(order.order_id).await.len(), 1);
    // The second and third deliveries never reached Shopify.
    assert_eq!(shop.stats().await["requests"], 2);
}

#[tokio::test]
async fn the_same_message_delivered_three_times_at_once_creates_one_fulfillment() {
    let mut w = World::new().await;
    // Slow answers, so the three deliveries overlap.
    let shop = w
        .shop("atonce", json!({"faults": {"latency_ms": 300}}))
        .await;
    // One of two units: Shopify's remaining quantity alone would let a second delivery in.
    let order = w.order(&shop, &[2], None).await;
    let tn = "YT2600000000000004";
    w.ship(&shop, &order, &[(tn, Some("YunExpress"), &[(0, 1)])])
        .await;

    // Three Lambda instances, each with its own clients, handed the same message.
    let runs: Vec<_> = (0..3)
        .map(|i| {
            let svc = w.service();
            let ev = one(&format!("m-{i}"), body(&shop, &order, tn));
            tokio::spawn(async move { handle_batch(svc, ev).await })
        })
        .collect();
    let mut retried = Vec::new();
    for run in runs {
        retried.extend(failures(&run.await.unwrap()));
    }
    assert_eq!(shop.fulfillments(order.order_id).await.len(), 1);
    // What was turned away comes back later and finds the package pushed.
    for id in retried {
        let resp = handle_batch(w.service(), one(&id, body(&shop, &order, tn))).await;
        assert!(failures(&resp).is_empty(), "{resp:?}");
    }
    let fs = shop.fulfillments(order.order_id).await;
    assert_eq!(fs.len(), 1);
    assert_eq!(lines_of(&fs[0]), vec![(order.lines[0], 1)]);
    assert!(pushed_id(&w.package(&shop, &order, tn).await).is_some());
    assert_eq!(
        w.stored(&shop, order.order_id).await.status,
        OrderStatus::AwaitingFulfillment
    );
}

#[tokio::test]
async fn a_crash_after_shopifys_success_and_before_our_write_creates_no_second_fulfillment_on_redelivery()
 {
    let mut w = World::new().await;
    let shop = w.shop("crash", json!({})).await;
    let order = w.order(&shop, &[1, 1], None).await;
    let tn = "YT2600000000000005";
    w.ship(&shop, &order, &[(tn, Some("YunExpress"), &[])])
        .await;

    // The first delivery got as far as Shopify's success, then died: Shopify has the
    // fulfillment, the table still says pending.
    let admin = w.admin();
    let state = admin
        .fulfillment_state(&shop.domain, &shop.token, order.order_id)
        .await
        .unwrap()
        .unwrap();
    let fo = &state.fulfillment_orders[0];
    let req = FulfillmentRequest {
        order_id: order.order_id,
        line_items_by_fo: vec![(
            fo.id.clone(),
            fo.line_items
                .iter()
                .map(|l| (l.id.clone(), l.remaining_quantity))
                .collect(),
        )],
        tracking: TrackingInfo {
            company: Some("YunExpress".into()),
            number: tn.into(),
            url: None,
        },
        notify_customer: true,
    };
    let MutationOutcome::Done {
        fulfillment_id: Some(first_id),
    } = admin
        .create_fulfillment(&shop.domain, &shop.token, &req)
        .await
        .unwrap()
    else {
        panic!("the fulfillment is created")
    };
    assert_eq!(w.package(&shop, &order, tn).await.push, PushState::Pending);

    // The redelivery.
    let resp = handle_batch(w.service(), one("m-1", body(&shop, &order, tn))).await;
    assert!(failures(&resp).is_empty(), "{resp:?}");
    let fs = shop.fulfillments(order.order_id).await;
    assert_eq!(fs.len(), 1);
    assert_eq!(
        pushed_id(&w.package(&shop, &order, tn).await),
        Some(first_id)
    );
    assert_eq!(
        w.stored(&shop, order.order_id).await.status,
        OrderStatus::Fulfilled
    );
    assert_eq!(shop.stats().await["fulfillments_created"], 1);
}

#[tokio::test]
async fn a_mutation_that_times_out_after_succeeding_is_read_back_and_never_repeated() {
    let mut w = World::new().await;
    // Every mutation runs, then the connection drops without an answer.
    let shop = w
        .shop(
            "timeout",
            json!({"faults": {"timeout_after_success": 1.0, "timeout_ms": 300, "timeout_mode": "drop"}}),
        )
        .await;
    let order = w.order(&shop, &[1], None).await;
    let tn = "YT2600000000000006";
    w.ship(&shop, &order, &[(tn, Some("YunExpress"), &[])])
        .await;
    w.admin_config.timeout = Duration::from_secs(2);
    let svc = w.service();

    let resp = handle_batch(svc.clone(), one("m-1", body(&shop, &order, tn))).await;
    // Settled by reading back, or left to the redelivery: either way, never a second one.
    for _ in 0..2 {
        let resp = handle_batch(svc.clone(), one("m-1", body(&shop, &order, tn))).await;
        assert!(failures(&resp).is_empty(), "{resp:?}");
    }
    assert!(failures(&resp).len() <= 1);
    assert_eq!(shop.fulfillments(order.order_id).await.len(), 1);
    let stats = shop.stats().await;
    assert_eq!(stats["timeouts_after_success"], 1, "{stats}");
    assert_eq!(stats["fulfillments_created"], 1);
    assert!(pushed_id(&w.package(&shop, &order, tn).await).is_some());
}

#[tokio::test]
async fn a_package_the_merchant_already_fulfilled_by_hand_gets_no_new_fulfillment() {
    let mut w = World::new().await;
    let shop = w.shop("byhand", json!({})).await;
    let order = w.order(&shop, &[1], None).await;
    let tn = "YT2600000000000007";
    w.ship(&shop, &order, &[(tn, Some("YunExpress"), &[])])
        .await;
    let by_hand = post(
        &format!("/orders/{}/fulfill", order.order_id),
        json!({"shop": shop.domain.as_str(), "tracking_number": tn, "company": "YunExpress",
               "notify_customer": false}),
    )
    .await;
    let merchant_id = by_hand["fulfillments"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let resp = handle_batch(w.service(), one("m-1", body(&shop, &order, tn))).await;
    assert!(failures(&resp).is_empty(), "{resp:?}");
    let fs = shop.fulfillments(order.order_id).await;
    assert_eq!(fs.len(), 1);
    assert_eq!(fs[0]["created_by"], "merchant");
    assert_eq!(
        pushed_id(&w.package(&shop, &order, tn).await),
        Some(merchant_id)
    );
    assert_eq!(shop.stats().await["fulfillments_created"], 0);
}

#[tokio::test]
async fn a_package_the_merchant_fulfilled_by_hand_under_another_number_gets_no_new_fulfillment() {
    let mut w = World::new().await;
    let shop = w.shop("othernum", json!({})).await;
    let order = w.order(&shop, &[1], None).await;
    let tn = "YT2600000000000008";
    w.ship(&shop, &order, &[(tn, Some("YunExpress"), &[])])
        .await;
    post(
        &format!("/orders/{}/fulfill", order.order_id),
        json!({"shop": shop.domain.as_str(), "tracking_number": "1Z999AA10123456784",
               "company": "UPS", "notify_customer": false}),
    )
    .await;

    let resp = handle_batch(w.service(), one("m-1", body(&shop, &order, tn))).await;
    assert!(failures(&resp).is_empty(), "{resp:?}");
    assert_eq!(shop.fulfillments(order.order_id).await.len(), 1);
    assert_eq!(shop.stats().await["fulfillments_created"], 0);
    let p = w.package(&shop, &order, tn).await;
    assert!(p.push.is_pushed(), "{:?}", p.push);
    assert_eq!(
        w.stored(&shop, order.order_id).await.status,
        OrderStatus::Fulfilled
    );
}

// ---- throttling ----

async fn push_until_done(w: &World, shop: &Shop, order: &Seeded, tn: &str) -> usize {
    let svc = w.service();
    for delivery in 1..=10 {
        let resp = handle_batch(svc.clone(), one("m-1", body(shop, order, tn))).await;
        if failures(&resp).is_empty() {
            return delivery;
        }
    }
    panic!("still failing after 10 deliveries");
}

#[tokio::test]
async fn throttled_answers_are_retried_and_still_make_exactly_one_fulfillment() {
    let mut w = World::new().await;
    let shop = w
        .shop(
            "throttled",
            json!({"seed": 3, "faults": {"throttled": 0.6}}),
        )
        .await;
    let order = w.order(&shop, &[1], None).await;
    let tn = "YT2600000000000009";
    w.ship(&shop, &order, &[(tn, Some("YunExpress"), &[])])
        .await;

    push_until_done(&w, &shop, &order, tn).await;
    // And a duplicate after that changes nothing.
    push_until_done(&w, &shop, &order, tn).await;
    assert_eq!(shop.fulfillments(order.order_id).await.len(), 1);
    let stats = shop.stats().await;
    assert!(stats["throttled"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["fulfillments_created"], 1);
}

#[tokio::test]
async fn http_429_answers_are_retried_after_retry_after_and_still_make_exactly_one_fulfillment() {
    let mut w = World::new().await;
    let shop = w
        .shop(
            "http429",
            json!({"seed": 3, "faults": {"http_429": 0.7, "retry_after": 0.2}}),
        )
        .await;
    let order = w.order(&shop, &[1], None).await;
    let tn = "YT2600000000000010";
    w.ship(&shop, &order, &[(tn, Some("YunExpress"), &[])])
        .await;

    push_until_done(&w, &shop, &order, tn).await;
    push_until_done(&w, &shop, &order, tn).await;
    assert_eq!(shop.fulfillments(order.order_id).await.len(), 1);
    let stats = shop.stats().await;
    assert!(stats["http_429"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["fulfillments_created"], 1);
}

#[tokio::test]
async fn a_shop_throttled_throughout_fails_the_message_and_the_redelivery_pushes_it_once() {
    let mut w = World::new().await;
    let shop = w.shop("hard", json!({"faults": {"throttled": 1.0}})).await;
    let order = w.order(&shop, &[1], None).await;
    let tn = "YT2600000000000011";
    w.ship(&shop, &order, &[(tn, Some("YunExpress"), &[])])
        .await;
    w.admin_config.max_attempts = 3;

    let resp = handle_batch(w.service(), one("m-1", body(&shop, &order, tn))).await;
    assert_eq!(failures(&resp), vec!["m-1".to_owned()]);
    assert_eq!(w.package(&shop, &order, tn).await.push, PushState::Pending);

    shop.configure(json!({"faults": {}})).await;
    let resp = handle_batch(w.service(), one("m-1", body(&shop, &order, tn))).await;
    assert!(failures(&resp).is_empty(), "{resp:?}");
    assert_eq!(shop.fulfillments(order.order_id).await.len(), 1);
}

#[tokio::test]
async fn a_push_failing_on_its_last_delivery_is_shown_to_the_merchant_stays_due_and_a_dlq_replay_clears_it()
 {
    let mut w = World::new().await;
    let shop = w
        .shop("dlq", json!({"faults": {"server_error": 1.0}}))
        .await;
    let order = w.order(&shop, &[1], None).await;
    let tn = "YT2600000000000012";
    w.ship(&shop, &order, &[(tn, Some("YunExpress"), &[])])
        .await;
    w.admin_config.max_attempts = 2;
    let delivery = |count: u32| {
        let mut ev = one("m-1", body(&shop, &order, tn));
        ev.records[0]
            .attributes
            .insert("ApproximateReceiveCount".into(), count.to_string());
        ev
    };

    // Before the last delivery a failure only brings the message back.
    let resp = dropsync_tracking_pusher::handle(w.service(), delivery(7), last_at_8()).await;
    assert_eq!(failures(&resp), vec!["m-1".to_owned()]);
    let p = w.package(&shop, &order, tn).await;
    assert_eq!(p.gave_up, None);
    assert!(w.stored(&shop, order.order_id).await.attention().is_empty());

    // On the last one the reason is recorded before SQS dead-letters the message.
    let resp = dropsync_tracking_pusher::handle(w.service(), delivery(8), last_at_8()).await;
    assert_eq!(failures(&resp), vec!["m-1".to_owned()]);
    let p = w.package(&shop, &order, tn).await;
    assert_eq!(
        p.push,
        PushState::Pending,
        "still due: a replay or the next run sends it"
    );
    let gave_up = p.gave_up.expect("the failure is recorded");
    assert_eq!(gave_up.attempts, 8);
    assert!(!gave_up.reason.is_empty());
    let attention = w.stored(&shop, order.order_id).await.attention();
    assert!(
        matches!(&attention[..], [Attention::PushDeadLettered { tracking_number, attempts: 8, .. }] if tracking_number == tn),
        "{attention:?}"
    );
    let listed = w
        .store
        .list_attention(&shop.domain, None, 50)
        .await
        .unwrap();
    assert_eq!(
        listed.items.iter().map(|o| o.order.id).collect::<Vec<_>>(),
        vec![order.order_id]
    );
    assert!(shop.fulfillments(order.order_id).await.is_empty());

    // Shopify is back; the replayed message pushes once and the flag goes away.
    shop.configure(json!({"faults": {}})).await;
    let resp = dropsync_tracking_pusher::handle(w.service(), delivery(1), last_at_8()).await;
    assert!(failures(&resp).is_empty(), "{resp:?}");
    assert_eq!(shop.fulfillments(order.order_id).await.len(), 1);
    let p = w.package(&shop, &order, tn).await;
    assert!(p.push.is_pushed());
    assert_eq!(p.gave_up, None);
    assert!(w.stored(&shop, order.order_id).await.attention().is_empty());
    let listed = w
        .store
        .list_attention(&shop.domain, None, 50)
        .await
        .unwrap();
    assert!(listed.items.is_empty(), "no longer listed");
}

#[tokio::test]
async fn a_batch_answers_by_its_deadline_and_what_it_could_not_finish_is_pushed_once_later() {
    let mut w = World::new().await;
    // Every Shopify answer takes 700 ms: one push (read + create) needs about 1.4 s.
    let shop = w.shop("late", json!({"faults": {"latency_ms": 700}})).await;
    let order = w.order(&shop, &[2, 1], None).await;
    let (first, second) = ("YT2600000000000021", "YT2600000000000022");
    w.ship(
        &shop,
        &order,
        &[
            (first, Some("YunExpress"), &[(0, 2)]),
            (second, Some("4PX"), &[(1, 1)]),
        ],
    )
    .await;
    let batch = || {
        event(&[
            ("m-1".into(), body(&shop, &order, first)),
            ("m-2".into(), body(&shop, &order, second)),
        ])
    };
    // The packages of one order go one after the other: the second cannot start in time.
    let started = std::time::Instant::now();
    let limits = BatchLimits {
        max_receives: Some(8),
        deadline: Some(started + Duration::from_millis(1_000)),
    };
    // How soon it answers is measured in `make bench`, not here: what matters is which messages
    // it reports and what it leaves on the package.
    let resp = dropsync_tracking_pusher::handle(w.service(), batch(), limits).await;
    assert!(failures(&resp).contains(&"m-2".to_owned()), "{resp:?}");
    assert_eq!(
        w.package(&shop, &order, second).await.push,
        PushState::Pending
    );
    assert_eq!(w.package(&shop, &order, second).await.gave_up, None);

    // The cut-off attempt kept its package's lease (Shopify may still have been working on its
    // request); 120 s later it lapses. Fast-forward that, then redeliver with time to spare: each
    // package ends with exactly one fulfillment, whatever the first attempt had done.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for tn in [first, second] {
        let _ = w
            .store
            .client()
            .update_item()
            .table_name(w.store.table())
            .key(
                "pk",
                AttributeValue::S(dropsync_store::order_pk(&shop.domain, order.order_id)),
            )
            .key("sk", AttributeValue::S(format!("PUSH#{}#{tn}", order.ae)))
            .update_expression("SET lease_until_ms = :z")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":z", AttributeValue::N("0".into()))
            .send()
            .await;
    }
    let mut rounds = 0;
    loop {
        rounds += 1;
        let resp = handle_batch(w.service(), batch()).await;
        if failures(&resp).is_empty() {
            break;
        }
        assert!(rounds < 10, "never settled: {resp:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let fs = shop.fulfillments(order.order_id).await;
    let mut numbers: Vec<&str> = fs
        .iter()
        .map(|f| f["tracking"]["number"].as_str().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [first, second]);
}

// ---- what is not forced ----

#[tokio::test]
async fn an_on_hold_fulfillment_order_is_flagged_for_the_merchant_and_not_forced() {
    let mut w = World::new().await;
    let shop = w.shop("onhold", json!({})).await;
    let fos = |lines: &[u64]| {
        json!([{"status": "ON_HOLD", "hold_reason": "HIGH_RISK_OF_FRAUD", "location": "Main",
                "line_items": lines.iter().map(|l| json!({"line_item_id": l.to_string(), "quantity": 1})).collect::<Vec<_>>()}])
    };
    let order = w.order(&shop, &[1], Some(&fos)).await;
    assert_eq!(order.created["fulfillment_orders"][0]["status"], "ON_HOLD");
    let tn = "YT2600000000000012";
    w.ship(&shop, &order, &[(tn, Some("YunExpress"), &[])])
        .await;

    let resp = handle_batch(w.service(), one("m-1", body(&shop, &order, tn))).await;
    assert!(failures(&resp).is_empty(), "acknowledged: {resp:?}");

    let sb = shop.order(order.order_id).await;
    assert!(sb["fulfillments"].as_array().unwrap().is_empty());
    assert_eq!(sb["fulfillment_orders"][0]["status"], "ON_HOLD");
    let stats = shop.stats().await;
    assert_eq!(stats["requests"], 1, "only the read: {stats}");

    let stored = w.stored(&shop, order.order_id).await;
    let flagged = stored.attention().into_iter().find_map(|a| match a {
        Attention::PushFailed {
            tracking_number,
            reason,
        } => Some((tracking_number, reason)),
        _ => None,
    });
    let (number, reason) = flagged.expect("the package is flagged");
    assert_eq!(number, tn);
    assert!(reason.contains("ON_HOLD"), "{reason}");
    assert_ne!(stored.status, OrderStatus::Fulfilled);
    let listed = w
        .store
        .list_attention(&shop.domain, None, 50)
        .await
        .unwrap();
    assert_eq!(
        listed.items.iter().map(|o| o.order.id).collect::<Vec<_>>(),
        vec![order.order_id],
        "the flagged order is on the merchant's attention list"
    );

    // A redelivery does not try again: the merchant decides.
    let resp = handle_batch(w.service(), one("m-1", body(&shop, &order, tn))).await;
    assert!(failures(&resp).is_empty());
    assert_eq!(shop.stats().await["requests"], 1);
}

#[tokio::test]
async fn an_inactive_shop_is_skipped_without_calling_shopify() {
    let mut w = World::new().await;
    let shop = w.shop("inactive", json!({})).await;
    let order = w.order(&shop, &[1], None).await;
    let tn = "YT2600000000000013";
    w.ship(&shop, &order, &[(tn, Some("YunExpress"), &[])])
        .await;
    w.store.set_active(&shop.domain, false).await.unwrap();

    let resp = handle_batch(w.service(), one("m-1", body(&shop, &order, tn))).await;
    assert!(failures(&resp).is_empty(), "{resp:?}");
    assert_eq!(shop.stats().await["requests"], 0);
    assert!(shop.fulfillments(order.order_id).await.is_empty());
    assert_eq!(w.package(&shop, &order, tn).await.push, PushState::Pending);
}

#[tokio::test]
async fn fulfillment_orders_shopify_has_not_routed_yet_bring_the_message_back_until_they_appear() {
    let mut w = World::new().await;
    let shop = w.shop("routing", json!({"fo_delay_ms": 1500})).await;
    let order = w.order(&shop, &[1], None).await;
    let tn = "YT2600000000000014";
    w.ship(&shop, &order, &[(tn, Some("YunExpress"), &[])])
        .await;

    let resp = handle_batch(w.service(), one("m-1", body(&shop, &order, tn))).await;
    assert_eq!(failures(&resp), vec!["m-1".to_owned()]);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let resp = handle_batch(w.service(), one("m-1", body(&shop, &order, tn))).await;
    assert!(failures(&resp).is_empty(), "{resp:?}");
    assert_eq!(shop.fulfillments(order.order_id).await.len(), 1);
}

// ---- batches ----

#[tokio::test]
async fn a_poison_message_and_a_retryable_failure_leave_the_others_pushed_and_only_the_retryable_id_reported()
 {
    let mut w = World::new().await;
    let good = w.shop("good", json!({})).await;
    let down = w
        .shop("down", json!({"faults": {"server_error": 1.0}}))
        .await;
    w.admin_config.max_attempts = 2;
    let a = w.order(&good, &[1], None).await;
    let b = w.order(&good, &[2], None).await;
    let c = w.order(&down, &[1], None).await;
    w.ship(&good, &a, &[("YTA0000000000001", Some("YunExpress"), &[])])
        .await;
    w.ship(&good, &b, &[("YTB0000000000001", Some("4PX"), &[])])
        .await;
    w.ship(&down, &c, &[("YTC0000000000001", Some("YunExpress"), &[])])
        .await;

    let resp = handle_batch(
        w.service(),
        event(&[
            ("m-a".into(), body(&good, &a, "YTA0000000000001")),
            ("m-poison".into(), "{not json".into()),
            ("m-c".into(), body(&down, &c, "YTC0000000000001")),
            (
                "m-unknown-version".into(),
                r#"{"v":9,"shop":"x.myshopify.com"}"#.into(),
            ),
            ("m-b".into(), body(&good, &b, "YTB0000000000001")),
        ]),
    )
    .await;
    assert_eq!(failures(&resp), vec!["m-c".to_owned()]);
    assert_eq!(good.fulfillments(a.order_id).await.len(), 1);
    assert_eq!(good.fulfillments(b.order_id).await.len(), 1);
    assert!(down.fulfillments(c.order_id).await.is_empty());
    assert_eq!(
        w.stored(&good, a.order_id).await.status,
        OrderStatus::Fulfilled
    );
    assert_eq!(
        w.stored(&good, b.order_id).await.status,
        OrderStatus::Fulfilled
    );
    assert_eq!(
        w.package(&down, &c, "YTC0000000000001").await.push,
        PushState::Pending
    );
}

#[tokio::test]
async fn a_message_for_an_unknown_order_or_package_is_acknowledged() {
    let mut w = World::new().await;
    let shop = w.shop("unknown", json!({})).await;
    let order = w.order(&shop, &[1], None).await;
    let resp = handle_batch(
        w.service(),
        event(&[
            ("m-1".into(), body(&shop, &order, "NOT-SHIPPED-YET")),
            (
                "m-2".into(),
                PushMessage::new(&shop.domain, 42, 43, "YT1").to_body(),
            ),
        ]),
    )
    .await;
    assert!(failures(&resp).is_empty(), "{resp:?}");
    assert_eq!(shop.stats().await["requests"], 0);
}

// ---- tracking updates ----

#[tokio::test]
async fn a_corrected_tracking_number_updates_the_existing_fulfillment_instead_of_creating_another()
{
    let mut w = World::new().await;
    let shop = w.shop("update", json!({})).await;
    w.settings(&shop, false).await;
    let order = w.order(&shop, &[1], None).await;
    let (old, new) = ("LP00000000000015", "9400111899223197428490");
    w.ship(&shop, &order, &[(old, Some("Cainiao"), &[])]).await;
    let svc = w.service();
    let resp = handle_batch(svc.clone(), one("m-1", body(&shop, &order, old))).await;
    assert!(failures(&resp).is_empty(), "{resp:?}");
    let fulfillment_id = pushed_id(&w.package(&shop, &order, old).await).unwrap();

    // AliExpress now lists the parcel under its last-mile number.
    w.ship(&shop, &order, &[(new, Some("USPS"), &[])]).await;
    let p = w.package(&shop, &order, new).await;
    assert_eq!(
        p.push,
        PushState::UpdatePending {
            fulfillment_id: fulfillment_id.clone()
        }
    );
    assert_eq!(p.previous_tracking.as_deref(), Some(old));

    // The stale message for the old number is acknowledged and does nothing.
    let resp = handle_batch(
        svc.clone(),
        event(&[
            ("m-old".into(), body(&shop, &order, old)),
            ("m-new".into(), body(&shop, &order, new)),
        ]),
    )
    .await;
    assert!(failures(&resp).is_empty(), "{resp:?}");

    let fs = shop.fulfillments(order.order_id).await;
    assert_eq!(fs.len(), 1);
    assert_eq!(fs[0]["id"], fulfillment_id.as_str());
    assert_eq!(fs[0]["tracking"]["number"], new);
    assert_eq!(fs[0]["tracking"]["company"], "USPS");
    let stats = shop.stats().await;
    assert_eq!(stats["tracking_updates"], 1, "{stats}");
    assert_eq!(stats["fulfillments_created"], 1);
    assert_eq!(
        pushed_id(&w.package(&shop, &order, new).await),
        Some(fulfillment_id)
    );
    assert_eq!(
        w.stored(&shop, order.order_id).await.status,
        OrderStatus::Fulfilled
    );

    // Delivered again: nothing more.
    let resp = handle_batch(svc, one("m-new", body(&shop, &order, new))).await;
    assert!(failures(&resp).is_empty());
    assert_eq!(shop.stats().await["tracking_updates"], 1);
}

#[tokio::test]
async fn a_number_corrected_before_its_push_was_recorded_updates_the_fulfillment_made_with_the_old_one()
 {
    let mut w = World::new().await;
    let shop = w.shop("lostwrite", json!({})).await;
    let order = w.order(&shop, &[1], None).await;
    let (old, new) = ("LP00000000000016", "YT2600000000000016");
    w.ship(&shop, &order, &[(old, Some("Cainiao"), &[])]).await;
    // Shopify got the old number, our write was lost.
    post(
        &format!("/orders/{}/fulfill", order.order_id),
        json!({"shop": shop.domain.as_str(), "tracking_number": old, "company": "Cainiao"}),
    )
    .await;
    w.ship(&shop, &order, &[(new, Some("YunExpress"), &[])])
        .await;
    let p = w.package(&shop, &order, new).await;
    assert_eq!(p.push, PushState::Pending);

    let resp = handle_batch(w.service(), one("m-1", body(&shop, &order, new))).await;
    assert!(failures(&resp).is_empty(), "{resp:?}");
    let fs = shop.fulfillments(order.order_id).await;
    assert_eq!(fs.len(), 1);
    assert_eq!(fs[0]["tracking"]["number"], new);
    assert_eq!(fs[0]["tracking"]["company"], "YunExpress");
    assert!(pushed_id(&w.package(&shop, &order, new).await).is_some());
}
