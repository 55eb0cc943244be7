//! Abuse limits on manual shop syncs: at most one in flight per shop across every Lambda (a
//! DynamoDB gate), and one fresh start per shop every few seconds; refusals are 429 with
//! `Retry-After`, and nothing runs.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests --test integration abuse_limits::`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use dropsync_aliexpress::{IopClient, IopConfig, MemoryTokenStore, Tokens};
use dropsync_api::Api;
use dropsync_app::queue::SqsQueue;
use dropsync_app::sync::SyncService;
use dropsync_tests::{
    apigw_request, aws_config, credentials, fresh_store, now_ms, response_json, shop, unique,
};
use serde_json::json;
use std::sync::Arc;

const ADMIN: &str = "admin-token-0123456789abcdef";

#[tokio::test]
async fn the_gate_admits_one_sync_per_shop_and_one_fresh_start_per_interval() {
    let store = fresh_store().await;
    let (a, b) = (shop("gate-a"), shop("gate-b"));
    let t = now_ms();
    assert_eq!(
        store
            .start_manual_sync(&a, "h1", t, 20_000, 5_000)
            .await
            .unwrap(),
        None
    );
    // In flight: refused for the rest of the hold, whatever the interval.
    let wait = store
        .start_manual_sync(&a, "h2", t + 1_000, 20_000, 0)
        .await
        .unwrap();
    assert_eq!(wait, Some(19_000));
    // Another shop is not held up.
    assert_eq!(
        store
            .start_manual_sync(&b, "h3", t + 1_000, 20_000, 5_000)
            .await
            .unwrap(),
        None
    );
    // Ended: a continuation may go on at once, a fresh start waits for the interval.
    store.end_manual_sync(&a, "h1").await.unwrap();
    assert_eq!(
        store
            .start_manual_sync(&a, "h4", t + 2_000, 20_000, 5_000)
            .await
            .unwrap(),
        Some(3_000)
    );
    assert_eq!(
        store
            .start_manual_sync(&a, "h5", t + 2_000, 20_000, 0)
            .await
            .unwrap(),
        None
    );
    // Ending someone else's sync does nothing.
    store.end_manual_sync(&a, "h1").await.unwrap();
    assert!(
        store
            .start_manual_sync(&a, "h6", t + 3_000, 20_000, 0)
            .await
            .unwrap()
            .is_some()
    );
    // A crashed holder's gate opens when its hold ends.
    assert_eq!(
        store
            .start_manual_sync(&a, "h7", t + 22_001, 20_000, 5_000)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_second_shop_sync_while_one_runs_is_429_with_retry_after_and_runs_nothing() {
    let store = fresh_store().await;
    let name = unique("limit");
    let domain = format!("{name}.myshopify.com");
    let creds = credentials(json!({"admin_token": ADMIN,
        "shops": {domain.clone(): {"access_token": "x", "webhook_secrets": ["s"]}}}));
    // AliExpress at a closed port: a sync that ran would fail, not answer 429.
    let ae = IopClient::new(
        IopConfig {
            base_url: "http://127.0.0.1:9".into(),
            ..IopConfig::new(
                "12345678",
                "secret",
                Tokens {
                    access_token: "t".into(),
                    refresh_token: "r".into(),
                    expire_time_ms: Some(now_ms() + 86_400_000),
                },
            )
        },
        Arc::new(MemoryTokenStore::new()),
    )
    .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&aws_config().await);
    let api = Api {
        store: store.clone(),
        credentials: creds,
        sync: Some(Arc::new(SyncService {
            store: store.clone(),
            ae: Arc::new(ae),
            queue: Arc::new(SqsQueue::new(sqs, "http://127.0.0.1:9/q".to_owned())),
            concurrency: 1,
        })),
        place: None,
        connect: None,
        reconcile: None,
    };
    // Another Lambda is syncing this shop.
    store
        .start_manual_sync(&shop(&name), "elsewhere", now_ms(), 20_000, 0)
        .await
        .unwrap();
    let auth = format!("Bearer {ADMIN}");
    let res = api
        .handle(apigw_request(
            "POST",
            &format!("/shops/{domain}/sync"),
            &[("authorization", auth.as_str())],
            b"",
        ))
        .await;
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    let (status, body) = response_json(res);
    assert_eq!(status, 429, "{body}");
    assert!(body["error"].as_str().unwrap().contains("retry later"));
}
