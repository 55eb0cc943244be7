//! The scheduled poll at the AliExpress rate limit: N open orders (one supplier order each, over
//! a few shops) seeded straight into a fresh table and the AliExpress sandbox, an app limited to
//! 20 calls/s with 100 ms latency and 1 s bans, the real `IopClient` configured at 20 calls/s, and
//! one `SyncService::poll` run to completion. Nothing changed on AliExpress (the steady state),
//! so it is `order.get` only: one call per order.
//!
//! Figures: achieved calls/s as a fraction of the limit, bans per 1,000 calls, wall time against
//! the ideal (calls ÷ limit), AliExpress calls per order, DynamoDB requests per order.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo run --release -p dropsync-bench --bin poll [-- ORDERS [SHOPS]]`
//! (defaults: 5000 orders over 4 shops).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stdout
)]

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use dropsync_aliexpress::{IopClient, IopConfig, MemoryTokenStore};
use dropsync_app::queue::SqsQueue;
use dropsync_app::sync::SyncService;
use dropsync_bench::{Metric, report};
use dropsync_domain::ops::link_supplier_order;
use dropsync_domain::{FinancialStatus, LineItem, Order, ShopDomain, ShopifyFacts};
use dropsync_store::{Store, WriteKind};
use dropsync_tests::{aws_config, create_table, unique};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LIMIT: f64 = 20.0;
const LATENCY_MS: u64 = 100;

/// Counts DynamoDB requests (every attempt) by operation, from the `X-Amz-Target` header.
#[derive(Debug, Default, Clone)]
struct DdbCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl DdbCounter {
    fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for DdbCounter {
    fn name(&self) -> &'static str {
        "bench-ddb-counter"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let op = ctx
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("Other")
            .to_owned();
        *self.0.lock().unwrap().entry(op).or_default() += 1;
        Ok(())
    }
}

async fn admin(http: &reqwest::Client, base: &str, path: &str, body: Value) -> Value {
    let resp = http
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("AliExpress sandbox unreachable at {base}: {e}"));
    let status = resp.status();
    let out: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "POST {path}: {status} {out}");
    out
}

fn order_for(shop: &ShopDomain, id: u64, ae: u64) -> Order {
    let facts = ShopifyFacts {
        name: format!("#{id}"),
        created_at_ms: 1_700_000_000_000,
        updated_at_ms: 1_700_000_000_000,
        financial_status: FinancialStatus::Paid,
        cancelled: false,
        test: false,
        fulfillment_status: None,
        line_items: vec![LineItem::new(1, 1)],
        fulfillment_tracking: vec![],
    };
    let mut o = Order::from_shopify(shop.clone(), id, facts, "seed", 0);
    link_supplier_order(&mut o, ae, &[1], vec![], 0).unwrap();
    o
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--");
    let orders: u64 = args.next().map_or(5000, |a| a.parse().expect("ORDERS"));
    let shops: u64 = args.next().map_or(4, |a| a.parse().expect("SHOPS"));
    let base = std::env::var("DROPSYNC_ALIEXPRESS_SANDBOX")
        .expect("DROPSYNC_ALIEXPRESS_SANDBOX: run through tests/tools/services.py")
        .trim_end_matches('/')
        .to_owned();
    let http = reqwest::Client::new();

    // The app: 20 calls/s, 100 ms latency, 1 s bans; no injected faults.
    let app_key = format!("9{:09}", fastrand::u32(..1_000_000_000));
    let secret = format!("secret-{app_key}");
    let account = format!("buyer-{app_key}");
    let tokens = dropsync_tests::sandbox_ae_app(
        &base,
        json!({"app_key": app_key, "app_secret": secret, "calls_per_second": LIMIT,
               "latency_ms": LATENCY_MS, "ban_seconds": 1}),
        json!({"account": account}),
    )
    .await;

    // A fresh table whose every request is counted, and a tracking queue.
    let conf = aws_config().await;
    let counter = DdbCounter::default();
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&conf)
            .interceptor(counter.clone())
            .build(),
    );
    let table = unique("bench-poll");
    create_table(&ddb, &table).await;
    let store = Store::new(ddb, table);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let queue_url = dropsync_tests::create_queue(&sqs, "bench-poll-tracking").await;

    // Seed: one AliExpress order (placed, unpaid) and one dropsync order per order, 32 at once.
    let seed_started = Instant::now();
    let shop_names: Vec<ShopDomain> = (0..shops.max(1))
        .map(|i| ShopDomain::parse(&format!("bench-poll-{i}.myshopify.com")).unwrap())
        .collect();
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..orders {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (http, base, store) = (http.clone(), base.clone(), store.clone());
        let (app_key, account) = (app_key.clone(), account.clone());
        let shop = shop_names[(i % shop_names.len() as u64) as usize].clone();
        set.spawn(async move {
            let _permit = permit;
            let out = admin(
                &http,
                &base,
                "/_admin/orders",
                json!({"app_key": app_key, "account": account, "status": "PLACE_ORDER_SUCCESS",
                       "items": [{"product_id": "1005006123456789", "sku_id": "12000037000000001",
                                  "count": 1, "title": "Steel bottle", "price": "7.50"}]}),
            )
            .await;
            let ae: u64 = out["order_id"].as_str().unwrap().parse().unwrap();
            store
                .put_order(
                    &order_for(&shop, 1_000_000 + i, ae),
                    None,
                    WriteKind::Automatic,
                )
                .await
                .unwrap();
        });
        while set.try_join_next().is_some() {}
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let seed_secs = seed_started.elapsed().as_secs_f64();
    eprintln!("seeded {orders} orders over {shops} shops in {seed_secs:.1} s");
    admin(
        &http,
        &base,
        &format!("/_admin/stats/reset?app_key={app_key}"),
        json!({}),
    )
    .await;
    counter.take();

    // The client at the app's limit, shared by every order of the poll.
    let mut config = IopConfig::new(&app_key, &secret, tokens);
    config.base_url = base.clone();
    config.calls_per_second = LIMIT;
    config.max_concurrency = 8;
    let client = Arc::new(IopClient::new(config, Arc::new(MemoryTokenStore::new())).unwrap());
    let svc = Arc::new(SyncService {
        store,
        ae: client.clone(),
        queue: Arc::new(SqsQueue::new(sqs, queue_url)),
        concurrency: 16,
    });

    let started = Instant::now();
    let report_ = svc
        .poll(None, Instant::now() + Duration::from_secs(24 * 3600))
        .await
        .unwrap();
    let wall = started.elapsed().as_secs_f64();
    let ddb_ops = counter.take();
    let stats: Value = http
        .get(format!("{base}/_admin/stats?app_key={app_key}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_stats = client.stats();

    assert_eq!(report_.orders, orders, "{report_:?}");
    assert_eq!(report_.errors, 0, "{report_:?}");
    let n = |k: &str| stats[k].as_u64().unwrap_or(0) as f64;
    let accepted = n("accepted_calls");
    let total = n("total_calls");
    let bans = n("bans_started");
    let achieved = accepted / wall;
    let ideal = accepted / LIMIT;
    let reads = ["GetItem", "Query", "BatchGetItem"]
        .iter()
        .map(|k| ddb_ops.get(*k).copied().unwrap_or(0))
        .sum::<u64>() as f64;
    let writes = ["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"]
        .iter()
        .map(|k| ddb_ops.get(*k).copied().unwrap_or(0))
        .sum::<u64>() as f64;
    let per_order = |x: f64| x / orders.max(1) as f64;

    report(
        "poll",
        &format!(
            "{orders} open orders over {shops} shops (one supplier order each, nothing changed on \
             AliExpress), AliExpress sandbox app at {LIMIT} calls/s with {LATENCY_MS} ms latency \
             and 1 s bans, IopClient at {LIMIT} calls/s, SyncService::poll (concurrency 16) run \
             once to completion against moto"
        ),
        &[
            Metric::new("achieved calls/s ÷ limit", achieved / LIMIT, "ratio")
                .goal(">= 0.9")
                .reference(format!("{achieved:.2} calls/s against {LIMIT} calls/s")),
            Metric::new(
                "bans per 1,000 calls",
                bans * 1000.0 / total.max(1.0),
                "bans",
            )
            .goal("<= 1")
            .spread(format!(
                "{bans} bans, {} ApiCallLimit answers in {total} calls",
                n("api_call_limit_responses")
            )),
            Metric::new(
                "wall time ÷ ideal (calls ÷ limit)",
                wall / ideal.max(0.001),
                "ratio",
            )
            .goal("<= 1.15")
            .reference(format!("{wall:.1} s against {ideal:.1} s ideal")),
            Metric::new("AliExpress calls per order", per_order(total), "calls")
                .reference("minimum 1 (aliexpress.trade.ds.order.get)".into()),
            Metric::new("DynamoDB reads per order", per_order(reads), "requests"),
            Metric::new("DynamoDB writes per order", per_order(writes), "requests"),
            Metric::new("wall time", wall, "s"),
        ],
        json!({
            "orders": orders,
            "shops": shops,
            "accepted_calls": accepted,
            "total_calls": total,
            "api_call_limit_responses": n("api_call_limit_responses"),
            "bans_started": bans,
            "max_accepted_calls_in_any_1s": n("max_accepted_calls_in_any_1s"),
            "achieved_calls_per_second": achieved,
            "ideal_seconds": ideal,
            "wall_seconds": wall,
            "client": {"calls": client_stats.calls, "rate_limited": client_stats.rate_limited,
                       "retries": client_stats.retries},
            "dynamodb_requests": ddb_ops,
            "poll": report_,
            "seed_seconds": seed_secs,
        }),
    );
}
