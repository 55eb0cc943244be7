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
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&location)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 302);
    let back = res.headers()["location"].to_str().unwrap().to_owned();
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
