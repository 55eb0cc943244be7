//! Authorizing AliExpress through the real routes (`/connect/aliexpress` and its callback) against
//! the sandbox AliExpress (signed `/rest/auth/token/create`), and the re-authorize deadline states
//! in `GET /connections` and the attention list.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests --test integration connect_aliexpress::`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use dropsync_aliexpress::IopClient;
use dropsync_api::Api;
use dropsync_app::connect::ConnectService;
use dropsync_app::queue::SqsQueue;
use dropsync_shopify::admin::{AdminClient, AdminConfig};
use dropsync_shopify::oauth::TokenClient;
use dropsync_store::{AeTokenRecord, Store};
use dropsync_tests::*;
use serde_json::{Value, json};
use std::sync::Arc;

const ADMIN: &str = "admin-token-aliexpress-0123456789";
const PUBLIC: &str = "http://127.0.0.1:9";
const DAY_MS: i64 = 24 * 3600 * 1000;

struct Fx {
    api: Api<IopClient, SqsQueue>,
    store: Store,
    app_key: String,
}

async fn fixture() -> Fx {
    let store = fresh_store().await;
    let ae = aliexpress_sandbox();
    let app_key = format!("{}", 100_000 + fastrand::u32(..900_000));
    sandbox_post(
        &ae,
        "/_admin/apps",
        json!({"app_key": app_key, "app_secret": "ae-connect-secret", "app_status": "launched"}),
    )
    .await;
    let creds = credentials(json!({
        "admin_token": ADMIN,
        "shops": {},
        "aliexpress": {"app_key": app_key, "app_secret": "ae-connect-secret"},
    }));
    let base = shopify_sandbox();
    let connect = Arc::new(ConnectService {
        store: store.clone(),
        credentials: creds.clone(),
        tokens: dropsync_app::tokens::shared(&store, &creds, Some(base.clone())).unwrap(),
        token_client: TokenClient::new(Some(base.clone())).unwrap(),
        admin: Arc::new(
            AdminClient::new(AdminConfig {
                base_override: Some(base),
                ..AdminConfig::default()
            })
            .unwrap(),
        ),
        public_url: PUBLIC.into(),
        aliexpress_api_url: ae,
        http: reqwest::Client::new(),
        tracking_queue: None,
    });
    Fx {
        api: Api {
            store: store.clone(),
            credentials: creds,
            sync: None,
            place: None,
            connect: Some(connect),
            reconcile: None,
        },
        store,
        app_key,
    }
}

async fn raw(fx: &Fx, path: &str, token: Option<&str>) -> (u16, String, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let res = fx
        .api
        .handle(apigw_request("GET", path, &headers, b""))
        .await;
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = match res.into_body() {
        lambda_http::Body::Text(t) => t,
        lambda_http::Body::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    (status, location, body)
}

async fn connections(fx: &Fx) -> Value {
    let (status, _, body) = raw(fx, "/connections", Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Starts the authorization and lets the sandbox consent: the callback's path and query.
async fn consent(fx: &Fx) -> String {
    let (status, location, _) = raw(fx, "/connect/aliexpress", Some(ADMIN)).await;
    assert_eq!(status, 302);
    assert!(location.contains("/oauth/authorize?response_type=code&force_auth=true&redirect_uri="));
    assert!(location.contains(&format!("client_id={}", fx.app_key)));
    let back = crate::connect_support::sandbox_consents(&location).await;
    back.strip_prefix(PUBLIC).unwrap().to_owned()
}

#[tokio::test]
async fn connecting_aliexpress_stores_the_pair_with_both_lifetimes_and_a_code_is_single_use() {
    let fx = fixture().await;
    assert_eq!(
        connections(&fx).await["aliexpress"]["status"],
        "not_connected"
    );
    let callback = consent(&fx).await;
    assert!(
        callback.starts_with("/connect/aliexpress/callback?"),
        "{callback}"
    );
    let (status, location, _) = raw(&fx, &callback, None).await;
    assert_eq!(status, 302);
    assert_eq!(location, format!("{PUBLIC}/app?connected=aliexpress"));
    let rec = fx.store.get_ae_tokens(&fx.app_key).await.unwrap().unwrap();
    assert!(rec.refresh_expire_time_ms.is_some());
    assert!(rec.expire_time_ms > dropsync_app::now_ms());
    let report = connections(&fx).await;
    assert_eq!(report["aliexpress"]["status"], "connected");
    assert!(report["aliexpress"]["reauthorize_by"].is_string());
    assert!(!report.to_string().contains(&rec.access_token));
    assert!(!report.to_string().contains(&rec.refresh_token));
    // The same callback again: its state is spent.
    assert_eq!(raw(&fx, &callback, None).await.0, 401);
    // A state never issued.
    let forged = format!(
        "/connect/aliexpress/callback?code=0_x&state={}",
        unique("s")
    );
    assert_eq!(raw(&fx, &forged, None).await.0, 401);
}

#[tokio::test]
async fn the_refresh_tokens_end_is_a_deadline_soon_within_seven_days_and_required_after() {
    let fx = fixture().await;
    let now = dropsync_app::now_ms();
    let put = |end: i64| {
        let store = fx.store.clone();
        let key = fx.app_key.clone();
        async move {
            let prev = store.get_ae_tokens(&key).await.unwrap();
            let rec = AeTokenRecord {
                access_token: unique("a"),
                refresh_token: unique("r"),
                expire_time_ms: now + DAY_MS,
                refresh_expire_time_ms: Some(end),
            };
            assert!(
                store
                    .put_ae_tokens(&key, prev.as_ref().map(|p| p.refresh_token.as_str()), &rec)
                    .await
                    .unwrap()
            );
        }
    };
    put(now + 30 * DAY_MS).await;
    assert_eq!(connections(&fx).await["aliexpress"]["status"], "connected");
    put(now + 3 * DAY_MS).await;
    let report = connections(&fx).await;
    assert_eq!(report["aliexpress"]["status"], "reauthorize_soon");
    assert!(report["aliexpress"]["reauthorize_by"].is_string());
    put(now - 1).await;
    assert_eq!(
        connections(&fx).await["aliexpress"]["status"],
        "reauthorize_required"
    );
}

/// Connects `shop` to Shopify by OAuth the way the callback leaves it: a record in the table.
async fn connect_shop_in_table(fx: &Fx, shop: &dropsync_domain::ShopDomain) {
    use dropsync_store::{ConnectMethod, ConnectionStatus, ConnectionStore, ShopConnection};
    let connected = ShopConnection {
        shop: shop.clone(),
        method: ConnectMethod::OAuth,
        access_token: unique("shpoa"),
        access_expires_at_ms: Some(dropsync_app::now_ms() + 3_600_000),
        refresh_token: Some(unique("shprt")),
        refresh_expires_at_ms: None,
        scopes: vec![],
        status: ConnectionStatus::Connected,
        reason: None,
        version: 0,
        updated_at_ms: 0,
        webhooks: vec![],
    };
    assert!(fx.store.put_connection(&connected, None).await.unwrap());
}

/// An order of `shop` linked to a new AliExpress order of the sandbox account the authorization
/// sees (paid on AliExpress, so a poll that reaches AliExpress changes it).
async fn linked_order(fx: &Fx, shop: &dropsync_domain::ShopDomain) -> u64 {
    let ae = aliexpress_sandbox();
    let out = sandbox_post(
        &ae,
        "/_admin/orders",
        json!({"app_key": fx.app_key, "account": "sandbox-buyer", "status": "WAIT_SELLER_SEND_GOODS",
               "items": [crate::poller_support::ae_item(crate::poller_support::P1, crate::poller_support::S1, 1)]}),
    )
    .await;
    let ae_order: u64 = out["order_id"].as_str().unwrap().parse().unwrap();
    let order_id = 9_007_199_254_740_993 + fastrand::u64(1..1_000_000_000) * 2;
    let line = order_id + 2;
    let now = dropsync_app::now_ms();
    fx.store
        .save_shopify_facts(
            shop,
            order_id,
            facts("paid", now, &[(line, 1)]),
            "orders/create",
            now,
        )
        .await
        .unwrap();
    let link = dropsync_domain::ItemLink {
        line_item_id: line,
        product_id: Some(crate::poller_support::P1.into()),
        sku_id: Some(crate::poller_support::S1.into()),
    };
    fx.store
        .update_order(shop, order_id, |o| {
            dropsync_domain::ops::link_supplier_order(o, ae_order, &[line], vec![link.clone()], now)
                .unwrap()
        })
        .await
        .unwrap()
        .unwrap();
    order_id
}

#[tokio::test]
async fn after_the_refresh_tokens_end_polls_stop_with_one_attention_item_and_resume_after_reauthorizing()
 {
    use dropsync_aliexpress::{IopConfig, Tokens};
    use dropsync_app::sync::SyncService;
    let fx = fixture().await;
    let callback = consent(&fx).await;
    assert_eq!(raw(&fx, &callback, None).await.0, 302);
    let shop = shop(&unique("aedeadline").to_lowercase());
    connect_shop_in_table(&fx, &shop).await;
    for _ in 0..3 {
        linked_order(&fx, &shop).await;
    }
    // The poller: the real client, its tokens read from the table the callback wrote.
    let mut config = IopConfig::new(&fx.app_key, "ae-connect-secret", Tokens::default());
    config.base_url = aliexpress_sandbox();
    let ae = Arc::new(
        IopClient::new(
            config,
            Arc::new(dropsync_app::wiring::StoreTokens(fx.store.clone())),
        )
        .unwrap(),
    );
    let (queue, _sqs) = crate::poller_support::fresh_queue().await;
    let sync = Arc::new(SyncService {
        store: fx.store.clone(),
        ae,
        queue: Arc::new(queue),
        concurrency: 4,
    });
    let calls = || async {
        sandbox_get(
            &aliexpress_sandbox(),
            &format!("/_admin/stats?app_key={}", fx.app_key),
        )
        .await["total_calls"]
            .as_u64()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);

    // The authorization's end passes (its refresh token cannot be renewed past it).
    let rec = fx.store.get_ae_tokens(&fx.app_key).await.unwrap().unwrap();
    let ended = AeTokenRecord {
        refresh_expire_time_ms: Some(dropsync_app::now_ms() - 1),
        ..rec.clone()
    };
    assert!(
        fx.store
            .put_ae_tokens(&fx.app_key, Some(&rec.refresh_token), &ended)
            .await
            .unwrap()
    );
    let before = calls().await;
    for _ in 0..2 {
        let report = sync.poll(None, deadline).await.unwrap();
        assert!(
            report
                .aborted
                .as_deref()
                .is_some_and(|why| why.contains("re-authorize AliExpress")),
            "{report:?}"
        );
        assert_eq!((report.orders, report.errors), (0, 0), "{report:?}");
    }
    assert_eq!(
        calls().await,
        before,
        "no AliExpress call once the authorization ended"
    );
    let (status, _, body) = raw(&fx, &format!("/shops/{shop}/attention"), Some(ADMIN)).await;
    assert_eq!(status, 200);
    let attention: Value = serde_json::from_str(&body).unwrap();
    let kinds: Vec<&Value> = attention["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["kind"])
        .collect();
    assert_eq!(
        kinds,
        [&json!("aliexpress_reauthorize_required")],
        "{attention}"
    );
    assert!(
        attention["orders"].as_array().unwrap().is_empty(),
        "no order is flagged one by one: {attention}"
    );

    // The merchant re-authorizes: the next poll syncs every order again.
    let callback = consent(&fx).await;
    assert_eq!(raw(&fx, &callback, None).await.0, 302);
    let report = sync.poll(None, deadline).await.unwrap();
    assert_eq!(report.aborted, None, "{report:?}");
    assert_eq!(
        (report.orders, report.errors, report.changed),
        (3, 0, 3),
        "{report:?}"
    );
    let (_, _, body) = raw(&fx, &format!("/shops/{shop}/attention"), Some(ADMIN)).await;
    let attention: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(attention["connections"], json!([]), "{attention}");
}

#[tokio::test]
async fn a_refresh_that_does_not_restate_the_deadline_keeps_it() {
    let fx = fixture().await;
    let callback = consent(&fx).await;
    assert_eq!(raw(&fx, &callback, None).await.0, 302);
    let rec = fx.store.get_ae_tokens(&fx.app_key).await.unwrap().unwrap();
    let end = rec
        .refresh_expire_time_ms
        .expect("the connect stores the deadline");
    // What the client stores after a refresh: a new pair, no deadline of its own.
    let refreshed = AeTokenRecord {
        access_token: unique("a"),
        refresh_token: unique("r"),
        expire_time_ms: rec.expire_time_ms + DAY_MS,
        refresh_expire_time_ms: None,
    };
    assert!(
        fx.store
            .put_ae_tokens(&fx.app_key, Some(&rec.refresh_token), &refreshed)
            .await
            .unwrap()
    );
    let after = fx.store.get_ae_tokens(&fx.app_key).await.unwrap().unwrap();
    assert_eq!(after.refresh_token, refreshed.refresh_token);
    assert_eq!(after.refresh_expire_time_ms, Some(end));
    // A stale writer (the refresh token it started from is gone) changes nothing.
    assert!(
        !fx.store
            .put_ae_tokens(&fx.app_key, Some(&rec.refresh_token), &rec)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn after_the_refresh_tokens_end_manual_syncs_and_placements_answer_409_saying_to_reauthorize_and_change_nothing()
 {
    use dropsync_aliexpress::{IopConfig, Tokens};
    use dropsync_app::place::{PlaceService, Placer};
    use dropsync_app::sync::SyncService;
    let fx = fixture().await;
    let callback = consent(&fx).await;
    assert_eq!(raw(&fx, &callback, None).await.0, 302);
    let shop = shop(&unique("aeended").to_lowercase());
    connect_shop_in_table(&fx, &shop).await;
    let linked = linked_order(&fx, &shop).await;
    // A paid order with nothing placed yet: it waits in Awaiting order.
    let unplaced = 9_007_199_254_740_993 + fastrand::u64(1..1_000_000_000) * 2;
    let now = dropsync_app::now_ms();
    fx.store
        .save_shopify_facts(
            &shop,
            unplaced,
            facts("paid", now, &[(unplaced + 2, 1)]),
            "orders/create",
            now,
        )
        .await
        .unwrap();
    let creds = credentials(json!({
        "admin_token": ADMIN,
        "shops": {},
        "aliexpress": {"app_key": fx.app_key, "app_secret": "ae-connect-secret"},
    }));
    let mut config = IopConfig::new(&fx.app_key, "ae-connect-secret", Tokens::default());
    config.base_url = aliexpress_sandbox();
    let ae = Arc::new(
        IopClient::new(
            config,
            Arc::new(dropsync_app::wiring::StoreTokens(fx.store.clone())),
        )
        .unwrap(),
    );
    let (queue, _sqs) = crate::poller_support::fresh_queue().await;
    let place: Arc<dyn Placer> = Arc::new(PlaceService {
        store: fx.store.clone(),
        ae: ae.clone(),
        shopify: Arc::new(
            AdminClient::new(AdminConfig {
                base_override: Some(shopify_sandbox()),
                ..AdminConfig::default()
            })
            .unwrap(),
        ),
        credentials: creds.clone(),
    });
    let api = Api {
        store: fx.store.clone(),
        credentials: creds,
        sync: Some(Arc::new(SyncService {
            store: fx.store.clone(),
            ae,
            queue: Arc::new(queue),
            concurrency: 4,
        })),
        place: Some(place),
        connect: None,
        reconcile: None,
    };
    let rec = fx.store.get_ae_tokens(&fx.app_key).await.unwrap().unwrap();
    let ended = AeTokenRecord {
        refresh_expire_time_ms: Some(dropsync_app::now_ms() - 1),
        ..rec.clone()
    };
    assert!(
        fx.store
            .put_ae_tokens(&fx.app_key, Some(&rec.refresh_token), &ended)
            .await
            .unwrap()
    );
    let calls = || async {
        sandbox_get(
            &aliexpress_sandbox(),
            &format!("/_admin/stats?app_key={}", fx.app_key),
        )
        .await["total_calls"]
            .as_u64()
            .unwrap()
    };
    let before_calls = calls().await;
    let before_linked = fx.store.get_order(&shop, linked).await.unwrap().unwrap();
    let before_unplaced = fx.store.get_order(&shop, unplaced).await.unwrap().unwrap();
    let auth = format!("Bearer {ADMIN}");
    for path in [
        format!("/shops/{shop}/orders/{linked}/sync"),
        format!("/shops/{shop}/sync"),
        format!("/shops/{shop}/orders/{unplaced}/place"),
    ] {
        let res = api
            .handle(apigw_request(
                "POST",
                &path,
                &[("authorization", auth.as_str())],
                b"",
            ))
            .await;
        let status = res.status().as_u16();
        let body = match res.into_body() {
            lambda_http::Body::Text(t) => t,
            _ => String::new(),
        };
        assert_eq!(status, 409, "{path}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        let text = error["error"].as_str().unwrap();
        assert!(text.contains("re-authorize AliExpress"), "{path}: {text}");
        assert!(
            !text.contains(&rec.access_token) && !text.contains(&rec.refresh_token),
            "{text}"
        );
    }
    assert_eq!(calls().await, before_calls, "no AliExpress call was made");
    let after_linked = fx.store.get_order(&shop, linked).await.unwrap().unwrap();
    let after_unplaced = fx.store.get_order(&shop, unplaced).await.unwrap().unwrap();
    assert_eq!(after_linked.order, before_linked.order);
    assert_eq!(after_unplaced.order, before_unplaced.order);
    assert_eq!(
        after_unplaced.order.status,
        dropsync_domain::OrderStatus::AwaitingOrder
    );
    assert!(after_unplaced.order.placements.is_empty());
}
