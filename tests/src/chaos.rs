//! The chaos run: N orders over S shops through the whole lifecycle — Shopify
//! orders and their signed webhooks, supplier orders linked through the API, AliExpress orders
//! paid and shipped, polls, manual syncs and the pusher draining the tracking queue — with faults
//! injected everywhere, then one clean round, then checks against the sandboxes' own records.
//!
//! Used by `tests/tests/chaos.rs` (100 orders, in `make test`) and `bench/src/bin/chaos.rs`
//! (`make chaos`, 1,000 orders). Everything runs in-process against the emulator and the
//! sandboxes that `tests/tools/services.py` starts: the local stack's real HTTP server (webhooks
//! and API), the real `SyncService` (poll and manual sync) and the real pusher batch handler.
//!
//! Faults:
//! - Shopify webhooks duplicated (`times: 2`), reordered (`orders/paid` before `orders/create`),
//!   delayed (delivered after the links were first tried), stale (an old body re-delivered after
//!   a newer one), and retried like Shopify does when the answer was not a 200;
//! - AliExpress `ApiCallLimit` bans, ISP errors, responses slower than the client's timeout,
//!   tracking that appears a round late, tracking numbers corrected after the push;
//! - Shopify `THROTTLED`, 429, 5xx, and timeouts after the fulfillment was created;
//! - the pusher killed mid-batch (its task aborted; the messages come back after the test
//!   queue's 2 s visibility timeout);
//! - a poll and manual syncs (`POST /shops/{shop}/orders/{id}/sync`) racing;
//! - DynamoDB unavailable for a few seconds (every store client goes through a TCP proxy that is
//!   switched off);
//! - webhook deliveries Shopify never makes: 30% of the first wave dropped, all of its middle
//!   fifth lost to an outage that outlasts Shopify's retries (8 tries over 4 hours), and two
//!   subscriptions deleted in the sandbox part-way. The reconciler's scheduled runs (each shop
//!   reconciled, then its subscriptions repaired through the connect service) follow, with
//!   Shopify's faults still on, until one run reads every shop to its end and the subscriptions
//!   are back; the checks then count orders lost and duplicated.
//!
//! At the end, `replays` captured signed deliveries (each shop's app and compliance bodies and
//! the orders' bodies, signed with their shop's secret) are replayed under swapped topic, shop
//! and webhook-id headers, under every topic dropsync handles: a full scan of the table before
//! and after must be identical.
//!
//! The last round runs with faults off and stands for "the next scheduled run" (12 h later): the
//! push leases of killed workers (120 s) and the resend grace of pushes whose message was lost
//! (30 min) are fast-forwarded, i.e. treated as expired, which is what they would be by then.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::too_many_lines
)]

use crate::LocalRouter as Local;
use crate::{aliexpress_sandbox, aws_config, create_table, sandbox_get, sandbox_post};
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use dropsync_aliexpress::{IopClient, IopConfig, MemoryTokenStore, Tokens};
use dropsync_api::Api;
use dropsync_app::connect::ConnectService;
use dropsync_app::push::PushService;
use dropsync_app::queue::SqsQueue;
use dropsync_app::reconcile::{DEFAULT_LOOKBACK_MS, ReconcileService, ShopRepair};
use dropsync_app::sync::SyncService;
use dropsync_app::webhook::WebhookService;
use dropsync_domain::{PushState, ShopDomain, history_is_valid};
use dropsync_local::server::serve;
use dropsync_shopify::admin::{AdminClient, AdminConfig};
use dropsync_store::Store;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// How a run is sized and how hard it is hit.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub orders: usize,
    pub shops: usize,
    pub seed: u64,
    /// Rounds with faults on (at least 3: late tracking shows in round 1, corrections in round 2).
    pub fault_rounds: usize,
    /// Length of an AliExpress ban.
    pub ban_seconds: f64,
    /// How long DynamoDB is unreachable (zero: no outage).
    pub outage: Duration,
    /// Probability that a pusher batch is killed part-way.
    pub kill_probability: f64,
    /// Share of webhook deliveries Shopify never makes (zero: none lost). Lost deliveries, the
    /// outage and the deleted subscriptions below only hit the first wave of webhooks; the
    /// reconciliation pass that follows must recover every order they carried.
    pub webhook_loss: f64,
    /// A webhook outage over the middle fifth of the first wave: every delivery in it fails
    /// until Shopify gives up (8 tries over 4 hours), so none is ever made.
    pub webhook_outage: bool,
    /// Shopify deletes webhook subscriptions mid-run (as it does after repeated failures).
    pub delete_subscriptions: bool,
    /// Captured signed deliveries replayed under swapped headers at the end (zero: none).
    pub replays: usize,
}

impl ChaosConfig {
    pub fn new(orders: usize, shops: usize, seed: u64) -> Self {
        Self {
            orders,
            shops: shops.max(1),
            seed,
            fault_rounds: 3,
            ban_seconds: 1.0,
            outage: Duration::from_secs(3),
            kill_probability: 0.12,
            webhook_loss: 0.30,
            webhook_outage: true,
            delete_subscriptions: true,
            replays: 1000,
        }
    }
}

/// What the run did and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChaosReport {
    pub orders: usize,
    pub shops: usize,
    pub seed: u64,
    pub rounds: usize,
    /// Faults injected, by kind: the sandboxes' own counts and the harness's.
    pub faults: BTreeMap<String, u64>,
    /// Orders by the tab they must end in.
    pub expected_tabs: BTreeMap<String, u64>,
    /// Shopify fulfillments created by the app (sandbox count) and packages expected.
    pub fulfillments: u64,
    pub packages_expected: u64,
    /// Emails Shopify sent (fulfillments with notifyCustomer, and tracking updates of those).
    pub emails: u64,
    /// Pushes still due, their message gone, that the final run re-sent after the grace.
    pub resent_after_grace: u64,
    pub violations: Vec<String>,
    pub wall_secs: f64,
    /// Webhook deliveries never made: dropped, lost in the outage, lost to a deleted subscription.
    pub webhooks_lost: u64,
    /// The reconciliation pass: scheduled runs until every shop was read to its end and its
    /// subscriptions repaired, and what they found.
    pub reconcile: ReconcileFigures,
    /// Orders of the plan missing from dropsync or in the wrong tab at the end.
    pub orders_lost: u64,
    /// Order records dropsync holds beyond the plan's, plus packages fulfilled more than once.
    pub orders_duplicated: u64,
    /// Replays of captured deliveries under swapped headers, their answers by HTTP status, and
    /// the table items they added, removed or changed.
    pub replays: u64,
    pub replay_statuses: BTreeMap<String, u64>,
    pub replay_topics: u64,
    pub replay_state_changes: u64,
}

/// What the reconciliation pass after the lost webhooks did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileFigures {
    /// Scheduled runs made (a run stopped by a Shopify fault resumes in the next one).
    pub runs: u64,
    pub checked: u64,
    pub changed: u64,
    /// Orders Shopify had and dropsync did not: the gap metric.
    pub missed: u64,
    pub failed_shop_runs: u64,
    pub wall_secs: f64,
    pub subscriptions_deleted: u64,
    pub subscriptions_repaired: u64,
}

impl ChaosReport {
    pub fn fault(&self, kind: &str) -> u64 {
        self.faults.get(kind).copied().unwrap_or(0)
    }

    /// A human summary (the binary prints it; the test prints it with --nocapture).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "chaos: {} orders over {} shops (seed {}), {} rounds, {:.1} s\n  expected tabs: {:?}\n  packages {}, fulfillments created {}, emails {}, re-sent after grace {}\n  faults:\n",
            self.orders,
            self.shops,
            self.seed,
            self.rounds,
            self.wall_secs,
            self.expected_tabs,
            self.packages_expected,
            self.fulfillments,
            self.emails,
            self.resent_after_grace
        );
        for (k, v) in &self.faults {
            s.push_str(&format!("    {k:32} {v}\n"));
        }
        let r = &self.reconcile;
        s.push_str(&format!(
            "  webhooks lost {}; reconciliation: {} runs in {:.1} s, checked {}, changed {}, missed {}, shop runs failed {}; subscriptions deleted {}, repaired {}\n  orders lost {}, duplicated {}\n  replays {} over {} topics: {:?}, state changes {}\n",
            self.webhooks_lost,
            r.runs,
            r.wall_secs,
            r.checked,
            r.changed,
            r.missed,
            r.failed_shop_runs,
            r.subscriptions_deleted,
            r.subscriptions_repaired,
            self.orders_lost,
            self.orders_duplicated,
            self.replays,
            self.replay_topics,
            self.replay_statuses,
            self.replay_state_changes
        ));
        s.push_str(&format!("  violations: {}\n", self.violations.len()));
        for v in self.violations.iter().take(200) {
            s.push_str(&format!("    {v}\n"));
        }
        s
    }
}

/// The fault kinds a run must have injected to count as a chaos run.
pub const REQUIRED_FAULTS: &[&str] = &[
    "webhook_duplicated",
    "webhook_reordered",
    "webhook_delayed",
    "webhook_stale",
    "ae_api_call_limit",
    "ae_bans_started",
    "ae_isp_errors",
    "ae_slow_responses",
    "ae_tracking_late",
    "ae_tracking_corrected",
    "shopify_throttled",
    "shopify_http_429",
    "shopify_server_errors",
    "shopify_timeouts_after_success",
    "pusher_killed",
    "sync_races",
    "dynamodb_outages",
    "dynamodb_connections_cut",
    "webhook_dropped",
    "webhook_lost_in_outage",
    "webhook_lost_unsubscribed",
];

// ---------------------------------------------------------------------------------------------
// A TCP proxy in front of the emulator that can be switched off.

struct Proxy {
    url: String,
    down: watch::Sender<bool>,
    /// Connections refused or cut while down.
    cut: Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (down, rx) = watch::channel(false);
        let cut = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let cut_ = cut.clone();
        tokio::spawn(async move {
            let bump = |c: &std::sync::atomic::AtomicU64| {
                c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            };
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if *rx.borrow() {
                    drop(inbound);
                    bump(&cut_);
                    continue;
                }
                let mut rx = rx.clone();
                let target = target.clone();
                let cut = cut_.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = rx.wait_for(|d| *d) => bump(&cut),
                    }
                });
            }
        });
        Self { url, down, cut }
    }

    fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

// ---------------------------------------------------------------------------------------------
// The plan: what each order goes through, decided up front from the seed.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Never paid.
    Pending,
    /// Paid, linked, then canceled in Shopify.
    Canceled,
    /// Paid, never linked.
    Unlinked,
    /// Linked; the AliExpress order is not paid.
    AeUnpaid,
    /// Linked and paid on AliExpress; nothing shipped.
    AeUnshipped,
    /// Two suppliers: one ships, the other does not.
    Partial,
    /// Everything ships.
    Full,
}

impl Kind {
    fn tab(self) -> &'static str {
        match self {
            Kind::Pending => "pending",
            Kind::Canceled => "canceled",
            Kind::Unlinked => "awaiting_order",
            Kind::AeUnpaid => "awaiting_payment",
            Kind::AeUnshipped => "awaiting_shipment",
            Kind::Partial => "awaiting_fulfillment",
            Kind::Full => "fulfilled",
        }
    }
    fn paid(self) -> bool {
        self != Kind::Pending
    }
    fn linked(self) -> bool {
        !matches!(self, Kind::Pending | Kind::Unlinked)
    }
}

#[derive(Debug, Clone)]
struct Line {
    id: u64,
    qty: u32,
    product: u64,
    sku: String,
}

#[derive(Debug, Clone)]
struct Pkg {
    /// The number it ships with, and the number it ends with (after a correction).
    mail_no: String,
    final_no: String,
    /// (line index, quantity)
    lines: Vec<(usize, u32)>,
    late: bool,
}

#[derive(Debug, Clone)]
struct Supplier {
    ae_id: u64,
    lines: Vec<usize>,
    ships: bool,
    packages: Vec<Pkg>,
}

#[derive(Debug, Clone)]
struct Plan {
    idx: usize,
    shop: usize,
    kind: Kind,
    id: u64,
    lines: Vec<Line>,
    suppliers: Vec<Supplier>,
    /// The `orders/create` body (before payment).
    created_body: Value,
    /// The body after payment.
    paid_body: Value,
    reorder: bool,
    delayed: bool,
    stale: bool,
}

// ---------------------------------------------------------------------------------------------

struct Ctx {
    cfg: ChaosConfig,
    tag: String,
    http: reqwest::Client,
    base: String,
    shop_base: String,
    ae_base: String,
    app_key: String,
    shops: Vec<String>,
    notify: Vec<bool>,
    auth: String,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    /// Direct (not proxied): for checks and the fast-forward.
    store: Store,
    sync: Arc<SyncService<IopClient, SqsQueue>>,
    pusher: Arc<PushService<AdminClient>>,
    proxy: Proxy,
    counts: Mutex<BTreeMap<String, u64>>,
    rng: Mutex<fastrand::Rng>,
    /// Each shop's webhook secret (what Shopify signs its deliveries with).
    secrets: Vec<String>,
    loss: Loss,
    reconcile: ReconcileService<AdminClient>,
    repair: ConnectService,
    /// Where the subscriptions point: not the harness's server, so that the deliveries the
    /// sandbox makes by itself on admin changes go nowhere and the harness alone delivers.
    subscription_url: String,
    figures: Mutex<ReconcileFigures>,
}

/// Which webhook deliveries Shopify never makes.
#[derive(Default)]
struct Loss {
    /// Losses are on (the first wave of webhooks).
    on: std::sync::atomic::AtomicBool,
    /// In the outage window.
    outage: std::sync::atomic::AtomicBool,
    /// (shop, topic) whose subscription Shopify deleted.
    unsubscribed: Mutex<std::collections::BTreeSet<(String, String)>>,
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
    fn chance(&self, p: f64) -> bool {
        self.rng.lock().unwrap().f64() < p
    }
    fn below(&self, n: u64) -> u64 {
        self.rng.lock().unwrap().u64(..n.max(1))
    }
    /// Whether Shopify never makes this delivery (and why, counted).
    fn lost(&self, shop: &str, topic: &str) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        if !self.loss.on.load(SeqCst) {
            return false;
        }
        let kind = if self
            .loss
            .unsubscribed
            .lock()
            .unwrap()
            .contains(&(shop.to_owned(), topic.to_owned()))
        {
            "webhook_lost_unsubscribed"
        } else if self.loss.outage.load(SeqCst) {
            "webhook_lost_in_outage"
        } else if self.cfg.webhook_loss > 0.0 && self.chance(self.cfg.webhook_loss) {
            "webhook_dropped"
        } else {
            return false;
        };
        self.count(kind, 1);
        true
    }
}

/// An id from a JSON number or string.
fn id_of(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.rsplit('/').next()?.parse().ok()))
        .unwrap_or_else(|| panic!("not an id: {v}"))
}

/// Runs the scenario with the default fault settings.
pub async fn run(orders: usize, shops: usize, seed: u64) -> ChaosReport {
    run_with(ChaosConfig::new(orders, shops, seed)).await
}

pub async fn run_with(cfg: ChaosConfig) -> ChaosReport {
    let started = Instant::now();
    let ctx = Arc::new(setup(cfg).await);
    let plans = Arc::new(plan_orders(&ctx).await);
    subscribe_all(&ctx).await;

    // Faults on from here.
    faults(&ctx, true).await;
    webhooks_and_links(&ctx, &plans).await;
    ship(&ctx, &plans).await;

    let mut rounds = 0;
    for round in 0..ctx.cfg.fault_rounds {
        rounds += 1;
        if round == 1 {
            reveal_late(&ctx, &plans).await;
            cancel(&ctx, &plans).await;
        }
        if round == 2 {
            correct(&ctx, &plans).await;
        }
        let outage = (round == 1 && !ctx.cfg.outage.is_zero()).then(|| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                ctx.proxy.set_down(true);
                ctx.count("dynamodb_outages", 1);
                let started = tokio::time::Instant::now();
                // At least one request meets the outage, whatever else happens to be in flight
                // (so the run never depends on timing to prove the fault was real).
                // (Through the proxied store: the direct one would not meet it.)
                let _ = ctx.sync.store.ping().await;
                tokio::time::sleep(ctx.cfg.outage.saturating_sub(started.elapsed())).await;
                ctx.proxy.set_down(false);
            })
        });
        poll_and_race(&ctx, &plans).await;
        drain(
            &ctx,
            ctx.cfg.kill_probability,
            Duration::from_millis(2500),
            Duration::from_secs(20),
        )
        .await;
        if let Some(o) = outage {
            o.await.unwrap();
        }
    }

    // The next scheduled run: faults off, leases and grace expired.
    faults(&ctx, false).await;
    rounds += 1;
    fast_forward_leases(&ctx).await;
    drain(
        &ctx,
        0.0,
        Duration::from_millis(2500),
        Duration::from_secs(60),
    )
    .await;
    let resent = fast_forward_grace(&ctx, &plans).await;
    ctx.sync
        .poll(None, Instant::now() + Duration::from_secs(600))
        .await
        .unwrap();
    drain(
        &ctx,
        0.0,
        Duration::from_millis(2500),
        Duration::from_secs(120),
    )
    .await;

    let mut replayed = ChaosReport::default();
    replays(&ctx, &plans, &mut replayed).await;
    let mut report = check(&ctx, &plans).await;
    report.replays = replayed.replays;
    report.replay_statuses = replayed.replay_statuses;
    report.replay_topics = replayed.replay_topics;
    report.replay_state_changes = replayed.replay_state_changes;
    report.violations.extend(replayed.violations);
    report.reconcile = ctx.figures.lock().unwrap().clone();
    report.webhooks_lost = [
        "webhook_dropped",
        "webhook_lost_in_outage",
        "webhook_lost_unsubscribed",
    ]
    .iter()
    .map(|k| report.fault(k))
    .sum();
    let (extra, v) = extra_orders(&ctx, &plans).await;
    report.orders_duplicated += extra;
    report.violations.extend(v);
    report.rounds = rounds;
    report.resent_after_grace = resent;
    report.wall_secs = started.elapsed().as_secs_f64();
    report
}

async fn setup(cfg: ChaosConfig) -> Ctx {
    let conf = aws_config().await;
    let tag = format!(
        "{}{}",
        std::process::id() % 10_000,
        fastrand::u32(..100_000)
    );
    let direct = aws_sdk_dynamodb::Client::new(&conf);
    let table = format!("chaos-{tag}");
    create_table(&direct, &table).await;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let target = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = Proxy::start(target).await;
    let proxied = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&conf)
            .endpoint_url(&proxy.url)
            .build(),
    );
    let store = Store::new(proxied, table.clone());
    let direct_store = Store::new(direct, table);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let queue_url = crate::create_queue_with_visibility(&sqs, &format!("chaos-{tag}"), 2).await;

    let shop_base = crate::shopify_sandbox();
    let ae_base = aliexpress_sandbox();
    let mut shops = Vec::new();
    let mut secrets = Vec::new();
    let mut notify = Vec::new();
    let mut creds = serde_json::Map::new();
    for s in 0..cfg.shops {
        let shop = format!("chaos-{tag}-{s}.myshopify.com");
        let token = format!("shpat_chaos_{tag}_{s}");
        let secret = format!("shpss_chaos_{tag}_{s}");
        sandbox_post(&shop_base, "/_admin/shops", json!({"shop": shop, "access_token": token, "webhook_secret": secret, "bucket_size": 100_000, "restore_rate": 10_000, "seed": cfg.seed + s as u64})).await;
        creds.insert(
            shop.clone(),
            json!({"access_token": token, "webhook_secrets": [secret]}),
        );
        shops.push(shop);
        secrets.push(secret);
        // Some shops email their customers, some do not.
        notify.push(s % 2 == 0);
    }
    let app_key = format!("{}", 30_000_000 + fastrand::u32(..9_000_000));
    crate::sandbox_ae_app(
        &ae_base,
        json!({"app_key": app_key, "app_secret": "chaos-secret", "calls_per_second": null, "ban_seconds": cfg.ban_seconds, "seed": cfg.seed}),
        json!({"access_token": "chaos-ae", "refresh_token": "chaos-ae-r", "account": "chaos", "expires_in": 86400 * 30}),
    )
    .await;
    let admin_token = format!("chaos-admin-token-{tag}-0123456789");
    let credentials = crate::credentials(json!({"admin_token": admin_token, "shops": creds}));
    // Shorter than the sandbox's `timeout_ms` (3 s): a timeout after success is seen as one.
    let admin = Arc::new(
        AdminClient::new(AdminConfig {
            base_override: Some(shop_base.clone()),
            timeout: Duration::from_millis(1500),
            ..AdminConfig::default()
        })
        .unwrap(),
    );
    // Shorter than the slow responses (3 s).
    let ae = IopClient::new(
        IopConfig {
            base_url: ae_base.clone(),
            calls_per_second: 200.0,
            max_concurrency: 8,
            timeout: Duration::from_secs(2),
            ..IopConfig::new(
                app_key.clone(),
                "chaos-secret",
                Tokens {
                    access_token: "chaos-ae".into(),
                    refresh_token: "chaos-ae-r".into(),
                    expire_time_ms: Some(dropsync_app::now_ms() + 86_400_000 * 30),
                },
            )
        },
        Arc::new(MemoryTokenStore::new()),
    )
    .unwrap();
    let sync = Arc::new(SyncService {
        store: store.clone(),
        ae: Arc::new(ae),
        queue: Arc::new(SqsQueue::new(sqs.clone(), queue_url.clone())),
        concurrency: 8,
    });
    let local = Arc::new(Local {
        webhook: WebhookService {
            store: store.clone(),
            credentials: credentials.clone(),
            admin: Some(admin.clone()),
        },
        api: Arc::new(Api {
            store: store.clone(),
            credentials: credentials.clone(),
            sync: Some(sync.clone()),
            place: None,
            connect: None,
            reconcile: None,
        }),
    });
    // The reconciler and the subscription repair as the scheduled function wires them.
    let reconcile = ReconcileService {
        store: store.clone(),
        credentials: credentials.clone(),
        admin: admin.clone(),
        lookback_ms: DEFAULT_LOOKBACK_MS,
    };
    let subscription_url = format!("http://127.0.0.1:9/chaos-{tag}");
    let repair = ConnectService {
        store: store.clone(),
        credentials: credentials.clone(),
        tokens: dropsync_app::tokens::shared(&store, &credentials, Some(shop_base.clone()))
            .unwrap(),
        token_client: dropsync_shopify::oauth::TokenClient::new(Some(shop_base.clone())).unwrap(),
        admin: admin.clone(),
        public_url: subscription_url.clone(),
        aliexpress_api_url: ae_base.clone(),
        http: reqwest::Client::new(),
        // No shop reconnects in the chaos run: nothing to re-queue.
        tracking_queue: None,
    };
    let pusher = Arc::new(PushService {
        store: store.clone(),
        admin,
        credentials,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, local));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let ctx = Ctx {
        rng: Mutex::new(fastrand::Rng::with_seed(cfg.seed)),
        cfg,
        tag,
        http,
        base,
        shop_base,
        ae_base,
        app_key,
        shops,
        notify,
        auth: format!("Bearer {admin_token}"),
        sqs,
        queue_url,
        store: direct_store,
        sync,
        pusher,
        proxy,
        counts: Mutex::new(BTreeMap::new()),
        secrets,
        loss: Loss::default(),
        reconcile,
        repair,
        subscription_url,
        figures: Mutex::new(ReconcileFigures::default()),
    };
    for (s, shop) in ctx.shops.iter().enumerate() {
        let res = ctx
            .http
            .put(format!("{}/shops/{shop}/settings", ctx.base))
            .header("Authorization", &ctx.auth)
            .json(&json!({"notify_customer": ctx.notify[s], "carrier_mapping": {}, "tracking_url_template": "https://t.17track.net/en#nums={number}"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "settings of {shop}");
    }
    ctx
}

/// Turns the sandboxes' faults on or off.
async fn faults(ctx: &Ctx, on: bool) {
    let p = |x: f64| if on { x } else { 0.0 };
    sandbox_post(
        &ctx.ae_base,
        "/_admin/apps",
        json!({"app_key": ctx.app_key, "faults": {"api_call_limit": p(0.10), "isp_error": p(0.05), "server_error": 0.0, "slow": p(0.02), "slow_ms": 3000}}),
    )
    .await;
    for shop in &ctx.shops {
        sandbox_post(
            &ctx.shop_base,
            "/_admin/shops",
            json!({"shop": shop, "faults": {"throttled": p(0.10), "http_429": p(0.03), "server_error": p(0.03), "timeout_after_success": p(0.04), "timeout_ms": 3000, "timeout_mode": "drop", "latency_ms": 0, "retry_after": 0.2}}),
        )
        .await;
    }
}

/// Creates the Shopify and AliExpress orders (no faults yet: the sandboxes' admin APIs).
async fn plan_orders(ctx: &Arc<Ctx>) -> Vec<Plan> {
    let mut drafts = Vec::new();
    for i in 0..ctx.cfg.orders {
        let roll = ctx.below(100);
        let kind = match roll {
            0..=3 => Kind::Pending,
            4..=7 => Kind::Canceled,
            8..=11 => Kind::Unlinked,
            12..=15 => Kind::AeUnpaid,
            16..=19 => Kind::AeUnshipped,
            20..=29 => Kind::Partial,
            _ => Kind::Full,
        };
        let mut n_lines = 1 + ctx.below(3) as usize;
        if kind == Kind::Partial {
            n_lines = n_lines.max(2);
        }
        let qty: Vec<u32> = (0..n_lines).map(|_| 1 + ctx.below(2) as u32).collect();
        let two_suppliers = kind == Kind::Partial || (n_lines >= 2 && ctx.chance(0.5));
        let reorder = kind.paid() && ctx.chance(0.2);
        let delayed = kind.linked() && ctx.chance(0.1);
        let stale = ctx.chance(0.15);
        let late: Vec<bool> = (0..4).map(|_| ctx.chance(0.15)).collect();
        let corrected: Vec<bool> = (0..4).map(|_| ctx.chance(0.10)).collect();
        let split = ctx.chance(0.5);
        drafts.push((
            i,
            kind,
            qty,
            two_suppliers,
            reorder,
            delayed,
            stale,
            late,
            corrected,
            split,
        ));
    }
    let sem = Arc::new(Semaphore::new(8));
    let mut set = JoinSet::new();
    for (i, kind, qty, two, reorder, delayed, stale, late, corrected, split) in drafts {
        let ctx = ctx.clone();
        let sem = sem.clone();
        set.spawn(async move {
            let _p = sem.acquire_owned().await.unwrap();
            let shop = i % ctx.shops.len();
            let base_product = 1_005_000_000_000_000u64 + (i as u64) * 10;
            let items: Vec<Value> = qty
                .iter()
                .enumerate()
                .map(|(k, q)| json!({"sku": format!("CH-{i}-{k}"), "title": format!("Item {k}"), "quantity": q, "price": "9.90"}))
                .collect();
            let out = sandbox_post(&ctx.shop_base, "/_admin/orders", json!({"shop": ctx.shops[shop], "order": {"name": format!("#C{i}"), "financial_status": "pending", "line_items": items}})).await;
            let created_body = out["order"].clone();
            let id = id_of(&created_body["id"]);
            let lines: Vec<Line> = created_body["line_items"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .map(|(k, li)| Line {
                    id: id_of(&li["id"]),
                    qty: qty[k],
                    product: base_product + k as u64,
                    sku: format!("12000{i:08}{k}"),
                })
                .collect();
            let paid_body = if kind.paid() {
                sandbox_post(&ctx.shop_base, &format!("/_admin/orders/{id}/update"), json!({"shop": ctx.shops[shop], "financial_status": "paid"})).await["order"].clone()
            } else {
                created_body.clone()
            };
            // Suppliers: one, or the lines split in two.
            let groups: Vec<Vec<usize>> = if two {
                let cut = lines.len() / 2;
                vec![(0..cut.max(1)).collect(), (cut.max(1)..lines.len()).collect()]
            } else {
                vec![(0..lines.len()).collect()]
            };
            let mut suppliers = Vec::new();
            let mut pkg_no = 0usize;
            for (g, group) in groups.into_iter().enumerate() {
                let ships = match kind {
                    Kind::Full => true,
                    Kind::Partial => g == 0,
                    _ => false,
                };
                let status = if kind == Kind::AeUnpaid {
                    ("PLACE_ORDER_SUCCESS", "DEFAULT")
                } else {
                    ("WAIT_SELLER_SEND_GOODS", "WAIT_SELLER_SEND_GOODS")
                };
                let ae_items: Vec<Value> = group
                    .iter()
                    .map(|k| json!({"product_id": lines[*k].product.to_string(), "sku_id": lines[*k].sku, "count": lines[*k].qty, "title": format!("Item {k}"), "price": "3.10"}))
                    .collect();
                let out = sandbox_post(&ctx.ae_base, "/_admin/orders", json!({"app_key": ctx.app_key, "account": "chaos", "status": status.0, "logistics_status": status.1, "items": ae_items})).await;
                let ae_id = id_of(&out["order_id"]);
                // Packages: one, or two (by lines, or one unit each of a line of two).
                let mut parts: Vec<Vec<(usize, u32)>> = Vec::new();
                if split && group.len() >= 2 {
                    let cut = group.len() / 2;
                    parts.push(group[..cut].iter().map(|k| (*k, lines[*k].qty)).collect());
                    parts.push(group[cut..].iter().map(|k| (*k, lines[*k].qty)).collect());
                } else if split && group.len() == 1 && lines[group[0]].qty == 2 {
                    parts.push(vec![(group[0], 1)]);
                    parts.push(vec![(group[0], 1)]);
                } else {
                    parts.push(group.iter().map(|k| (*k, lines[*k].qty)).collect());
                }
                let packages = parts
                    .into_iter()
                    .map(|p| {
                        let n = pkg_no.min(3);
                        pkg_no += 1;
                        let mail_no = format!("CH{}{:06}{}", ctx.tag, i, pkg_no);
                        let final_no = if corrected[n] && ships {
                            format!("CX{}{:06}{}", ctx.tag, i, pkg_no)
                        } else {
                            mail_no.clone()
                        };
                        Pkg {
                            mail_no,
                            final_no,
                            lines: p,
                            late: late[n] && ships,
                        }
                    })
                    .collect();
                suppliers.push(Supplier {
                    ae_id,
                    lines: group,
                    ships,
                    packages,
                });
            }
            Plan {
                idx: i,
                shop,
                kind,
                id,
                lines,
                suppliers,
                created_body,
                paid_body,
                reorder,
                delayed,
                stale,
            }
        });
    }
    let mut plans = Vec::new();
    while let Some(p) = set.join_next().await {
        plans.push(p.unwrap());
    }
    plans.sort_by_key(|p| p.idx);
    plans
}

/// One webhook delivery, signed by the sandbox, retried like Shopify retries until a 200.
async fn deliver(ctx: &Ctx, shop: &str, topic: &str, body: &Value, dup: bool) {
    if ctx.lost(shop, topic) {
        return;
    }
    let url = format!("{}/webhooks/shopify", ctx.base);
    let mut times = if dup { 2 } else { 1 };
    for attempt in 0..30 {
        let out = sandbox_post(
            &ctx.shop_base,
            "/_admin/webhooks/deliver",
            json!({"shop": shop, "topic": topic, "target_url": url, "body": body, "times": times}),
        )
        .await;
        let ok = out["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == 200);
        if ok {
            if attempt > 0 {
                ctx.count("webhook_retried_by_shopify", 1);
            }
            return;
        }
        times = 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("webhook {topic} for {shop} never accepted");
}

/// Links one supplier order through the API, retrying while the order is not there yet (its
/// webhook is late) or the store is unreachable.
async fn link(ctx: &Ctx, p: &Plan, s: &Supplier) -> Result<(), String> {
    let shop = &ctx.shops[p.shop];
    let items: Vec<Value> = s
        .lines
        .iter()
        .map(|k| json!({"line_item_id": p.lines[*k].id.to_string(), "aliexpress_product_id": p.lines[*k].product.to_string(), "aliexpress_sku_id": p.lines[*k].sku}))
        .collect();
    let lines: Vec<String> = s.lines.iter().map(|k| p.lines[*k].id.to_string()).collect();
    for _ in 0..120 {
        let res = ctx
            .http
            .put(format!("{}/shops/{shop}/orders/{}/supplier-orders", ctx.base, p.id))
            .header("Authorization", &ctx.auth)
            .json(&json!({"aliexpress_order_id": s.ae_id.to_string(), "line_item_ids": lines, "items": items}))
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if r.status() == 404 || r.status().is_server_error() => {}
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                return Err(format!(
                    "order {} (#{}) link {}: {status} {body}",
                    p.id, p.idx, s.ae_id
                ));
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!(
        "order {} (#{}) link {}: never accepted",
        p.id, p.idx, s.ae_id
    ))
}

/// The webhooks of one order, with its faults.
async fn order_webhooks(ctx: &Ctx, p: &Plan) {
    let shop = &ctx.shops[p.shop];
    let mut events: Vec<(&str, &Value)> = vec![("orders/create", &p.created_body)];
    if p.kind.paid() {
        events.push(("orders/paid", &p.paid_body));
        if p.reorder {
            events.reverse();
            ctx.count("webhook_reordered", 1);
        }
    }
    for (topic, body) in events {
        let dup = ctx.chance(0.3);
        if dup {
            ctx.count("webhook_duplicated", 1);
        }
        deliver(ctx, shop, topic, body, dup).await;
    }
    if p.stale {
        // A retry of the first version after the newer one.
        deliver(ctx, shop, "orders/updated", &p.created_body, false).await;
        ctx.count("webhook_stale", 1);
    }
}

/// The first wave of webhooks (shuffled), with deliveries lost: some dropped, all of them in the
/// outage window (the middle fifth of the wave), and those of the subscriptions Shopify deletes
/// part-way (after the outage). Then the reconciliation pass; then the links, with the delayed
/// orders' webhooks arriving meanwhile.
async fn webhooks_and_links(ctx: &Arc<Ctx>, plans: &Arc<Vec<Plan>>) {
    use std::sync::atomic::Ordering::SeqCst;
    let mut order: Vec<usize> = (0..plans.len()).filter(|i| !plans[*i].delayed).collect();
    ctx.rng.lock().unwrap().shuffle(&mut order);
    let sem = Arc::new(Semaphore::new(8));
    let n = order.len();
    let windows = [0..n * 2 / 5, n * 2 / 5..n * 3 / 5, n * 3 / 5..n];
    ctx.loss.on.store(true, SeqCst);
    for (w, range) in windows.into_iter().enumerate() {
        ctx.loss
            .outage
            .store(w == 1 && ctx.cfg.webhook_outage, SeqCst);
        if w == 2 && ctx.cfg.delete_subscriptions {
            delete_subscriptions(ctx).await;
        }
        let mut set = JoinSet::new();
        for i in order.get(range).unwrap_or_default().iter().copied() {
            let (ctx, plans, sem) = (ctx.clone(), plans.clone(), sem.clone());
            set.spawn(async move {
                let _p = sem.acquire_owned().await.unwrap();
                order_webhooks(&ctx, &plans[i]).await;
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    }
    ctx.loss.outage.store(false, SeqCst);
    ctx.loss.on.store(false, SeqCst);
    reconciliation_pass(ctx).await;
    // Links for every linked order start now; the delayed orders' webhooks arrive meanwhile.
    let mut links = JoinSet::new();
    for i in (0..plans.len()).filter(|i| plans[*i].kind.linked()) {
        let (ctx, plans, sem) = (ctx.clone(), plans.clone(), sem.clone());
        links.spawn(async move {
            let _p = sem.acquire_owned().await.unwrap();
            let mut errs = Vec::new();
            for s in &plans[i].suppliers {
                if let Err(e) = link(&ctx, &plans[i], s).await {
                    errs.push(e);
                }
            }
            errs
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in (0..plans.len()).filter(|i| plans[*i].delayed) {
        ctx.count("webhook_delayed", 1);
        order_webhooks(ctx, &plans[i]).await;
    }
    while let Some(r) = links.join_next().await {
        for e in r.unwrap() {
            ctx.counts
                .lock()
                .unwrap()
                .entry(format!("LINK ERROR {e}"))
                .or_insert(1);
        }
    }
}

/// The topics whose subscriptions Shopify deletes mid-run: two shops lose one each.
fn deleted_topics(ctx: &Ctx) -> Vec<(String, &'static str)> {
    let n = ctx.shops.len();
    vec![
        (ctx.shops[0].clone(), "orders/paid"),
        (ctx.shops[1 % n].clone(), "orders/create"),
    ]
}

/// The shop's subscriptions (topic, target) as the sandbox Shopify holds them.
async fn subscriptions_of(ctx: &Ctx, shop: &str) -> Vec<(String, String)> {
    let all = sandbox_get(&ctx.shop_base, "/_admin/shops").await;
    all["shops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["shop"] == shop)
        .flat_map(|s| {
            s["webhook_subscriptions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|x| {
            (
                x["topic"].as_str().unwrap_or_default().to_owned(),
                x["target_url"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The deleted subscriptions not yet back in Shopify, pointing at the deployment.
async fn missing_subscriptions(ctx: &Ctx) -> Vec<(String, &'static str)> {
    let uri = format!("{}/webhooks/shopify", ctx.subscription_url);
    let mut missing = Vec::new();
    for (shop, topic) in deleted_topics(ctx) {
        let subs = subscriptions_of(ctx, &shop).await;
        if !subs.iter().any(|(t, u)| t == topic && *u == uri) {
            missing.push((shop, topic));
        }
    }
    missing
}

/// Every shop subscribed as on connect (the same repair the scheduled run makes), faults off.
async fn subscribe_all(ctx: &Ctx) {
    for shop in &ctx.shops {
        let domain = ShopDomain::parse(shop).unwrap();
        ctx.repair.repair(&domain).await.unwrap();
    }
    assert!(
        missing_subscriptions(ctx).await.is_empty(),
        "the shops were not subscribed"
    );
}

/// Shopify deletes subscriptions: from now on it delivers nothing of those topics to those shops.
async fn delete_subscriptions(ctx: &Ctx) {
    for (shop, topic) in deleted_topics(ctx) {
        let out = sandbox_post(
            &ctx.shop_base,
            "/_admin/webhooks/subscriptions",
            json!({"shop": shop, "delete_topic": topic}),
        )
        .await;
        assert_eq!(out["deleted"], 1, "subscription {topic} of {shop}");
        ctx.loss
            .unsubscribed
            .lock()
            .unwrap()
            .insert((shop, topic.to_owned()));
        ctx.figures.lock().unwrap().subscriptions_deleted += 1;
    }
}

/// The reconciler on its schedule after the lost webhooks: scheduled runs (each shop reconciled,
/// then its subscriptions repaired) until a run reads every shop to its end with no failure and
/// the deleted subscriptions are back. Shopify's faults stay on, so a run may stop part-way; the
/// next resumes from the watermark, as the hourly schedule would.
async fn reconciliation_pass(ctx: &Arc<Ctx>) {
    let started = Instant::now();
    let mut f = ReconcileFigures::default();
    let mut clean = false;
    for _ in 0..60 {
        f.runs += 1;
        match ctx
            .reconcile
            .scheduled_run(&ctx.repair, Instant::now() + Duration::from_secs(600))
            .await
        {
            Ok(r) => {
                f.checked += r.checked;
                f.changed += r.changed;
                f.missed += r.missed;
                f.failed_shop_runs += r.failed;
                if r.failed == 0 && r.unfinished == 0 && missing_subscriptions(ctx).await.is_empty()
                {
                    clean = true;
                    break;
                }
            }
            Err(_) => ctx.count("reconcile_run_failed", 1),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let missing = missing_subscriptions(ctx).await;
    if missing.is_empty() {
        ctx.loss.unsubscribed.lock().unwrap().clear();
    }
    f.wall_secs = started.elapsed().as_secs_f64();
    let mut figures = ctx.figures.lock().unwrap();
    f.subscriptions_deleted = figures.subscriptions_deleted;
    f.subscriptions_repaired = f.subscriptions_deleted - missing.len() as u64;
    *figures = f;
    if !clean {
        ctx.count("VIOLATION reconciliation never completed a clean run", 1);
    }
    for (shop, topic) in missing {
        ctx.count(
            &format!("VIOLATION subscription {topic} of {shop} not repaired"),
            1,
        );
    }
}

/// Ships what ships: status moved on, packages added (the late ones hidden).
async fn ship(ctx: &Arc<Ctx>, plans: &Arc<Vec<Plan>>) {
    let sem = Arc::new(Semaphore::new(8));
    let mut set = JoinSet::new();
    for i in 0..plans.len() {
        let (ctx, plans, sem) = (ctx.clone(), plans.clone(), sem.clone());
        set.spawn(async move {
            let _p = sem.acquire_owned().await.unwrap();
            let p = &plans[i];
            for s in p.suppliers.iter().filter(|s| s.ships) {
                let ae = s.ae_id;
                sandbox_post(&ctx.ae_base, &format!("/_admin/orders/{ae}"), json!({"status": "WAIT_BUYER_ACCEPT_GOODS", "logistics_status": "SELLER_SEND_GOODS"})).await;
                for pkg in &s.packages {
                    let items: Vec<Value> = pkg
                        .lines
                        .iter()
                        .map(|(k, q)| json!({"product_id": p.lines[*k].product.to_string(), "sku_id": p.lines[*k].sku, "quantity": q}))
                        .collect();
                    sandbox_post(&ctx.ae_base, &format!("/_admin/orders/{ae}/packages"), json!({"mail_no": pkg.mail_no, "carrier_name": "AliExpress Selection Standard", "visible": !pkg.late, "items": items})).await;
                }
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

async fn reveal_late(ctx: &Ctx, plans: &[Plan]) {
    for p in plans {
        for s in &p.suppliers {
            for pkg in s.packages.iter().filter(|k| k.late) {
                sandbox_post(
                    &ctx.ae_base,
                    &format!("/_admin/orders/{}/packages/{}", s.ae_id, pkg.mail_no),
                    json!({"visible": true}),
                )
                .await;
                ctx.count("ae_tracking_late", 1);
            }
        }
    }
}

async fn correct(ctx: &Ctx, plans: &[Plan]) {
    for p in plans {
        for s in &p.suppliers {
            for pkg in s.packages.iter().filter(|k| k.final_no != k.mail_no) {
                sandbox_post(
                    &ctx.ae_base,
                    &format!("/_admin/orders/{}/packages/{}", s.ae_id, pkg.mail_no),
                    json!({"new_mail_no": pkg.final_no}),
                )
                .await;
                ctx.count("ae_tracking_corrected", 1);
            }
        }
    }
}

/// Cancels the orders that end canceled, with a duplicated webhook and a stale paid body after.
async fn cancel(ctx: &Ctx, plans: &[Plan]) {
    for p in plans.iter().filter(|p| p.kind == Kind::Canceled) {
        let shop = &ctx.shops[p.shop];
        let out = sandbox_post(
            &ctx.shop_base,
            &format!("/_admin/orders/{}/update", p.id),
            json!({"shop": shop, "cancelled_at": true, "cancel_reason": "customer"}),
        )
        .await;
        let dup = ctx.chance(0.3);
        if dup {
            ctx.count("webhook_duplicated", 1);
        }
        deliver(ctx, shop, "orders/cancelled", &out["order"], dup).await;
        deliver(ctx, shop, "orders/paid", &p.paid_body, false).await;
        ctx.count("webhook_stale", 1);
    }
}

/// A poll and manual syncs of some orders (some twice at once), all at the same time.
async fn poll_and_race(ctx: &Arc<Ctx>, plans: &Arc<Vec<Plan>>) {
    let sync = ctx.sync.clone();
    let poll = tokio::spawn(async move {
        sync.poll(None, Instant::now() + Duration::from_secs(600))
            .await
            .map_err(|e| e.to_string())
    });
    let sem = Arc::new(Semaphore::new(4));
    let mut set = JoinSet::new();
    for p in plans.iter().filter(|p| p.kind.linked()) {
        if !ctx.chance(0.15) {
            continue;
        }
        let twice = ctx.chance(0.3);
        ctx.count("sync_races", if twice { 2 } else { 1 });
        for _ in 0..if twice { 2 } else { 1 } {
            let (ctx, sem) = (ctx.clone(), sem.clone());
            let url = format!(
                "{}/shops/{}/orders/{}/sync",
                ctx.base, ctx.shops[p.shop], p.id
            );
            set.spawn(async move {
                let _p = sem.acquire_owned().await.unwrap();
                let res = ctx
                    .http
                    .post(url)
                    .header("Authorization", &ctx.auth)
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => ctx.count(&format!("manual_sync_http_{}", r.status().as_u16()), 1),
                    Err(_) => ctx.count("manual_sync_transport_error", 1),
                }
            });
        }
    }
    while set.join_next().await.is_some() {}
    match poll.await.unwrap() {
        Ok(_) => {}
        Err(_) => ctx.count("poll_failed", 1),
    }
}

/// Feeds the pusher from the queue until it stays empty for `idle` (or `max` passes). A batch
/// may be killed part-way: nothing of it is deleted, so its messages come back.
/// The pusher draining the tracking queue as Lambda's SQS event source does: several workers at
/// once (the template's `MaximumConcurrency` is larger), each taking batches of up to 10 and
/// settling them by the batch response; a worker may be killed part-way (`kill`). Ends when the
/// queue has been empty for `idle`, or after `max` (scaled by the run's size: a thousand orders
/// have ten times the packages of a hundred).
async fn drain(ctx: &Arc<Ctx>, kill: f64, idle: Duration, max: Duration) {
    const WORKERS: usize = 4;
    let scale = u32::try_from(ctx.cfg.orders.div_ceil(100).max(1)).unwrap_or(u32::MAX);
    let max = max.saturating_mul(scale);
    let started = Instant::now();
    let last = Arc::new(Mutex::new(Instant::now()));
    let mut workers = JoinSet::new();
    for _ in 0..WORKERS {
        let (ctx, last) = (ctx.clone(), last.clone());
        workers.spawn(async move {
            while started.elapsed() < max {
                if !drain_once(&ctx, kill).await {
                    if last.lock().unwrap().elapsed() > idle {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                *last.lock().unwrap() = Instant::now();
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
}

/// One batch from the queue through the pusher; false when the queue had nothing to hand out.
async fn drain_once(ctx: &Arc<Ctx>, kill: f64) -> bool {
    let out = ctx
        .sqs
        .receive_message()
        .queue_url(&ctx.queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(0)
        .send()
        .await
        .unwrap();
    let msgs = out.messages();
    if msgs.is_empty() {
        return false;
    }
    let records: Vec<Value> = msgs
        .iter()
        .map(|m| json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(), "attributes": {}, "messageAttributes": {}}))
        .collect();
    let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
    let task = tokio::spawn(dropsync_tracking_pusher::handle_batch(
        ctx.pusher.clone(),
        event,
    ));
    if kill > 0.0 && ctx.chance(kill) {
        tokio::time::sleep(Duration::from_millis(5 + ctx.below(400))).await;
        if !task.is_finished() {
            task.abort();
            ctx.count("pusher_killed", 1);
            return true;
        }
    }
    let Ok(res) = task.await else { return true };
    let failed: Vec<&str> = res
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    for m in msgs {
        if failed.contains(&m.message_id().unwrap_or_default()) {
            continue; // back after the visibility timeout
        }
        let _ = ctx
            .sqs
            .delete_message()
            .queue_url(&ctx.queue_url)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await;
    }
    true
}

/// Push leases left by killed workers: expired by the next scheduled run.
async fn fast_forward_leases(ctx: &Ctx) {
    let client = ctx.store.client();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(ctx.store.table())
            .filter_expression("begins_with(sk, :p)")
            .expression_attribute_values(":p", AttributeValue::S("PUSH#".into()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in out.items() {
            let key = [("pk", item["pk"].clone()), ("sk", item["sk"].clone())]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            client
                .delete_item()
                .table_name(ctx.store.table())
                .set_key(Some(key))
                .send()
                .await
                .unwrap();
            ctx.count("leases_left_by_killed_pushers", 1);
        }
        match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => break,
        }
    }
}

/// Pushes still due after the queue ran dry lost their message (a write whose answer was lost in
/// the outage, a kill between the write and the send): by the next scheduled run their resend
/// grace has passed. Returns how many.
async fn fast_forward_grace(ctx: &Ctx, plans: &[Plan]) -> u64 {
    let mut n = 0;
    for p in plans {
        let shop = ShopDomain::parse(&ctx.shops[p.shop]).unwrap();
        let Some(stored) = ctx.store.get_order(&shop, p.id).await.unwrap() else {
            continue;
        };
        let due = stored.order.due_pushes().len() as u64;
        if due == 0 {
            continue;
        }
        n += due;
        ctx.store
            .update_order(&shop, p.id, |o| {
                for so in &mut o.supplier_orders {
                    for pkg in &mut so.packages {
                        if pkg.push.is_due() {
                            pkg.due_since_ms -= 3_600_000;
                        }
                    }
                }
                true
            })
            .await
            .unwrap();
    }
    n
}

/// Every topic dropsync handles: a replay is made under each.
const TOPICS: [&str; 10] = crate::HANDLED_TOPICS;

/// A delivery as captured off the wire: its body, signed by its shop's secret.
struct Captured {
    shop: usize,
    topic: &'static str,
    body: Vec<u8>,
    hmac: String,
}

fn shopify_hmac(secret: &str, body: &[u8]) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The signed deliveries an attacker could have captured: each shop's app and compliance
/// deliveries, and the orders' `orders/create` and `orders/paid` bodies.
fn captured(ctx: &Ctx, plans: &[Plan]) -> Vec<Captured> {
    let mut bodies: Vec<(usize, &'static str, Value)> = Vec::new();
    for (s, shop) in ctx.shops.iter().enumerate() {
        let order = plans.iter().find(|p| p.shop == s).map_or(1, |p| p.id);
        bodies.push((
            s,
            "app/uninstalled",
            json!({"id": 548_380_009 + s, "name": "Chaos", "domain": shop,
            "myshopify_domain": shop, "email": "owner@example.com",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}),
        ));
        bodies.push((
            s,
            "customers/data_request",
            json!({"shop_id": 954_889 + s, "shop_domain": shop,
            "orders_requested": [order], "customer": {"id": 191_167, "email": "john@example.com"},
            "data_request": {"id": 9999}}),
        ));
        bodies.push((
            s,
            "customers/redact",
            json!({"shop_id": 954_889 + s, "shop_domain": shop,
            "customer": {"id": 191_167, "email": "john@example.com"}, "orders_to_redact": [order]}),
        ));
        bodies.push((
            s,
            "shop/redact",
            json!({"shop_id": 954_889 + s, "shop_domain": shop}),
        ));
    }
    for p in plans {
        bodies.push((p.shop, "orders/create", p.created_body.clone()));
        if p.kind.paid() {
            bodies.push((p.shop, "orders/paid", p.paid_body.clone()));
        }
    }
    bodies
        .into_iter()
        .map(|(shop, topic, v)| {
            let body = serde_json::to_vec(&v).unwrap();
            Captured {
                shop,
                topic,
                hmac: shopify_hmac(&ctx.secrets[shop], &body),
                body,
            }
        })
        .collect()
}

/// One item of the table in a canonical text form (maps sorted), to compare snapshots.
fn canon(v: &AttributeValue) -> String {
    match v {
        AttributeValue::M(m) => {
            let sorted: BTreeMap<&String, String> = m.iter().map(|(k, v)| (k, canon(v))).collect();
            format!("M{sorted:?}")
        }
        AttributeValue::L(l) => format!("L{:?}", l.iter().map(canon).collect::<Vec<_>>()),
        AttributeValue::Ss(x) | AttributeValue::Ns(x) => {
            let mut x = x.clone();
            x.sort();
            format!("SET{x:?}")
        }
        other => format!("{other:?}"),
    }
}

/// Every item of the table, by key.
async fn snapshot(ctx: &Ctx) -> BTreeMap<String, String> {
    let client = ctx.store.client();
    let mut items = BTreeMap::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(ctx.store.table())
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in out.items() {
            let key = format!(
                "{} {}",
                canon(item.get("pk").unwrap_or(&AttributeValue::Null(true))),
                canon(item.get("sk").unwrap_or(&AttributeValue::Null(true)))
            );
            items.insert(key, canon(&AttributeValue::M(item.clone())));
        }
        match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => break,
        }
    }
    items
}

/// Captured signed deliveries replayed under swapped headers: each under a topic and a shop of
/// which at least one differs from the capture's, and always a fresh webhook id. The table must
/// be exactly the same after as before.
async fn replays(ctx: &Arc<Ctx>, plans: &[Plan], report: &mut ChaosReport) {
    if ctx.cfg.replays == 0 {
        return;
    }
    let caps = Arc::new(captured(ctx, plans));
    let compliance = ctx.shops.len() * 4;
    let mut jobs = Vec::new();
    let mut topics = std::collections::BTreeSet::new();
    for i in 0..ctx.cfg.replays {
        // The app and compliance captures first, every one of them; then orders at random.
        let c = if i < compliance {
            i
        } else {
            ctx.below(caps.len() as u64) as usize
        };
        let cap = &caps[c];
        let mut topic = TOPICS[i % TOPICS.len()];
        // Another shop (its secret refuses the signature) or, more often, the capture's own
        // shop under another topic (the signature holds: the body itself must refuse it).
        let n = ctx.shops.len();
        let shop = if ctx.chance(0.4) {
            (cap.shop + 1 + ctx.below(n as u64 - 1) as usize) % n
        } else {
            cap.shop
        };
        if topic == cap.topic && shop == cap.shop {
            topic = TOPICS[(i + 1) % TOPICS.len()];
        }
        topics.insert(topic);
        jobs.push((c, topic, shop, i));
    }
    let before = snapshot(ctx).await;
    let sem = Arc::new(Semaphore::new(8));
    let mut set = JoinSet::new();
    for (c, topic, shop, i) in jobs {
        let (ctx, caps, sem) = (ctx.clone(), caps.clone(), sem.clone());
        set.spawn(async move {
            let _p = sem.acquire_owned().await.unwrap();
            let cap = &caps[c];
            let res = ctx
                .http
                .post(format!("{}/webhooks/shopify", ctx.base))
                .header("Content-Type", "application/json")
                .header("X-Shopify-Topic", topic)
                .header("X-Shopify-Hmac-Sha256", &cap.hmac)
                .header("X-Shopify-Shop-Domain", &ctx.shops[shop])
                .header("X-Shopify-API-Version", "2026-10")
                .header(
                    "X-Shopify-Webhook-Id",
                    format!("c4a05e00-0000-4000-8000-{:012x}", i),
                )
                .header(
                    "X-Shopify-Event-Id",
                    format!("c4a05e01-0000-4000-8000-{:012x}", i),
                )
                .header("X-Shopify-Triggered-At", "2026-11-02T15:06:59.110521905Z")
                .body(cap.body.clone())
                .send()
                .await;
            match res {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "transport error".to_owned(),
            }
        });
    }
    while let Some(r) = set.join_next().await {
        *report.replay_statuses.entry(r.unwrap()).or_default() += 1;
    }
    let after = snapshot(ctx).await;
    let mut changed: Vec<&String> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    changed.extend(after.keys().filter(|k| !before.contains_key(*k)));
    report.replays = ctx.cfg.replays as u64;
    report.replay_topics = topics.len() as u64;
    report.replay_state_changes = changed.len() as u64;
    for k in changed.iter().take(20) {
        report
            .violations
            .push(format!("a replay under swapped headers changed item {k}"));
    }
}

/// Orders dropsync holds that the plan does not have (a second record, or one in the wrong shop).
async fn extra_orders(ctx: &Ctx, plans: &[Plan]) -> (u64, Vec<String>) {
    let planned: std::collections::BTreeSet<String> = plans
        .iter()
        .map(|p| format!("SHOP#{}#ORDER#{}", ctx.shops[p.shop], p.id))
        .collect();
    let mut extra = std::collections::BTreeSet::new();
    for key in snapshot(ctx).await.keys() {
        // Keys are `S("pk") S("sk")`.
        let pk = key
            .split(' ')
            .next()
            .unwrap_or_default()
            .trim_start_matches("S(\"")
            .trim_end_matches("\")");
        if pk.contains("#ORDER#") && !planned.contains(pk) {
            extra.insert(pk.to_owned());
        }
    }
    let v = extra
        .iter()
        .take(20)
        .map(|pk| format!("an order dropsync holds that Shopify never had for that shop: {pk}"))
        .collect();
    (extra.len() as u64, v)
}

async fn check(ctx: &Arc<Ctx>, plans: &Arc<Vec<Plan>>) -> ChaosReport {
    let mut report = ChaosReport {
        orders: plans.len(),
        shops: ctx.shops.len(),
        seed: ctx.cfg.seed,
        ..ChaosReport::default()
    };
    let sem = Arc::new(Semaphore::new(8));
    let mut set = JoinSet::new();
    for i in 0..plans.len() {
        let (ctx, plans, sem) = (ctx.clone(), plans.clone(), sem.clone());
        set.spawn(async move {
            let _p = sem.acquire_owned().await.unwrap();
            check_order(&ctx, &plans[i]).await
        });
    }
    let mut violations = Vec::new();
    while let Some(r) = set.join_next().await {
        let (v, packages, emails, (lost, duplicated)) = r.unwrap();
        report.orders_lost += u64::from(lost);
        report.orders_duplicated += u64::from(duplicated);
        violations.extend(v);
        report.packages_expected += packages;
        report.emails += emails;
    }
    violations.extend(check_attention_lists(ctx, plans).await);
    violations.sort();
    for p in plans.iter() {
        *report
            .expected_tabs
            .entry(p.kind.tab().to_owned())
            .or_default() += 1;
    }
    // The sandboxes' own counts of the faults they injected.
    let ae = sandbox_get(
        &ctx.ae_base,
        &format!("/_admin/stats?app_key={}", ctx.app_key),
    )
    .await;
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    report.faults.insert(
        "ae_api_call_limit".into(),
        n(&ae["api_call_limit_responses"]),
    );
    report
        .faults
        .insert("ae_bans_started".into(), n(&ae["bans_started"]));
    report
        .faults
        .insert("ae_isp_errors".into(), n(&ae["isp_errors"]));
    report
        .faults
        .insert("ae_slow_responses".into(), n(&ae["slow_responses"]));
    report
        .faults
        .insert("ae_calls".into(), n(&ae["total_calls"]));
    for shop in &ctx.shops {
        let st = sandbox_get(&ctx.shop_base, &format!("/_admin/stats?shop={shop}")).await;
        for (k, key) in [
            ("shopify_throttled", "throttled"),
            ("shopify_http_429", "http_429"),
            ("shopify_server_errors", "server_errors"),
            ("shopify_timeouts_after_success", "timeouts_after_success"),
            ("shopify_requests", "requests"),
        ] {
            *report.faults.entry(k.into()).or_default() += n(&st[key]);
        }
        report.fulfillments += n(&st["fulfillments_created"]);
    }
    for (k, v) in ctx.counts.lock().unwrap().iter() {
        if let Some(e) = k.strip_prefix("LINK ERROR ") {
            violations.push(format!("link failed: {e}"));
        } else if let Some(e) = k.strip_prefix("VIOLATION ") {
            violations.push(e.to_owned());
        } else {
            report.faults.insert(k.clone(), *v);
        }
    }
    report.faults.insert(
        "dynamodb_connections_cut".into(),
        ctx.proxy.cut.load(std::sync::atomic::Ordering::Relaxed),
    );
    report.violations = violations;
    report
}

/// The merchant's attention list (`GET /shops/{shop}/attention`, paged) names exactly the orders
/// whose stored state needs the merchant: none missing (the sparse index kept up through every
/// race and fault), none another shop's, none listed twice.
async fn check_attention_lists(ctx: &Ctx, plans: &[Plan]) -> Vec<String> {
    let mut v = Vec::new();
    for (s, shop) in ctx.shops.iter().enumerate() {
        let mut listed = std::collections::BTreeSet::new();
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
                if o["shop"] != json!(shop) {
                    v.push(format!("attention list of {shop} shows {}", o["shop"]));
                }
                let id: u64 = o["id"].as_str().and_then(|i| i.parse().ok()).unwrap_or(0);
                if !listed.insert(id) {
                    v.push(format!("attention list of {shop} names order {id} twice"));
                }
            }
            cursor = page["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        let domain = ShopDomain::parse(shop).unwrap();
        for p in plans.iter().filter(|p| p.shop == s) {
            let Some(stored) = ctx.store.get_order(&domain, p.id).await.unwrap() else {
                continue;
            };
            let needs = !stored.order.attention().is_empty();
            if needs != listed.contains(&p.id) {
                v.push(format!(
                    "order {} of shop {s}: needs attention {needs} but listed {}",
                    p.id,
                    listed.contains(&p.id)
                ));
            }
        }
    }
    v
}

/// The checks of one order; returns its violations, the number of packages it ships, the
/// emails Shopify sent its customer, and whether it was lost (missing or in the wrong tab) or
/// duplicated (a package fulfilled twice, or more fulfillments than packages).
async fn check_order(ctx: &Ctx, p: &Plan) -> (Vec<String>, u64, u64, (bool, bool)) {
    let mut v = Vec::new();
    let shop = &ctx.shops[p.shop];
    let who = format!("order #{} {} ({:?}, shop {})", p.idx, p.id, p.kind, p.shop);
    let domain = ShopDomain::parse(shop).unwrap();
    let stored = ctx.store.get_order(&domain, p.id).await.unwrap();
    let Some(stored) = stored else {
        v.push(format!("{who}: not stored"));
        return (v, 0, 0, (true, false));
    };
    let o = &stored.order;
    let tab = serde_json::to_value(o.status).unwrap();
    let lost = tab != p.kind.tab();
    let mut duplicated = false;
    if tab != p.kind.tab() {
        v.push(format!("{who}: in tab {tab}, expected {}", p.kind.tab()));
    }
    if !history_is_valid(&o.history) {
        let h: Vec<String> = o
            .history
            .iter()
            .map(|e| format!("{:?}({})", e.status, e.cause))
            .collect();
        v.push(format!("{who}: invalid history {}", h.join(" -> ")));
    }
    for so in &o.supplier_orders {
        for pkg in &so.packages {
            match &pkg.push {
                PushState::Pending | PushState::UpdatePending { .. } => {
                    v.push(format!(
                        "{who}: stuck, package {} still due ({:?})",
                        pkg.tracking_number, pkg.push
                    ));
                }
                PushState::Failed { reason } => {
                    v.push(format!(
                        "{who}: package {} flagged: {reason}",
                        pkg.tracking_number
                    ));
                }
                PushState::Pushed { .. } => {}
            }
        }
    }
    if o.needs_refetch {
        v.push(format!("{who}: left needing a re-fetch"));
    }
    // Shopify's own record.
    let sh = sandbox_get(
        &ctx.shop_base,
        &format!("/_admin/orders/{}?shop={shop}", p.id),
    )
    .await;
    let api: Vec<&Value> = sh["fulfillments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["created_by"] == "api")
        .collect();
    let expected: Vec<&Pkg> = if p.kind == Kind::Canceled {
        Vec::new()
    } else {
        p.suppliers
            .iter()
            .filter(|s| s.ships)
            .flat_map(|s| s.packages.iter())
            .collect()
    };
    if api.len() != expected.len() {
        duplicated |= api.len() > expected.len();
        v.push(format!(
            "{who}: {} fulfillments by the app, expected {}",
            api.len(),
            expected.len()
        ));
    }
    for pkg in &expected {
        let carrying: Vec<&&Value> = api
            .iter()
            .filter(|f| f["tracking"]["number"] == pkg.final_no.as_str())
            .collect();
        if carrying.len() != 1 {
            duplicated |= carrying.len() > 1;
            v.push(format!(
                "{who}: {} fulfillments with tracking {} (shipped as {})",
                carrying.len(),
                pkg.final_no,
                pkg.mail_no
            ));
            continue;
        }
        let f = carrying[0];
        let mut got: Vec<(u64, u64)> = f["line_items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (id_of(&l["line_item_id"]), l["quantity"].as_u64().unwrap()))
            .collect();
        got.sort_unstable();
        let mut want: Vec<(u64, u64)> = pkg
            .lines
            .iter()
            .map(|(k, q)| (p.lines[*k].id, u64::from(*q)))
            .collect();
        want.sort_unstable();
        // Two packages of one unit each of the same line: either unit will do.
        if got != want {
            v.push(format!(
                "{who}: fulfillment {} carries {got:?}, package {} has {want:?}",
                f["id"], pkg.final_no
            ));
        }
        if f["notify_customer"].as_bool() != Some(ctx.notify[p.shop]) {
            v.push(format!(
                "{who}: fulfillment {} notify_customer {}, shop setting {}",
                f["id"], f["notify_customer"], ctx.notify[p.shop]
            ));
        }
    }
    let emails = sh["emails_sent"].as_u64().unwrap_or(0);
    if !ctx.notify[p.shop] && emails > 0 {
        v.push(format!(
            "{who}: {emails} emails sent by a shop that does not notify"
        ));
    }
    (v, expected.len() as u64, emails, (lost, duplicated))
}
