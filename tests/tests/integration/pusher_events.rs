//! The tracking pusher's sample event (`events/sqs-tracking-push.json`, for
//! `cargo lambda invoke tracking-pusher --data-file events/sqs-tracking-push.json`) is an SQS
//! batch the function understands, message by message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use aws_lambda_events::event::sqs::SqsEvent;
use dropsync_app::Credentials;
use dropsync_app::push::PushService;
use dropsync_app::queue::PushMessage;
use dropsync_shopify::admin::{AdminClient, AdminConfig};
use dropsync_tests::fresh_store;
use dropsync_tracking_pusher::{handle_batch, messages};
use std::sync::Arc;

fn sample() -> SqsEvent {
    let path = format!(
        "{}/../events/sqs-tracking-push.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_sample_sqs_batch_deserializes_and_every_message_in_it_parses() {
    let event = sample();
    assert_eq!(event.records.len(), 3);
    for rec in &event.records {
        assert_eq!(rec.event_source.as_deref(), Some("aws:sqs"));
        assert!(
            rec.event_source_arn
                .as_deref()
                .is_some_and(|a| a.contains("TrackingQueue"))
        );
    }
    let msgs = messages(event);
    let ids: Vec<&str> = msgs.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "8c1b7f2e-3d4a-4b5c-9d6e-7f8091a2b3c4",
            "9d2c8a3f-4e5b-4c6d-8e7f-8091a2b3c4d5",
            "ae3d9b40-5f6c-4d7e-9f80-91a2b3c4d5e6"
        ]
    );
    let parsed: Vec<(PushMessage, u64, u64)> = msgs
        .iter()
        .map(|m| PushMessage::parse(&m.body).unwrap())
        .collect();
    let (first, order, ae) = &parsed[0];
    assert_eq!(first.shop.as_str(), "example.myshopify.com");
    // Above 2^53, exact.
    assert_eq!(*order, 820_982_911_946_154_508);
    assert_eq!(*ae, 8_198_352_049_851_315);
    assert_eq!(first.tracking_number, "YT2601234567890123");
    // Two packages of one order (two supplier orders), and another shop's package.
    assert_eq!(parsed[1].1, *order);
    assert_ne!(parsed[1].2, *ae);
    assert_eq!(parsed[2].0.shop.as_str(), "another-store.myshopify.com");
    assert_eq!(parsed[2].1, 5_678_901_234_567_890_123);
}

#[tokio::test]
async fn the_sample_batch_runs_through_the_handler_and_orders_it_does_not_know_are_acknowledged() {
    let store = fresh_store().await;
    let credentials = Credentials::parse(
        br#"{"admin_token": "admin-token-for-the-event-test",
             "shops": {"example.myshopify.com": {"access_token": "shpat_x", "webhook_secrets": ["s"]}}}"#,
    )
    .unwrap();
    let svc = Arc::new(PushService {
        store,
        // Never reached: the table holds none of the sample's orders.
        admin: Arc::new(
            AdminClient::new(AdminConfig {
                base_override: Some("http://127.0.0.1:9".into()),
                ..AdminConfig::default()
            })
            .unwrap(),
        ),
        credentials: Arc::new(credentials),
    });
    let resp = handle_batch(svc, sample()).await;
    assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
}
