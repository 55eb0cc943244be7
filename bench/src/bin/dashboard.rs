//! The dashboard's handler time for a shop with many orders: N orders (default 10,000) seeded
//! into a fresh table through the store (70% awaiting order, 20% pending, 10% awaiting payment),
//! a session signed in through `POST /app/login`, then the orders page (the eight tab counts plus a
//! page of 50 orders), the order page and a search by order name rendered through `Api::handle`,
//! as Lambda would call it.
//!
//! Figures: the median handler time of each page (goal: under 50 ms), the DynamoDB requests each
//! page makes (counted by an SDK interceptor) and the time the handler spent waiting on them, so
//! the handler's own time (handler minus DynamoDB) is reported too: moto answers every index
//! query by walking the whole table in Python, where DynamoDB reads only the queried partition,
//! so against moto the wait on an index query grows with the table and is an upper bound.
//! The tab counts are one GetItem of the shop's counter item; the counter is created by the
//! shop's first page, before the orders arrive, as for a real shop. One more orders page is
//! timed after deleting the counter (the recount from the index a lost counter costs once).
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
use dropsync_bench::counting::{Counter, OpCount, counted_client};
use dropsync_bench::{Metric, percentiles, report};
use dropsync_domain::ops::link_supplier_order;
use dropsync_domain::{FinancialStatus, LineItem, Order, ShopDomain, ShopifyFacts};
use dropsync_store::{Store, WriteKind};
use dropsync_tests::{apigw_request, aws_config, create_table, credentials, unique};
use serde_json::json;
use std::collections::BTreeMap;
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
                sku: Some("BOTTLE-500".into()),
                title: Some("Steel bottle".into()),
                ..LineItem::new(id * 10 + 1, 2)
            },
            LineItem {
                sku: Some("TENT-2P".into()),
                title: Some("Two-person tent".into()),
                ..LineItem::new(id * 10 + 2, 1)
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

/// What rendering one page cost: handler times (ms) of each run, and the DynamoDB requests of the
/// last run by operation.
struct Timed {
    ms: Vec<f64>,
    /// Each run's handler time minus the time its DynamoDB requests took.
    own: Vec<f64>,
    ops: BTreeMap<String, OpCount>,
}

impl Timed {
    fn requests(&self) -> u64 {
        self.ops.values().map(|o| o.requests).sum()
    }

    fn ops_text(&self) -> String {
        self.ops
            .iter()
            .map(|(op, c)| format!("{op} {}", c.requests))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn time_get(
    api: &Api<IopClient, SqsQueue>,
    counter: &Counter,
    path: &str,
    cookie: &str,
    runs: usize,
) -> Timed {
    let mut ms = Vec::with_capacity(runs);
    let mut own = Vec::with_capacity(runs);
    let mut ops = BTreeMap::new();
    for _ in 0..runs {
        let req = apigw_request("GET", path, &[("cookie", cookie)], b"");
        counter.reset();
        let t = Instant::now();
        let res = api.handle(req).await;
        let elapsed = t.elapsed().as_secs_f64() * 1000.0;
        ops = counter.snapshot();
        ms.push(elapsed);
        own.push(elapsed - ops.values().map(|o| o.millis).sum::<f64>());
        assert_eq!(res.status(), 200, "{path}");
    }
    Timed { ms, own, ops }
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
    let store = Store::new(ddb, table.clone());
    let counter = Counter::default();
    let counted = Store::new(counted_client(&conf, &counter), table);
    let shop =
        ShopDomain::parse(&format!("{}.myshopify.com", unique("dash").to_lowercase())).unwrap();
    // The shop's first page, before it has orders: creates its tab counter.
    store.count_by_status(&shop).await.unwrap();

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
    let counts = store.count_by_status(&shop).await.unwrap();
    assert_eq!(
        counts,
        store.recount_by_status(&shop).await.unwrap(),
        "the counter kept by the writes equals a recount"
    );

    let api: Api<IopClient, SqsQueue> = Api {
        store: counted.clone(),
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
    time_get(&api, &counter, &detail, &cookie, 3).await; // warm the connection pool
    let list_t = time_get(&api, &counter, &list, &cookie, 7).await;
    let order_t = time_get(&api, &counter, &detail, &cookie, 20).await;
    let search_t = time_get(&api, &counter, &search, &cookie, 1).await;
    // A lost counter: the next orders page recounts from the index (once).
    store
        .client()
        .delete_item()
        .table_name(store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("SHOP#{shop}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("TABS".into()),
        )
        .send()
        .await
        .unwrap();
    let recount_t = time_get(&api, &counter, &list, &cookie, 1).await;
    let after_t = time_get(&api, &counter, &list, &cookie, 1).await;
    assert!(
        after_t.requests() < recount_t.requests(),
        "the recount was stored: the next page reads the counter again"
    );

    let page = |name: &str, t: &Timed, goal: bool| {
        let (p50, p10, p90) = percentiles(t.ms.clone());
        let mut m = Metric::new(name, p50, "ms").spread(if t.ms.len() > 1 {
            format!("p10–p90 {p10:.1}–{p90:.1} ms, {} runs", t.ms.len())
        } else {
            "1 run".to_owned()
        });
        if goal {
            m = m.goal("< 50");
        }
        m
    };
    let requests = |name: &str, t: &Timed| {
        Metric::new(name, t.requests() as f64, "requests").spread(t.ops_text())
    };
    let own = |name: &str, t: &Timed| {
        let (p50, p10, p90) = percentiles(t.own.clone());
        Metric::new(name, p50.max(0.0), "ms").spread(format!(
            "handler time minus its DynamoDB requests' time; p10–p90 {p10:.1}–{p90:.1} ms"
        ))
    };
    report(
        "dashboard",
        &format!(
            "{orders} orders in one shop (70% in Awaiting order), a signed-in session; handler time of GET /app pages through Api::handle against moto (bench/src/bin/dashboard.rs); DynamoDB requests counted by an SDK interceptor"
        ),
        &[
            page("orders page (8 tab counts + 50 orders)", &list_t, true),
            page("order page", &order_t, true),
            page("search by order name", &search_t, false),
            requests("orders page: DynamoDB requests", &list_t),
            requests("order page: DynamoDB requests", &order_t),
            requests("search: DynamoDB requests", &search_t),
            own("orders page: handler time outside DynamoDB", &list_t),
            own("order page: handler time outside DynamoDB", &order_t),
            page(
                "orders page after its counter was lost (recount from the index, once)",
                &recount_t,
                false,
            ),
            requests(
                "orders page after its counter was lost: DynamoDB requests",
                &recount_t,
            ),
        ],
        json!({"orders": orders, "seed_seconds": (seed_s * 10.0).round() / 10.0, "tab_counts": counts.iter().map(|(s, n)| (s.as_str(), n)).collect::<BTreeMap<_, _>>(),
               "orders_page_ops": list_t.ops, "order_page_ops": order_t.ops, "search_ops": search_t.ops, "recount_ops": recount_t.ops}),
    );
}
