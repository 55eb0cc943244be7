//! Shopify's EventBridge deliveries (rule -> SQS -> the `shopify-eventbridge` binary) against the
//! DynamoDB emulator and the sandbox Shopify: the full envelope, an id-only payload re-fetched
//! through the Admin GraphQL API, Shopify failing, and SQS batch-item failures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::webhook_support;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodb::types::AttributeValue;
use dropsync_app::webhook::WebhookService;
use dropsync_domain::{Attention, FinancialStatus, OrderStatus};
use dropsync_shopify::admin::{AdminClient, AdminConfig};
use dropsync_shopify_webhook::handle_eventbridge_batch;
use dropsync_tests::{fresh_store, sandbox_post, shopify_sandbox, unique};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use webhook_support::*;

const FIXTURE: &str =
    include_str!("../../../shared/shopify/tests/fixtures/eventbridge-orders-create.json");
/// The fixture's order and lines.
const FIXTURE_ORDER: u64 = 9_120_004_388_517_265_409;

/// An SQS event carrying these EventBridge events as message bodies, ids `m0`, `m1`, …
fn sqs(bodies: &[String]) -> SqsEvent {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({
                "messageId": format!("m{i}"), "receiptHandle": format!("rh-{i}"), "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1793632503000",
                               "SenderId": "AIDAEVENTBRIDGE", "ApproximateFirstReceiveTimestamp": "1793632503100"},
                "messageAttributes": {}, "md5OfBody": "0", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:dropsync-shopify-events",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn failures(res: &SqsBatchResponse) -> Vec<String> {
    res.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// An EventBridge envelope as Shopify's partner event source emits it.
fn envelope(topic: &str, shop: &str, payload: Value) -> String {
    json!({
        "version": "0", "id": format!("6f1c0b7e-{:08x}", fastrand::u32(..)), "detail-type": "shopifyWebhook",
        "source": "aws.partner/shopify.com/580111/dropsync-orders", "account": "123456789012",
        "time": "2026-11-02T15:15:03Z", "region": "us-east-1", "resources": [],
        "detail": {
            "metadata": {
                "Content-Type": "application/json", "X-Shopify-Topic": topic,
                "X-Shopify-Shop-Domain": shop, "X-Shopify-API-Version": "2026-10",
                "X-Shopify-Webhook-Id": format!("b54557e4-{:08x}", fastrand::u32(..)),
                "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
                "X-Shopify-Triggered-At": "2026-11-02T15:15:02.918273645Z"
            },
            "payload": payload
        }
    })
    .to_string()
}

/// A shop in the sandbox Shopify (faults as given) and the admin client that reaches it.
async fn sandbox_shop(faults: Value) -> (String, String, Arc<AdminClient>) {
    let shop = format!("{}.myshopify.com", unique("eb"));
    let token = format!("shpat_{}", unique("t"));
    sandbox_post(
        &shopify_sandbox(),
        "/_admin/shops",
        json!({"shop": shop, "access_token": token, "webhook_secret": "shpss_eb", "faults": faults}),
    )
    .await;
    let admin = AdminClient::new(AdminConfig {
        base_override: Some(shopify_sandbox()),
        max_attempts: 2,
        timeout: Duration::from_secs(5),
        ..AdminConfig::default()
    })
    .unwrap();
    (shop, token, Arc::new(admin))
}

fn service_for(
    store: dropsync_store::Store,
    shop: &str,
    token: &str,
    admin: Arc<AdminClient>,
) -> WebhookService<AdminClient> {
    let creds = dropsync_tests::credentials(json!({
        "admin_token": "admin-token-0123456789abcdef",
        "shops": {shop: {"access_token": token, "webhook_secrets": ["shpss_eb"]}}
    }));
    WebhookService {
        store,
        credentials: creds,
        admin: Some(admin),
    }
}

#[tokio::test]
async fn an_eventbridge_envelope_with_the_full_payload_is_recorded_through_sqs() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let res = handle_eventbridge_batch(&svc, sqs(&[FIXTURE.to_owned()])).await;
    assert!(failures(&res).is_empty());
    let s = store
        .get_order(&shop_domain(SHOP), FIXTURE_ORDER)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.order.shopify.name, "#1042");
    assert_eq!(s.order.shopify.financial_status, FinancialStatus::Paid);
    assert_eq!(s.order.status, OrderStatus::AwaitingOrder);
    assert_eq!(s.order.shopify.line_items.len(), 3);

    // The same event again (EventBridge and SQS deliver at least once): no write.
    let res = handle_eventbridge_batch(&svc, sqs(&[FIXTURE.to_owned()])).await;
    assert!(failures(&res).is_empty());
    assert_eq!(
        store
            .get_order(&shop_domain(SHOP), FIXTURE_ORDER)
            .await
            .unwrap()
            .unwrap(),
        s
    );
}

#[tokio::test]
async fn an_id_only_payload_is_refetched_through_the_admin_api_and_recorded() {
    let store = fresh_store().await;
    let (shop, token, admin) = sandbox_shop(json!({})).await;
    let created = sandbox_post(
        &shopify_sandbox(),
        "/_admin/orders",
        json!({"shop": shop, "order": {"name": "#2001", "financial_status": "paid", "test": true,
            "line_items": [{"sku": "LAMP-1", "title": "Lamp", "quantity": 2, "price": "19.90"},
                           {"sku": "", "title": "Custom engraving", "quantity": 1, "price": "5.00",
                            "product_id": null, "variant_id": null}]}}),
    )
    .await;
    let id = created["order"]["id"].as_u64().unwrap();
    let lines: Vec<u64> = created["order"]["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_u64().unwrap())
        .collect();
    let svc = service_for(store.clone(), &shop, &token, admin.clone());

    let event = envelope("orders/updated", &shop, json!({"id": id}));
    let res = handle_eventbridge_batch(&svc, sqs(&[event])).await;
    assert!(failures(&res).is_empty());
    assert!(
        admin.stats().requests >= 1,
        "the order was read from Shopify"
    );
    let s = store
        .get_order(&shop_domain(&shop), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.order.shopify.name, "#2001");
    assert!(s.order.shopify.test);
    assert_eq!(s.order.status, OrderStatus::AwaitingOrder);
    assert!(!s.order.needs_refetch);
    let got: Vec<(u64, u32)> = s
        .order
        .shopify
        .line_items
        .iter()
        .map(|l| (l.id, l.quantity))
        .collect();
    assert_eq!(got, vec![(lines[0], 2), (lines[1], 1)]);
    assert_eq!(s.order.shopify.line_items[0].sku.as_deref(), Some("LAMP-1"));
    assert_eq!(s.order.shopify.line_items[1].sku, None);
}

#[tokio::test]
async fn with_shopify_failing_an_id_only_payload_is_recorded_as_needing_a_refetch() {
    let store = fresh_store().await;
    let (shop, token, admin) = sandbox_shop(json!({"server_error": 1.0})).await;
    let svc = service_for(store.clone(), &shop, &token, admin.clone());
    let sd = shop_domain(&shop);

    // An order dropsync already holds: flagged, and the flag shows as attention.
    let known = shopify_bytes(&order(ORDER, 0, "paid", &[(LINE_A, 1)]));
    let creds_headers = signed_headers("orders/create", &shop, "shpss_eb", &known);
    assert_eq!(deliver(&svc, &creds_headers, &known).await.0, 200);
    let res = handle_eventbridge_batch(
        &svc,
        sqs(&[envelope("orders/updated", &shop, json!({"id": ORDER}))]),
    )
    .await;
    assert!(
        failures(&res).is_empty(),
        "kept for later, not retried blindly"
    );
    assert!(admin.stats().requests >= 1, "Shopify was asked");
    let s = store.get_order(&sd, ORDER).await.unwrap().unwrap();
    assert!(s.order.needs_refetch);
    assert!(s.order.attention().contains(&Attention::NeedsRefetch));
    assert_eq!(
        s.order.status,
        OrderStatus::AwaitingOrder,
        "nothing else changed"
    );

    // An order never seen: a marker records that it exists and must be fetched.
    let unseen = ORDER + 7;
    let res = handle_eventbridge_batch(
        &svc,
        sqs(&[envelope(
            "orders/create",
            &shop,
            json!({"id": unseen.to_string()}),
        )]),
    )
    .await;
    assert!(failures(&res).is_empty());
    let raw = raw_order(&store, &sd, unseen).await.unwrap();
    assert_eq!(raw.get("needs_refetch"), Some(&AttributeValue::Bool(true)));

    // The order's next full delivery (HTTPS or EventBridge) records it and clears the flags.
    let next = shopify_bytes(&order(unseen, 10, "pending", &[(LINE_B, 3)]));
    let (status, v) = deliver(
        &svc,
        &signed_headers("orders/updated", &shop, "shpss_eb", &next),
        &next,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let s = store.get_order(&sd, unseen).await.unwrap().unwrap();
    assert_eq!(s.order.status, OrderStatus::Pending);
    assert!(!s.order.needs_refetch);
    assert_eq!(s.version, 1);
    let full = order(ORDER, 20, "paid", &[(LINE_A, 1)]);
    let res = handle_eventbridge_batch(&svc, sqs(&[envelope("orders/updated", &shop, full)])).await;
    assert!(failures(&res).is_empty());
    assert!(
        !store
            .get_order(&sd, ORDER)
            .await
            .unwrap()
            .unwrap()
            .order
            .needs_refetch
    );
}

#[tokio::test]
async fn a_store_outage_fails_only_that_message_so_sqs_retries_it_and_bad_messages_are_dropped() {
    let port = closed_port();
    let down = service(store_at(&format!("http://127.0.0.1:{port}"), "orders").await);
    let good = envelope(
        "orders/create",
        SHOP,
        order(ORDER, 0, "paid", &[(LINE_A, 1)]),
    );
    let not_json = "{not json".to_owned();
    let unknown_shop = envelope(
        "orders/create",
        "stranger.myshopify.com",
        order(ORDER, 0, "paid", &[(LINE_A, 1)]),
    );
    let bad_order = envelope("orders/create", SHOP, json!({"id": ORDER, "name": "#1"}));
    let res = handle_eventbridge_batch(
        &down,
        sqs(&[
            not_json.clone(),
            good.clone(),
            unknown_shop.clone(),
            bad_order.clone(),
        ]),
    )
    .await;
    // A shop missing from the credentials document may be connected by OAuth (in the table):
    // with the table down that cannot be told, so its message is retried too, never dropped.
    assert_eq!(
        failures(&res),
        vec!["m1", "m2"],
        "only the messages that can succeed later are retried"
    );

    let store = fresh_store().await;
    let up = service(store.clone());
    let res = handle_eventbridge_batch(&up, sqs(&[not_json, good, unknown_shop, bad_order])).await;
    assert!(failures(&res).is_empty());
    assert_eq!(item_count(&store).await, 1);
}

#[tokio::test]
async fn an_event_that_does_not_come_from_a_shopify_partner_source_is_refused() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let mut forged: Value = serde_json::from_str(FIXTURE).unwrap();
    for source in [
        json!("aws.partner/evil.com/1/x"),
        json!("my.app"),
        Value::Null,
    ] {
        forged["source"] = source;
        let res = handle_eventbridge_batch(&svc, sqs(&[forged.to_string()])).await;
        assert!(failures(&res).is_empty(), "acknowledged, never retried");
    }
    forged.as_object_mut().unwrap().remove("source");
    let res = handle_eventbridge_batch(&svc, sqs(&[forged.to_string()])).await;
    assert!(failures(&res).is_empty());
    assert_eq!(item_count(&store).await, 0);
}
