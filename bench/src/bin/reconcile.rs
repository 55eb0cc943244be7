//! Reconciliation's throughput and Shopify cost: RECONCILE_ORDERS (1000) orders in one sandbox
//! shop (its real GraphQL cost calculator and a standard 1,000-point bucket restoring 100
//! points/s), reconciled twice by the real `ReconcileService` against the emulator:
//!
//! - **recovered**: dropsync holds none of them (every webhook lost): each is listed, fetched in
//!   full and applied;
//! - **in sync**: dropsync holds every one (the watermark reset to the start): each is listed
//!   and compared, nothing is fetched or written.
//!
//! Prints orders/s and the Shopify cost points (the sandbox's `actualQueryCost` total) per 1,000
//! orders for each, and the extra cost of one recovered order.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo run --release -p dropsync-bench --bin reconcile`
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::expect_used)]

use aws_sdk_dynamodb::types::AttributeValue;
use dropsync_app::reconcile::{ReconcileReport, ReconcileService};
use dropsync_bench::{Metric, report};
use dropsync_domain::ShopDomain;
use dropsync_shopify::admin::{AdminClient, AdminConfig};
use dropsync_tests::{
    credentials, fresh_store, sandbox_get, sandbox_post, shopify_sandbox, unique,
};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_n(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn cost(shop: &str) -> f64 {
    let st = sandbox_get(&shopify_sandbox(), &format!("/_admin/stats?shop={shop}")).await;
    st.get("actual_cost_total")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.0)
}

/// Runs until one run reads the listing to its end (a throttled run stops and the next
/// resumes from the watermark, as the schedule would); returns the summed report, the runs and
/// the seconds.
async fn reconcile(
    svc: &ReconcileService<AdminClient>,
    shop: &ShopDomain,
) -> (ReconcileReport, u32, f64) {
    let started = Instant::now();
    let mut total = ReconcileReport {
        checked: 0,
        changed: 0,
        missed: 0,
        watermark_ms: 0,
        complete: false,
    };
    let mut runs = 0;
    while !total.complete && runs < 100 {
        runs += 1;
        match svc
            .reconcile_shop(shop, Instant::now() + Duration::from_secs(600))
            .await
        {
            Ok(r) => {
                total.checked += r.checked;
                total.changed += r.changed;
                total.missed += r.missed;
                total.watermark_ms = r.watermark_ms;
                total.complete = r.complete;
            }
            Err(e) => eprintln!("run {runs}: {e}"),
        }
    }
    (total, runs, started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let orders = env_n("RECONCILE_ORDERS", 1000) as usize;
    let store = fresh_store().await;
    let shop = format!("{}.myshopify.com", unique("recbench"));
    let token = unique("shpat_recbench_");
    sandbox_post(
        &shopify_sandbox(),
        "/_admin/shops",
        json!({"shop": shop, "access_token": token}),
    )
    .await;
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..orders {
        let (shop, sem) = (shop.clone(), sem.clone());
        set.spawn(async move {
            let _p = sem.acquire_owned().await.unwrap();
            sandbox_post(&shopify_sandbox(), "/_admin/orders", json!({"shop": shop, "order": {
                "name": format!("#R{i}"), "financial_status": "paid",
                "line_items": [{"sku": format!("SKU-{i}-a"), "title": "Mug", "quantity": 1, "price": "9.50"},
                               {"sku": format!("SKU-{i}-b"), "title": "Cup", "quantity": 2, "price": "4.00"}]}}))
            .await;
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let creds = credentials(json!({"admin_token": "admin-token-0123456789abcdef",
        "shops": {shop.clone(): {"access_token": token, "webhook_secrets": ["s"]}}}));
    let svc = ReconcileService {
        store: store.clone(),
        credentials: creds,
        admin: Arc::new(
            AdminClient::new(AdminConfig {
                base_override: Some(shopify_sandbox()),
                ..AdminConfig::default()
            })
            .unwrap(),
        ),
        lookback_ms: dropsync_app::reconcile::DEFAULT_LOOKBACK_MS,
    };
    let domain = ShopDomain::parse(&shop).unwrap();

    let c0 = cost(&shop).await;
    let (recovered, recovered_runs, recovered_s) = reconcile(&svc, &domain).await;
    let c1 = cost(&shop).await;
    // Back to the start: dropsync now holds every order at Shopify's version.
    store
        .client()
        .delete_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(format!("SHOP#{shop}")))
        .key("sk", AttributeValue::S("RECONCILE".into()))
        .send()
        .await
        .unwrap();
    let (in_sync, in_sync_runs, in_sync_s) = reconcile(&svc, &domain).await;
    let c2 = cost(&shop).await;

    let per_k = |points: f64| points * 1000.0 / orders as f64;
    let recovered_points = c1 - c0;
    let in_sync_points = c2 - c1;
    let ok = recovered.missed == orders as u64
        && recovered.changed == orders as u64
        && in_sync.changed == 0
        && in_sync.checked >= orders as u64;
    let metrics = vec![
        Metric::new("orders", orders as f64, "orders"),
        Metric::new(
            "in sync: orders/s",
            in_sync.checked as f64 / in_sync_s,
            "orders/s",
        ),
        Metric::new(
            "in sync: Shopify cost per 1,000 orders",
            per_k(in_sync_points),
            "points",
        ),
        Metric::new(
            "recovered: orders/s",
            recovered.changed as f64 / recovered_s,
            "orders/s",
        ),
        Metric::new(
            "recovered: Shopify cost per 1,000 orders",
            per_k(recovered_points),
            "points",
        ),
        Metric::new(
            "extra cost of one recovered order",
            (recovered_points - in_sync_points) / orders as f64,
            "points",
        ),
        Metric::new(
            "recovered with no duplicate and nothing left",
            if ok { 1.0 } else { 0.0 },
            "bool",
        )
        .goal("= 1"),
    ];
    report(
        "reconcile",
        &format!(
            "{orders} orders of one sandbox shop (1,000-point bucket, 100 points/s) reconciled by the real service against the emulator: first with none held (every webhook lost), then with all held (watermark reset)"
        ),
        &metrics,
        json!({
            "recovered": {"report": recovered, "runs": recovered_runs, "seconds": recovered_s, "points": recovered_points},
            "in_sync": {"report": in_sync, "runs": in_sync_runs, "seconds": in_sync_s, "points": in_sync_points},
        }),
    );
    if !ok {
        std::process::exit(1);
    }
}
