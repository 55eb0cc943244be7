//! A shop whose refresh token is revoked: its pushes wait (no retry storm, nothing dead-lettered)
//! and land exactly once after the merchant reconnects through the real routes. The tracking queue
//! and its dead-letter queue are the template's, in the emulator, fed to the pusher the way Lambda's
//! SQS event source does it (the local stack's consumer); Shopify is the sandbox.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests --test integration connect_reconnect::`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::connect_support::*;
use aws_sdk_sqs::types::QueueAttributeName;
use dropsync_app::push::PushService;
use dropsync_app::queue::{PushMessage, TrackingQueue};
use dropsync_domain::ItemLink;
use dropsync_domain::ops::{
    AeObservation, AeParcelItem, AeTrackingLine, apply_ae_observation, link_supplier_order,
};
use dropsync_store::{ConnectionStatus, ConnectionStore};
use serde_json::Value;
use std::time::Duration;

const TN: &str = "RC123456789CN";

/// Messages on a queue, visible or in flight.
async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let attrs = out.attributes().unwrap();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .map(|k| {
        attrs
            .get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    })
    .sum()
}

/// Waits (bounded) until `done` holds; panics with `what` otherwise.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn fulfillments(fx: &Fx, order_id: u64) -> Vec<Value> {
    sandbox_get(
        &fx.base,
        &format!("/_admin/orders/{order_id}?shop={}", fx.shop),
    )
    .await["fulfillments"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn refreshes(fx: &Fx) -> u64 {
    sandbox_get(&fx.base, &format!("/_admin/oauth/stats?shop={}", fx.shop)).await["refreshes"]
        .as_u64()
        .unwrap()
}

async fn package_due(fx: &Fx, order_id: u64, ae: u64) -> bool {
    fx.store
        .get_order(&fx.shop, order_id)
        .await
        .unwrap()
        .unwrap()
        .order
        .supplier_order(ae)
        .and_then(|so| so.package(TN))
        .unwrap()
        .push
        .is_due()
}

async fn connect_through_the_routes(fx: &Fx) {
    let pairs = consent(fx, &fx.shop).await;
    let (status, location, body) = callback(fx, &pairs).await;
    assert_eq!(status, 302, "{body}");
    assert_eq!(location, format!("{PUBLIC}/app?connected={}", fx.shop));
}

#[tokio::test]
async fn a_revoked_refresh_token_makes_the_push_wait_and_after_a_reconnect_it_lands_exactly_once() {
    let sqs = aws_sdk_sqs::Client::new(&aws_config().await);
    let urls = dropsync_local::infra::create_queues(&sqs, &infra(), &unique("reconnect"))
        .await
        .unwrap();
    let tracking_url = urls["TrackingQueue"].clone();
    let dlq_url = urls["TrackingDeadLetterQueue"].clone();
    let queue = SqsQueue::new(sqs.clone(), tracking_url.clone());
    let fx = fixture_with_queue(Some(queue.clone())).await;
    connect_through_the_routes(&fx).await;

    // A paid order in Shopify, its AliExpress order shipped in one package: the push is due.
    let (order_id, ae) = order_with_a_due_push(&fx).await;

    // The merchant revokes the app's grant; Shopify expires the access token early.
    for path in ["/_admin/oauth/revoke", "/_admin/oauth/expire"] {
        sandbox_post(&fx.base, path, json!({"shop": fx.shop.as_str()})).await;
    }

    // The pusher is another Lambda: its own credentials, provider and memory, the same table.
    let app = fx.connect.credentials.shopify_app.as_ref().unwrap();
    let pusher_creds = credentials(json!({
        "admin_token": ADMIN,
        "shopify_app": {"client_id": app.client_id, "client_secret": SECRET, "scopes": "read_orders,write_orders"},
        "shops": {},
    }));
    let pusher = Arc::new(PushService {
        store: fx.store.clone(),
        admin: Arc::new(
            AdminClient::new(AdminConfig {
                base_override: Some(fx.base.clone()),
                ..AdminConfig::default()
            })
            .unwrap(),
        ),
        credentials: pusher_creds,
    });
    let consumer = tokio::spawn(dropsync_local::consumer::tracking(
        sqs.clone(),
        tracking_url.clone(),
        pusher,
        Some(8),
    ));

    let refreshes_before = refreshes(&fx).await;
    let (sqs_ref, url) = (&sqs, tracking_url.as_str());
    // The poller's message, then the same again twice (a later run's sweep of unsent pushes).
    let msg = PushMessage::new(&fx.shop, order_id, ae, TN);
    for _ in 0..3 {
        queue.send(std::slice::from_ref(&msg)).await.unwrap();
        eventually("the tracking queue is drained", || async move {
            depth(sqs_ref, url).await == 0
        })
        .await;
    }
    let conn = fx.store.get_connection(&fx.shop).await.unwrap().unwrap();
    assert_eq!(conn.status, ConnectionStatus::ReconnectRequired);
    assert_eq!(
        refreshes(&fx).await - refreshes_before,
        1,
        "one refused refresh, then no more calls however often the push comes back"
    );
    assert!(fulfillments(&fx, order_id).await.is_empty());
    assert!(
        package_due(&fx, order_id, ae).await,
        "the push waits, still due"
    );
    assert_eq!(depth(&sqs, &dlq_url).await, 0, "nothing dead-lettered");
    let (status, _, body) = raw(
        &fx,
        "GET",
        &format!("/shops/{}/attention", fx.shop),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, 200);
    let attention: Value = serde_json::from_str(&body).unwrap();
    let kinds: Vec<&Value> = attention["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["kind"])
        .collect();
    assert_eq!(kinds, [&json!("shopify_reconnect_required")], "{attention}");
    assert!(
        attention["orders"].as_array().unwrap().is_empty(),
        "the order is not flagged: it only waits ({attention})"
    );

    // The merchant reconnects: the callback queues the waiting push at once.
    connect_through_the_routes(&fx).await;
    let fx_ref = &fx;
    eventually("the waiting push is recorded as pushed", || async move {
        !package_due(fx_ref, order_id, ae).await
    })
    .await;
    // A late copy of the message (the sweep) must not make a second fulfillment.
    queue.send(std::slice::from_ref(&msg)).await.unwrap();
    eventually("the tracking queue is drained", || async move {
        depth(sqs_ref, url).await == 0
    })
    .await;
    consumer.abort();

    let fs = fulfillments(&fx, order_id).await;
    assert_eq!(fs.len(), 1, "exactly one fulfillment: {fs:?}");
    assert_eq!(fs[0]["tracking"]["number"], TN);
    assert_eq!(depth(&sqs, &dlq_url).await, 0, "nothing dead-lettered");
    let conn = fx.store.get_connection(&fx.shop).await.unwrap().unwrap();
    assert_eq!(conn.status, ConnectionStatus::Connected);
}

/// A paid order with one shipped package whose push is due (tracking `TN`).
async fn order_with_a_due_push(fx: &Fx) -> (u64, u64) {
    let order_id = 9_007_199_254_740_993 + fastrand::u64(1..1_000_000_000) * 2;
    let line = order_id + 2;
    let ae = 8_100_000_000_000_000 + fastrand::u64(1..1_000_000_000);
    sandbox_post(
        &fx.base,
        "/_admin/orders",
        json!({"shop": fx.shop.as_str(), "order": {"id": order_id, "name": "#1001",
               "financial_status": "paid",
               "line_items": [{"id": line, "sku": "SKU-1", "title": "Item", "quantity": 1, "price": "9.90"}]}}),
    )
    .await;
    let now = now_ms();
    fx.store
        .save_shopify_facts(
            &fx.shop,
            order_id,
            facts("paid", now, &[(line, 1)]),
            "orders/create",
            now,
        )
        .await
        .unwrap();
    let link = ItemLink {
        line_item_id: line,
        product_id: Some("P0".into()),
        sku_id: Some("S0".into()),
    };
    let shipped = AeObservation {
        order_status: "WAIT_BUYER_ACCEPT_GOODS".into(),
        logistics_status: Some("SELLER_SEND_GOODS".into()),
        children: vec![],
        tracking: Some(vec![AeTrackingLine {
            mail_no: TN.into(),
            carrier_name: Some("YunExpress".into()),
            items: vec![AeParcelItem {
                product_id: Some("P0".into()),
                sku_id: Some("S0".into()),
                quantity: 1,
            }],
        }]),
    };
    fx.store
        .update_order(&fx.shop, order_id, |o| {
            link_supplier_order(o, ae, &[line], vec![link.clone()], now).unwrap();
            apply_ae_observation(o, ae, &shipped, now).is_some()
        })
        .await
        .unwrap()
        .unwrap();
    assert!(package_due(fx, order_id, ae).await);
    (order_id, ae)
}

#[tokio::test]
async fn a_token_expiring_mid_run_is_refreshed_once_for_twenty_concurrent_pushes_in_two_lambdas_and_each_lands_once()
 {
    let fx = fixture().await;
    connect_through_the_routes(&fx).await;
    let mut orders = Vec::new();
    for _ in 0..20 {
        orders.push(order_with_a_due_push(&fx).await);
    }
    // Shopify expires the token before its stated end: every push first gets a 401.
    sandbox_post(
        &fx.base,
        "/_admin/oauth/expire",
        json!({"shop": fx.shop.as_str()}),
    )
    .await;
    let refreshes_before = refreshes(&fx).await;
    // Two pusher Lambdas: each its own credentials, token provider and memory; one table.
    let app = fx.connect.credentials.shopify_app.as_ref().unwrap();
    let pusher = || {
        Arc::new(PushService {
            store: fx.store.clone(),
            admin: Arc::new(
                AdminClient::new(AdminConfig {
                    base_override: Some(fx.base.clone()),
                    ..AdminConfig::default()
                })
                .unwrap(),
            ),
            credentials: credentials(json!({
                "admin_token": ADMIN,
                "shopify_app": {"client_id": app.client_id, "client_secret": SECRET, "scopes": "read_orders,write_orders"},
                "shops": {},
            })),
        })
    };
    let lambdas = [pusher(), pusher()];
    let mut batches: [Vec<dropsync_app::push::BatchMessage>; 2] = [Vec::new(), Vec::new()];
    for (i, (order_id, ae)) in orders.iter().enumerate() {
        batches[i % 2].push(dropsync_app::push::BatchMessage {
            id: format!("m{i}"),
            body: serde_json::to_string(&PushMessage::new(&fx.shop, *order_id, *ae, TN)).unwrap(),
        });
    }
    let [a, b] = batches;
    let (retry_a, retry_b) = tokio::join!(
        dropsync_app::push::push_batch(lambdas[0].clone(), a),
        dropsync_app::push::push_batch(lambdas[1].clone(), b),
    );
    assert!(
        retry_a.is_empty() && retry_b.is_empty(),
        "nothing to retry: {retry_a:?} {retry_b:?}"
    );
    assert_eq!(
        refreshes(&fx).await - refreshes_before,
        1,
        "one refresh for twenty pushes across two Lambdas"
    );
    for (order_id, ae) in &orders {
        let fs = fulfillments(&fx, *order_id).await;
        assert_eq!(
            fs.len(),
            1,
            "exactly one fulfillment for {order_id}: {fs:?}"
        );
        assert_eq!(fs[0]["tracking"]["number"], TN);
        assert!(!package_due(&fx, *order_id, *ae).await);
    }
}
