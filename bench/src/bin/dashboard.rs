//! The dashboard's handler time for a shop with many orders: N orders (default 10,000) seeded
//! straight into a fresh table (70% awaiting order, 20% pending, 10% awaiting payment), a session
//! signed in through `POST /app/login`, then the orders page (the eight tab counts plus a page of
//! 50 orders) and the order page rendered through `Api::handle`, as Lambda would call it.
//!
//! Figures: the median handler time of each page (goal: under 50 ms), and of a search by order
//! name (informational: it reads the shop's tabs with a filter, there is no index by name).
//! Against moto the figures are an upper bound, and a loose one for the orders page: moto answers
//! every index query by walking the whole table in Python (measured: ~18 s for the orders page of
//! 10,000 orders, ~19 ms for the order page), where DynamoDB reads only the queried partition.
//! The orders page's DynamoDB work is one GetItem (the session), eight COUNT queries run at once on
//! the keys-only gsi4 (7,000 keys ≈ 1 MB: one or two pages for the largest tab), the shop record
//! and one 50-item page of gsi2.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo run --release -p dropsync-bench --bin dashboard [-- ORDERS]`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stdout
)]

use dropsync_aliexpress::IopClient;
use dropsync_api::Api;
use dropsync_app::queue::SqsQueue;
use dropsync_bench::{Metric, percentiles, report};
use dropsync_domain::ops::link_supplier_order;
use dropsync_domain::{FinancialStatus, LineItem, Order, ShopDomain, ShopifyFacts};
use dropsync_store::{Store, WriteKind};
use dropsync_tests::{apigw_request, aws_config, create_table, credentials, unique};
use serde_json::json;
use std::time::Instant;

const ADMIN: &str = "bench-admin-token-0123456789";

fn order(shop: &ShopDomain, id: u64) -> Order {
    let paid = id % 10 >= 2;
    let facts = ShopifyFacts {
        name: format!("#{}", 1000 + id),
        created_at_ms: 1_700_000_000_000 + i64::try_from(id).unwrap() * 60_000,
        updated_at_ms: 1_700_000_000_000,
        financial_status: if paid {
            FinancialStatus::Paid
        } else {
            FinancialStatus::Pending
        },
        cancelled: false,
        test: false,
        fulfillment_status: None,
        line_items: vec![
            LineItem {
                id: id * 10 + 1,
                quantity: 2,
                sku: Some("BOTTLE-500".into()),
                product_id: None,
                variant_id: None,
                title: Some("Steel bottle".into()),
                fulfilled_quantity: 0,
            },
            LineItem {
                id: id * 10 + 2,
                quantity: 1,
                sku: Some("TENT-2P".into()),
                product_id: None,
                variant_id: None,
                title: Some("Two-person tent".into()),
                fulfilled_quantity: 0,
            },
        ],
        fulfillment_tracking: vec![],
    };
    let mut o = Order::from_shopify(shop.clone(), id, facts, "seed", 0);
    if id % 10 == 9 {
        link_supplier_order(
            &mut o,
            8_000_000_000 + id,
            &[id * 10 + 1, id * 10 + 2],
            vec![],
            0,
        )
        .unwrap();
    }
    o
}

async fn time_get(
    api: &Api<IopClient, SqsQueue>,
    path: &str,
    cookie: &str,
    runs: usize,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(runs);
    for _ in 0..runs {
        let req = apigw_request("GET", path, &[("cookie", cookie)], b"");
        let t = Instant::now();
        let res = api.handle(req).await;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(res.status(), 200, "{path}");
    }
    out
}

#[tokio::main]
async fn main() {
    let orders: u64 = std::env::args()
        .skip(1)
        .find(|a| a != "--")
        .map_or(10_000, |a| a.parse().expect("ORDERS"));
    let conf = aws_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let table = unique("bench-dash");
    create_table(&ddb, &table).await;
    let store = Store::new(ddb, table);
    let shop =
        ShopDomain::parse(&format!("{}.myshopify.com", unique("dash").to_lowercase())).unwrap();

    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..16u64 {
        let (store, shop) = (store.clone(), shop.clone());
        tasks.spawn(async move {
            let mut id = worker + 1;
            while id <= orders {
                store
                    .put_order(&order(&shop, id), None, WriteKind::Automatic)
                    .await
                    .unwrap();
                id += 16;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let seed_s = t.elapsed().as_secs_f64();

    let api: Api<IopClient, SqsQueue> = Api {
        store: store.clone(),
        credentials: credentials(json!({
            "admin_token": ADMIN,
            "shops": {shop.as_str(): {"access_token": "shpat_bench", "webhook_secrets": ["whsec_bench"]}},
        })),
        sync: None,
        place: None,
        connect: None,
        reconcile: None,
    };
    let res = api
        .handle(apigw_request(
            "POST",
            "/app/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            format!("token={ADMIN}").as_bytes(),
        ))
        .await;
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    let list = format!("/app/shops/{shop}/orders?tab=awaiting_order");
    let detail = format!("/app/shops/{shop}/orders/{}", orders / 2);
    let search = format!("/app/shops/{shop}/orders?q=%23{}", 1000 + orders / 2);
    time_get(&api, &detail, &cookie, 3).await; // warm the connection pool
    let (list_p50, list_p10, list_p90) = percentiles(time_get(&api, &list, &cookie, 5).await);
    let (order_p50, order_p10, order_p90) = percentiles(time_get(&api, &detail, &cookie, 20).await);
    let (search_p50, _, _) = percentiles(time_get(&api, &search, &cookie, 1).await);
    report(
        "dashboard",
        &format!(
            "{orders} orders in one shop (70% in Awaiting order), a signed-in session; handler time of GET /app pages through Api::handle against moto"
        ),
        &[
            Metric::new("orders page (8 tab counts + 50 orders)", list_p50, "ms")
                .goal("<= 50")
                .spread(format!("p10–p90 {list_p10:.1}–{list_p90:.1} ms")),
            Metric::new("order page", order_p50, "ms")
                .goal("<= 50")
                .spread(format!("p10–p90 {order_p10:.1}–{order_p90:.1} ms")),
            Metric::new("search by order name", search_p50, "ms"),
        ],
        json!({"orders": orders, "seed_seconds": (seed_s * 10.0).round() / 10.0}),
    );
}
