//! The placement chaos run: N paid, mapped orders over S shops placed on the sandbox AliExpress
//! through the real paths — `POST /shops/{shop}/orders/{id}/place` and the bulk
//! `POST /shops/{shop}/orders/place` over HTTP through the local stack's server and the API
//! handler, and the order placer's SQS handler (shops with `auto_place` on) — with faults
//! injected, then one more placing round, then checks against the sandbox's own records.
//!
//! Used by `bench/src/bin/chaos_place.rs` (`make chaos`, 1,000 orders; `make chaos-ci`, 100).
//!
//! Faults:
//! - lost answers: the sandbox creates the order and answers a 504 or a truncated 200;
//! - duplicate clicks: the same order placed by three single calls, a bulk call and (for queued
//!   orders) a second delivery of its queue message, all at once;
//! - AliExpress throttling: `ApiCallLimit` answers that ban the app key, and ISP errors, on
//!   every call (`product.get`, `freight.query`, `order.create`);
//! - a crash between the create and the write: the sandbox creates the order and holds the
//!   answer; as soon as its record shows the create, the harness aborts the task running the
//!   handler (the API handler for a click, the order placer's handler for a queued order), the
//!   way Lambda ends an invocation that timed out or ran out of memory. Nothing of the placement
//!   code is changed for this: it is the real handler, killed mid-call;
//! - business errors (`INVENTORY_HOLD_ERROR`) and addresses AliExpress cannot take (no phone).
//!
//! The second round stands for the merchant's next click (or the next automatic run) a few
//! minutes later: faults off, claims of killed placers past their 2-minute staleness (rewritten,
//! since the run does not wait), every order not definitively failed placed again in bulk.
//!
//! The checks: per (Shopify order, seller) at most one AliExpress order created (the sandbox's
//! log of every `order.create`); every AliExpress order created either linked to its order or
//! flagged on it; every order placed, failed with advice, or `placement_unconfirmed` — and then
//! in the merchant's attention list. The logs are checked by the binary, which runs this in a
//! child process with the production logging and reads its output for every seeded name,
//! street, city and phone ([`PlaceChaosRun::personal_stems`], [`scan_logs`]).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::too_many_lines
)]

use crate::LocalRouter as Local;
use crate::{
    aliexpress_sandbox, apigw_request, aws_config, create_table, response_json, sandbox_get,
    sandbox_post, shopify_sandbox,
};
use aws_lambda_events::event::sqs::SqsEvent;
use dropsync_aliexpress::{IopClient, IopConfig, MemoryTokenStore, Tokens};
use dropsync_api::Api;
use dropsync_app::place::{MAX_BULK, PlaceService, Placer};
use dropsync_app::queue::SqsQueue;
use dropsync_app::webhook::WebhookService;
use dropsync_domain::placement::{PlacementState, SENDING_STALE_MS};
use dropsync_domain::{Attention, OrderStatus, ShopDomain, history_is_valid};
use dropsync_local::server::serve;
use dropsync_shopify::admin::{AdminClient, AdminConfig};
use dropsync_store::Store;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// How a run is sized and how hard it is hit.
#[derive(Debug, Clone)]
pub struct PlaceChaosConfig {
    pub orders: usize,
    pub shops: usize,
    pub seed: u64,
    /// Length of an AliExpress ban after an `ApiCallLimit`.
    pub ban_seconds: f64,
    /// Probability that an AliExpress call is answered `ApiCallLimit` (a ban starts).
    pub throttle: f64,
    /// Probability that an AliExpress call fails with an ISP error.
    pub isp_error: f64,
    /// Share of orders whose first create is made and its answer lost.
    pub lost_answer: f64,
    /// Share of orders whose placer is killed between the create and the write.
    pub crash: f64,
    /// Share of orders clicked several times at once.
    pub duplicate_clicks: f64,
    /// Share of orders whose first create is refused with a business error.
    pub business_error: f64,
    /// Share of orders with an address AliExpress cannot take (no phone).
    pub bad_address: f64,
    /// Orders placed at once.
    pub chunk: usize,
}

impl PlaceChaosConfig {
    pub fn new(orders: usize, shops: usize, seed: u64) -> Self {
        Self {
            orders,
            shops: shops.max(1),
            seed,
            ban_seconds: 1.0,
            throttle: 0.04,
            isp_error: 0.02,
            lost_answer: 0.10,
            crash: 0.08,
            duplicate_clicks: 0.25,
            business_error: 0.04,
            bad_address: 0.03,
            chunk: 25,
        }
    }
}

/// What the run did and found.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct PlaceChaosReport {
    pub orders: usize,
    pub shops: usize,
    pub seed: u64,
    /// Faults injected, by kind: the sandbox's own counts and the harness's.
    pub faults: BTreeMap<String, u64>,
    /// Answers to the placement requests, by path and HTTP status (or handler outcome).
    pub answers: BTreeMap<String, u64>,
    /// How the orders ended.
    pub outcomes: BTreeMap<String, u64>,
    /// `order.create` calls that reached the sandbox, and the AliExpress orders they created.
    pub creates_sent: u64,
    pub ae_orders_created: u64,
    /// AliExpress orders beyond one per (Shopify order, seller).
    pub duplicate_ae_orders: u64,
    /// AliExpress orders created that dropsync neither linked nor flagged.
    pub unaccounted_ae_orders: u64,
    /// Orders neither placed, nor failed with advice, nor unconfirmed in the attention list.
    pub orders_stuck: u64,
    /// Filled by the binary: log lines carrying a seeded name, street, city or phone.
    pub addresses_in_logs: u64,
    pub log_lines: u64,
    pub violations: Vec<String>,
    pub wall_secs: f64,
    /// Wall time of each phase.
    pub phases: BTreeMap<String, f64>,
}

impl PlaceChaosReport {
    pub fn fault(&self, kind: &str) -> u64 {
        self.faults.get(kind).copied().unwrap_or(0)
    }

    /// A human summary.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "placement chaos: {} orders over {} shops (seed {}), {:.1} s\n  order.create calls {}, AliExpress orders created {}\n  duplicate AliExpress orders {}, created but neither linked nor flagged {}\n  orders stuck without an attention item {}\n  addresses in logs {} (of {} log lines)\n  outcomes: {:?}\n  answers: {:?}\n  faults:\n",
            self.orders,
            self.shops,
            self.seed,
            self.wall_secs,
            self.creates_sent,
            self.ae_orders_created,
            self.duplicate_ae_orders,
            self.unaccounted_ae_orders,
            self.orders_stuck,
            self.addresses_in_logs,
            self.log_lines,
            self.outcomes,
            self.answers
        );
        for (k, v) in &self.faults {
            s.push_str(&format!("    {k:34} {v}\n"));
        }
        s.push_str("  phases (s):\n");
        for (k, v) in &self.phases {
            s.push_str(&format!("    {k:34} {v:.1}\n"));
        }
        s.push_str(&format!("  violations: {}\n", self.violations.len()));
        for v in self.violations.iter().take(200) {
            s.push_str(&format!("    {v}\n"));
        }
        s
    }
}

/// The fault kinds a run must have injected to count as a placement chaos run.
pub const REQUIRED_FAULTS: &[&str] = &[
    "ae_api_call_limit",
    "ae_bans_started",
    "answers_lost",
    "crashes_after_create",
    "duplicate_click_orders",
    "business_errors",
    "bad_addresses",
    "repeated_order_errors",
];

/// The run's report and the personal data it seeded (for the log scan).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct PlaceChaosRun {
    pub report: PlaceChaosReport,
    /// Word stems every seeded name, street and city contains (lowercase), and every seeded
    /// phone's national digits.
    pub personal_stems: Vec<String>,
    pub phones: Vec<String>,
}

/// Stems of the seeded personal data: a word no log has a reason to contain.
const STEMS: [&str; 5] = ["quinzel", "vardekk", "ombrelle", "lowickby", "zorelle"];

/// Log lines carrying seeded personal data: any word containing one of `stems`
/// (case-insensitive), or a number of 10 to 13 digits ending in one of `phones` (a phone with or
/// without its country code, dashes or not). Answers the count and the first few lines.
pub fn scan_logs(logs: &str, stems: &[String], phones: &[String]) -> (u64, Vec<String>) {
    let phones: BTreeSet<&str> = phones.iter().map(String::as_str).collect();
    let mut hits = 0;
    let mut first = Vec::new();
    for line in logs.lines() {
        let lower = line.to_ascii_lowercase();
        let by_stem = stems.iter().any(|s| lower.contains(s.as_str()));
        let by_phone = lower
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '+'))
            .any(|tok| {
                let digits: String = tok.chars().filter(char::is_ascii_digit).collect();
                (10..=13).contains(&digits.len())
                    && digits
                        .get(digits.len() - 10..)
                        .is_some_and(|d| phones.contains(d))
            });
        if by_stem || by_phone {
            hits += 1;
            if first.len() < 5 {
                first.push(line.chars().take(400).collect());
            }
        }
    }
    (hits, first)
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// `POST …/orders/{id}/place`.
    Single,
    /// `POST …/orders/place` with the chunk's other bulk orders of the shop.
    Bulk,
    /// A message on the placement queue, handled by the order placer.
    Queue,
}

#[derive(Debug, Clone)]
struct Plan {
    idx: usize,
    shop: usize,
    /// Indexes into the products.
    lines: Vec<usize>,
    path: Path,
    dup: bool,
    lost: bool,
    crash: bool,
    business: bool,
    bad_address: bool,
}

#[derive(Debug, Clone)]
struct Product {
    id: u64,
    sku: String,
    seller: u64,
}

struct Ctx {
    cfg: PlaceChaosConfig,
    http: reqwest::Client,
    base: String,
    shop_base: String,
    ae_base: String,
    app_key: String,
    auth: String,
    shops: Vec<String>,
    store: Store,
    api: Arc<Api<IopClient, SqsQueue>>,
    placer: Arc<dyn Placer>,
    products: Vec<Product>,
    /// Per shop, the variant mapped to each product.
    variants: Vec<Vec<u64>>,
    counts: Mutex<BTreeMap<String, u64>>,
    answers: Mutex<BTreeMap<String, u64>>,
    /// Shopify order id of each plan, once created.
    ids: Mutex<BTreeMap<usize, u64>>,
    violations: Mutex<Vec<String>>,
}

impl Ctx {
    fn count(&self, kind: &str, n: u64) {
        *self
            .counts
            .lock()
            .unwrap()
            .entry(kind.to_owned())
            .or_default() += n;
    }
    fn answer(&self, kind: String) {
        *self.answers.lock().unwrap().entry(kind).or_default() += 1;
    }
    fn violation(&self, v: String) {
        self.violations.lock().unwrap().push(v);
    }
    fn id(&self, idx: usize) -> Option<u64> {
        self.ids.lock().unwrap().get(&idx).copied()
    }

    async fn place_single(&self, shop: &str, id: u64, label: &str) {
        let res = self
            .http
            .post(format!("{}/shops/{shop}/orders/{id}/place", self.base))
            .header("Authorization", &self.auth)
            .send()
            .await;
        match res {
            Ok(r) => self.answer(format!("{label} {}", r.status().as_u16())),
            Err(e) => self.violation(format!("single placement of {id}: {e}")),
        }
    }

    async fn place_bulk(&self, shop: &str, ids: &[u64], label: &str) {
        let body = json!({"order_ids": ids.iter().map(u64::to_string).collect::<Vec<_>>()});
        let res = self
            .http
            .post(format!("{}/shops/{shop}/orders/place", self.base))
            .header("Authorization", &self.auth)
            .json(&body)
            .send()
            .await;
        match res {
            Ok(r) => {
                let status = r.status().as_u16();
                self.answer(format!("{label} {status}"));
                if status == 200 {
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    for res in v["results"].as_array().into_iter().flatten() {
                        let what = res["status"]
                            .as_str()
                            .or_else(|| res["error"].as_str().map(|_| "error"))
                            .unwrap_or("?");
                        self.answer(format!("{label} order {what}"));
                    }
                }
            }
            Err(e) => self.violation(format!("bulk placement of {ids:?}: {e}")),
        }
    }

    fn queue_event(&self, shop: &str, id: u64) -> SqsEvent {
        let body = json!({"shop": shop, "order_id": id.to_string()}).to_string();
        serde_json::from_value(json!({"Records": [{
            "messageId": format!("m-{id}-{}", fastrand::u32(..)),
            "receiptHandle": "r",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
        }]}))
        .unwrap()
    }

    async fn place_queued(&self, shop: &str, id: u64, label: &str) {
        let event = self.queue_event(shop, id);
        let res = dropsync_order_placer::handle(&*self.placer, &self.store, event).await;
        let what = if res.batch_item_failures.is_empty() {
            "done"
        } else {
            "retry"
        };
        self.answer(format!("{label} {what}"));
    }

    /// The sandbox's record of every `order.create` of this order.
    async fn creates_of(&self, id: u64) -> Vec<Value> {
        sandbox_get(
            &self.ae_base,
            &format!("/_admin/placements?out_order_id_prefix={id}-"),
        )
        .await["placements"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// A US address whose every personal field carries a stem of [`STEMS`] and the order's own
/// letters; the phone's national number is `555` and seven digits of the index.
fn address(idx: usize, with_phone: bool) -> (Value, String) {
    let tag: String = {
        let mut n = idx;
        (0..4)
            .map(|_| {
                let c = (b'a' + (n % 26) as u8) as char;
                n /= 26;
                c
            })
            .collect()
    };
    let phone_digits = format!("555{:07}", 2_000_000 + idx);
    let phone = format!(
        "+1 {}-{}-{}",
        &phone_digits[..3],
        &phone_digits[3..6],
        &phone_digits[6..]
    );
    let first = format!("Quinzel{tag}");
    let last = format!("Vardekk{tag}");
    (
        json!({"first_name": first, "last_name": last, "name": format!("{first} {last}"),
               "company": null, "address1": format!("{} Ombrelle{tag} Road", 100 + idx % 800),
               "address2": format!("Apt Zorelle{tag}"), "city": format!("Lowickby{tag}"),
               "province": "New Jersey", "province_code": "NJ", "zip": "08360",
               "country": "United States", "country_code": "US",
               "phone": if with_phone { Value::String(phone) } else { Value::Null }}),
        phone_digits,
    )
}

/// Runs the scenario.
pub async fn run_with(cfg: PlaceChaosConfig) -> PlaceChaosRun {
    let started = Instant::now();
    let ctx = Arc::new(setup(cfg).await);
    let plans = plan_orders(&ctx);
    let mut phones = Vec::new();

    let mut phases = BTreeMap::new();
    phases.insert("setup".to_owned(), started.elapsed().as_secs_f64());
    let (mut arriving, mut placing) = (0.0, 0.0);

    // Round 1: faults on.
    faults(&ctx, true).await;
    for chunk in plans.chunks(ctx.cfg.chunk.max(1)) {
        let t = Instant::now();
        let mut set = JoinSet::new();
        for p in chunk {
            let (ctx, p) = (ctx.clone(), p.clone());
            let (addr, digits) = address(p.idx, !p.bad_address);
            phones.push(digits);
            set.spawn(async move { arrive(&ctx, &p, addr).await });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
        arriving += t.elapsed().as_secs_f64();
        let t = Instant::now();
        place_chunk(&ctx, chunk).await;
        placing += t.elapsed().as_secs_f64();
    }
    phases.insert("round 1: orders arrive".to_owned(), arriving);
    phases.insert("round 1: placing with faults".to_owned(), placing);

    // Round 2: the merchant's next click, minutes later.
    let t = Instant::now();
    faults(&ctx, false).await;
    let stale = fast_forward_claims(&ctx, &plans).await;
    ctx.count("stale_claims_fast_forwarded", stale);
    replace_all(&ctx, &plans).await;
    phases.insert(
        "round 2: placing again".to_owned(),
        t.elapsed().as_secs_f64(),
    );

    let t = Instant::now();
    let mut report = check(&ctx, &plans).await;
    phases.insert("checks".to_owned(), t.elapsed().as_secs_f64());
    report.phases = phases;
    report.wall_secs = started.elapsed().as_secs_f64();
    PlaceChaosRun {
        report,
        personal_stems: STEMS.iter().map(|s| (*s).to_owned()).collect(),
        phones,
    }
}

async fn setup(cfg: PlaceChaosConfig) -> Ctx {
    let conf = aws_config().await;
    let tag = format!(
        "{}{}",
        std::process::id() % 10_000,
        fastrand::u32(..100_000)
    );
    let client = aws_sdk_dynamodb::Client::new(&conf);
    let table = format!("chaos-place-{tag}");
    create_table(&client, &table).await;
    let store = Store::new(client, table);

    let shop_base = shopify_sandbox();
    let ae_base = aliexpress_sandbox();
    let mut shops = Vec::new();
    let mut creds = serde_json::Map::new();
    for s in 0..cfg.shops {
        let shop = format!("chaos-place-{tag}-{s}.myshopify.com");
        let token = format!("shpat_cplace_{tag}_{s}");
        let secret = format!("shpss_cplace_{tag}_{s}");
        sandbox_post(&shop_base, "/_admin/shops", json!({"shop": shop, "access_token": token, "webhook_secret": secret, "bucket_size": 100_000, "restore_rate": 10_000, "seed": cfg.seed + s as u64})).await;
        creds.insert(
            shop.clone(),
            json!({"access_token": token, "webhook_secrets": [secret]}),
        );
        shops.push(shop);
    }
    let app_key = format!("{}", 40_000_000 + fastrand::u32(..9_000_000));
    crate::sandbox_ae_app(
        &ae_base,
        json!({"app_key": app_key, "app_secret": "chaos-place-secret", "calls_per_second": null, "ban_seconds": cfg.ban_seconds, "seed": cfg.seed}),
        json!({"access_token": "chaos-place-ae", "refresh_token": "chaos-place-ae-r", "account": format!("chaos-place-{tag}"), "expires_in": 86400 * 30}),
    )
    .await;

    // Four products of three sellers, stocked for any run; ids of this run only.
    let base_id = 1_005_009_000_000_000 + u64::from(fastrand::u32(..90_000_000)) * 10;
    let sellers = [
        2_210_000_001u64,
        2_210_000_002,
        2_210_000_001,
        2_210_000_003,
    ];
    let mut products = Vec::new();
    for (k, seller) in sellers.iter().enumerate() {
        let id = base_id + k as u64;
        let sku = format!("1200009{k}00000000{k}");
        sandbox_post(
            &ae_base,
            "/_admin/products",
            json!({"product_id": id, "store_id": seller, "store_name": format!("Chaos store {seller}"),
                   "title": format!("Chaos product {k}"),
                   "skus": [{"sku_id": sku, "sku_attr": format!("14:17{k}#Colour{k}"), "price": "4.20", "stock": 100_000_000}]}),
        )
        .await;
        products.push(Product {
            id,
            sku,
            seller: *seller,
        });
    }

    let admin_token = format!("chaos-place-admin-{tag}-0123456789");
    let credentials = crate::credentials(json!({"admin_token": admin_token, "shops": creds}));
    let admin = Arc::new(
        AdminClient::new(AdminConfig {
            base_override: Some(shop_base.clone()),
            ..AdminConfig::default()
        })
        .unwrap(),
    );
    let ae = Arc::new(
        IopClient::new(
            IopConfig {
                base_url: ae_base.clone(),
                calls_per_second: 200.0,
                max_concurrency: 16,
                // Longer than any answer but the held ones of a crash (8 s).
                timeout: Duration::from_secs(5),
                ..IopConfig::new(
                    app_key.clone(),
                    "chaos-place-secret",
                    Tokens {
                        access_token: "chaos-place-ae".into(),
                        refresh_token: "chaos-place-ae-r".into(),
                        expire_time_ms: Some(dropsync_app::now_ms() + 86_400_000 * 30),
                    },
                )
            },
            Arc::new(MemoryTokenStore::new()),
        )
        .unwrap(),
    );
    let placer: Arc<dyn Placer> = Arc::new(PlaceService {
        store: store.clone(),
        ae,
        shopify: admin.clone(),
        credentials: credentials.clone(),
    });
    let api = Arc::new(Api::<IopClient, SqsQueue> {
        store: store.clone(),
        credentials: credentials.clone(),
        sync: None,
        place: Some(placer.clone()),
        connect: None,
        reconcile: None,
    });
    let local = Arc::new(Local {
        webhook: WebhookService {
            store: store.clone(),
            credentials,
            admin: Some(admin),
        },
        api: api.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, local));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let auth = format!("Bearer {admin_token}");

    let mut variants = Vec::new();
    for shop in &shops {
        let res = http
            .put(format!("{base}/shops/{shop}/settings"))
            .header("Authorization", &auth)
            .json(&json!({"notify_customer": true, "auto_place": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "settings of {shop}");
        let mut vs = Vec::new();
        for p in &products {
            let v = 41_000_000_000 + fastrand::u64(..1_000_000_000);
            let res = http
                .put(format!("{base}/shops/{shop}/mappings/{v}"))
                .header("Authorization", &auth)
                .json(
                    &json!({"aliexpress_product_id": p.id.to_string(), "aliexpress_sku_id": p.sku}),
                )
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            assert_eq!(status, 200, "mapping of {shop}: {body}");
            assert_eq!(body["seller_id"], p.seller.to_string(), "{body}");
            vs.push(v);
        }
        variants.push(vs);
    }

    Ctx {
        cfg,
        http,
        base,
        shop_base,
        ae_base,
        app_key,
        auth,
        shops,
        store,
        api,
        placer,
        products,
        variants,
        counts: Mutex::new(BTreeMap::new()),
        answers: Mutex::new(BTreeMap::new()),
        ids: Mutex::new(BTreeMap::new()),
        violations: Mutex::new(Vec::new()),
    }
}

fn plan_orders(ctx: &Ctx) -> Vec<Plan> {
    let cfg = &ctx.cfg;
    let mut rng = fastrand::Rng::with_seed(cfg.seed);
    (0..cfg.orders)
        .map(|idx| {
            let lines = match rng.u32(..100) {
                0..30 => vec![0],
                30..45 => vec![1],
                45..55 => vec![3],
                55..70 => vec![0, 2],
                70..90 => vec![0, 1],
                _ => vec![1, 3],
            };
            let path = match rng.u32(..100) {
                0..45 => Path::Single,
                45..85 => Path::Bulk,
                _ => Path::Queue,
            };
            let bad_address = rng.f64() < cfg.bad_address;
            let crash = !bad_address && rng.f64() < cfg.crash;
            let lost = !bad_address && !crash && rng.f64() < cfg.lost_answer;
            let business = !bad_address && !crash && !lost && rng.f64() < cfg.business_error;
            let dup = !crash && rng.f64() < cfg.duplicate_clicks;
            Plan {
                idx,
                shop: idx % cfg.shops,
                lines,
                path,
                dup,
                lost,
                crash,
                business,
                bad_address,
            }
        })
        .collect()
}

/// Turns the sandbox's random faults on or off; off also drops armed create faults left over.
async fn faults(ctx: &Ctx, on: bool) {
    let p = |x: f64| if on { x } else { 0.0 };
    sandbox_post(
        &ctx.ae_base,
        "/_admin/apps",
        json!({"app_key": ctx.app_key, "faults": {"api_call_limit": p(ctx.cfg.throttle), "isp_error": p(ctx.cfg.isp_error), "server_error": 0.0, "slow": 0.0, "slow_ms": 0}}),
    )
    .await;
    if !on {
        let res = reqwest::Client::new()
            .delete(format!("{}/_admin/faults/order-create", ctx.ae_base))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }
}

/// The order is created in Shopify, arrives as its signed `orders/create` webhook (address and
/// all), and its create faults are armed.
async fn arrive(ctx: &Ctx, p: &Plan, addr: Value) {
    let shop = &ctx.shops[p.shop];
    let items: Vec<Value> = p
        .lines
        .iter()
        .map(|k| json!({"variant_id": ctx.variants[p.shop][*k], "quantity": 1 + (p.idx % 2), "price": "12.00", "title": format!("Chaos item {k}")}))
        .collect();
    let created = sandbox_post(
        &ctx.shop_base,
        "/_admin/orders",
        json!({"shop": shop, "order": {"line_items": items, "financial_status": "paid", "shipping_address": addr}}),
    )
    .await;
    let id = created["order"]["id"].as_u64().unwrap();
    ctx.ids.lock().unwrap().insert(p.idx, id);
    let mut delivered = false;
    for _ in 0..3 {
        let out = sandbox_post(
            &ctx.shop_base,
            "/_admin/webhooks/deliver",
            json!({"shop": shop, "topic": "orders/create", "order_id": id, "target_url": format!("{}/webhooks/shopify", ctx.base), "timeout_s": 30}),
        )
        .await;
        if out["deliveries"][0]["status"] == 200 {
            delivered = true;
            break;
        }
    }
    if !delivered {
        ctx.violation(format!("order {id}: its webhook was never accepted"));
    }
    let prefix = format!("{id}-");
    let arm = |body: Value| sandbox_post(&ctx.ae_base, "/_admin/faults/order-create", body);
    if p.lost {
        // Half answer a gateway timeout, half a 200 cut short: either way the create was made.
        let status = if p.idx.is_multiple_of(2) { 504 } else { 200 };
        arm(json!({"mode": "lose_answer", "status": status, "times": 1, "out_order_id_prefix": prefix})).await;
        ctx.count("lost_answers_armed", 1);
    }
    if p.crash {
        // The answer is held far longer than the harness needs to kill the placer.
        arm(json!({"mode": "lose_answer", "status": 504, "delay_ms": 8000, "times": 1, "out_order_id_prefix": prefix})).await;
    }
    if p.business {
        arm(json!({"mode": "business_error", "code": "INVENTORY_HOLD_ERROR", "message": "Inventory hold failed", "times": 1, "out_order_id_prefix": prefix})).await;
        ctx.count("business_errors_armed", 1);
    }
    if p.bad_address {
        ctx.count("bad_addresses", 1);
    }
}

/// Places one chunk: a bulk call per shop, single calls, queued messages, duplicate clicks on
/// top, and the crashes, all at once.
async fn place_chunk(ctx: &Arc<Ctx>, chunk: &[Plan]) {
    let mut set = JoinSet::new();
    let mut bulk: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for p in chunk {
        let Some(id) = ctx.id(p.idx) else { continue };
        let shop = ctx.shops[p.shop].clone();
        if p.crash {
            let ctx = ctx.clone();
            let path = p.path;
            set.spawn(async move { crash(&ctx, &shop, id, path).await });
            continue;
        }
        match p.path {
            Path::Bulk => bulk.entry(p.shop).or_default().push(id),
            Path::Single => {
                let (ctx, shop) = (ctx.clone(), shop.clone());
                set.spawn(async move { ctx.place_single(&shop, id, "single").await });
            }
            Path::Queue => {
                let (ctx, shop) = (ctx.clone(), shop.clone());
                set.spawn(async move { ctx.place_queued(&shop, id, "queue").await });
            }
        }
        if p.dup {
            ctx.count("duplicate_click_orders", 1);
            for _ in 0..3 {
                let (ctx, shop) = (ctx.clone(), shop.clone());
                set.spawn(async move { ctx.place_single(&shop, id, "duplicate single").await });
            }
            let (ctx2, shop2) = (ctx.clone(), shop.clone());
            set.spawn(async move { ctx2.place_bulk(&shop2, &[id], "duplicate bulk").await });
            let mut extra = 4;
            if p.path == Path::Queue {
                // The queue delivers its message a second time.
                let ctx = ctx.clone();
                set.spawn(async move { ctx.place_queued(&shop, id, "duplicate queue").await });
                extra += 1;
            }
            ctx.count("duplicate_requests", extra);
        }
    }
    for (s, ids) in bulk {
        let (ctx, shop) = (ctx.clone(), ctx.shops[s].clone());
        set.spawn(async move { ctx.place_bulk(&shop, &ids, "bulk").await });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

/// Runs the placement as its own invocation and kills it as soon as the sandbox has made the
/// create (its answer is held), before dropsync can write the outcome.
async fn crash(ctx: &Arc<Ctx>, shop: &str, id: u64, path: Path) {
    let task: tokio::task::JoinHandle<()> = match path {
        Path::Queue => {
            let ctx = ctx.clone();
            let shop = shop.to_owned();
            tokio::spawn(async move { ctx.place_queued(&shop, id, "crashed queue").await })
        }
        Path::Single | Path::Bulk => {
            let (method_path, body) = if path == Path::Single {
                (format!("/shops/{shop}/orders/{id}/place"), Vec::new())
            } else {
                (
                    format!("/shops/{shop}/orders/place"),
                    json!({"order_ids": [id.to_string()]})
                        .to_string()
                        .into_bytes(),
                )
            };
            let auth = ctx.auth.clone();
            let api = ctx.api.clone();
            tokio::spawn(async move {
                let req = apigw_request(
                    "POST",
                    &method_path,
                    &[
                        ("authorization", auth.as_str()),
                        ("content-type", "application/json"),
                    ],
                    &body,
                );
                let _ = response_json(api.handle(req).await);
            })
        }
    };
    // Well inside the client's timeout (5 s) counted from the create, which the held answer
    // (8 s) outlasts: the placer is killed while it waits for the answer.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut reached = false;
    while Instant::now() < deadline && !task.is_finished() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !ctx.creates_of(id).await.is_empty() {
            reached = true;
            break;
        }
    }
    let finished_first = task.is_finished();
    task.abort();
    let _ = task.await;
    ctx.count(
        match (finished_first, reached) {
            (true, _) => "crash_missed_placement_ended_first",
            (false, true) => "crashes_after_create",
            (false, false) => "crashes_before_create",
        },
        1,
    );
    if path == Path::Queue && !finished_first {
        // The killed invocation's message comes back: the claim it left makes it a no-op.
        ctx.place_queued(shop, id, "redelivered queue").await;
        ctx.count("queue_redeliveries_after_crash", 1);
    }
}

/// Claims of killed placers are as old as they would be at the merchant's next click (past the
/// 2-minute staleness): their `since_ms` is moved back, nothing else changes.
async fn fast_forward_claims(ctx: &Ctx, plans: &[Plan]) -> u64 {
    let mut n = 0;
    for p in plans {
        let Some(id) = ctx.id(p.idx) else { continue };
        let shop = ShopDomain::parse(&ctx.shops[p.shop]).unwrap();
        let mut moved = 0;
        ctx.store
            .update_order(&shop, id, |o| {
                moved = 0;
                for pl in &mut o.placements {
                    if let PlacementState::Sending { since_ms } = &mut pl.state {
                        *since_ms -= SENDING_STALE_MS + 1_000;
                        moved += 1;
                    }
                }
                moved > 0
            })
            .await
            .unwrap();
        n += moved;
    }
    n
}

/// Every order not definitively failed is placed again in bulk, a shop at a time.
async fn replace_all(ctx: &Arc<Ctx>, plans: &[Plan]) {
    let mut by_shop: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for p in plans {
        let Some(id) = ctx.id(p.idx) else { continue };
        let shop = ShopDomain::parse(&ctx.shops[p.shop]).unwrap();
        let Some(stored) = ctx.store.get_order(&shop, id).await.unwrap() else {
            continue;
        };
        if stored.order.status != OrderStatus::Failed {
            by_shop.entry(p.shop).or_default().push(id);
        }
    }
    let mut set = JoinSet::new();
    for (s, ids) in by_shop {
        let ctx = ctx.clone();
        set.spawn(async move {
            let shop = ctx.shops[s].clone();
            for batch in ids.chunks(MAX_BULK) {
                ctx.place_bulk(&shop, batch, "round 2 bulk").await;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

/// The shop's attention list, every page.
async fn attention_list(ctx: &Ctx, shop: &str) -> BTreeSet<u64> {
    let mut listed = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/shops/{shop}/attention?limit=100", ctx.base);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let res = ctx
            .http
            .get(url)
            .header("Authorization", &ctx.auth)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "attention list of {shop}");
        let page: Value = res.json().await.unwrap();
        for o in page["orders"].as_array().into_iter().flatten() {
            if let Some(id) = o["id"].as_str().and_then(|i| i.parse().ok()) {
                listed.insert(id);
            }
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            return listed;
        }
    }
}

async fn check(ctx: &Ctx, plans: &[Plan]) -> PlaceChaosReport {
    let mut report = PlaceChaosReport {
        orders: plans.len(),
        shops: ctx.shops.len(),
        seed: ctx.cfg.seed,
        ..PlaceChaosReport::default()
    };
    let mut violations = std::mem::take(&mut *ctx.violations.lock().unwrap());

    // The sandbox's own record of every order.create: (order, seller) -> AliExpress orders.
    let ids: BTreeMap<u64, usize> = plans
        .iter()
        .filter_map(|p| ctx.id(p.idx).map(|id| (id, p.idx)))
        .collect();
    let log = sandbox_get(&ctx.ae_base, "/_admin/placements").await;
    let mut created: BTreeMap<(u64, u64), Vec<u64>> = BTreeMap::new();
    let mut sent_by_order: BTreeMap<u64, u64> = BTreeMap::new();
    for e in log["placements"].as_array().into_iter().flatten() {
        let key = e["out_order_id"].as_str().unwrap_or("");
        let mut parts = key.split('-');
        let (Some(order), Some(seller)) = (
            parts.next().and_then(|s| s.parse::<u64>().ok()),
            parts.next().and_then(|s| s.parse::<u64>().ok()),
        ) else {
            continue;
        };
        if !ids.contains_key(&order) {
            continue;
        }
        report.creates_sent += 1;
        *sent_by_order.entry(order).or_default() += 1;
        if e["error_code"] == "REPEATED_ORDER_ERROR" {
            *report
                .faults
                .entry("repeated_order_errors".into())
                .or_default() += 1;
        }
        if e["answer_lost"] == true {
            *report.faults.entry("answers_lost".into()).or_default() += 1;
        }
        if e["outcome"] == "created" {
            let made: Vec<u64> = e["order_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()))
                .collect();
            created.entry((order, seller)).or_default().extend(made);
        }
    }
    for ((order, seller), made) in &created {
        report.ae_orders_created += made.len() as u64;
        if made.len() > 1 {
            report.duplicate_ae_orders += made.len() as u64 - 1;
            violations.push(format!(
                "order {order}, seller {seller}: {} AliExpress orders created ({made:?})",
                made.len()
            ));
        }
    }

    let mut listed: Vec<BTreeSet<u64>> = Vec::new();
    for shop in &ctx.shops {
        listed.push(attention_list(ctx, shop).await);
    }
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut outcome = |k: &str| *outcomes.entry(k.to_owned()).or_default() += 1;
    for p in plans {
        let Some(id) = ctx.id(p.idx) else {
            violations.push(format!("order #{}: never created", p.idx));
            continue;
        };
        let who = format!("order #{} {id} ({:?}, lines {:?})", p.idx, p.path, p.lines);
        let shop = ShopDomain::parse(&ctx.shops[p.shop]).unwrap();
        let Some(stored) = ctx.store.get_order(&shop, id).await.unwrap() else {
            violations.push(format!("{who}: not stored"));
            report.orders_stuck += 1;
            continue;
        };
        let o = &stored.order;
        let attention = o.attention();
        let is_listed = listed[p.shop].contains(&id);
        if !attention.is_empty() && !is_listed {
            violations.push(format!(
                "{who}: needs attention but is not in the attention list"
            ));
        }
        if !history_is_valid(&o.history) {
            violations.push(format!("{who}: invalid history"));
        }
        // Every AliExpress order the sandbox made for it: linked, or flagged on its seller.
        for seller in p
            .lines
            .iter()
            .map(|k| ctx.products[*k].seller)
            .collect::<BTreeSet<_>>()
        {
            for ae in created.get(&(id, seller)).into_iter().flatten() {
                let linked = o.supplier_orders.iter().any(|so| so.ae_order_id == *ae);
                let flagged = attention.iter().any(|a| matches!(a, Attention::PlacementUnconfirmed { seller_id, .. } if *seller_id == seller.to_string()));
                if !linked && !flagged {
                    report.unaccounted_ae_orders += 1;
                    violations.push(format!(
                        "{who}: AliExpress order {ae} of seller {seller} neither linked nor flagged"
                    ));
                }
            }
        }
        let unconfirmed: Vec<bool> = attention
            .iter()
            .filter_map(|a| match a {
                Attention::PlacementUnconfirmed { created, .. } => Some(*created),
                _ => None,
            })
            .collect();
        let failure_advice: Vec<&str> = attention
            .iter()
            .filter_map(|a| match a {
                Attention::PlacementFailed { failure, .. } => Some(failure.advice.as_str()),
                _ => None,
            })
            .collect();
        let all_lines = o.shopify.line_items.iter().all(|li| {
            o.supplier_orders
                .iter()
                .any(|so| so.line_item_ids.contains(&li.id))
        });
        if !unconfirmed.is_empty() && is_listed {
            outcome(if unconfirmed.iter().all(|c| *c) {
                "unconfirmed (created, ids unknown), in the attention list"
            } else {
                "unconfirmed (perhaps created), in the attention list"
            });
        } else if !failure_advice.is_empty()
            && failure_advice.iter().all(|a| !a.is_empty())
            && is_listed
        {
            outcome(if o.status == OrderStatus::Failed {
                "failed with advice, in the attention list"
            } else {
                "partly placed, a seller failed with advice, in the attention list"
            });
        } else if all_lines && o.status == OrderStatus::AwaitingPayment {
            outcome("placed (awaiting_payment)");
        } else {
            report.orders_stuck += 1;
            outcome("stuck");
            violations.push(format!(
                "{who}: stuck in {:?} without an attention item (placements {:?})",
                o.status, o.placements
            ));
        }
        // What the plan forces.
        if p.bad_address {
            if o.status != OrderStatus::Failed {
                violations.push(format!(
                    "{who}: an address without a phone ended {:?}",
                    o.status
                ));
            }
            if sent_by_order.get(&id).copied().unwrap_or(0) > 0 {
                violations.push(format!(
                    "{who}: an address without a phone was sent to AliExpress"
                ));
            }
        }
    }

    // The sandbox's counts of what it injected.
    let st = sandbox_get(
        &ctx.ae_base,
        &format!("/_admin/stats?app_key={}", ctx.app_key),
    )
    .await;
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    for (k, key) in [
        ("ae_api_call_limit", "api_call_limit_responses"),
        ("ae_bans_started", "bans_started"),
        ("ae_isp_errors", "isp_errors"),
        ("ae_calls", "total_calls"),
    ] {
        report.faults.insert(k.into(), n(&st[key]));
    }
    for (k, v) in ctx.counts.lock().unwrap().iter() {
        report.faults.insert(k.clone(), *v);
    }
    report.faults.insert(
        "business_errors".into(),
        report.fault("business_errors_armed"),
    );
    report.outcomes = outcomes;
    report.answers = ctx.answers.lock().unwrap().clone();
    report.violations = violations;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_scan_finds_a_seeded_name_or_phone_in_any_form_and_nothing_else() {
        let stems = vec!["quinzel".to_owned()];
        let phones = vec!["5552000007".to_owned()];
        let logs = "{\"msg\":\"placed\",\"order_id\":8209829119461545080}\n\
                    {\"contact\":\"QUINZELabcd Vardekk\"}\n\
                    {\"mobile\":\"+15552000007\"}\n\
                    {\"mobile\":\"555-200-0007\"}\n\
                    {\"id\":\"9995552000007123\"}\n";
        let (hits, first) = scan_logs(logs, &stems, &phones);
        assert_eq!(hits, 3, "{first:?}");
    }

    #[test]
    fn every_personal_field_of_a_seeded_address_carries_a_stem_or_the_phone() {
        let (a, digits) = address(27, true);
        for field in ["first_name", "last_name", "address1", "address2", "city"] {
            let v = a[field].as_str().unwrap().to_ascii_lowercase();
            assert!(STEMS.iter().any(|s| v.contains(s)), "{field}: {v}");
        }
        let (hits, _) = scan_logs(a["phone"].as_str().unwrap(), &[], &[digits]);
        assert_eq!(hits, 1);
    }
}
