//! EventBridge deliveries for a shop connected only by OAuth (it lives in the table, not in the
//! credentials document): accepted, and an id-only event is re-fetched with the shop's OAuth
//! token from the token provider; a shop connected nowhere is still refused.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests --test integration connect_eventbridge::`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::connect_support::*;
use aws_lambda_events::event::sqs::SqsEvent;
use dropsync_app::webhook::WebhookService;
use dropsync_shopify_webhook::handle_eventbridge_batch;
use serde_json::Value;

/// One SQS record per EventBridge event, ids `m0`, `m1`, …
fn sqs(bodies: &[String]) -> SqsEvent {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({
                "messageId": format!("m{i}"), "receiptHandle": format!("rh-{i}"), "body": body,
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                "eventSource": "aws:sqs", "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// An envelope as Shopify's partner event source emits it, with an id-only payload.
fn id_only(shop: &str, order_id: u64) -> String {
    json!({
        "version": "0", "id": unique("ev"), "detail-type": "shopifyWebhook",
        "source": "aws.partner/shopify.com/580111/dropsync-orders", "account": "123456789012",
        "time": "2026-11-02T15:15:03Z", "region": "us-east-1", "resources": [],
        "detail": {
            "metadata": {
                "Content-Type": "application/json", "X-Shopify-Topic": "orders/updated",
                "X-Shopify-Shop-Domain": shop, "X-Shopify-API-Version": "2026-10",
                "X-Shopify-Webhook-Id": unique("wh"),
                "X-Shopify-Triggered-At": "2026-11-02T15:15:02.918273645Z"
            },
            "payload": {"id": order_id}
        }
    })
    .to_string()
}

#[tokio::test]
async fn an_eventbridge_delivery_for_a_shop_connected_only_by_oauth_is_recorded() {
    let fx = fixture().await;
    let pairs = consent(&fx, &fx.shop).await;
    assert_eq!(callback(&fx, &pairs).await.0, 302);
    let created = sandbox_post(
        &fx.base,
        "/_admin/orders",
        json!({"shop": fx.shop.as_str(), "order": {"name": "#3001", "financial_status": "paid",
               "line_items": [{"sku": "LAMP-1", "title": "Lamp", "quantity": 1, "price": "19.90"}]}}),
    )
    .await;
    let id = created["order"]["id"].as_u64().unwrap();
    // The webhook function's own view: the app's credentials and no shop entry at all.
    let app = fx.connect.credentials.shopify_app.as_ref().unwrap();
    let svc = WebhookService {
        store: fx.store.clone(),
        credentials: credentials(json!({
            "admin_token": ADMIN,
            "shopify_app": {"client_id": app.client_id, "client_secret": SECRET, "scopes": "read_orders"},
            "shops": {},
        })),
        admin: Some(Arc::new(
            AdminClient::new(AdminConfig {
                base_override: Some(fx.base.clone()),
                ..AdminConfig::default()
            })
            .unwrap(),
        )),
    };
    let stranger = shop(&unique("stranger").to_lowercase());
    let res = handle_eventbridge_batch(
        &svc,
        sqs(&[
            id_only(fx.shop.as_str(), id),
            id_only(stranger.as_str(), id),
        ]),
    )
    .await;
    assert!(
        res.batch_item_failures.is_empty(),
        "nothing to retry: {:?}",
        res.batch_item_failures
    );
    let s = fx
        .store
        .get_order(&fx.shop, id)
        .await
        .unwrap()
        .expect("the OAuth shop's order is recorded");
    assert_eq!(s.order.shopify.name, "#3001");
    assert!(!s.order.needs_refetch, "re-fetched with the OAuth token");
    assert!(
        fx.store.get_order(&stranger, id).await.unwrap().is_none(),
        "a shop connected nowhere is refused"
    );
}
