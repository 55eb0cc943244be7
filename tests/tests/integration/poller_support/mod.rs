//! Shared by the `poller_*` tests: one AliExpress sandbox app per test, the real `IopClient`
//! against it, a real SQS tracking queue in the emulator, and seeded orders.
#![allow(dead_code)]

use dropsync_aliexpress::{
    AeError, AeOrder, AeTrackingLine, AliExpressApi, IopClient, IopConfig, MemoryTokenStore, Tokens,
};
use dropsync_app::queue::{PushMessage, QueueError, SqsQueue, TrackingQueue};
use dropsync_app::sync::SyncService;
use dropsync_domain::ops::link_supplier_order;
use dropsync_domain::{
    FinancialStatus, ItemLink, LineItem, Order, OrderStatus, ShopDomain, ShopifyFacts,
    SupplierStatus,
};
use dropsync_store::{Store, StoredOrder, WriteKind};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const P1: &str = "1005006123456789";
pub const S1: &str = "12000037000000001";
pub const P2: &str = "1005006987654321";
pub const S2: &str = "12000038000000002";

pub fn sandbox_url() -> String {
    match std::env::var("DROPSYNC_ALIEXPRESS_SANDBOX") {
        Ok(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_owned(),
        _ => panic!(
            "DROPSYNC_ALIEXPRESS_SANDBOX is not set: run these tests with \
             `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests`"
        ),
    }
}

/// One app key on the AliExpress sandbox, with its own account, session, orders and stats.
#[derive(Debug, Clone)]
pub struct AeApp {
    pub base: String,
    pub http: reqwest::Client,
    pub app_key: String,
    pub secret: String,
    pub account: String,
    pub tokens: Tokens,
}

impl AeApp {
    /// A new app (`config` is merged into `POST /_admin/apps`) with a session for its account.
    pub async fn new(config: Value) -> Self {
        let base = sandbox_url();
        let app_key = format!(
            "8{:09}{:05}",
            fastrand::u32(..1_000_000_000),
            std::process::id() % 100_000
        );
        let mut app = Self {
            base,
            http: reqwest::Client::new(),
            secret: format!("secret-{app_key}"),
            account: format!("buyer-{app_key}"),
            app_key,
            tokens: Tokens::default(),
        };
        let mut body =
            json!({"app_key": app.app_key, "app_secret": app.secret, "calls_per_second": null});
        merge(&mut body, config);
        app.tokens =
            dropsync_tests::sandbox_ae_app(&app.base, body, json!({"account": app.account})).await;
        app
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        dropsync_tests::sandbox_post(&self.base, path, body).await
    }

    pub async fn configure(&self, config: Value) {
        let mut body = json!({"app_key": self.app_key});
        merge(&mut body, config);
        self.post("/_admin/apps", body).await;
    }

    /// An AliExpress order of this app's account; returns its id.
    pub async fn order(&self, status: &str, items: Value) -> u64 {
        self.order_with(json!({"status": status, "items": items}))
            .await
    }

    pub async fn order_with(&self, body: Value) -> u64 {
        let mut body = body;
        body["app_key"] = json!(self.app_key);
        if body.get("account").is_none() {
            body["account"] = json!(self.account);
        }
        let out = self.post("/_admin/orders", body).await;
        out["order_id"].as_str().unwrap().parse().unwrap()
    }

    /// `POST /_admin/orders/{id}`: a partial update (status, logistics_status, …).
    pub async fn update(&self, ae_order_id: u64, body: Value) {
        self.post(&format!("/_admin/orders/{ae_order_id}"), body)
            .await;
    }

    pub async fn package(&self, ae_order_id: u64, body: Value) {
        self.post(&format!("/_admin/orders/{ae_order_id}/packages"), body)
            .await;
    }

    pub async fn update_package(&self, ae_order_id: u64, mail_no: &str, body: Value) {
        self.post(
            &format!("/_admin/orders/{ae_order_id}/packages/{mail_no}"),
            body,
        )
        .await;
    }

    pub async fn stats(&self) -> Value {
        self.http
            .get(format!(
                "{}/_admin/stats?app_key={}",
                self.base, self.app_key
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The real client for this app. `tweak` adjusts its configuration.
    pub fn client(&self, tweak: impl FnOnce(&mut IopConfig)) -> Arc<IopClient> {
        let mut config = IopConfig::new(&self.app_key, &self.secret, self.tokens.clone());
        config.base_url = self.base.clone();
        config.calls_per_second = 200.0;
        config.max_concurrency = 16;
        config.timeout = Duration::from_secs(5);
        tweak(&mut config);
        Arc::new(IopClient::new(config, Arc::new(MemoryTokenStore::new())).unwrap())
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) {
        for (k, v) in from {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// An item of an AliExpress order for `POST /_admin/orders`.
pub fn ae_item(product_id: &str, sku_id: &str, count: u32) -> Value {
    json!({"product_id": product_id, "sku_id": sku_id, "count": count, "title": "Item", "price": "7.50"})
}

/// A tracking queue of its own in the emulator.
pub async fn fresh_queue() -> (SqsQueue, aws_sdk_sqs::Client) {
    let conf = dropsync_tests::aws_config().await;
    let client = aws_sdk_sqs::Client::new(&conf);
    let url = create_queue(&client, "tracking").await;
    (SqsQueue::new(client.clone(), url), client)
}

pub use dropsync_tests::create_queue;

/// Receives (and deletes) every message now on the queue.
pub async fn drain_bodies(client: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let got = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap();
        let msgs = got.messages();
        if msgs.is_empty() {
            empty += 1;
            continue;
        }
        for m in msgs {
            out.push(m.body().unwrap_or_default().to_owned());
            client
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    out
}

/// The push messages now on the tracking queue (received and deleted).
pub async fn drain_pushes(queue: &SqsQueue, client: &aws_sdk_sqs::Client) -> Vec<PushMessage> {
    drain_bodies(client, queue.url())
        .await
        .iter()
        .map(|b| PushMessage::parse(b).unwrap().0)
        .collect()
}

/// The tracking queue, with a switch that makes sends fail (an SQS outage between the write and
/// the send).
#[derive(Debug)]
pub struct FlakyQueue {
    pub inner: SqsQueue,
    pub failing: AtomicBool,
}

impl TrackingQueue for FlakyQueue {
    async fn send(&self, messages: &[PushMessage]) -> Result<(), QueueError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(QueueError::Partial(messages.len()));
        }
        self.inner.send(messages).await
    }
}

/// The real client, counting `order.get` calls per AliExpress order.
#[derive(Debug)]
pub struct Counting<A> {
    pub inner: Arc<A>,
    pub order_gets: Mutex<HashMap<u64, u64>>,
    pub calls: AtomicU64,
}

impl<A> Counting<A> {
    pub fn new(inner: Arc<A>) -> Self {
        Self {
            inner,
            order_gets: Mutex::new(HashMap::new()),
            calls: AtomicU64::new(0),
        }
    }

    pub fn gets(&self) -> HashMap<u64, u64> {
        self.order_gets.lock().unwrap().clone()
    }
}

impl<A: AliExpressApi> AliExpressApi for Counting<A> {
    async fn order_get(&self, ae_order_id: u64) -> Result<AeOrder, AeError> {
        *self
            .order_gets
            .lock()
            .unwrap()
            .entry(ae_order_id)
            .or_default() += 1;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.order_get(ae_order_id).await
    }

    async fn tracking_get(&self, ae_order_id: u64) -> Result<Option<Vec<AeTrackingLine>>, AeError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.tracking_get(ae_order_id).await
    }
}

pub fn service<A, Q>(store: &Store, ae: Arc<A>, queue: Arc<Q>) -> Arc<SyncService<A, Q>> {
    Arc::new(SyncService {
        store: store.clone(),
        ae,
        queue,
        concurrency: 16,
    })
}

pub fn now_ms() -> i64 {
    dropsync_app::now_ms()
}

/// A paid Shopify order with `lines` = `(line item id, quantity, sku)`.
pub fn shopify_facts(lines: &[(u64, u32, Option<&str>)]) -> ShopifyFacts {
    ShopifyFacts {
        name: "#1001".into(),
        created_at_ms: 1_700_000_000_000,
        updated_at_ms: 1_700_000_000_000,
        financial_status: FinancialStatus::Paid,
        cancelled: false,
        test: false,
        fulfillment_status: None,
        line_items: lines
            .iter()
            .map(|(id, q, sku)| LineItem {
                sku: sku.map(str::to_owned),
                ..LineItem::new(*id, *q)
            })
            .collect(),
        fulfillment_tracking: vec![],
    }
}

/// Seeds an order whose line items are all bought as one AliExpress order.
pub async fn seed_order(
    store: &Store,
    shop: &ShopDomain,
    order_id: u64,
    lines: &[(u64, u32, Option<&str>)],
    ae_order_id: u64,
    items: Vec<ItemLink>,
) -> StoredOrder {
    let mut o = Order::from_shopify(
        shop.clone(),
        order_id,
        shopify_facts(lines),
        "seed",
        now_ms(),
    );
    let ids: Vec<u64> = lines.iter().map(|l| l.0).collect();
    assert_eq!(
        link_supplier_order(&mut o, ae_order_id, &ids, items, now_ms()),
        Ok(true)
    );
    assert_eq!(o.status, OrderStatus::AwaitingPayment);
    store
        .put_order(&o, None, WriteKind::Automatic)
        .await
        .unwrap()
}

pub fn link(line_item_id: u64, product_id: &str, sku_id: &str) -> ItemLink {
    ItemLink {
        line_item_id,
        product_id: Some(product_id.into()),
        sku_id: Some(sku_id.into()),
    }
}

pub async fn get(store: &Store, shop: &ShopDomain, id: u64) -> StoredOrder {
    store.get_order(shop, id).await.unwrap().unwrap()
}

pub fn so_status(o: &StoredOrder) -> SupplierStatus {
    o.order.supplier_orders[0].status
}

/// Every key in the open index.
pub async fn open_keys(store: &Store) -> Vec<(ShopDomain, u64)> {
    let mut out = Vec::new();
    for shard in 0..store.open_shards() {
        let mut cursor: Option<String> = None;
        loop {
            let page = store
                .open_orders_page(shard, cursor.as_deref(), 100)
                .await
                .unwrap();
            out.extend(page.items);
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    out
}

/// A deadline far away (a poll that runs to completion).
pub fn no_deadline() -> std::time::Instant {
    std::time::Instant::now() + Duration::from_secs(600)
}
