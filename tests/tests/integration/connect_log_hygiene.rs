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

use crate::connect_support::*;
use dropsync_domain::ShopDomain;
use dropsync_store::ConnectionStore;
use serde_json::{Value, json};

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
