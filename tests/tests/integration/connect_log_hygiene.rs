//! OAuth tokens never appear in the logs or in any answer. A child process of this test runs an
//! OAuth install, a refresh after a 401, a client-credentials mint, `/connections` and a webhook
//! reconcile with the production JSON logging at `RUST_LOG=trace` (every crate's events); the
//! parent then fails if any token or the app secret appears in the captured output, and checks the
//! logs do name the shop (so silence cannot pass).
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests --test integration connect_log_hygiene::`
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
use dropsync_domain::ShopDomain;
use dropsync_shopify::admin::subscriptions::WebhookSubscriptions;
use dropsync_shopify::admin::{AdminClient, AdminConfig, AdminError};
use dropsync_shopify::oauth::TokenClient;
use dropsync_store::{ConnectionStore, Store};
use dropsync_tests::*;
use serde_json::{Value, json};
use std::sync::Arc;

const ADMIN: &str = "admin-token-connect-0123456789";
const SECRET: &str = "app-secret-connect";
const PUBLIC: &str = "http://127.0.0.1:9";

struct Fx {
    api: Api<IopClient, SqsQueue>,
    connect: Arc<ConnectService>,
    store: Store,
    base: String,
    shop: ShopDomain,
    cc_shop: ShopDomain,
}

async fn fixture() -> Fx {
    let store = fresh_store().await;
    let base = shopify_sandbox();
    let client_id = unique("cid");
    sandbox_post(
        &base,
        "/_admin/oauth/app",
        json!({"client_id": client_id, "client_secret": SECRET}),
    )
    .await;
    let shop = shop(&unique("oauth").to_lowercase());
    let cc_shop = self::shop(&unique("cc").to_lowercase());
    for s in [&shop, &cc_shop] {
        sandbox_post(
            &base,
            "/_admin/shops",
            json!({"shop": s.as_str(), "access_token": format!("shpat_placeholder_{s}"), "webhook_secret": SECRET,
                   "bucket_size": 20000, "restore_rate": 10000}),
        )
        .await;
    }
    let creds = credentials(json!({
        "admin_token": ADMIN,
        "shopify_app": {"client_id": client_id, "client_secret": SECRET, "scopes": "read_orders,write_orders"},
        "shops": { cc_shop.as_str(): {"client_credentials": true} },
    }));
    let tokens = dropsync_app::tokens::shared(&store, &creds, Some(base.clone())).unwrap();
    let admin = AdminClient::new(AdminConfig {
        base_override: Some(base.clone()),
        ..AdminConfig::default()
    })
    .unwrap();
    let connect = Arc::new(ConnectService {
        store: store.clone(),
        credentials: creds.clone(),
        tokens,
        token_client: TokenClient::new(Some(base.clone())).unwrap(),
        admin: Arc::new(admin),
        public_url: PUBLIC.into(),
        aliexpress_api_url: aliexpress_sandbox(),
        http: reqwest::Client::new(),
    });
    Fx {
        api: Api {
            store: store.clone(),
            credentials: creds,
            sync: None,
            place: None,
            connect: Some(connect.clone()),
            reconcile: None,
        },
        connect,
        store,
        base,
        shop,
        cc_shop,
    }
}

/// Status, `Location` and body text of one request to the API.
async fn raw(fx: &Fx, method: &str, path: &str, token: Option<&str>) -> (u16, String, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let res = fx
        .api
        .handle(apigw_request(method, path, &headers, b""))
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

/// Starts a connect and lets the sandbox "consent": the callback's query pairs.
async fn consent(fx: &Fx, shop: &ShopDomain) -> Vec<(String, String)> {
    let (status, location, _) = raw(
        fx,
        "GET",
        &format!("/connect/shopify?shop={shop}"),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, 302);
    assert!(
        location.starts_with(&format!("{}/admin/oauth/authorize?", fx.base)),
        "{location}"
    );
    assert!(
        location.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fconnect%2Fshopify%2Fcallback")
    );
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
    let (path, query) = back.split_once('?').unwrap();
    assert_eq!(path, format!("{PUBLIC}/connect/shopify/callback"));
    query
        .split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn to_query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

async fn callback(fx: &Fx, pairs: &[(String, String)]) -> (u16, String, String) {
    raw(
        fx,
        "GET",
        &format!("/connect/shopify/callback?{}", to_query(pairs)),
        None,
    )
    .await
}

async fn install(fx: &Fx, shop: &ShopDomain) {
    let pairs = consent(fx, shop).await;
    let (status, location, _) = callback(fx, &pairs).await;
    assert_eq!(status, 302);
    assert_eq!(location, format!("{PUBLIC}/app?connected={shop}"));
}

const TEST: &str = "connect_log_hygiene::oauth_tokens_never_appear_in_the_logs_or_in_any_answer";
const CHILD: &str = "DROPSYNC_CONNECT_LOG_HYGIENE_OUT";

async fn child(out: &str) {
    dropsync_app::init_logging();
    let fx = fixture().await;
    let mut secrets: Vec<String> = vec![SECRET.to_owned()];
    let mut answers = String::new();
    install(&fx, &fx.shop).await;
    let first = fx.store.get_connection(&fx.shop).await.unwrap().unwrap();
    secrets.push(first.access_token.clone());
    secrets.extend(first.refresh_token.clone());
    sandbox_post(
        &fx.base,
        "/_admin/oauth/expire",
        json!({"shop": fx.shop.as_str()}),
    )
    .await;
    let token = fx.connect.tokens.token(&fx.shop).await.unwrap();
    assert!(matches!(
        fx.connect.admin.list_subscriptions(&fx.shop, &token).await,
        Err(AdminError::Unauthorized)
    ));
    fx.connect
        .tokens
        .after_unauthorized(&fx.shop, &token)
        .await
        .unwrap();
    let second = fx.store.get_connection(&fx.shop).await.unwrap().unwrap();
    assert_ne!(second.access_token, first.access_token);
    secrets.push(second.access_token.clone());
    secrets.extend(second.refresh_token.clone());
    secrets.push(fx.connect.tokens.token(&fx.cc_shop).await.unwrap());
    for path in [
        "/connections".to_owned(),
        format!("/shops/{}/attention", fx.shop),
    ] {
        let (_, _, body) = raw(&fx, "GET", &path, Some(ADMIN)).await;
        answers.push_str(&body);
    }
    let (_, _, body) = raw(
        &fx,
        "POST",
        &format!("/shops/{}/webhooks/reconcile", fx.shop),
        Some(ADMIN),
    )
    .await;
    answers.push_str(&body);
    std::fs::write(
        out,
        json!({"secrets": secrets, "answers": answers, "shop": fx.shop.as_str()}).to_string(),
    )
    .unwrap();
}

#[tokio::test]
async fn oauth_tokens_never_appear_in_the_logs_or_in_any_answer() {
    if let Ok(out) = std::env::var(CHILD) {
        child(&out).await;
        return;
    }
    let used_path = std::env::temp_dir().join(format!("{}.json", unique("connect-logs")));
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, &used_path)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "child failed:\n{logs}");
    let used: Value = serde_json::from_str(&std::fs::read_to_string(&used_path).unwrap()).unwrap();
    let _ = std::fs::remove_file(&used_path);
    let answers = used["answers"].as_str().unwrap();
    let secrets = used["secrets"].as_array().unwrap();
    assert!(secrets.len() >= 5);
    for s in secrets {
        let s = s.as_str().unwrap();
        if let Some(at) = logs.find(s) {
            // Where, without the value itself.
            let from = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let line = logs[from..]
                .lines()
                .next()
                .unwrap_or_default()
                .replace(s, "<SECRET>");
            panic!("a token or secret is in the logs: {line}");
        }
        assert!(!answers.contains(s), "a token or secret is in an answer");
    }
    let shop = used["shop"].as_str().unwrap();
    assert!(logs.contains(shop), "the logs name the shop");
    assert!(logs.contains("shop connected by OAuth") && logs.contains("shopify token renewed"));
}
