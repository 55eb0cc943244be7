//! The sample events in `events/` (`webhook-*.json`, `eventbridge-*.json`) work: each one, run
//! through the function's handler against the emulator with credentials holding the documented
//! test secret, answers what `events/README.md` says it does; and the files are exactly what
//! `events/make_webhook_events.py` generates.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::webhook_support;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use dropsync_domain::OrderStatus;
use dropsync_store::Store;
use dropsync_tests::fresh_store;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use webhook_support::*;

/// The documented sample order ids.
const SAMPLE_ORDER: u64 = 820_982_911_946_154_508;
const SAMPLE_CANCELLED: u64 = 820_982_911_946_154_509;

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// `events/<prefix>*.json`, sorted.
fn files(prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(".json")
        })
        .collect();
    out.sort();
    out
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

fn load(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn status_of(store: &Store, id: u64) -> OrderStatus {
    store
        .get_order(&shop_domain(SHOP), id)
        .await
        .unwrap()
        .unwrap()
        .order
        .status
}

/// What each sample does, as `events/README.md` documents it; checked after the handler ran.
async fn check_effect(name: &str, store: &Store) {
    let shop = shop_domain(SHOP);
    match name {
        "webhook-orders-create" => {
            assert_eq!(status_of(store, SAMPLE_ORDER).await, OrderStatus::Pending)
        }
        "webhook-orders-paid" | "webhook-orders-updated" => {
            assert_eq!(
                status_of(store, SAMPLE_ORDER).await,
                OrderStatus::AwaitingOrder
            )
        }
        "webhook-orders-partially-fulfilled" => {
            let o = store
                .get_order(&shop, SAMPLE_ORDER)
                .await
                .unwrap()
                .unwrap()
                .order;
            let done: Vec<u32> = o
                .shopify
                .line_items
                .iter()
                .map(|l| l.fulfilled_quantity)
                .collect();
            assert_eq!(done, vec![1, 0]);
        }
        "webhook-orders-fulfilled" => {
            assert_eq!(status_of(store, SAMPLE_ORDER).await, OrderStatus::Fulfilled)
        }
        "webhook-orders-cancelled" => assert_eq!(
            status_of(store, SAMPLE_CANCELLED).await,
            OrderStatus::Canceled
        ),
        "webhook-app-uninstalled" => assert!(!store.get_shop(&shop).await.unwrap().active),
        "webhook-customers-data-request" | "webhook-customers-redact" => {
            assert_eq!(
                item_count(store).await,
                1,
                "only the delivery's dedupe record"
            )
        }
        // A redact of a shop that was never uninstalled deletes and records nothing.
        "webhook-shop-redact" => assert_eq!(item_count(store).await, 0),
        "webhook-fulfillments-create" => {
            assert_eq!(item_count(store).await, 0, "a topic dropsync does not use")
        }
        "eventbridge-orders-create" => assert_eq!(
            status_of(store, SAMPLE_ORDER).await,
            OrderStatus::AwaitingOrder
        ),
        "eventbridge-orders-updated-id-only" => {
            let raw = raw_order(store, &shop, SAMPLE_ORDER).await.unwrap();
            assert_eq!(raw.get("needs_refetch"), Some(&AttributeValue::Bool(true)));
        }
        other => {
            panic!("events/{other}.json is not documented: add it to events/README.md and here")
        }
    }
}

#[tokio::test]
async fn every_webhook_sample_event_answers_200_with_the_documented_test_secret() {
    let files = files("webhook-");
    assert_eq!(files.len(), 11, "{files:?}");
    for path in files {
        let name = stem(&path);
        let store = fresh_store().await;
        let svc = service(store.clone());
        let event = load(&path);
        assert_eq!(event["headers"]["x-shopify-shop-domain"], SHOP, "{name}");
        let (status, body) = send(&svc, from_event(event.clone())).await;
        assert_eq!((status, body), (200, json!({"ok": true})), "{name}");
        check_effect(&name, &store).await;

        // With any other secret the same event is refused and writes nothing.
        let other = fresh_store().await;
        let wrong = service_with(
            other.clone(),
            credentials(&[(SHOP, &["shpss_not_the_test_secret"])]),
        );
        assert_eq!(send(&wrong, from_event(event)).await.0, 401, "{name}");
        assert_eq!(item_count(&other).await, 0, "{name}");
    }
}

#[tokio::test]
async fn the_order_samples_in_sequence_take_the_order_from_pending_to_fulfilled() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let mut path = Vec::new();
    for name in [
        "orders-create",
        "orders-paid",
        "orders-updated",
        "orders-partially-fulfilled",
        "orders-fulfilled",
    ] {
        let event = load(&events_dir().join(format!("webhook-{name}.json")));
        assert_eq!(send(&svc, from_event(event.clone())).await.0, 200, "{name}");
        path.push(status_of(&store, SAMPLE_ORDER).await);
        // Replayed (a duplicate delivery): nothing changes.
        let before = store
            .get_order(&shop_domain(SHOP), SAMPLE_ORDER)
            .await
            .unwrap();
        assert_eq!(send(&svc, from_event(event)).await.0, 200, "{name}");
        assert_eq!(
            store
                .get_order(&shop_domain(SHOP), SAMPLE_ORDER)
                .await
                .unwrap(),
            before
        );
    }
    use OrderStatus::*;
    assert_eq!(
        path,
        vec![
            Pending,
            AwaitingOrder,
            AwaitingOrder,
            AwaitingOrder,
            Fulfilled
        ]
    );
}

#[tokio::test]
async fn every_eventbridge_sample_event_is_handled_without_a_batch_item_failure() {
    let files = files("eventbridge-");
    assert_eq!(files.len(), 2, "{files:?}");
    for path in files {
        let name = stem(&path);
        let store = fresh_store().await;
        let svc = service(store.clone());
        let event: SqsEvent = serde_json::from_value(load(&path)).unwrap();
        assert!(!event.records.is_empty());
        let res = dropsync_shopify_webhook::handle_eventbridge_batch(&svc, event).await;
        assert!(res.batch_item_failures.is_empty(), "{name}");
        check_effect(&name, &store).await;
    }
}

#[test]
fn the_sample_events_are_exactly_what_the_generator_writes() {
    let out = std::env::temp_dir().join(dropsync_tests::unique("webhook-events"));
    std::fs::create_dir_all(&out).unwrap();
    let script = events_dir().join("make_webhook_events.py");
    let status = std::process::Command::new("python3")
        .arg(&script)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("python3 {}: {e}", script.display()));
    assert!(status.success());
    let mut generated: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    generated.sort();
    let mut committed: Vec<String> = files("webhook-")
        .into_iter()
        .chain(files("eventbridge-"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    committed.sort();
    assert_eq!(generated, committed);
    for name in generated {
        let fresh = std::fs::read(out.join(&name)).unwrap();
        let kept = std::fs::read(events_dir().join(&name)).unwrap();
        assert!(
            fresh == kept,
            "events/{name} is stale: run python3 events/make_webhook_events.py"
        );
    }
    std::fs::remove_dir_all(&out).unwrap();
}
