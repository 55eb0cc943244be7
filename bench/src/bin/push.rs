//! The tracking pusher under load: N packages over S shops against the sandbox Shopify, each shop
//! with Shopify's Standard bucket (1,000 points, restoring 100 per second).
//!
//! Orders are seeded in the sandbox (one line, one FO each) and in the table (Shopify facts,
//! a linked AliExpress order, a tracking line found by the poller: one pending package each, built
//! with the domain's own operations). The push messages go onto an SQS queue on the emulator with
//! the poller's own sender; then K "Lambda instances" — each with its own clients, built as at
//! cold start — long-poll batches of 10 and run them through the pusher's batch handler, deleting
//! what succeeded and letting the reported failures come back after 1 s (the real queue waits its
//! visibility timeout). At the end every package must be in exactly one fulfillment.
//!
//! Reported: fulfillments per second against what the shops' buckets allow for the documents
//! used; GraphQL calls and cost per fulfillment; throttled answers (sandbox stats).
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo run --release -p dropsync-bench --bin push`
//! Options: `--packages N` (2000), `--shops S` (4), `--instances K` (5, Lambda's initial SQS
//! concurrency), `--seed-concurrency C` (16), `--backlog B` (200: messages the feeder keeps queued
//! ahead of the acknowledged ones).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use dropsync_app::Credentials;
use dropsync_app::push::{BatchMessage, PushService, push_batch};
use dropsync_app::queue::{PushMessage, SqsQueue, TrackingQueue};
use dropsync_bench::{Metric, percentiles, report};
use dropsync_domain::ops::{
    AeObservation, AeTrackingLine, apply_ae_observation, link_supplier_order,
};
use dropsync_domain::{Order, OrderStatus, ShopDomain, ShopSettings};
use dropsync_shopify::admin::{AdminClient, AdminConfig, documents};
use dropsync_store::{Store, WriteKind};
use dropsync_tests::{aws_config, facts, fresh_store};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

const BUCKET: f64 = 1000.0;
const RESTORE: f64 = 100.0;
/// How long the run may take before it is declared stuck.
const RUN_LIMIT: Duration = Duration::from_secs(1800);

struct Args {
    packages: usize,
    shops: usize,
    instances: usize,
    seed_concurrency: usize,
    backlog: usize,
}

fn args() -> Args {
    let mut a = Args {
        packages: 2000,
        shops: 4,
        instances: 5,
        seed_concurrency: 16,
        backlog: 200,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = || -> usize {
            argv.get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{} needs a number", argv[i]))
        };
        match argv[i].as_str() {
            "--packages" => a.packages = value(),
            "--shops" => a.shops = value(),
            "--instances" => a.instances = value(),
            "--seed-concurrency" => a.seed_concurrency = value(),
            "--backlog" => a.backlog = value(),
            other => panic!(
                "unknown argument {other}: --packages N --shops S --instances K --seed-concurrency C --backlog B"
            ),
        }
        i += 2;
    }
    assert!(
        a.packages > 0 && a.shops > 0 && a.instances > 0 && a.seed_concurrency > 0 && a.backlog > 0
    );
    a
}

fn sandbox() -> String {
    std::env::var("DROPSYNC_SHOPIFY_SANDBOX")
        .map(|s| s.trim_end_matches('/').to_owned())
        .unwrap_or_else(|_| {
            panic!(
                "DROPSYNC_SHOPIFY_SANDBOX is not set: run through `.venv/bin/python \
                 tests/tools/services.py -- cargo run --release -p dropsync-bench --bin push`"
            )
        })
}

async fn sandbox_call(
    http: &reqwest::Client,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = http.request(method, format!("{}/_admin{path}", sandbox()));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("the sandbox answers");
    let status = resp.status();
    let out: Value = resp.json().await.expect("JSON from the sandbox");
    assert!(status.is_success(), "{path}: {status} {out}");
    out
}

#[derive(Debug, Clone)]
struct Shop {
    domain: ShopDomain,
    token: String,
}

#[derive(Debug, Clone, Copy)]
struct Seeded {
    shop: usize,
    order_id: u64,
    ae: u64,
    line: u64,
}

fn tracking_number(n: usize) -> String {
    format!("YT26{n:014}")
}

/// One order in the sandbox and the table, its package pending.
async fn seed_one(http: &reqwest::Client, store: &Store, shops: &[Shop], n: usize) -> Seeded {
    let shop_ix = n % shops.len();
    let shop = &shops[shop_ix];
    // Above 2^53, distinct.
    let order_id = 9_007_199_254_740_993 + (n as u64) * 4;
    let line = order_id + 2;
    let ae = 8_000_000_000_000_000 + n as u64;
    sandbox_call(
        http,
        reqwest::Method::POST,
        "/orders",
        Some(json!({"shop": shop.domain.as_str(),
            "order": {"id": order_id, "name": format!("#{}", 1000 + n), "financial_status": "paid",
                      "line_items": [{"id": line, "sku": format!("SKU-{line}"), "title": "Lamp",
                                      "quantity": 1, "price": "19.90"}]}})),
    )
    .await;

    let now = dropsync_app::now_ms();
    let mut order = Order::from_shopify(
        shop.domain.clone(),
        order_id,
        facts("paid", now, &[(line, 1)]),
        "orders/create",
        now,
    );
    link_supplier_order(&mut order, ae, &[line], vec![], now).unwrap();
    let obs = AeObservation {
        order_status: "WAIT_BUYER_ACCEPT_GOODS".into(),
        logistics_status: Some("SELLER_SEND_GOODS".into()),
        children: vec![],
        tracking: Some(vec![AeTrackingLine {
            mail_no: tracking_number(n),
            carrier_name: Some("YunExpress".into()),
            items: vec![],
        }]),
    };
    apply_ae_observation(&mut order, ae, &obs, now).unwrap();
    assert_eq!(order.status, OrderStatus::AwaitingFulfillment);
    assert_eq!(order.due_pushes().len(), 1);
    store
        .put_order(&order, None, WriteKind::Automatic)
        .await
        .unwrap();
    Seeded {
        shop: shop_ix,
        order_id,
        ae,
        line,
    }
}

fn acked(done: &Mutex<HashSet<String>>) -> usize {
    done.lock().unwrap().len()
}

/// What one "Lambda instance" did.
#[derive(Debug, Default)]
struct InstanceReport {
    batches: usize,
    batch_ms: Vec<f64>,
    retried: usize,
    stale_handles: usize,
    admin_requests: u64,
    admin_throttled: u64,
}

#[allow(clippy::too_many_arguments)]
async fn instance(
    sqs: aws_sdk_sqs::Client,
    url: String,
    store: Store,
    credentials: Arc<Credentials>,
    done: Arc<Mutex<HashSet<String>>>,
    total: usize,
    deadline: Instant,
) -> InstanceReport {
    // Cold start: this instance's own clients (its own connection pool and bucket estimate).
    let admin = Arc::new(
        AdminClient::new(AdminConfig {
            base_override: Some(sandbox()),
            ..AdminConfig::default()
        })
        .unwrap(),
    );
    let svc = Arc::new(PushService {
        store,
        admin: admin.clone(),
        credentials,
    });
    let mut rep = InstanceReport::default();
    while acked(&done) < total && Instant::now() < deadline {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        let msgs = out.messages();
        if msgs.is_empty() {
            continue;
        }
        let batch: Vec<BatchMessage> = msgs
            .iter()
            .map(|m| BatchMessage {
                id: m.message_id().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
            })
            .collect();
        let started = Instant::now();
        let failed = push_batch(svc.clone(), batch).await;
        rep.batch_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        rep.batches += 1;
        rep.retried += failed.len();
        let mut deletes = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let id = m.message_id().unwrap_or_default();
            let receipt = m.receipt_handle().unwrap_or_default();
            if failed.iter().any(|f| f == id) {
                // Back after 1 s (the real queue: its visibility timeout).
                // A handle that expired meanwhile (the batch outlived the visibility timeout):
                // the message is already back, which is what this asks for.
                if sqs
                    .change_message_visibility()
                    .queue_url(&url)
                    .receipt_handle(receipt)
                    .visibility_timeout(1)
                    .send()
                    .await
                    .is_err()
                {
                    rep.stale_handles += 1;
                }
            } else {
                deletes.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .unwrap(),
                );
            }
        }
        if !deletes.is_empty() {
            let out = sqs
                .delete_message_batch()
                .queue_url(&url)
                .set_entries(Some(deletes))
                .send()
                .await
                .expect("delete");
            // A failed delete: the handle expired and the message is back (it will be skipped
            // as already pushed when it comes round).
            rep.stale_handles += out.failed().len();
            let failed_ix: Vec<&str> = out.failed().iter().map(|f| f.id()).collect();
            let mut set = done.lock().unwrap();
            for (i, m) in msgs.iter().enumerate() {
                let id = m.message_id().unwrap_or_default();
                if !failed.iter().any(|f| f == id) && !failed_ix.contains(&i.to_string().as_str()) {
                    set.insert(id.to_owned());
                }
            }
        }
    }
    let stats = admin.stats();
    rep.admin_requests = stats.requests;
    rep.admin_throttled = stats.throttled;
    rep
}

#[tokio::main]
async fn main() {
    let a = args();
    let http = reqwest::Client::new();
    let store = fresh_store().await;
    let conf = aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);

    // Shops: the Standard bucket, no faults.
    let mut shops = Vec::new();
    for s in 0..a.shops {
        let n = fastrand::u64(..);
        let shop = Shop {
            domain: ShopDomain::parse(&format!("bench-push-{s}-{n:x}.myshopify.com")).unwrap(),
            token: format!("shpat_bench_{s}_{n:x}"),
        };
        sandbox_call(
            &http,
            reqwest::Method::POST,
            "/shops",
            Some(
                json!({"shop": shop.domain.as_str(), "access_token": shop.token,
                        "bucket_size": BUCKET, "restore_rate": RESTORE, "faults": {}}),
            ),
        )
        .await;
        store
            .put_settings(
                &shop.domain,
                &ShopSettings {
                    notify_customer: true,
                    ..ShopSettings::default()
                },
            )
            .await
            .unwrap();
        shops.push(shop);
    }
    let shops_json: serde_json::Map<String, Value> = shops
        .iter()
        .map(|s| {
            (
                s.domain.to_string(),
                json!({"access_token": s.token, "webhook_secrets": ["shpss_bench"]}),
            )
        })
        .collect();
    let credentials = Arc::new(
        Credentials::parse(
            json!({"admin_token": "admin-token-for-the-push-bench", "shops": shops_json})
                .to_string()
                .as_bytes(),
        )
        .unwrap(),
    );

    // Seed.
    let seed_started = Instant::now();
    let gate = Arc::new(Semaphore::new(a.seed_concurrency));
    let shops = Arc::new(shops);
    let mut tasks = Vec::new();
    for n in 0..a.packages {
        let (http, store, shops, gate) = (http.clone(), store.clone(), shops.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            seed_one(&http, &store, &shops, n).await
        }));
    }
    let mut seeded = Vec::with_capacity(a.packages);
    for t in tasks {
        seeded.push(t.await.unwrap());
    }
    let seed_secs = seed_started.elapsed().as_secs_f64();
    eprintln!(
        "push bench: seeded {} orders over {} shops in {seed_secs:.1} s",
        a.packages, a.shops
    );

    // The queue, filled by the poller's sender.
    let url = dropsync_tests::create_queue_with_visibility(&sqs, "bench-tracking", 60).await;
    let queue = SqsQueue::new(sqs.clone(), url.clone());
    let messages: Vec<PushMessage> = seeded
        .iter()
        .enumerate()
        .map(|(n, s)| {
            PushMessage::new(&shops[s.shop].domain, s.order_id, s.ae, &tracking_number(n))
        })
        .collect();
    for s in shops.iter() {
        sandbox_call(
            &http,
            reqwest::Method::POST,
            &format!("/stats/reset?shop={}", s.domain.as_str()),
            None,
        )
        .await;
        // Reconfiguring starts the bucket full.
        sandbox_call(
            &http,
            reqwest::Method::POST,
            "/shops",
            Some(
                json!({"shop": s.domain.as_str(), "bucket_size": BUCKET, "restore_rate": RESTORE}),
            ),
        )
        .await;
    }

    // Run.
    let done = Arc::new(Mutex::new(HashSet::new()));
    let started = Instant::now();
    let deadline = started + RUN_LIMIT;
    // The poller's sender feeds the queue, keeping at most `backlog` messages ahead of what the
    // pushers acknowledged: the emulator's SQS slows down with a deep queue (each receive walks
    // it), which would measure the emulator rather than the pusher.
    let feeder = {
        let done = done.clone();
        let backlog = a.backlog;
        tokio::spawn(async move {
            let mut sent = 0usize;
            for chunk in messages.chunks(50) {
                while sent >= acked(&done) + backlog {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                queue.send(chunk).await.unwrap();
                sent += chunk.len();
            }
        })
    };
    let runs: Vec<_> = (0..a.instances)
        .map(|_| {
            tokio::spawn(instance(
                sqs.clone(),
                url.clone(),
                store.clone(),
                credentials.clone(),
                done.clone(),
                a.packages,
                deadline,
            ))
        })
        .collect();
    let monitor = {
        let (http, shops, done, total) = (http.clone(), shops.clone(), done.clone(), a.packages);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let mut throttled = 0;
                let mut requests = 0;
                for s in shops.iter() {
                    let st = sandbox_call(
                        &http,
                        reqwest::Method::GET,
                        &format!("/stats?shop={}", s.domain.as_str()),
                        None,
                    )
                    .await;
                    throttled += st["throttled"].as_u64().unwrap_or(0);
                    requests += st["requests"].as_u64().unwrap_or(0);
                }
                eprintln!(
                    "push bench: {:>5.0} s  {}/{total} acknowledged  {requests} GraphQL requests, {throttled} throttled",
                    started.elapsed().as_secs_f64(),
                    acked(&done),
                );
            }
        })
    };
    let mut reports = Vec::new();
    for r in runs {
        reports.push(r.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    monitor.abort();
    feeder.await.unwrap();
    assert_eq!(
        acked(&done),
        a.packages,
        "not every message was acknowledged within {RUN_LIMIT:?}"
    );

    // Sandbox figures.
    let mut requests = 0u64;
    let mut graphql_ok = 0u64;
    let mut throttled = 0u64;
    let mut http_429 = 0u64;
    let mut requested = 0u64;
    let mut actual = 0u64;
    let mut created = 0u64;
    let mut docs: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for s in shops.iter() {
        let st = sandbox_call(
            &http,
            reqwest::Method::GET,
            &format!("/stats?shop={}", s.domain.as_str()),
            None,
        )
        .await;
        let n = |k: &str| st[k].as_u64().unwrap_or(0);
        requests += n("requests");
        graphql_ok += n("graphql_ok");
        throttled += n("throttled");
        http_429 += n("http_429");
        requested += n("requested_cost_total");
        actual += n("actual_cost_total");
        created += n("fulfillments_created");
        for (k, v) in st["documents"].as_object().into_iter().flatten() {
            *docs.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
        }
    }

    // Exactly one fulfillment per package, with its number, and every package recorded pushed.
    let verify_gate = Arc::new(Semaphore::new(a.seed_concurrency));
    let mut checks = Vec::new();
    for (n, s) in seeded.iter().copied().enumerate() {
        let (http, store, shops, gate) = (
            http.clone(),
            store.clone(),
            shops.clone(),
            verify_gate.clone(),
        );
        checks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let shop = &shops[s.shop];
            let sb = sandbox_call(
                &http,
                reqwest::Method::GET,
                &format!("/orders/{}?shop={}", s.order_id, shop.domain.as_str()),
                None,
            )
            .await;
            let fs = sb["fulfillments"].as_array().cloned().unwrap_or_default();
            let one = fs.len() == 1
                && fs[0]["tracking"]["number"] == tracking_number(n).as_str()
                && fs[0]["line_items"][0]["line_item_id"]
                    .as_str()
                    .and_then(|v| v.parse::<u64>().ok())
                    == Some(s.line);
            let stored = store
                .get_order(&shop.domain, s.order_id)
                .await
                .unwrap()
                .unwrap();
            let pushed = stored
                .order
                .supplier_order(s.ae)
                .and_then(|so| so.package(&tracking_number(n)))
                .is_some_and(|p| p.push.is_pushed())
                && stored.order.status == OrderStatus::Fulfilled;
            (one, pushed, fs.len())
        }));
    }
    let mut exactly_one = 0usize;
    let mut recorded = 0usize;
    let mut duplicates = 0usize;
    for c in checks {
        let (one, pushed, count) = c.await.unwrap();
        exactly_one += usize::from(one);
        recorded += usize::from(pushed);
        duplicates += count.saturating_sub(1);
    }

    // What the buckets allow. Shopify charges the requested cost up front and refunds the unused
    // part, so a bucket sustains restore_rate / (actual cost per fulfillment); over the run it
    // also had its initial fill to spend.
    let n = a.packages as f64;
    let shops_n = a.shops as f64;
    let fulfillments_per_s = n / elapsed;
    let actual_per_f = actual as f64 / n;
    let requested_per_f = requested as f64 / n;
    let allowed_steady = shops_n * RESTORE / actual_per_f;
    let allowed_over_run = shops_n * (BUCKET + RESTORE * elapsed) / actual_per_f / elapsed;
    // The documents' requested costs, as the sandbox computes them (Shopify's rules).
    let cost_of = |doc: &'static str| {
        let http = http.clone();
        async move {
            let v = sandbox_call(
                &http,
                reqwest::Method::POST,
                "/validate",
                Some(json!({"query": doc, "variables": {}})),
            )
            .await;
            assert_eq!(v["valid"], true, "{v}");
            v["requested_cost"].as_f64().unwrap()
        }
    };
    let query_cost = cost_of(documents::ORDER_FULFILLMENT_STATE).await;
    let mutation_cost = cost_of(documents::FULFILLMENT_CREATE).await;
    let allowed_by_requested = shops_n * RESTORE / (query_cost + mutation_cost);
    let retried: usize = reports.iter().map(|r| r.retried).sum();
    let batches: usize = reports.iter().map(|r| r.batches).sum();
    let (p50, p10, p90) = percentiles(reports.iter().flat_map(|r| r.batch_ms.clone()).collect());

    eprintln!(
        "push bench: {n} packages in {elapsed:.1} s = {fulfillments_per_s:.2}/s; bucket allows \
         {allowed_over_run:.2}/s over the run ({allowed_steady:.2}/s steady); {throttled} throttled; \
         {exactly_one}/{n} exactly one; {duplicates} duplicates"
    );
    report(
        "push",
        &format!(
            "{} packages (single-line orders) over {} sandbox shops (bucket {BUCKET} pts, restore \
             {RESTORE}/s), pushed from an SQS queue on the emulator (fed by the poller's sender, \
             {} messages ahead) by {} concurrent instances (own clients each) taking batches of \
             10; failures back after 1 s",
            a.packages, a.shops, a.backlog, a.instances
        ),
        &[
            Metric::new(
                "fulfillments/s ÷ what the buckets allow",
                fulfillments_per_s / allowed_over_run,
                "ratio",
            )
            .goal(">= 0.9")
            .reference(format!(
                "{allowed_over_run:.2}/s allowed over the run at {actual_per_f:.1} points charged per fulfillment"
            )),
            Metric::new("fulfillments/s", fulfillments_per_s, "1/s"),
            Metric::new(
                "GraphQL calls per fulfillment (every attempt)",
                requests as f64 / n,
                "calls",
            )
            .goal("<= 2.02")
            .reference("2 = one read + one mutation".into()),
            Metric::new(
                "GraphQL calls per fulfillment, answered (not throttled)",
                graphql_ok as f64 / n,
                "calls",
            ),
            Metric::new(
                "requested cost per fulfillment (every attempt)",
                requested_per_f,
                "points",
            )
            .reference(format!(
                "documents: read {query_cost:.0} + mutation {mutation_cost:.0}"
            )),
            Metric::new("actual cost charged per fulfillment", actual_per_f, "points"),
            Metric::new(
                "throttled responses",
                (throttled + http_429) as f64,
                "responses",
            )
            .spread(format!("{throttled} THROTTLED + {http_429} HTTP 429")),
            Metric::new(
                "throttled share of calls",
                (throttled + http_429) as f64 / (requests as f64).max(1.0),
                "fraction",
            )
            .goal("< 0.01"),
            Metric::new(
                "packages in exactly one fulfillment",
                exactly_one as f64 / n,
                "fraction",
            )
            .goal("= 1"),
            Metric::new("pusher batch time p50", p50, "ms")
                .spread(format!("p10–p90 {p10:.0}–{p90:.0} ms")),
            Metric::new("run time", elapsed, "s"),
        ],
        json!({
            "packages": a.packages,
            "shops": a.shops,
            "instances": a.instances,
            "elapsed_s": elapsed,
            "seed_s": seed_secs,
            "allowed_per_s_over_run": allowed_over_run,
            "allowed_per_s_steady": allowed_steady,
            "allowed_per_s_if_requested_cost_were_charged": allowed_by_requested,
            "ratio_vs_steady_restore": fulfillments_per_s / allowed_steady,
            "document_requested_cost": {"OrderFulfillmentState": query_cost, "FulfillmentCreate": mutation_cost},
            "sandbox": {"requests": requests, "graphql_ok": graphql_ok, "throttled": throttled,
                        "http_429": http_429, "requested_cost_total": requested,
                        "actual_cost_total": actual, "fulfillments_created": created,
                        "documents": docs},
            "client": {"requests": reports.iter().map(|r| r.admin_requests).sum::<u64>(),
                       "throttled": reports.iter().map(|r| r.admin_throttled).sum::<u64>()},
            "batches": batches,
            "messages_retried": retried,
            "stale_receipt_handles": reports.iter().map(|r| r.stale_handles).sum::<usize>(),
            "recorded_pushed_and_fulfilled": recorded,
            "duplicate_fulfillments": duplicates,
        }),
    );
    assert_eq!(
        exactly_one, a.packages,
        "every package in exactly one fulfillment"
    );
    assert_eq!(recorded, a.packages, "every package recorded as pushed");
}
