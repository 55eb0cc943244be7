#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! The poller's sample events (`events/`, for `cargo lambda invoke aliexpress-poller
//! --data-file …`) are what `trigger()` understands.

use dropsync_aliexpress_poller::{Trigger, trigger};
use dropsync_app::sync::PollCursor;
use dropsync_tests::fresh_store;
use serde_json::{Value, json};

fn event(name: &str) -> Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_eventbridge_rule_sample_starts_a_run_from_the_beginning() {
    let e = event("scheduled-poller.json");
    assert_eq!(e["detail-type"], "Scheduled Event");
    assert_eq!(e["source"], "aws.events");
    assert_eq!(trigger(&e).unwrap(), vec![Trigger::Schedule]);
}

#[tokio::test]
async fn the_sqs_continuation_sample_continues_from_a_cursor_the_store_accepts() {
    let triggers = trigger(&event("poller-continuation.json")).unwrap();
    let [Trigger::Continue(cursor)] = triggers.as_slice() else {
        panic!("expected one continuation: {triggers:?}")
    };
    assert_eq!(cursor.shard, 5);
    assert_eq!(cursor.run.as_ref().map(|r| r.invocations), Some(1));
    let page = cursor.page.as_deref().unwrap();
    assert!(dropsync_store::cursor_is_valid(page));
    // The emulator takes it as the start of shard 5's next page.
    let store = fresh_store().await;
    let next = store.open_orders_page(5, Some(page), 10).await.unwrap();
    assert!(next.items.is_empty() && next.next.is_none());
}

#[test]
fn an_empty_event_or_a_bare_cursor_is_a_manual_run() {
    assert_eq!(trigger(&json!({})).unwrap(), vec![Trigger::Schedule]);
    assert_eq!(
        trigger(&json!({"shard": 3})).unwrap(),
        vec![Trigger::Continue(PollCursor {
            shard: 3,
            page: None,
            run: None,
            shop: None
        })]
    );
}

#[test]
fn other_events_are_refused_and_a_malformed_continuation_is_dropped() {
    assert!(trigger(&json!({"detail-type": "Object Created", "source": "aws.s3"})).is_err());
    assert!(trigger(&json!({"hello": "world"})).is_err());
    assert!(trigger(&json!({"shard": "three"})).is_err());
    let mut sqs = event("poller-continuation.json");
    sqs["Records"][0]["body"] = json!("not a cursor");
    assert_eq!(trigger(&sqs).unwrap(), vec![]);
}
