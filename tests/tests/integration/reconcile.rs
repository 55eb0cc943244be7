//! Reconciliation against the sandbox Shopify (its stored orders, listed with
//! `orders(query: "updated_at:>='…'", sortKey: UPDATED_AT)` and re-fetched with the real
//! documents) and the DynamoDB emulator: webhooks that never arrived are recovered with no
//! duplicate, a second run changes nothing, and the watermark never passes an order that was not
//! applied.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests --test integration reconcile::`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use dropsync_app::reconcile::{DEFAULT_LOOKBACK_MS, ReconcileService};
use dropsync_domain::{ShopDomain, ShopifyFacts};
use dropsync_shopify::admin::{
    AdminClient, AdminConfig, AdminError, FulfillmentRequest, FulfillmentState, MutationOutcome,
    OrderStampPage, ShopifyAdmin, TrackingInfo,
};
use dropsync_store::Store;
use dropsync_tests::{
    credentials, fresh_store, sandbox_get, sandbox_post, shopify_sandbox, unique,
};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The real client, failing `fetch_order` for one order: a Shopify error in the middle of a run.
struct FailingOn {
    inner: AdminClient,
    order: Option<u64>,
}

impl ShopifyAdmin for FailingOn {
    async fn fulfillment_state(
        &self,
        shop: &ShopDomain,
        token: &str,
        order_id: u64,
    ) -> Result<Option<FulfillmentState>, AdminError> {
        self.inner.fulfillment_state(shop, token, order_id).await
    }
    async fn create_fulfillment(
        &self,
        shop: &ShopDomain,
        token: &str,
        req: &FulfillmentRequest,
    ) -> Result<MutationOutcome, AdminError> {
        self.inner.create_fulfillment(shop, token, req).await
    }
    async fn update_tracking(
        &self,
        shop: &ShopDomain,
        token: &str,
        fulfillment_id: &str,
        tracking: &TrackingInfo,
        notify_customer: bool,
    ) -> Result<MutationOutcome, AdminError> {
        self.inner
            .update_tracking(shop, token, fulfillment_id, tracking, notify_customer)
            .await
    }
    async fn fetch_order(
        &self,
        shop: &ShopDomain,
        token: &str,
        order_id: u64,
    ) -> Result<Option<(u64, ShopifyFacts)>, AdminError> {
        if self.order == Some(order_id) {
            return Err(AdminError::Retryable("injected outage".into()));
        }
        self.inner.fetch_order(shop, token, order_id).await
    }
    async fn token_refused(&self, shop: &ShopDomain, token: &str) -> Result<bool, AdminError> {
        self.inner.token_refused(shop, token).await
    }
    async fn orders_updated_since(
        &self,
        shop: &ShopDomain,
        token: &str,
        since_ms: i64,
        after: Option<&str>,
    ) -> Result<OrderStampPage, AdminError> {
        self.inner
            .orders_updated_since(shop, token, since_ms, after)
            .await
    }
}

struct Setup {
    store: Store,
    shop: ShopDomain,
    token: String,
    creds: Arc<dropsync_app::Credentials>,
}

fn client() -> AdminClient {
    AdminClient::new(AdminConfig {
        base_override: Some(shopify_sandbox()),
        ..Default::default()
    })
    .unwrap()
}

async fn setup() -> Setup {
    let store = fresh_store().await;
    let domain = format!("{}.myshopify.com", unique("rec"));
    let token = unique("shpat_rec_");
    // No webhook subscriptions: every delivery is "dropped".
    sandbox_post(
        &shopify_sandbox(),
        "/_admin/shops",
        json!({"shop": domain, "access_token": token}),
    )
    .await;
    let creds = credentials(json!({"admin_token": "admin-token-0123456789abcdef",
        "shops": {domain.clone(): {"access_token": token, "webhook_secrets": ["s"]}}}));
    Setup {
        store,
        shop: ShopDomain::parse(&domain).unwrap(),
        token,
        creds,
    }
}

impl Setup {
    async fn create_orders(&self, n: usize) -> Vec<u64> {
        let mut ids = Vec::new();
        for i in 0..n {
            let created = sandbox_post(
                &shopify_sandbox(),
                "/_admin/orders",
                json!({"shop": self.shop.as_str(), "order": {"name": format!("#{}", 5000 + i),
                    "financial_status": "paid",
                    "line_items": [{"sku": format!("SKU-{i}"), "title": "Mug", "quantity": 1, "price": "9.50"}]}}),
            )
            .await;
            ids.push(created["order"]["id"].as_u64().unwrap());
        }
        ids
    }

    fn service(&self, fail_on: Option<u64>) -> ReconcileService<FailingOn> {
        ReconcileService {
            store: self.store.clone(),
            credentials: self.creds.clone(),
            admin: Arc::new(FailingOn {
                inner: client(),
                order: fail_on,
            }),
            lookback_ms: DEFAULT_LOOKBACK_MS,
        }
    }

    /// Orders of the shop in the table (each order is one item: a duplicate would be a second).
    async fn order_items(&self) -> usize {
        let out = self
            .store
            .client()
            .scan()
            .table_name(self.store.table())
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        let prefix = format!("SHOP#{}#ORDER#", self.shop.as_str());
        out.items()
            .iter()
            .filter(|i| {
                i.get("pk")
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|pk| pk.starts_with(&prefix))
            })
            .count()
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

#[tokio::test]
async fn dropped_webhooks_are_recovered_by_reconciliation_with_no_duplicate() {
    let s = setup().await;
    let ids = s.create_orders(7).await;
    // Three of them arrived by webhook (the same conditional write, as an id-only event would).
    let admin = client();
    for id in &ids[..3] {
        let (id, facts) = admin
            .fetch_order(&s.shop, &s.token, *id)
            .await
            .unwrap()
            .unwrap();
        s.store
            .save_shopify_facts(
                &s.shop,
                id,
                facts,
                "orders/create",
                dropsync_tests::now_ms(),
            )
            .await
            .unwrap();
    }
    let svc = s.service(None);
    let report = svc.reconcile_shop(&s.shop, deadline()).await.unwrap();
    assert_eq!(report.checked, 7, "{report:?}");
    assert_eq!(report.missed, 4, "{report:?}");
    assert_eq!(report.changed, 4, "{report:?}");
    assert!(report.complete);
    assert_eq!(s.order_items().await, 7, "one item per order");
    for id in &ids {
        let stored = s.store.get_order(&s.shop, *id).await.unwrap().unwrap();
        assert_eq!(stored.order.shopify.line_items.len(), 1);
    }
    let watermark = s.store.reconcile_watermark(&s.shop).await.unwrap().unwrap();
    assert_eq!(watermark, report.watermark_ms);

    // A second run finds everything in sync: nothing changes, nothing is duplicated.
    let again = svc.reconcile_shop(&s.shop, deadline()).await.unwrap();
    assert_eq!((again.changed, again.missed), (0, 0), "{again:?}");
    assert_eq!(s.order_items().await, 7);

    // An update Shopify made while its webhook was lost is applied too.
    sandbox_post(
        &shopify_sandbox(),
        &format!("/_admin/orders/{}/update", ids[0]),
        json!({"shop": s.shop.as_str(), "financial_status": "refunded"}),
    )
    .await;
    let updated = svc.reconcile_shop(&s.shop, deadline()).await.unwrap();
    assert_eq!((updated.changed, updated.missed), (1, 0), "{updated:?}");
    assert_eq!(s.order_items().await, 7);
    let stats = sandbox_get(
        &shopify_sandbox(),
        &format!("/_admin/stats?shop={}", s.shop.as_str()),
    )
    .await;
    eprintln!("sandbox stats after three runs over 7 orders: {stats}");
}

#[tokio::test]
async fn the_watermark_never_passes_an_order_that_was_not_applied() {
    let s = setup().await;
    let ids = s.create_orders(5).await;
    let admin = client();
    let listed = admin
        .orders_updated_since(&s.shop, &s.token, 0, None)
        .await
        .unwrap();
    assert_eq!(listed.orders.len(), 5);
    // Shopify fails on the third order in update order.
    let failing = listed.orders[2];
    let report = s
        .service(Some(failing.id))
        .reconcile_shop(&s.shop, deadline())
        .await;
    assert!(report.is_err(), "{report:?}");
    let watermark = s.store.reconcile_watermark(&s.shop).await.unwrap();
    if let Some(w) = watermark {
        assert!(
            w <= failing.updated_at_ms,
            "{w} passed {}",
            failing.updated_at_ms
        );
    }
    assert!(
        s.store
            .get_order(&s.shop, failing.id)
            .await
            .unwrap()
            .is_none()
    );
    for stamp in &listed.orders[..2] {
        assert!(
            s.store
                .get_order(&s.shop, stamp.id)
                .await
                .unwrap()
                .is_some()
        );
    }

    // Resumed once Shopify answers: every order applied, once.
    let report = s
        .service(None)
        .reconcile_shop(&s.shop, deadline())
        .await
        .unwrap();
    assert!(report.complete);
    assert_eq!(s.order_items().await, 5);
    for id in &ids {
        assert!(s.store.get_order(&s.shop, *id).await.unwrap().is_some());
    }
    let max = listed.orders.iter().map(|o| o.updated_at_ms).max().unwrap();
    assert_eq!(
        s.store.reconcile_watermark(&s.shop).await.unwrap(),
        Some(max)
    );

    // A run out of time does nothing and keeps the watermark.
    let before = s.store.reconcile_watermark(&s.shop).await.unwrap();
    let late = s
        .service(None)
        .reconcile_shop(&s.shop, Instant::now())
        .await
        .unwrap();
    assert!(!late.complete);
    assert_eq!(late.checked, 0);
    assert_eq!(s.store.reconcile_watermark(&s.shop).await.unwrap(), before);
}

#[tokio::test]
async fn post_reconcile_answers_checked_changed_and_the_watermark_for_the_admin_token_only() {
    let s = setup().await;
    s.create_orders(3).await;
    let svc = Arc::new(ReconcileService {
        store: s.store.clone(),
        credentials: s.creds.clone(),
        admin: Arc::new(client()),
        lookback_ms: DEFAULT_LOOKBACK_MS,
    });
    let api = dropsync_api::Api::<dropsync_aliexpress::IopClient, dropsync_app::queue::SqsQueue> {
        store: s.store.clone(),
        credentials: s.creds.clone(),
        sync: None,
        place: None,
        connect: None,
        reconcile: Some(svc),
    };
    let path = format!("/shops/{}/reconcile", s.shop.as_str());
    let call = |token: &'static str, method: &'static str| {
        dropsync_tests::apigw_request(
            method,
            &path,
            &[("authorization", &format!("Bearer {token}"))],
            b"",
        )
    };
    let (status, v) = dropsync_tests::response_json(
        api.handle(call("admin-token-0123456789abcdef", "POST"))
            .await,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["checked"], 3);
    assert_eq!(v["changed"], 3);
    let watermark = v["watermark"].as_str().unwrap();
    assert!(
        watermark.ends_with('Z') && watermark.contains('T'),
        "{watermark}"
    );
    assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
    assert_eq!(s.order_items().await, 3);
    let (status, _) =
        dropsync_tests::response_json(api.handle(call("not-a-token-0123456789", "POST")).await);
    assert_eq!(status, 401);
    let (status, _) = dropsync_tests::response_json(
        api.handle(call("admin-token-0123456789abcdef", "GET"))
            .await,
    );
    assert_eq!(status, 405);
}
