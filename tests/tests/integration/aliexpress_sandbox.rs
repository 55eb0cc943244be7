#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! `IopClient` against the AliExpress sandbox over real HTTP. The sandbox checks signatures,
//! sessions and timestamps like the platform, so a call it accepts was built correctly.
//!
//! Run through `.venv/bin/python tests/tools/services.py --sandboxes aliexpress -- cargo test -p
//! dropsync-aliexpress`, which starts the sandbox and exports `DROPSYNC_ALIEXPRESS_SANDBOX`.
//! Every test creates its own app key, so tests run in parallel without seeing each other.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dropsync_aliexpress::{
    AeChild, AeError, AeOrder, AeParcelItem, AeTrackingLine, AliExpressApi, IopClient, IopConfig,
    MemoryTokenStore, TokenStore, Tokens,
};
use serde_json::{Value, json};

const P1: &str = "1005006123456789";
const S1: &str = "12000037000000001";
const P2: &str = "1005006987654321";
const S2: &str = "12000038000000002";

fn sandbox_url() -> String {
    match std::env::var("DROPSYNC_ALIEXPRESS_SANDBOX") {
        Ok(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_owned(),
        _ => panic!(
            "DROPSYNC_ALIEXPRESS_SANDBOX is not set: these tests need the AliExpress sandbox. Run them from the repository root \
             with `.venv/bin/python tests/tools/services.py --sandboxes aliexpress -- cargo test -p dropsync-aliexpress`"
        ),
    }
}

static NEXT_APP: AtomicU32 = AtomicU32::new(0);

/// One app key on the sandbox, with its own account, tokens, orders and stats.
struct Sandbox {
    base: String,
    http: reqwest::Client,
    app_key: String,
    secret: String,
    account: String,
}

impl Sandbox {
    /// A new app; `config` is merged into the admin `POST /_admin/apps` body.
    async fn new(config: Value) -> Self {
        let base = sandbox_url();
        let n = NEXT_APP.fetch_add(1, Ordering::Relaxed);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 100_000_000;
        let app_key = format!("7{stamp:08}{n:03}{:03}", fastrand::u32(..1000));
        let sandbox = Self {
            base,
            http: reqwest::Client::new(),
            secret: format!("secret-{app_key}"),
            account: format!("buyer-{app_key}"),
            app_key,
        };
        let mut body = json!({"app_key": sandbox.app_key, "app_secret": sandbox.secret});
        for (k, v) in config.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        sandbox.post("/_admin/apps", body).await;
        sandbox
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        dropsync_tests::sandbox_post(&self.base, path, body).await
    }

    async fn configure(&self, config: Value) {
        let mut body = config;
        body["app_key"] = json!(self.app_key);
        self.post("/_admin/apps", body).await;
    }

    /// A session for this app's account; `extra` is merged in (e.g. `expires_in`).
    async fn tokens(&self, extra: Value) -> Tokens {
        let mut body = json!({"app_key": self.app_key, "account": self.account});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        let t = self.post("/_admin/tokens", body).await;
        Tokens {
            access_token: t["access_token"].as_str().unwrap().to_owned(),
            refresh_token: t["refresh_token"].as_str().unwrap().to_owned(),
            expire_time_ms: t["expire_time"].as_i64(),
        }
    }

    /// An order of this app's account; returns its id.
    async fn order(&self, body: Value) -> u64 {
        let mut body = body;
        body["app_key"] = json!(self.app_key);
        body["account"] = json!(self.account);
        let out = self.post("/_admin/orders", body).await;
        out["order_id"].as_str().unwrap().parse().unwrap()
    }

    async fn stats(&self) -> Value {
        let resp = self
            .http
            .get(format!(
                "{}/_admin/stats?app_key={}",
                self.base, self.app_key
            ))
            .send()
            .await
            .unwrap();
        resp.json().await.unwrap()
    }

    fn config(&self, tokens: Tokens) -> IopConfig {
        let mut config = IopConfig::new(&self.app_key, &self.secret, tokens);
        config.base_url = self.base.clone();
        config.timeout = Duration::from_secs(5);
        config
    }

    fn client(&self, config: IopConfig) -> (Arc<IopClient>, Arc<MemoryTokenStore>) {
        let store = Arc::new(MemoryTokenStore::new());
        let client = IopClient::new(config, store.clone()).unwrap();
        (Arc::new(client), store)
    }
}

fn stat(stats: &Value, key: &str) -> u64 {
    stats[key].as_u64().unwrap_or(0)
}

fn by(stats: &Value, map: &str, key: &str) -> u64 {
    stats[map][key].as_u64().unwrap_or(0)
}

fn item(product: &str, sku: &str, count: u32) -> Value {
    json!({"product_id": product, "sku_id": sku, "count": count, "title": "Thing", "price": "7.50"})
}

fn child(product: &str, sku: &str, end_reason: Option<&str>) -> AeChild {
    AeChild {
        product_id: Some(product.to_owned()),
        sku_id: Some(sku.to_owned()),
        end_reason: end_reason.map(str::to_owned),
    }
}

fn parcel(product: &str, sku: &str, quantity: u32) -> AeParcelItem {
    AeParcelItem {
        product_id: Some(product.to_owned()),
        sku_id: Some(sku.to_owned()),
        quantity,
    }
}

/// Runs `n` calls at once on a shared client; half `order_get`, half `tracking_get`.
async fn concurrent_calls(
    client: &Arc<IopClient>,
    order_id: u64,
    n: usize,
) -> Vec<Result<(), AeError>> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let client = client.clone();
        tasks.spawn(async move {
            if i % 2 == 0 {
                client.order_get(order_id).await.map(|_| ())
            } else {
                client.tracking_get(order_id).await.map(|_| ())
            }
        });
    }
    tasks.join_all().await
}

// ------------------------------------------------------------------------------------------------
// Round trips and shapes
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_order_get_built_by_the_client_verifies_and_parses_with_bare_arrays() {
    let sb = Sandbox::new(json!({})).await;
    let tokens = sb.tokens(json!({})).await;
    let id = sb
        .order(
            json!({"status": "WAIT_SELLER_SEND_GOODS", "logistics_status": "WAIT_SELLER_SEND_GOODS",
                      "items": [item(P1, S1, 2), item(P2, S2, 1)]}),
        )
        .await;
    sb.post(
        &format!("/_admin/orders/{id}"),
        json!({"end_reasons": {P2: "CANCELED"}}),
    )
    .await;
    let (client, _) = sb.client(sb.config(tokens));

    let order = client.order_get(id).await.unwrap();
    assert_eq!(order.order_status, "WAIT_SELLER_SEND_GOODS");
    assert_eq!(
        order.logistics_status.as_deref(),
        Some("WAIT_SELLER_SEND_GOODS")
    );
    assert_eq!(
        order.children,
        vec![child(P1, S1, None), child(P2, S2, Some("CANCELED"))]
    );
    assert!(order.gmt_create.is_some());

    let stats = sb.stats().await;
    assert_eq!(stat(&stats, "total_calls"), 1, "{stats}");
    assert_eq!(stat(&stats, "accepted_calls"), 1, "{stats}");
    assert_eq!(stat(&stats, "signature_failures"), 0, "{stats}");
    assert_eq!(client.stats().calls, 1);
}

#[tokio::test]
async fn order_get_and_tracking_get_round_trip_under_every_shape_quirk() {
    let sb = Sandbox::new(json!({})).await;
    let tokens = sb.tokens(json!({})).await;
    // One line, one parcel: every list has a single element (the `bare_single` case).
    let single = sb.order(json!({"items": [item(P1, S1, 2)]})).await;
    sb.post(
        &format!("/_admin/orders/{single}/ship"),
        json!({"mail_no": format!("YT{single}"), "carrier_name": "AliExpress Selection Standard"}),
    )
    .await;
    // Two lines (one cancelled), two parcels of one unit each, several tracking nodes.
    let multi = sb
        .order(json!({"status": "SELLER_PART_SEND_GOODS", "items": [item(P1, S1, 2), item(P2, S2, 1)]}))
        .await;
    sb.post(
        &format!("/_admin/orders/{multi}"),
        json!({"end_reasons": {P2: "CANCELED"}}),
    )
    .await;
    for (n, stamps) in [
        (
            1,
            [1_772_500_000_000_i64, 1_772_600_000_000, 1_772_550_000_000],
        ),
        (2, [3, 1, 2]),
    ] {
        sb.post(
            &format!("/_admin/orders/{multi}/packages"),
            json!({"mail_no": format!("PK{n}-{multi}"), "carrier_name": "Seller Shipping ES Local",
                   "items": [{"product_id": P1, "sku_id": S1, "quantity": 1}],
                   "nodes": stamps.iter().map(|t| json!({"time_stamp": t, "tracking_name": format!("n{t}")})).collect::<Vec<_>>()}),
        )
        .await;
    }
    let mut config = sb.config(tokens);
    config.calls_per_second = 50.0;
    let (client, _) = sb.client(config);

    let want_single_order = AeOrder {
        order_status: "WAIT_BUYER_ACCEPT_GOODS".into(),
        logistics_status: Some("SELLER_SEND_GOODS".into()),
        children: vec![child(P1, S1, None)],
        gmt_create: None,
    };
    let want_single_tracking = vec![AeTrackingLine {
        mail_no: format!("YT{single}"),
        carrier_name: Some("AliExpress Selection Standard".into()),
        items: vec![parcel(P1, S1, 2)],
    }];
    let want_multi_children = vec![child(P1, S1, None), child(P2, S2, Some("CANCELED"))];
    let want_multi_tracking: Vec<AeTrackingLine> = (1..=2)
        .map(|n| AeTrackingLine {
            mail_no: format!("PK{n}-{multi}"),
            carrier_name: Some("Seller Shipping ES Local".into()),
            items: vec![parcel(P1, S1, 1)],
        })
        .collect();

    let mut combos = 0;
    for simplify in [json!("request"), json!(false), json!(true)] {
        for bare_single in [false, true] {
            for numbers in [json!(false), json!(true), json!("mixed")] {
                for booleans in [false, true] {
                    let quirks = json!({"simplify": simplify, "bare_single": bare_single,
                                        "numbers_as_strings": numbers, "booleans_as_strings": booleans});
                    sb.configure(json!({ "quirks": quirks })).await;
                    let ctx = quirks.to_string();

                    let mut order = client.order_get(single).await.expect(&ctx);
                    assert!(order.gmt_create.take().is_some(), "{ctx}");
                    assert_eq!(order, want_single_order, "{ctx}");
                    let lines = client.tracking_get(single).await.expect(&ctx);
                    assert_eq!(lines.as_ref(), Some(&want_single_tracking), "{ctx}");

                    let order = client.order_get(multi).await.expect(&ctx);
                    assert_eq!(order.order_status, "SELLER_PART_SEND_GOODS", "{ctx}");
                    assert_eq!(order.children, want_multi_children, "{ctx}");
                    let details = client.tracking_details(multi).await.expect(&ctx).unwrap();
                    let lines: Vec<_> = details.iter().map(|d| d.line.clone()).collect();
                    assert_eq!(lines, want_multi_tracking, "{ctx}");
                    // Nodes come newest first from AliExpress; the client sorts them oldest first.
                    let stamps: Vec<_> = details[0]
                        .nodes
                        .iter()
                        .map(|n| n.time_stamp_ms.unwrap())
                        .collect();
                    assert_eq!(
                        stamps,
                        vec![1_772_500_000_000, 1_772_550_000_000, 1_772_600_000_000],
                        "{ctx}"
                    );
                    let stamps: Vec<_> = details[1]
                        .nodes
                        .iter()
                        .map(|n| n.time_stamp_ms.unwrap())
                        .collect();
                    assert_eq!(stamps, vec![1, 2, 3], "{ctx}");
                    combos += 1;
                }
            }
        }
    }
    assert_eq!(combos, 36);
    let stats = sb.stats().await;
    assert_eq!(stat(&stats, "signature_failures"), 0, "{stats}");
    assert_eq!(stat(&stats, "accepted_calls"), 36 * 4, "{stats}");
}

#[tokio::test]
async fn tracking_data_not_found_before_shipment_is_none() {
    let sb = Sandbox::new(json!({"quirks": {"booleans_as_strings": true}})).await;
    let tokens = sb.tokens(json!({})).await;
    let id = sb.order(json!({"status": "WAIT_SELLER_SEND_GOODS"})).await;
    // A package that exists but is not visible yet is "not found" too.
    sb.post(
        &format!("/_admin/orders/{id}/packages"),
        json!({"mail_no": format!("H{id}"), "visible": false}),
    )
    .await;
    let (client, _) = sb.client(sb.config(tokens));
    assert_eq!(client.tracking_get(id).await, Ok(None));
    sb.configure(json!({"quirks": {"booleans_as_strings": false}}))
        .await;
    assert_eq!(client.tracking_get(id).await, Ok(None));
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn an_unknown_status_string_comes_through_raw() {
    let sb = Sandbox::new(json!({})).await;
    let tokens = sb.tokens(json!({})).await;
    let id = sb
        .order(json!({"status": "IN_FROZEN_2027", "logistics_status": "TELEPORTED"}))
        .await;
    let (client, _) = sb.client(sb.config(tokens));
    let order = client.order_get(id).await.unwrap();
    assert_eq!(order.order_status, "IN_FROZEN_2027");
    assert_eq!(order.logistics_status.as_deref(), Some("TELEPORTED"));
}

#[tokio::test]
async fn an_order_of_another_account_is_a_permanent_error_without_retries() {
    let sb = Sandbox::new(json!({})).await;
    let tokens = sb.tokens(json!({})).await;
    let mut body = json!({"app_key": sb.app_key, "account": "someone-else"});
    body["items"] = json!([item(P1, S1, 1)]);
    let other: u64 = sb.post("/_admin/orders", body).await["order_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (client, _) = sb.client(sb.config(tokens));
    let err = client.order_get(other).await.unwrap_err();
    assert!(
        matches!(&err, AeError::Permanent(m) if m.contains("isv.invalid-authorization")),
        "{err:?}"
    );
    assert_eq!(stat(&sb.stats().await, "total_calls"), 1);
}

// ------------------------------------------------------------------------------------------------
// Rate limiting and retries
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_are_spread_so_that_no_second_sees_more_than_the_configured_rate() {
    let sb = Sandbox::new(json!({"calls_per_second": null})).await;
    let tokens = sb.tokens(json!({})).await;
    let id = sb.order(json!({})).await;
    let mut config = sb.config(tokens);
    config.calls_per_second = 10.0;
    let (client, _) = sb.client(config);

    let started = Instant::now();
    let results = concurrent_calls(&client, id, 24).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    // 24 starts, about 0.1 s apart: no burst at the start.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let stats = sb.stats().await;
    assert!(
        stat(&stats, "max_accepted_calls_in_any_1s") <= 10,
        "{stats}"
    );
    assert_eq!(stat(&stats, "api_call_limit_responses"), 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_over_the_rate_limit_waits_out_the_ban_and_succeeds() {
    // The platform allows 3 calls/s, the client is configured for far more.
    let sb = Sandbox::new(json!({"calls_per_second": 3, "ban_seconds": 0.2})).await;
    let tokens = sb.tokens(json!({})).await;
    let id = sb.order(json!({})).await;
    let mut config = sb.config(tokens);
    config.calls_per_second = 25.0;
    let (client, _) = sb.client(config);

    let results = concurrent_calls(&client, id, 8).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let stats = sb.stats().await;
    let client_stats = client.stats();
    assert!(stat(&stats, "bans_started") >= 1, "{stats}");
    assert_eq!(
        stat(&stats, "api_call_limit_responses"),
        stat(&stats, "bans_started"),
        "no call may be sent into a ban: {stats}"
    );
    assert_eq!(
        client_stats.rate_limited,
        stat(&stats, "api_call_limit_responses"),
        "{stats} {client_stats:?}"
    );
    assert!(stat(&stats, "max_accepted_calls_in_any_1s") <= 3, "{stats}");
    assert_eq!(stat(&stats, "accepted_calls"), 8, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bans_injected_at_30_percent_are_waited_out_and_never_push_the_rate_over_the_limit() {
    let sb = Sandbox::new(
        // Seed 1 gives about the expected share of bans (5 for 12 calls) and at most two in a
        // row, so the default 4 attempts are enough whichever caller meets them.
        json!({"calls_per_second": null, "ban_seconds": 0.2, "seed": 1,
               "faults": {"api_call_limit": 0.3}}),
    )
    .await;
    let tokens = sb.tokens(json!({})).await;
    let id = sb.order(json!({})).await;
    sb.post(&format!("/_admin/orders/{id}/ship"), json!({}))
        .await;
    let mut config = sb.config(tokens);
    config.calls_per_second = 10.0;
    let (client, _) = sb.client(config);

    let results = concurrent_calls(&client, id, 12).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let stats = sb.stats().await;
    let client_stats = client.stats();
    assert!(stat(&stats, "bans_started") >= 1, "{stats}");
    assert!(client_stats.rate_limited >= 1, "{client_stats:?}");
    // Every caller stopped for the ban: no call was sent into one (each refusal started a ban).
    assert_eq!(
        stat(&stats, "api_call_limit_responses"),
        stat(&stats, "bans_started"),
        "{stats}"
    );
    assert_eq!(stat(&stats, "accepted_calls"), 12, "{stats}");
    assert!(
        stat(&stats, "max_accepted_calls_in_any_1s") <= 10,
        "{stats}"
    );
    assert_eq!(stat(&stats, "signature_failures"), 0, "{stats}");
}

#[tokio::test]
async fn a_ban_too_long_to_wait_out_is_returned_at_once_and_later_calls_stay_local() {
    let sb = Sandbox::new(json!({"calls_per_second": 1, "ban_seconds": 120})).await;
    let tokens = sb.tokens(json!({})).await;
    let id = sb.order(json!({})).await;
    let mut config = sb.config(tokens);
    config.calls_per_second = 20.0;
    let (client, _) = sb.client(config);

    let started = Instant::now();
    client.order_get(id).await.unwrap();
    let err = client.order_get(id).await.unwrap_err();
    assert!(
        matches!(err, AeError::RateLimited { ban } if ban >= Duration::from_secs(119)),
        "{err:?}"
    );
    assert!(err.is_retryable());
    // The client remembers the ban: this one is refused without a call.
    assert!(matches!(
        client.tracking_get(id).await,
        Err(AeError::RateLimited { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
    let stats = sb.stats().await;
    assert_eq!(stat(&stats, "total_calls"), 2, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn isp_errors_are_retried_with_backoff_until_the_call_succeeds() {
    let sb = Sandbox::new(json!({"seed": 5, "faults": {"isp_error": 0.35}})).await;
    let tokens = sb.tokens(json!({})).await;
    let id = sb.order(json!({})).await;
    let mut config = sb.config(tokens);
    config.max_attempts = 6;
    let (client, _) = sb.client(config);

    let results = concurrent_calls(&client, id, 10).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let stats = sb.stats().await;
    assert!(stat(&stats, "isp_errors") >= 1, "{stats}");
    assert!(client.stats().retries >= stat(&stats, "isp_errors"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_5xx_answers_are_retried_until_the_call_succeeds() {
    let sb = Sandbox::new(json!({"seed": 9, "faults": {"server_error": 0.35}})).await;
    let tokens = sb.tokens(json!({})).await;
    let id = sb.order(json!({})).await;
    let mut config = sb.config(tokens);
    config.max_attempts = 6;
    let (client, _) = sb.client(config);

    let results = concurrent_calls(&client, id, 10).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let stats = sb.stats().await;
    assert!(stat(&stats, "server_errors_5xx") >= 1, "{stats}");
}

#[tokio::test]
async fn a_transient_error_that_persists_is_returned_as_retryable_after_max_attempts() {
    let sb = Sandbox::new(json!({"faults": {"isp_error": 1.0}})).await;
    let tokens = sb.tokens(json!({})).await;
    let id = sb.order(json!({})).await;
    let mut config = sb.config(tokens);
    config.max_attempts = 3;
    let (client, _) = sb.client(config);
    let err = client.order_get(id).await.unwrap_err();
    assert!(matches!(err, AeError::Retryable(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(stat(&sb.stats().await, "total_calls"), 3);
}

#[tokio::test]
async fn a_wrong_app_secret_is_a_permanent_error_and_is_not_retried() {
    let sb = Sandbox::new(json!({})).await;
    let tokens = sb.tokens(json!({})).await;
    let id = sb.order(json!({})).await;
    let mut config = sb.config(tokens);
    config.app_secret = "not-the-secret".into();
    let (client, _) = sb.client(config);
    let err = client.order_get(id).await.unwrap_err();
    assert!(
        matches!(&err, AeError::Permanent(m) if m.contains("IncompleteSignature")),
        "{err:?}"
    );
    let stats = sb.stats().await;
    assert_eq!(stat(&stats, "total_calls"), 1, "{stats}");
    assert_eq!(stat(&stats, "signature_failures"), 1, "{stats}");
    assert_eq!(client.stats().retries, 0);
}

// ------------------------------------------------------------------------------------------------
// Tokens
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_expired_session_is_refreshed_through_the_rest_gateway_saved_and_the_call_succeeds() {
    let sb = Sandbox::new(json!({})).await;
    let old = sb.tokens(json!({"expires_in": 1})).await;
    let id = sb.order(json!({})).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The client does not know when the token expires: it learns it from the refusal.
    let config = sb.config(Tokens {
        expire_time_ms: None,
        ..old.clone()
    });
    let (client, store) = sb.client(config);

    let order = client.order_get(id).await.unwrap();
    assert_eq!(order.order_status, "PLACE_ORDER_SUCCESS");
    let saved = store.get(&sb.app_key).expect("refreshed tokens are saved");
    assert_ne!(saved.access_token, old.access_token);
    assert_ne!(saved.refresh_token, old.refresh_token);
    assert!(saved.expire_time_ms.is_some());
    assert_eq!(client.stats().refreshes, 1);

    let stats = sb.stats().await;
    assert_eq!(
        by(&stats, "accepted_calls_by_method", "/auth/token/refresh"),
        1,
        "{stats}"
    );
    assert_eq!(
        by(&stats, "errors_by_code", "IllegalAccessToken"),
        1,
        "{stats}"
    );
    assert_eq!(stat(&stats, "signature_failures"), 0, "{stats}");
}

#[tokio::test]
async fn a_token_expiring_within_30_minutes_is_refreshed_before_the_call() {
    let sb = Sandbox::new(json!({})).await;
    let old = sb.tokens(json!({"expires_in": 1200})).await;
    let id = sb.order(json!({})).await;
    let (client, store) = sb.client(sb.config(old.clone()));

    client.order_get(id).await.unwrap();
    client.tracking_get(id).await.unwrap();
    let saved = store.get(&sb.app_key).unwrap();
    assert_ne!(saved.access_token, old.access_token);
    // The sandbox keeps the 20-minute lifetime, so the new token also expires "soon": one early
    // refresh, not one per call.
    assert_eq!(client.stats().refreshes, 1);
    let stats = sb.stats().await;
    assert_eq!(
        by(&stats, "accepted_calls_by_method", "/auth/token/refresh"),
        1,
        "{stats}"
    );
    assert_eq!(
        by(&stats, "errors_by_code", "IllegalAccessToken"),
        0,
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_share_a_single_refresh() {
    let sb = Sandbox::new(json!({})).await;
    let live = sb.tokens(json!({})).await;
    let id = sb.order(json!({})).await;
    let config = sb.config(Tokens {
        access_token: "an-access-token-the-platform-forgot".into(),
        refresh_token: live.refresh_token.clone(),
        expire_time_ms: None,
    });
    let (client, store) = sb.client(config);

    let results = concurrent_calls(&client, id, 8).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(client.stats().refreshes, 1);
    assert!(store.get(&sb.app_key).is_some());
    let stats = sb.stats().await;
    assert_eq!(
        by(&stats, "calls_by_method", "/auth/token/refresh"),
        1,
        "{stats}"
    );
    // Only calls already in flight can meet the dead token; the others wait for the refresh.
    assert!(
        by(&stats, "errors_by_code", "IllegalAccessToken") <= 4,
        "{stats}"
    );
}

#[tokio::test]
async fn tokens_another_invocation_refreshed_are_picked_up_from_the_store() {
    let sb = Sandbox::new(json!({})).await;
    let live = sb.tokens(json!({})).await;
    let id = sb.order(json!({})).await;
    let configured = Tokens {
        access_token: "stale-access".into(),
        refresh_token: live.refresh_token.clone(),
        expire_time_ms: None,
    };
    let store = Arc::new(MemoryTokenStore::new());
    let shared: Arc<dyn TokenStore> = store.clone();

    // The first invocation refreshes (its configured access token is refused) and saves.
    let first = IopClient::new(sb.config(configured.clone()), shared.clone()).unwrap();
    first.order_get(id).await.unwrap();
    assert_eq!(first.stats().refreshes, 1);

    // The second starts from the same, now dead, credentials: it must use the stored tokens
    // rather than refresh with a refresh token the first refresh killed.
    let second = IopClient::new(sb.config(configured), shared).unwrap();
    second.order_get(id).await.unwrap();
    second.tracking_get(id).await.unwrap();
    assert_eq!(second.stats().refreshes, 0);
    assert_eq!(second.stats().calls, 2);
    let stats = sb.stats().await;
    assert_eq!(
        by(&stats, "calls_by_method", "/auth/token/refresh"),
        1,
        "{stats}"
    );
    assert_eq!(
        by(&stats, "errors_by_code", "IllegalAccessToken"),
        1,
        "{stats}"
    );
    assert!(store.get(&sb.app_key).is_some());
}

#[tokio::test]
async fn an_invalid_refresh_token_is_invalid_token() {
    let sb = Sandbox::new(json!({})).await;
    let _live = sb.tokens(json!({})).await;
    let id = sb.order(json!({})).await;
    let config = sb.config(Tokens {
        access_token: "stale-access".into(),
        refresh_token: "not-a-refresh-token".into(),
        expire_time_ms: None,
    });
    let (client, store) = sb.client(config);

    assert_eq!(client.order_get(id).await, Err(AeError::InvalidToken));
    assert!(!AeError::InvalidToken.is_retryable());
    assert!(store.get(&sb.app_key).is_none());
    let stats = sb.stats().await;
    assert_eq!(
        by(&stats, "errors_by_code", "IllegalAccessToken"),
        1,
        "{stats}"
    );
    assert_eq!(
        by(&stats, "errors_by_code", "IllegalRefreshToken"),
        1,
        "{stats}"
    );
    assert_eq!(stat(&stats, "total_calls"), 2, "{stats}");
}

#[tokio::test]
async fn a_session_still_refused_after_a_refresh_is_invalid_token() {
    let sb = Sandbox::new(json!({})).await;
    // A zero lifetime: the refreshed token (same lifetime on the sandbox) is dead on arrival too.
    let dead = sb.tokens(json!({"expires_in": 0})).await;
    let id = sb.order(json!({})).await;
    let (client, _) = sb.client(sb.config(Tokens {
        expire_time_ms: None,
        ..dead
    }));

    assert_eq!(client.order_get(id).await, Err(AeError::InvalidToken));
    let stats = sb.stats().await;
    assert_eq!(
        by(&stats, "errors_by_code", "IllegalAccessToken"),
        2,
        "{stats}"
    );
    assert_eq!(
        by(&stats, "calls_by_method", "/auth/token/refresh"),
        1,
        "{stats}"
    );
}
