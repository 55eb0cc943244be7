//! Connecting a shop through the real routes (`/connect/shopify`, its callback, `/connections`,
//! `/shops/{shop}/webhooks/reconcile`) against the sandbox Shopify's OAuth and the emulator, and
//! the token provider's renewals against the sandbox's token endpoint.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests --test integration connect_oauth::`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::connect_support::*;
use dropsync_app::tokens::{ProviderError, TokenProvider};
use dropsync_domain::ShopDomain;
use dropsync_shopify::oauth::{TokenClient, query_hmac};
use dropsync_store::{ConnectionStatus, ConnectionStore};
use serde_json::{Value, json};
use std::sync::Arc;

/// The sandbox's token endpoint counters for one shop (tests run in parallel on one sandbox).
async fn oauth_stats(fx: &Fx, shop: &ShopDomain) -> Value {
    sandbox_get(&fx.base, &format!("/_admin/oauth/stats?shop={shop}")).await
}

async fn connections(fx: &Fx) -> Value {
    let (status, _, body) = raw(fx, "GET", "/connections", Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn entry<'a>(report: &'a Value, shop: &ShopDomain) -> &'a Value {
    report["shopify"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["shop"] == shop.as_str())
        .unwrap_or_else(|| panic!("{shop} not in {report}"))
}

async fn install(fx: &Fx, shop: &ShopDomain) {
    let pairs = consent(fx, shop).await;
    let (status, location, _) = callback(fx, &pairs).await;
    assert_eq!(status, 302);
    assert_eq!(location, format!("{PUBLIC}/app?connected={shop}"));
}

#[tokio::test]
async fn a_full_oauth_install_stores_an_expiring_pair_subscribes_every_topic_and_answers_no_token()
{
    let fx = fixture().await;
    install(&fx, &fx.shop).await;
    let conn = fx.store.get_connection(&fx.shop).await.unwrap().unwrap();
    assert_eq!(conn.status, ConnectionStatus::Connected);
    assert!(conn.access_expires_at_ms.is_some());
    let refresh = conn
        .refresh_token
        .clone()
        .expect("an expiring offline token has a refresh token");
    let report = connections(&fx).await;
    let e = entry(&report, &fx.shop);
    assert_eq!(e["method"], "oauth");
    assert_eq!(e["status"], "connected");
    assert!(e["access_token_expires_at"].is_string());
    assert!(
        e["scopes"]
            .as_array()
            .unwrap()
            .contains(&json!("read_orders"))
    );
    for topic in [
        "orders/create",
        "orders/paid",
        "orders/cancelled",
        "app/uninstalled",
    ] {
        let w = e["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["topic"] == topic)
            .unwrap();
        assert_eq!(w["subscribed"], true, "{topic}: {w}");
    }
    let subs = sandbox_get(&fx.base, "/_admin/shops").await;
    let mine = subs["shops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["shop"] == fx.shop.as_str())
        .unwrap()["webhook_subscriptions"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(mine, 7);
    let text = report.to_string();
    assert!(!text.contains(&conn.access_token) && !text.contains(&refresh));
    // The admin token now sees the connected shop's merchant routes.
    let (status, _, _) = raw(
        &fx,
        "GET",
        &format!("/shops/{}/settings", fx.shop),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn each_forged_callback_is_refused_and_nothing_is_exchanged_or_stored() {
    let fx = fixture().await;
    let exchanges = |v: &Value| v["code_exchanges"].as_u64().unwrap();
    let before = exchanges(&oauth_stats(&fx, &fx.shop).await);

    // A bad hmac.
    let mut pairs = consent(&fx, &fx.shop).await;
    let good = pairs.clone();
    for (k, v) in pairs.iter_mut() {
        if k == "code" {
            v.push('0');
        }
    }
    assert_eq!(callback(&fx, &pairs).await.0, 401);

    // A stale timestamp, correctly signed.
    let mut stale: Vec<(String, String)> = good
        .iter()
        .filter(|(k, _)| k != "hmac")
        .map(|(k, v)| {
            if k == "timestamp" {
                (k.clone(), (v.parse::<i64>().unwrap() - 600).to_string())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let h = query_hmac(SECRET, &stale);
    stale.push(("hmac".into(), h));
    assert_eq!(callback(&fx, &stale).await.0, 400);

    // A foreign shop: a state issued for one shop, a correctly signed callback for another.
    let other = shop(&unique("foreign").to_lowercase());
    let mut foreign: Vec<(String, String)> = good
        .iter()
        .filter(|(k, _)| k != "hmac")
        .map(|(k, v)| {
            if k == "shop" {
                (k.clone(), other.as_str().to_owned())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let h = query_hmac(SECRET, &foreign);
    foreign.push(("hmac".into(), h));
    assert_eq!(callback(&fx, &foreign).await.0, 401);

    // The foreign attempt spent the state: the genuine callback is now a reused state.
    assert_eq!(callback(&fx, &good).await.0, 401);

    assert_eq!(exchanges(&oauth_stats(&fx, &fx.shop).await), before);
    assert!(fx.store.get_connection(&fx.shop).await.unwrap().is_none());
    assert!(fx.store.get_connection(&other).await.unwrap().is_none());

    // And a replay of a callback that succeeded is refused too.
    let pairs = consent(&fx, &fx.shop).await;
    assert_eq!(callback(&fx, &pairs).await.0, 302);
    let version = fx
        .store
        .get_connection(&fx.shop)
        .await
        .unwrap()
        .unwrap()
        .version;
    assert_eq!(callback(&fx, &pairs).await.0, 401);
    assert_eq!(
        fx.store
            .get_connection(&fx.shop)
            .await
            .unwrap()
            .unwrap()
            .version,
        version
    );
}

#[tokio::test]
async fn a_token_expiring_mid_run_is_refreshed_exactly_once_for_twenty_concurrent_callers() {
    let fx = fixture().await;
    install(&fx, &fx.shop).await;
    let before = oauth_stats(&fx, &fx.shop).await["refreshes"]
        .as_u64()
        .unwrap();
    // Shopify expires the token before our clock says so: every caller gets a 401 first.
    sandbox_post(
        &fx.base,
        "/_admin/oauth/expire",
        json!({"shop": fx.shop.as_str()}),
    )
    .await;
    // A second process (another Lambda) shares the table but not the memory.
    let other = Arc::new(TokenProvider::new(
        fx.store.clone(),
        TokenClient::new(Some(fx.base.clone())).unwrap(),
        fx.connect.credentials.clone(),
    ));
    let started = std::time::Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let tokens = if i % 2 == 0 {
            fx.connect.tokens.clone()
        } else {
            other.clone()
        };
        let admin = fx.connect.admin.clone();
        let shop = fx.shop.clone();
        set.spawn(async move {
            let token = tokens.token(&shop).await.unwrap();
            match admin.list_subscriptions(&shop, &token).await {
                Ok(_) => token,
                Err(AdminError::Unauthorized) => {
                    let fresh = tokens.after_unauthorized(&shop, &token).await.unwrap();
                    admin.list_subscriptions(&shop, &fresh).await.unwrap();
                    fresh
                }
                Err(e) => panic!("{e}"),
            }
        });
    }
    let mut tokens = Vec::new();
    while let Some(r) = set.join_next().await {
        tokens.push(r.unwrap());
    }
    let elapsed = started.elapsed();
    let refreshes = oauth_stats(&fx, &fx.shop).await["refreshes"]
        .as_u64()
        .unwrap()
        - before;
    assert_eq!(
        refreshes, 1,
        "one refresh for twenty callers across two processes"
    );
    assert!(tokens.windows(2).all(|w| w[0] == w[1]));
    println!(
        "refresh under 20 concurrent callers: {refreshes} token call(s), all callers served in {} ms",
        elapsed.as_millis()
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_asks_for_a_reconnect_and_a_reconnect_restores_the_shop() {
    let fx = fixture().await;
    install(&fx, &fx.shop).await;
    sandbox_post(
        &fx.base,
        "/_admin/oauth/revoke",
        json!({"shop": fx.shop.as_str()}),
    )
    .await;
    sandbox_post(
        &fx.base,
        "/_admin/oauth/expire",
        json!({"shop": fx.shop.as_str()}),
    )
    .await;
    let token = fx.connect.tokens.token(&fx.shop).await.unwrap();
    assert!(matches!(
        fx.connect.tokens.after_unauthorized(&fx.shop, &token).await,
        Err(ProviderError::ReconnectRequired(_))
    ));
    let refreshes = oauth_stats(&fx, &fx.shop).await["refreshes"]
        .as_u64()
        .unwrap();
    // No retry storm: asking again makes no call.
    for _ in 0..5 {
        assert!(matches!(
            fx.connect.tokens.token(&fx.shop).await,
            Err(ProviderError::ReconnectRequired(_))
        ));
    }
    assert_eq!(
        oauth_stats(&fx, &fx.shop).await["refreshes"]
            .as_u64()
            .unwrap(),
        refreshes
    );
    let e = connections(&fx).await;
    assert_eq!(entry(&e, &fx.shop)["status"], "reconnect_required");
    let (_, _, body) = raw(
        &fx,
        "GET",
        &format!("/shops/{}/attention", fx.shop),
        Some(ADMIN),
    )
    .await;
    let attention: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        attention["connections"][0]["kind"], "shopify_reconnect_required",
        "{attention}"
    );
    install(&fx, &fx.shop).await;
    let e = connections(&fx).await;
    assert_eq!(entry(&e, &fx.shop)["status"], "connected");
    let token = fx.connect.tokens.token(&fx.shop).await.unwrap();
    fx.connect
        .admin
        .list_subscriptions(&fx.shop, &token)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_client_credentials_shop_is_minted_once_and_shop_not_permitted_says_to_use_oauth() {
    let fx = fixture().await;
    let before = oauth_stats(&fx, &fx.cc_shop).await["client_credentials"]
        .as_u64()
        .unwrap();
    let t1 = fx.connect.tokens.token(&fx.cc_shop).await.unwrap();
    let t2 = fx.connect.tokens.token(&fx.cc_shop).await.unwrap();
    assert_eq!(t1, t2);
    fx.connect
        .admin
        .list_subscriptions(&fx.cc_shop, &t1)
        .await
        .unwrap();
    assert_eq!(
        oauth_stats(&fx, &fx.cc_shop).await["client_credentials"]
            .as_u64()
            .unwrap()
            - before,
        1
    );
    let report = connections(&fx).await;
    assert_eq!(entry(&report, &fx.cc_shop)["method"], "client_credentials");

    sandbox_post(
        &fx.base,
        "/_admin/oauth/client_credentials",
        json!({"shop": fx.cc_shop.as_str(), "refuse": "shop_not_permitted"}),
    )
    .await;
    sandbox_post(
        &fx.base,
        "/_admin/oauth/expire",
        json!({"shop": fx.cc_shop.as_str()}),
    )
    .await;
    match fx.connect.tokens.after_unauthorized(&fx.cc_shop, &t1).await {
        Err(ProviderError::ReconnectRequired(why)) => assert!(why.contains("OAuth"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_deleted_subscription_is_repaired_by_the_reconcile_route() {
    let fx = fixture().await;
    install(&fx, &fx.shop).await;
    sandbox_post(
        &fx.base,
        "/_admin/webhooks/subscriptions",
        json!({"shop": fx.shop.as_str(), "delete_topic": "orders/paid"}),
    )
    .await;
    let (status, _, body) = raw(
        &fx,
        "POST",
        &format!("/shops/{}/webhooks/reconcile", fx.shop),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let paid = v["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["topic"] == "orders/paid")
        .unwrap();
    assert_eq!(paid["subscribed"], true);
    let token = fx.connect.tokens.token(&fx.shop).await.unwrap();
    let subs = fx
        .connect
        .admin
        .list_subscriptions(&fx.shop, &token)
        .await
        .unwrap();
    assert!(
        subs.iter()
            .any(|s| s.topic == "ORDERS_PAID" && s.uri == format!("{PUBLIC}/webhooks/shopify"))
    );
    assert!(!body.contains(&token));
    // Without the admin token: 401.
    assert_eq!(
        raw(
            &fx,
            "POST",
            &format!("/shops/{}/webhooks/reconcile", fx.shop),
            None
        )
        .await
        .0,
        401
    );
}

#[tokio::test]
async fn a_thousand_calls_across_an_expiry_cost_one_token_call_measured() {
    let fx = fixture().await;
    install(&fx, &fx.shop).await;
    let before = oauth_stats(&fx, &fx.shop).await["refreshes"]
        .as_u64()
        .unwrap();
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut set = tokio::task::JoinSet::new();
    for worker in 0..20u64 {
        let (tokens, admin, shop) = (
            fx.connect.tokens.clone(),
            fx.connect.admin.clone(),
            fx.shop.clone(),
        );
        let (base, done, latencies) = (fx.base.clone(), done.clone(), latencies.clone());
        set.spawn(async move {
            for i in 0..50u64 {
                // Halfway through, Shopify expires the token under every worker's feet.
                if worker == 0 && i == 25 {
                    sandbox_post(
                        &base,
                        "/_admin/oauth/expire",
                        json!({"shop": shop.as_str()}),
                    )
                    .await;
                }
                let token = tokens.token(&shop).await.unwrap();
                if let Err(AdminError::Unauthorized) = admin.list_subscriptions(&shop, &token).await
                {
                    let started = std::time::Instant::now();
                    let fresh = tokens.after_unauthorized(&shop, &token).await.unwrap();
                    latencies
                        .lock()
                        .unwrap()
                        .push(started.elapsed().as_millis());
                    admin.list_subscriptions(&shop, &fresh).await.unwrap();
                }
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let calls = oauth_stats(&fx, &fx.shop).await["refreshes"]
        .as_u64()
        .unwrap()
        - before;
    assert_eq!(done.load(std::sync::atomic::Ordering::Relaxed), 1000);
    assert_eq!(calls, 1);
    let mut l = latencies.lock().unwrap().clone();
    l.sort_unstable();
    println!(
        "token calls per 1,000 Shopify calls across one expiry: {calls}; callers that met the 401: {}; wait for the renewed token: min {} ms, max {} ms",
        l.len(),
        l.first().copied().unwrap_or(0),
        l.last().copied().unwrap_or(0)
    );
}

#[tokio::test]
async fn the_scheduled_run_reconciles_and_repairs_a_shop_that_lives_only_in_the_table() {
    let fx = fixture().await;
    install(&fx, &fx.shop).await;
    assert!(
        fx.connect.credentials.shop(&fx.shop).is_none(),
        "the shop must be connected by OAuth only"
    );
    sandbox_post(
        &fx.base,
        "/_admin/webhooks/subscriptions",
        json!({"shop": fx.shop.as_str(), "delete_topic": "orders/paid"}),
    )
    .await;
    let svc = dropsync_app::reconcile::ReconcileService {
        store: fx.store.clone(),
        credentials: fx.connect.credentials.clone(),
        admin: fx.connect.admin.clone(),
        lookback_ms: dropsync_app::reconcile::DEFAULT_LOOKBACK_MS,
    };
    let report = svc
        .scheduled_run(
            &fx.connect,
            std::time::Instant::now() + std::time::Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert!(
        report.shops >= 1 && report.failed == 0,
        "the OAuth shop was reconciled: {report:?}"
    );
    let token = fx.connect.tokens.token(&fx.shop).await.unwrap();
    let subs = fx
        .connect
        .admin
        .list_subscriptions(&fx.shop, &token)
        .await
        .unwrap();
    assert!(
        subs.iter()
            .any(|s| s.topic == "ORDERS_PAID" && s.uri == format!("{PUBLIC}/webhooks/shopify")),
        "the scheduled run re-created the deleted subscription"
    );
}

/// The query Shopify puts on the App URL when the merchant installs or opens the app, signed
/// with `secret` (`shop, timestamp, host`, then `hmac`).
fn install_query(shop: &str, timestamp: i64, secret: &str) -> String {
    let mut pairs = vec![
        (
            "host".to_owned(),
            "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvZGVtbw".to_owned(),
        ),
        ("shop".to_owned(), shop.to_owned()),
        ("timestamp".to_owned(), timestamp.to_string()),
    ];
    let h = query_hmac(secret, &pairs);
    pairs.push(("hmac".to_owned(), h));
    to_query(&pairs)
}

#[tokio::test]
async fn the_app_url_install_request_is_checked_then_goes_to_authorize_or_to_the_dashboard() {
    let fx = fixture().await;
    let now = dropsync_app::now_ms() / 1000;
    let shop = fx.shop.as_str();
    // Forged or stale install requests: refused, no state issued, nothing stored.
    let forged = [
        (install_query(shop, now, "not-the-secret"), 401),
        (install_query(shop, now - 600, SECRET), 400),
        (install_query("evil.example.com", now, SECRET), 400),
    ];
    for (query, want) in &forged {
        let (status, location, body) =
            raw(&fx, "GET", &format!("/connect/shopify?{query}"), None).await;
        assert_eq!(status, *want, "{query}: {body}");
        assert!(location.is_empty(), "{location}");
    }
    // Without Shopify's hmac the route is the signed-in Connect button: a token is required.
    let (status, _, _) = raw(&fx, "GET", &format!("/connect/shopify?shop={shop}"), None).await;
    assert_eq!(status, 401);
    assert!(fx.store.get_connection(&fx.shop).await.unwrap().is_none());

    // A genuine install of a shop not connected yet: to Shopify's authorize page, with a state
    // the callback accepts; the install completes like a Connect.
    let (status, location, body) = raw(
        &fx,
        "GET",
        &format!("/connect/shopify?{}", install_query(shop, now, SECRET)),
        None,
    )
    .await;
    assert_eq!(status, 302, "{body}");
    assert!(
        location.starts_with(&format!("{}/admin/oauth/authorize?", fx.base)),
        "{location}"
    );
    let back = sandbox_consents(&location).await;
    let path = back.strip_prefix(PUBLIC).unwrap();
    let (status, location, body) = raw(&fx, "GET", path, None).await;
    assert_eq!(status, 302, "{body}");
    assert_eq!(location, format!("{PUBLIC}/app?connected={shop}"));
    let conn = fx.store.get_connection(&fx.shop).await.unwrap().unwrap();
    assert_eq!(conn.status, ConnectionStatus::Connected);

    // Opening the app again once connected: straight to the dashboard, no new authorization.
    let authorizations = oauth_stats(&fx, &fx.shop).await["authorize"].clone();
    let (status, location, _) = raw(
        &fx,
        "GET",
        &format!("/connect/shopify?{}", install_query(shop, now, SECRET)),
        None,
    )
    .await;
    assert_eq!(status, 302);
    assert_eq!(location, format!("{PUBLIC}/app"));
    assert_eq!(
        oauth_stats(&fx, &fx.shop).await["authorize"],
        authorizations
    );
}
