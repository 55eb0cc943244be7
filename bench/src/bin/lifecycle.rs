//! End-to-end figures on the emulator and the sandboxes, through the real HTTP stack:
//! - webhook load: requests/s and p50/p99 at 32 concurrent signed deliveries, DynamoDB calls per webhook;
//! - DynamoDB cost per order over the full lifecycle (webhook -> link -> poll -> push), by operation,
//!   and the steady-state cost of a scheduled poll that finds no change; dollars per 1,000 orders;
//! - sync latency: tracking appears -> manual sync -> fulfillment in Shopify; webhook -> visible in the API.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo run --release -p dropsync-bench --bin lifecycle`
//! Sizes: LOAD_WEBHOOKS (2000), ORDERS (1000), LATENCY_ORDERS (200).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stdout
)]

use aws_lambda_events::event::sqs::SqsEvent;
use base64::Engine;
use dropsync_aliexpress::{IopClient, IopConfig, MemoryTokenStore, Tokens};
use dropsync_api::Api;
use dropsync_app::push::PushService;
use dropsync_app::queue::SqsQueue;
use dropsync_app::sync::SyncService;
use dropsync_app::webhook::WebhookService;
use dropsync_bench::counting::{Counter, OpCount, counted_client};
use dropsync_bench::{Metric, percentiles, quantile, report};
use dropsync_local::server::{Handler, serve};
use dropsync_shopify::admin::{AdminClient, AdminConfig};
use dropsync_store::Store;
use dropsync_tests::{
    aliexpress_sandbox, aws_config, create_table, sandbox_get, sandbox_post, shopify_sandbox,
    unique,
};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

// List prices, us-east-1, on-demand (DynamoDB after the Nov 2024 cut), arm64 Lambda.
const DDB_PER_MILLION_WRU: f64 = 0.625;
const DDB_PER_MILLION_RRU: f64 = 0.125;
const LAMBDA_PER_GB_S: f64 = 0.000_013_333_4;
const LAMBDA_PER_MILLION_REQ: f64 = 0.20;
const SQS_PER_MILLION: f64 = 0.40;
const HTTP_API_PER_MILLION: f64 = 1.00;
// Configured memory (template.yaml): webhook and pusher 128 MB, API and poller 256 MB.
const WEBHOOK_GB: f64 = 0.125;
const PUSHER_GB: f64 = 0.125;
const API_GB: f64 = 0.25;
const POLLER_GB: f64 = 0.25;

/// The local stack's two functions, each call timed inside the handler: what Lambda would bill.
struct Local {
    webhook: WebhookService<AdminClient>,
    api: Api<IopClient, SqsQueue>,
    webhook_ns: AtomicU64,
    api_ns: AtomicU64,
}

impl Handler for Local {
    async fn call(&self, req: lambda_http::Request) -> lambda_http::Response<lambda_http::Body> {
        let t = Instant::now();
        if req.uri().path() == "/webhooks/shopify" {
            let res = dropsync_shopify_webhook::handle_request(&self.webhook, req).await;
            self.webhook_ns
                .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            res
        } else {
            let res = self.api.handle(req).await;
            self.api_ns
                .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            res
        }
    }
}

impl Local {
    /// Handler milliseconds (webhook, API) since the last call.
    fn take_ms(&self) -> (f64, f64) {
        (
            self.webhook_ns.swap(0, Ordering::Relaxed) as f64 / 1e6,
            self.api_ns.swap(0, Ordering::Relaxed) as f64 / 1e6,
        )
    }
}

/// Adds `b / nb` to `a / na`, per operation: requests per order over two phases of different sizes.
fn per_order(
    a: &BTreeMap<String, OpCount>,
    na: f64,
    b: &BTreeMap<String, OpCount>,
    nb: f64,
) -> BTreeMap<String, (f64, f64)> {
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (ops, n) in [(a, na), (b, nb)] {
        for (op, c) in ops {
            let e = out.entry(op.clone()).or_default();
            e.0 += c.requests as f64 / n;
            e.1 += c.capacity_units / n;
        }
    }
    out
}

fn env_n(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn order_body(id: u64, line: u64, financial: &str) -> Vec<u8> {
    json!({
        "id": id, "name": format!("#{id}"), "financial_status": financial, "test": false,
        "created_at": "2026-11-25T10:00:00-05:00", "updated_at": "2026-11-25T10:00:00-05:00",
        "cancelled_at": null, "fulfillment_status": null, "currency": "USD", "total_price": "19.90",
        "customer": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
        "line_items": [{"id": line, "quantity": 1, "sku": "SKU-1", "product_id": 1, "variant_id": 2,
                        "title": "Lamp", "price": "19.90"}],
        "fulfillments": [],
    })
    .to_string()
    .into_bytes()
}

fn totals(ops: &BTreeMap<String, OpCount>) -> (u64, u64, f64, f64) {
    let (mut reads, mut writes, mut rcu, mut wcu) = (0, 0, 0.0, 0.0);
    for (op, c) in ops {
        match op.as_str() {
            "GetItem" | "Query" => {
                reads += c.requests;
                rcu += c.capacity_units;
            }
            _ => {
                writes += c.requests;
                wcu += c.capacity_units;
            }
        }
    }
    (reads, writes, rcu, wcu)
}

/// Runs the tracking queue through the pusher until it is empty for a while; returns the time
/// spent inside the pusher (what Lambda would bill) and the number of batches.
async fn drain<A: dropsync_shopify::admin::ShopifyAdmin + 'static>(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    pusher: &Arc<PushService<A>>,
    idle: Duration,
) -> (Duration, u64, u64) {
    let mut busy = Duration::ZERO;
    let (mut batches, mut sqs_requests) = (0u64, 0u64);
    let mut last = Instant::now();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap();
        sqs_requests += 1;
        let msgs = out.messages();
        if msgs.is_empty() {
            if last.elapsed() > idle {
                return (busy, batches, sqs_requests);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        last = Instant::now();
        let records: Vec<Value> = msgs
            .iter()
            .map(|m| json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(), "attributes": {}, "messageAttributes": {}}))
            .collect();
        let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
        let t = Instant::now();
        let res = dropsync_tracking_pusher::handle_batch(pusher.clone(), event).await;
        busy += t.elapsed();
        batches += 1;
        assert!(
            res.batch_item_failures.is_empty(),
            "push failures: {:?}",
            res.batch_item_failures.len()
        );
        for m in msgs {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
            sqs_requests += 1;
        }
    }
}

#[tokio::main]
async fn main() {
    let n_load = env_n("LOAD_WEBHOOKS", 2000);
    let n_orders = env_n("ORDERS", 1000);
    let n_latency = env_n("LATENCY_ORDERS", 200);
    let conf = aws_config().await;
    let counter = Counter::default();
    let ddb = counted_client(&conf, &counter);
    let table = unique("bench");
    create_table(&ddb, &table).await;
    let store = Store::new(ddb, table);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let queue_url = dropsync_tests::create_queue(&sqs, "bench-q").await;

    // Sandboxes: a shop with a generous bucket (this measures dropsync, not Shopify's limits) and an
    // AliExpress app without a rate limit.
    let shop_base = shopify_sandbox();
    let ae_base = aliexpress_sandbox();
    let shop = format!("{}.myshopify.com", unique("bench").to_lowercase());
    let load_shop = format!("{}.myshopify.com", unique("load").to_lowercase());
    // Each shop signs with its own secret, as legacy shops configured in the credentials document
    // do. A secret shared by several shops (the app's client secret, for shops connected by OAuth)
    // makes the webhook confirm an order its body does not tie to the shop: a GetItem and a Shopify
    // read more per new order, and none of the fabricated orders below would exist in Shopify.
    let token = "shpat_bench_token";
    let secret_of = |s: &str| format!("shpss_bench_secret-{s}");
    for s in [&shop, &load_shop] {
        sandbox_post(&shop_base, "/_admin/shops", json!({"shop": s, "access_token": format!("{token}-{s}"), "webhook_secret": secret_of(s), "bucket_size": 1_000_000, "restore_rate": 1_000_000})).await;
    }
    let (shop_secret, load_secret) = (secret_of(&shop), secret_of(&load_shop));
    let app_key = format!("{}", 40_000_000 + fastrand::u32(..9_000_000));
    dropsync_tests::sandbox_ae_app(
        &ae_base,
        json!({"app_key": app_key, "app_secret": "bench-secret"}),
        json!({"access_token": "bench-ae", "refresh_token": "bench-ae-r", "account": "bench", "expires_in": 86400 * 30}),
    )
    .await;
    let admin_token = "bench-admin-token-0123456789";
    let creds = dropsync_tests::credentials(json!({
        "admin_token": admin_token,
        "shops": {
            shop.as_str(): {"access_token": format!("{token}-{shop}"), "webhook_secrets": [shop_secret]},
            load_shop.as_str(): {"access_token": format!("{token}-{load_shop}"), "webhook_secrets": [load_secret]},
        },
    }));
    let admin = Arc::new(
        AdminClient::new(AdminConfig {
            base_override: Some(shop_base.clone()),
            ..AdminConfig::default()
        })
        .unwrap(),
    );
    let ae = IopClient::new(
        IopConfig {
            base_url: ae_base.clone(),
            calls_per_second: 500.0,
            max_concurrency: 16,
            ..IopConfig::new(
                app_key.clone(),
                "bench-secret",
                Tokens {
                    access_token: "bench-ae".into(),
                    refresh_token: "bench-ae-r".into(),
                    expire_time_ms: Some(dropsync_app::now_ms() + 86_400_000 * 30),
                },
            )
        },
        Arc::new(MemoryTokenStore::new()),
    )
    .unwrap();
    let queue = Arc::new(SqsQueue::new(sqs.clone(), queue_url.clone()));
    let sync = Arc::new(SyncService {
        store: store.clone(),
        ae: Arc::new(ae),
        queue,
        concurrency: 16,
    });
    let local = Arc::new(Local {
        webhook: WebhookService {
            store: store.clone(),
            credentials: creds.clone(),
            admin: Some(admin.clone()),
        },
        api: Api {
            store: store.clone(),
            credentials: creds.clone(),
            sync: Some(sync.clone()),
            place: None,
            connect: None,
            reconcile: None,
        },
        webhook_ns: AtomicU64::new(0),
        api_ns: AtomicU64::new(0),
    });
    let pusher = Arc::new(PushService {
        // As the pusher function wires it.
        store: store
            .clone()
            .caching_shops(dropsync_app::wiring::SHOP_CACHE_TTL),
        admin: admin.clone(),
        credentials: creds.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, local.clone()));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let auth = format!("Bearer {admin_token}");

    // ---- 1. Webhook load: 32 concurrent signed deliveries. -------------------------------------
    // Reference in the same run: the emulator's own throughput for bare UpdateItems at the same
    // concurrency (the ceiling any webhook doing one write can reach here).
    let plain = aws_sdk_dynamodb::Client::new(&conf);
    let ref_table = store.table().to_owned();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..32 {
        let (plain, ref_table) = (plain.clone(), ref_table.clone());
        let per = n_load / 32;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let sent = Instant::now();
                plain
                    .update_item()
                    .table_name(&ref_table)
                    .key(
                        "pk",
                        aws_sdk_dynamodb::types::AttributeValue::S(format!("REF#{w}#{i}")),
                    )
                    .key(
                        "sk",
                        aws_sdk_dynamodb::types::AttributeValue::S("REF".into()),
                    )
                    .update_expression("SET v = :v")
                    .expression_attribute_values(
                        ":v",
                        aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
                    )
                    .send()
                    .await
                    .unwrap();
                lat.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut ref_lat = Vec::new();
    for t in tasks {
        ref_lat.extend(t.await.unwrap());
    }
    let ref_n = ref_lat.len();
    let ref_rps = ref_n as f64 / started.elapsed().as_secs_f64();
    counter.reset();
    let bodies: Vec<Vec<u8>> = (0..n_load as u64)
        .map(|i| {
            order_body(
                5_000_000_000_000_000_000 + i,
                9_000_000_000_000_000_000 + i,
                "paid",
            )
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (http, bodies, next, url, load_shop, load_secret) = (
            http.clone(),
            bodies.clone(),
            next.clone(),
            format!("{base}/webhooks/shopify"),
            load_shop.clone(),
            load_secret.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t = Instant::now();
                let res = http
                    .post(&url)
                    .header("X-Shopify-Topic", "orders/create")
                    .header("X-Shopify-Shop-Domain", &load_shop)
                    .header("X-Shopify-Hmac-Sha256", sign(&load_secret, body))
                    .header("X-Shopify-Webhook-Id", format!("wh-{i}"))
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let load_wall = started.elapsed().as_secs_f64();
    let load_ops = counter.snapshot();
    let load_calls: u64 = load_ops.values().map(|c| c.requests).sum();
    // The orders' own writes: neither a read nor the tab counter's ADD. Every webhook must have
    // written its order (a 200 that wrote nothing would otherwise pass for a cheap webhook).
    let order_writes: u64 = load_ops
        .iter()
        .filter(|(op, _)| {
            !matches!(
                op.as_str(),
                "GetItem" | "Query" | "UpdateItem (tab counter)"
            )
        })
        .map(|(_, c)| c.requests)
        .sum();
    assert_eq!(
        order_writes as usize, n_load,
        "every webhook writes its order once: {load_ops:?}"
    );
    let (p50, p10, p90) = percentiles(lat.clone());
    let p99 = quantile(&lat, 0.99);
    let (rp50, rp99) = (quantile(&ref_lat, 0.5), quantile(&ref_lat, 0.99));
    let (load_handler_ms, _) = local.take_ms();
    report(
        "webhook_http",
        &format!(
            "{n_load} signed orders/create deliveries, 32 concurrent, over HTTP into the local stack (API Gateway v2 events -> the webhook handler) on the moto emulator"
        ),
        &[
            Metric::new("requests per second", n_load as f64 / load_wall, "req/s").reference(
                format!("bare UpdateItem on the emulator, 32 concurrent: {ref_rps:.0}/s"),
            ),
            Metric::new(
                "webhooks/s ÷ bare UpdateItems/s",
                n_load as f64 / load_wall / ref_rps,
                "ratio",
            ),
            Metric::new("latency p50", p50, "ms")
                .spread(format!("p10–p90 {p10:.1}–{p90:.1} ms"))
                .reference(format!("bare UpdateItem p50 {rp50:.1} ms")),
            Metric::new("latency p99", p99, "ms")
                .reference(format!("bare UpdateItem p99 {rp99:.1} ms")),
            Metric::new(
                "time inside the handler per webhook",
                load_handler_ms / n_load as f64,
                "ms",
            )
            .reference("of which the one UpdateItem waits on the emulator".into()),
            Metric::new(
                "DynamoDB calls per webhook",
                load_calls as f64 / n_load as f64,
                "calls",
            )
            .spread(
                load_ops
                    .iter()
                    .map(|(op, c)| format!("{op} {}", c.requests))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
            .reference(
                "the order's conditional write, + the shop's tab-counter ADD when the order is new or changes tab"
                    .into(),
            ),
            Metric::new(
                "DynamoDB order writes per webhook",
                order_writes as f64 / n_load as f64,
                "calls",
            )
            .goal("= 1"),
        ],
        json!({"dynamodb_by_operation": load_ops, "reference_update_item_per_s": ref_rps, "reference_update_item_p50_ms": rp50, "reference_update_item_p99_ms": rp99, "seconds": load_wall}),
    );

    // ---- 2. Full lifecycle for N orders. ---------------------------------------------------------
    let total = n_orders + n_latency;
    let mut shopify_orders: Vec<(u64, u64)> = Vec::with_capacity(total);
    {
        let mut set = tokio::task::JoinSet::new();
        let sem = Arc::new(tokio::sync::Semaphore::new(8));
        for i in 0..total {
            let (shop_base, shop, sem) = (shop_base.clone(), shop.clone(), sem.clone());
            set.spawn(async move {
                let _p = sem.acquire_owned().await.unwrap();
                let out = sandbox_post(&shop_base, "/_admin/orders", json!({"shop": shop, "order": {"name": format!("#B{i}"), "financial_status": "paid", "line_items": [{"sku": format!("SKU-{i}"), "title": "Lamp", "quantity": 1, "price": "19.90"}]}})).await;
                (i, out["order"]["id"].as_u64().unwrap(), out["order"]["line_items"][0]["id"].as_u64().unwrap())
            });
        }
        let mut got: Vec<(usize, u64, u64)> = Vec::new();
        while let Some(r) = set.join_next().await {
            got.push(r.unwrap());
        }
        got.sort();
        shopify_orders.extend(got.into_iter().map(|(_, o, l)| (o, l)));
    }
    counter.reset();
    local.take_ms();
    let mut api_requests = 0u64;
    // Webhooks, signed by the sandbox Shopify itself.
    for chunk in shopify_orders.chunks(8) {
        let mut set = tokio::task::JoinSet::new();
        for (oid, _) in chunk {
            let (shop_base, shop, url, oid) = (
                shop_base.clone(),
                shop.clone(),
                format!("{base}/webhooks/shopify"),
                *oid,
            );
            set.spawn(async move {
                let out = sandbox_post(&shop_base, "/_admin/webhooks/deliver", json!({"shop": shop, "topic": "orders/create", "order_id": oid, "target_url": url})).await;
                assert_eq!(out["deliveries"][0]["status"], 200);
            });
        }
        while set.join_next().await.is_some() {}
    }
    api_requests += total as u64;
    // AliExpress orders, linked through the API.
    let mut ae_ids = Vec::with_capacity(total);
    for (i, (oid, line)) in shopify_orders.iter().enumerate() {
        let out = sandbox_post(&ae_base, "/_admin/orders", json!({"app_key": app_key, "account": "bench", "status": "WAIT_SELLER_SEND_GOODS", "logistics_status": "WAIT_SELLER_SEND_GOODS", "items": [{"product_id": format!("{}", 1_005_000_000_000_000u64 + i as u64), "sku_id": format!("AE-{i}"), "count": 1}]})).await;
        let ae = out["order_id"].as_str().unwrap().to_owned();
        let res = http
            .put(format!("{base}/shops/{shop}/orders/{oid}/supplier-orders"))
            .header("Authorization", &auth)
            .json(&json!({"aliexpress_order_id": ae, "line_item_ids": [line.to_string()]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        api_requests += 1;
        ae_ids.push(ae);
    }
    // Phase A (webhooks + links) covered `total` orders; phase B (poll + push) the `n_orders` shipped.
    let phase_a = counter.snapshot();
    counter.reset();
    let (webhook_handler_ms, api_handler_ms) = local.take_ms();
    // The first N ship; a scheduled poll finds them and the pusher fulfils them.
    for ae in ae_ids.iter().take(n_orders) {
        sandbox_post(&ae_base, &format!("/_admin/orders/{ae}/ship"), json!({})).await;
    }
    let t = Instant::now();
    let poll = sync
        .poll(None, Instant::now() + Duration::from_secs(900))
        .await
        .unwrap();
    let poll_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(poll.pushes_queued as usize, n_orders, "{poll:?}");
    let (push_busy, batches, sqs_reqs) =
        drain(&sqs, &queue_url, &pusher, Duration::from_millis(500)).await;
    let phase_b = counter.snapshot();
    let by_op = per_order(&phase_a, total as f64, &phase_b, n_orders as f64);
    let (reads_per, writes_per, rcu_per, wcu_per) =
        by_op
            .iter()
            .fold((0.0, 0.0, 0.0, 0.0), |(r, w, rc, wc), (op, (n, c))| {
                if op == "GetItem" || op == "Query" {
                    (r + n, w, rc + c, wc)
                } else {
                    (r, w + n, rc, wc + c)
                }
            });
    let stats = sandbox_get(&shop_base, &format!("/_admin/stats?shop={shop}")).await;
    assert_eq!(
        stats["fulfillments_created"].as_u64().unwrap() as usize,
        n_orders
    );
    // Lambda, per order: the handler time measured inside each function (webhook and link per
    // order of phase A; the poll and the pusher's batches per shipped order), at each function's
    // configured memory, plus the requests.
    let (na, nb) = (total as f64, n_orders as f64);
    let lambda_gb_s_per_order = webhook_handler_ms / 1000.0 * WEBHOOK_GB / na
        + api_handler_ms / 1000.0 * API_GB / na
        + poll_ms / 1000.0 * POLLER_GB / nb
        + push_busy.as_secs_f64() * PUSHER_GB / nb;
    let lambda_requests_per_order = api_requests as f64 / na + (1.0 + batches as f64) / nb;
    // SQS: the poller's SendMessageBatch (10 a request) + the pusher's receives and deletes.
    let sqs_requests_per_order = 0.1 + sqs_reqs as f64 / nb;
    let dollars =
        |wcu: f64, rcu: f64| wcu * DDB_PER_MILLION_WRU / 1e6 + rcu * DDB_PER_MILLION_RRU / 1e6;
    let ddb_cost = dollars(wcu_per, rcu_per) * 1000.0;
    let lambda_cost = (lambda_gb_s_per_order * LAMBDA_PER_GB_S
        + lambda_requests_per_order * LAMBDA_PER_MILLION_REQ / 1e6)
        * 1000.0;
    let sqs_cost = sqs_requests_per_order * SQS_PER_MILLION / 1e6 * 1000.0;
    let apigw_cost = api_requests as f64 / na * HTTP_API_PER_MILLION / 1e6 * 1000.0;
    let op_text = by_op
        .iter()
        .map(|(op, (n, _))| format!("{op} {n:.2}"))
        .collect::<Vec<_>>()
        .join(", ");
    report(
        "dynamodb_lifecycle",
        &format!(
            "{n_orders} orders through signed orders/create webhook (delivered by the sandbox Shopify) -> link (PUT .../supplier-orders through the API) -> shipped in the sandbox AliExpress -> one scheduled poll -> the pusher draining the SQS queue on the emulator into the sandbox Shopify ({n_latency} more orders webhooked and linked, not shipped: phase A per {total} orders, phase B per {n_orders}). Every DynamoDB request counted by an SDK interceptor that sets ReturnConsumedCapacity=TOTAL (capacity as moto reports it). Lambda billed at each function's configured memory for the time measured inside its handler (moto-bound, so pessimistic); prices: DynamoDB on-demand ${DDB_PER_MILLION_WRU}/M WRU, ${DDB_PER_MILLION_RRU}/M RRU; Lambda arm64 ${LAMBDA_PER_GB_S}/GB-s + ${LAMBDA_PER_MILLION_REQ}/M requests; SQS ${SQS_PER_MILLION}/M; HTTP API ${HTTP_API_PER_MILLION}/M"
        ),
        &[
            Metric::new("DynamoDB reads per order", reads_per, "requests")
                .goal("<= 3.5")
                .spread(op_text.clone())
                .reference("design minimum 3 (link read-modify-write, poll, push)".into()),
            Metric::new("DynamoDB writes per order", writes_per, "requests").reference(
                "design minimum 4 (create, link, poll finds the package, push recorded)".into(),
            ),
            Metric::new("read capacity per order", rcu_per, "RRU"),
            Metric::new("write capacity per order", wcu_per, "WRU"),
            Metric::new("DynamoDB $ per 1,000 orders", ddb_cost, "USD"),
            Metric::new("Lambda $ per 1,000 orders", lambda_cost, "USD"),
            Metric::new("SQS $ per 1,000 orders", sqs_cost, "USD"),
            Metric::new("API Gateway $ per 1,000 orders", apigw_cost, "USD"),
            Metric::new(
                "total $ per 1,000 orders",
                ddb_cost + lambda_cost + sqs_cost + apigw_cost,
                "USD",
            )
            .goal("< 0.05"),
        ],
        json!({"dynamodb_per_order_by_operation": by_op, "phase_a": phase_a, "phase_b": phase_b, "poll": poll, "poll_ms": poll_ms, "push_busy_ms": push_busy.as_millis() as u64, "push_batches": batches, "webhook_handler_ms": webhook_handler_ms, "api_handler_ms": api_handler_ms, "lambda_gb_s_per_order": lambda_gb_s_per_order, "lambda_requests_per_order": lambda_requests_per_order, "sqs_requests_per_order": sqs_requests_per_order, "prices": {"ddb_per_million_wru": DDB_PER_MILLION_WRU, "ddb_per_million_rru": DDB_PER_MILLION_RRU, "lambda_per_gb_s": LAMBDA_PER_GB_S, "sqs_per_million": SQS_PER_MILLION, "http_api_per_million": HTTP_API_PER_MILLION}}),
    );

    // ---- 3. Steady state: a scheduled poll that finds no change. -----------------------------------
    counter.reset();
    let t = Instant::now();
    let steady = sync
        .poll(None, Instant::now() + Duration::from_secs(900))
        .await
        .unwrap();
    let steady_ms = t.elapsed().as_secs_f64() * 1000.0;
    let steady_ops = counter.snapshot();
    let (sr, sw, srcu, swcu) = totals(&steady_ops);
    let open = steady.orders.max(1) as f64;
    let steady_cost =
        (dollars(swcu, srcu) + steady_ms / 1000.0 * POLLER_GB * LAMBDA_PER_GB_S) / open * 1000.0;
    report(
        "dynamodb_steady_poll",
        &format!(
            "a scheduled poll of {} open orders (shipped, not delivered) that finds no change",
            steady.orders
        ),
        &[
            Metric::new("DynamoDB reads per order", sr as f64 / open, "requests")
                .reference("design minimum 1 (the order, to compare)".into()),
            Metric::new("DynamoDB writes per order", sw as f64 / open, "requests").goal("= 0"),
            Metric::new("$ per 1,000 orders per poll", steady_cost, "USD"),
            Metric::new("poll wall time per order", steady_ms / open, "ms"),
        ],
        json!({"dynamodb_by_operation": steady_ops, "report": steady, "read_capacity": srcu, "write_capacity": swcu}),
    );

    // ---- 4. Latency: tracking appears -> manual sync -> fulfillment in Shopify. -----------------------
    let pusher_bg = pusher.clone();
    let (sqs_bg, url_bg) = (sqs.clone(), queue_url.clone());
    tokio::spawn(async move {
        loop {
            drain(&sqs_bg, &url_bg, &pusher_bg, Duration::from_millis(50)).await;
        }
    });
    let mut sync_lat = Vec::new();
    for (i, ae) in ae_ids.iter().enumerate().skip(n_orders) {
        let (oid, _) = shopify_orders[i];
        sandbox_post(&ae_base, &format!("/_admin/orders/{ae}/ship"), json!({})).await;
        let t = Instant::now();
        let res = http
            .post(format!("{base}/shops/{shop}/orders/{oid}/sync"))
            .header("Authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        loop {
            let o = sandbox_get(&shop_base, &format!("/_admin/orders/{oid}?shop={shop}")).await;
            if o["fulfillments"].as_array().is_some_and(|f| !f.is_empty()) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no fulfillment for {oid}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sync_lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    // Webhook -> visible, with a same-run reference: the same two DynamoDB requests (UpdateItem,
    // GetItem) made directly against the emulator right after each pair of HTTP calls.
    let mut visible = Vec::new();
    let (mut post_ms, mut get_ms, mut ref_pair_ms) = (Vec::new(), Vec::new(), Vec::new());
    counter.reset();
    for i in 0..n_latency as u64 {
        let (oid, line) = (7_000_000_000_000_000_000 + i, 8_000_000_000_000_000_000 + i);
        let body = order_body(oid, line, "pending");
        let t = Instant::now();
        let res = http
            .post(format!("{base}/webhooks/shopify"))
            .header("X-Shopify-Topic", "orders/create")
            .header("X-Shopify-Shop-Domain", &shop)
            .header("X-Shopify-Hmac-Sha256", sign(&shop_secret, &body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let posted = t.elapsed();
        let res = http
            .get(format!("{base}/shops/{shop}/orders/{oid}"))
            .header("Authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let _ = res.bytes().await.unwrap();
        let total = t.elapsed();
        visible.push(total.as_secs_f64() * 1000.0);
        post_ms.push(posted.as_secs_f64() * 1000.0);
        get_ms.push((total - posted).as_secs_f64() * 1000.0);
        let key = |k: &str| aws_sdk_dynamodb::types::AttributeValue::S(format!("REFV#{i}#{k}"));
        let t = Instant::now();
        plain
            .update_item()
            .table_name(&ref_table)
            .key("pk", key("pk"))
            .key("sk", key("sk"))
            .update_expression("SET v = :v")
            .expression_attribute_values(
                ":v",
                aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
            )
            .send()
            .await
            .unwrap();
        plain
            .get_item()
            .table_name(&ref_table)
            .key("pk", key("pk"))
            .key("sk", key("sk"))
            .send()
            .await
            .unwrap();
        ref_pair_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let visible_ops = counter.snapshot();
    let visible_calls: u64 = visible_ops.values().map(|c| c.requests).sum();
    let p = |v: Vec<f64>, q: f64| quantile(&v, q);
    report(
        "sync_latency",
        &format!(
            "{n_latency} orders: tracking appears in the sandbox AliExpress -> POST .../sync -> fulfillment seen in the sandbox Shopify (pusher consuming the queue in-process); and {n_latency} webhooks -> GET the order"
        ),
        &[
            Metric::new(
                "tracking -> fulfillment p50",
                p(sync_lat.clone(), 0.5),
                "ms",
            ),
            Metric::new("tracking -> fulfillment p99", p(sync_lat, 0.99), "ms").goal("< 2000"),
            Metric::new(
                "webhook -> visible in API p50",
                p(visible.clone(), 0.5),
                "ms",
            )
            .reference(format!(
                "bare UpdateItem + GetItem on the emulator p50 {:.1} ms",
                p(ref_pair_ms.clone(), 0.5)
            )),
            Metric::new(
                "webhook -> visible in API p99",
                p(visible.clone(), 0.99),
                "ms",
            )
            .goal("< 100")
            .reference(format!(
                "bare UpdateItem + GetItem on the emulator p99 {:.1} ms",
                p(ref_pair_ms.clone(), 0.99)
            )),
            Metric::new(
                "of which the webhook POST, p50 / p99",
                p(post_ms.clone(), 0.5),
                "ms",
            )
            .spread(format!("p99 {:.1} ms", p(post_ms.clone(), 0.99))),
            Metric::new("of which the GET, p50 / p99", p(get_ms.clone(), 0.5), "ms")
                .spread(format!("p99 {:.1} ms", p(get_ms.clone(), 0.99))),
            Metric::new(
                "DynamoDB requests per webhook + GET",
                visible_calls as f64 / n_latency as f64,
                "requests",
            ),
            Metric::new(
                "webhook -> visible p99 minus the bare-emulator pair p99",
                p(visible.clone(), 0.99) - p(ref_pair_ms.clone(), 0.99),
                "ms",
            ),
        ],
        json!({"visible_ms": visible, "post_ms": post_ms, "get_ms": get_ms, "reference_pair_ms": ref_pair_ms, "dynamodb_by_operation": visible_ops}),
    );
}
