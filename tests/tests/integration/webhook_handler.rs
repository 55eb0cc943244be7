//! The webhook function's HTTP handler against the DynamoDB emulator: every topic, duplicates
//! and out-of-order deliveries, bad input, an unavailable store, tenancy, the HMAC vector, a
//! secret rotation, and the DynamoDB requests a delivery costs. Requests are built from API
//! Gateway v2 event JSON and converted by lambda_http, exactly as on Lambda.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::webhook_support;

use dropsync_domain::ops::link_supplier_order;
use dropsync_domain::{Attention, FinancialStatus, OrderStatus};
use dropsync_store::StoredOrder;
use dropsync_tests::fresh_store;
use serde_json::{Value, json};
use webhook_support::*;

async fn stored(store: &dropsync_store::Store, id: u64) -> StoredOrder {
    store
        .get_order(&shop_domain(SHOP), id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("order {id} not stored"))
}

fn ok() -> (u16, Value) {
    (200, json!({"ok": true}))
}

// ---------------------------------------------------------------------------------------------
// Topics

#[tokio::test]
async fn an_unpaid_order_from_orders_create_waits_in_pending_without_customer_data() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    for (i, fin) in ["pending", "authorized", "partially_paid"]
        .iter()
        .enumerate()
    {
        let id = ORDER + i as u64;
        let body = shopify_bytes(&order(id, 0, fin, &[(LINE_A, 2), (LINE_B, 1)]));
        assert_eq!(
            deliver_signed(&svc, "orders/create", &body).await,
            ok(),
            "{fin}"
        );
        let s = stored(&store, id).await;
        assert_eq!(s.order.status, OrderStatus::Pending, "{fin}");
        assert_eq!(s.version, 1);
        assert_eq!(s.order.shopify.name, "#1001");
        assert_eq!(s.order.shopify.updated_at_ms, ts_ms(0));
        let lines: Vec<(u64, u32)> = s
            .order
            .shopify
            .line_items
            .iter()
            .map(|l| (l.id, l.quantity))
            .collect();
        assert_eq!(lines, vec![(LINE_A, 2), (LINE_B, 1)]);
        assert_eq!(
            s.order.shopify.line_items[0].sku.as_deref(),
            Some("SKU-501")
        );
    }
    // Nothing of the customer's reaches the table: no email, name, phone, address or note.
    let raw = raw_order(&store, &shop_domain(SHOP), ORDER).await.unwrap();
    let dump = format!("{raw:?}");
    for secret in [
        "bob@example.com",
        "Buyer",
        "Main St",
        "5555550123",
        "leave at the door",
        "engraving",
    ] {
        assert!(!dump.contains(secret), "{secret} stored: {dump}");
    }
}

#[tokio::test]
async fn a_paid_order_awaits_ordering_and_a_test_order_is_recorded_as_a_test() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let mut o = order(ORDER, 0, "paid", &[(LINE_A, 1)]);
    o["test"] = json!(true);
    assert_eq!(
        deliver_signed(&svc, "orders/create", &shopify_bytes(&o)).await,
        ok()
    );
    let s = stored(&store, ORDER).await;
    assert_eq!(s.order.status, OrderStatus::AwaitingOrder);
    assert!(s.order.shopify.test);
    assert_eq!(s.order.shopify.financial_status, FinancialStatus::Paid);

    let real = order(ORDER + 1, 0, "paid", &[(LINE_A, 1)]);
    assert_eq!(
        deliver_signed(&svc, "orders/create", &shopify_bytes(&real)).await,
        ok()
    );
    assert!(!stored(&store, ORDER + 1).await.order.shopify.test);
}

#[tokio::test]
async fn orders_updated_replaces_the_shopify_facts_of_a_known_order() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let create = order(ORDER, 0, "paid", &[(LINE_A, 2), (LINE_B, 1)]);
    deliver_signed(&svc, "orders/create", &shopify_bytes(&create)).await;

    // An edit: line B removed (current_quantity 0), line A down to 1, renamed.
    let mut edit = order(ORDER, 60, "partially_refunded", &[(LINE_A, 1), (LINE_B, 0)]);
    edit["name"] = json!("#1001-E1");
    edit["line_items"][0]["quantity"] = json!(2);
    edit["line_items"][1]["quantity"] = json!(1);
    assert_eq!(
        deliver_signed(&svc, "orders/updated", &shopify_bytes(&edit)).await,
        ok()
    );
    let s = stored(&store, ORDER).await;
    assert_eq!(s.version, 2);
    assert_eq!(s.order.shopify.name, "#1001-E1");
    assert_eq!(s.order.shopify.updated_at_ms, ts_ms(60));
    assert_eq!(
        s.order.shopify.financial_status,
        FinancialStatus::PartiallyRefunded
    );
    let q: Vec<u32> = s
        .order
        .shopify
        .line_items
        .iter()
        .map(|l| l.quantity)
        .collect();
    assert_eq!(q, vec![1, 0], "current_quantity wins over quantity");
    assert_eq!(s.order.status, OrderStatus::AwaitingOrder);
}

#[tokio::test]
async fn orders_paid_moves_a_pending_order_to_awaiting_order() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let create = order(ORDER, 0, "pending", &[(LINE_A, 1)]);
    deliver_signed(&svc, "orders/create", &shopify_bytes(&create)).await;
    assert_eq!(
        stored(&store, ORDER).await.order.status,
        OrderStatus::Pending
    );

    let paid = order(ORDER, 30, "paid", &[(LINE_A, 1)]);
    assert_eq!(
        deliver_signed(&svc, "orders/paid", &shopify_bytes(&paid)).await,
        ok()
    );
    let s = stored(&store, ORDER).await;
    assert_eq!(s.order.status, OrderStatus::AwaitingOrder);
    assert_eq!(s.version, 2);
    let path: Vec<OrderStatus> = s.order.history.iter().map(|h| h.status).collect();
    assert_eq!(path, vec![OrderStatus::Pending, OrderStatus::AwaitingOrder]);
    assert_eq!(s.order.history[1].cause, "orders/paid");
}

#[tokio::test]
async fn orders_cancelled_cancels_the_order_and_a_full_refund_or_void_does_too() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    for (i, (fin, cancelled)) in [("paid", true), ("refunded", false), ("voided", false)]
        .into_iter()
        .enumerate()
    {
        let id = ORDER + i as u64;
        deliver_signed(
            &svc,
            "orders/create",
            &shopify_bytes(&order(id, 0, "paid", &[(LINE_A, 1)])),
        )
        .await;
        let mut cancel = order(id, 90, fin, &[(LINE_A, 1)]);
        if cancelled {
            cancel["cancelled_at"] = json!(ts(90));
            cancel["cancel_reason"] = json!("customer");
        }
        let topic = if cancelled {
            "orders/cancelled"
        } else {
            "orders/updated"
        };
        assert_eq!(
            deliver_signed(&svc, topic, &shopify_bytes(&cancel)).await,
            ok()
        );
        let s = stored(&store, id).await;
        assert_eq!(s.order.status, OrderStatus::Canceled, "{fin}");
        assert!(
            s.order.attention().is_empty(),
            "nothing to cancel by hand: {:?}",
            s.order.attention()
        );
    }
}

#[tokio::test]
async fn a_cancel_in_shopify_with_a_linked_supplier_order_asks_for_a_cancel_on_aliexpress_by_hand()
{
    let store = fresh_store().await;
    let svc = service(store.clone());
    let shop = shop_domain(SHOP);
    deliver_signed(
        &svc,
        "orders/create",
        &shopify_bytes(&order(ORDER, 0, "paid", &[(LINE_A, 1), (LINE_B, 1)])),
    )
    .await;
    store
        .update_order(&shop, ORDER, |o| {
            link_supplier_order(o, 8_198_352_049_851_315, &[LINE_A], vec![], 5).unwrap()
        })
        .await
        .unwrap();
    assert_eq!(stored(&store, ORDER).await.order.supplier_orders.len(), 1);

    let mut cancel = order(ORDER, 120, "paid", &[(LINE_A, 1), (LINE_B, 1)]);
    cancel["cancelled_at"] = json!(ts(120));
    assert_eq!(
        deliver_signed(&svc, "orders/cancelled", &shopify_bytes(&cancel)).await,
        ok()
    );
    let s = stored(&store, ORDER).await;
    assert_eq!(s.order.status, OrderStatus::Canceled);
    assert_eq!(
        s.order.supplier_orders.len(),
        1,
        "the supplier order is kept"
    );
    assert_eq!(
        s.order.attention(),
        vec![Attention::CancelOnAliexpressByHand {
            aliexpress_order_ids: vec!["8198352049851315".into()]
        }]
    );
    assert!(
        !raw_order(&store, &shop, ORDER)
            .await
            .unwrap()
            .contains_key("gsi1pk"),
        "no longer polled"
    );
}

#[tokio::test]
async fn orders_partially_fulfilled_and_orders_fulfilled_record_what_the_merchant_fulfilled_in_shopify()
 {
    let store = fresh_store().await;
    let svc = service(store.clone());
    deliver_signed(
        &svc,
        "orders/create",
        &shopify_bytes(&order(ORDER, 0, "paid", &[(LINE_A, 2), (LINE_B, 1)])),
    )
    .await;

    let mut partial = order(ORDER, 200, "paid", &[(LINE_A, 2), (LINE_B, 1)]);
    partial["fulfillment_status"] = json!("partial");
    partial["fulfillments"] = json!([
        fulfillment(5_500_000_000_000_000_001, "1Z999AA10123456784", &[(LINE_A, 1)]),
        // A failed attempt fulfils nothing.
        {"id": 5_500_000_000_000_000_002_u64, "status": "failure", "tracking_number": "LOST",
         "line_items": [{"id": LINE_B, "quantity": 1}]}
    ]);
    assert_eq!(
        deliver_signed(&svc, "orders/partially_fulfilled", &shopify_bytes(&partial)).await,
        ok()
    );
    let s = stored(&store, ORDER).await;
    let fulfilled: Vec<u32> = s
        .order
        .shopify
        .line_items
        .iter()
        .map(|l| l.fulfilled_quantity)
        .collect();
    assert_eq!(fulfilled, vec![1, 0]);
    assert_eq!(
        s.order.shopify.fulfillment_tracking,
        vec!["1Z999AA10123456784"]
    );
    assert_eq!(
        s.order.shopify.fulfillment_status.as_deref(),
        Some("partial")
    );
    assert_eq!(s.order.status, OrderStatus::AwaitingOrder);

    let mut full = order(ORDER, 300, "paid", &[(LINE_A, 2), (LINE_B, 1)]);
    full["fulfillment_status"] = json!("fulfilled");
    full["fulfillments"] = json!([
        fulfillment(
            5_500_000_000_000_000_001,
            "1Z999AA10123456784",
            &[(LINE_A, 1)]
        ),
        fulfillment(
            5_500_000_000_000_000_003,
            "1Z999AA10123456795",
            &[(LINE_A, 1), (LINE_B, 1)]
        )
    ]);
    assert_eq!(
        deliver_signed(&svc, "orders/fulfilled", &shopify_bytes(&full)).await,
        ok()
    );
    let s = stored(&store, ORDER).await;
    let fulfilled: Vec<u32> = s
        .order
        .shopify
        .line_items
        .iter()
        .map(|l| l.fulfilled_quantity)
        .collect();
    assert_eq!(fulfilled, vec![2, 1]);
    assert_eq!(
        s.order.shopify.fulfillment_tracking,
        vec!["1Z999AA10123456784", "1Z999AA10123456795"]
    );
    assert_eq!(s.order.status, OrderStatus::Fulfilled);
}

#[tokio::test]
async fn app_uninstalled_marks_the_shop_inactive() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let shop = shop_domain(SHOP);
    assert!(store.get_shop(&shop).await.unwrap().active);
    let body = shopify_bytes(
        &json!({"id": 548_380_009, "name": "Example", "domain": "example.com",
        "myshopify_domain": SHOP, "email": "owner@example.com"}),
    );
    assert_eq!(deliver_signed(&svc, "app/uninstalled", &body).await, ok());
    assert!(!store.get_shop(&shop).await.unwrap().active);
}

fn compliance_body(topic: &str, shop: &str) -> Vec<u8> {
    let v = match topic {
        "customers/data_request" => json!({"shop_id": 954_889, "shop_domain": shop,
            "orders_requested": [ORDER], "customer": {"id": 191_167, "email": "john@example.com", "phone": "555-625-1199"},
            "data_request": {"id": 9999}}),
        "customers/redact" => json!({"shop_id": 954_889, "shop_domain": shop,
            "customer": {"id": 191_167, "email": "john@example.com", "phone": "555-625-1199"},
            "orders_to_redact": [ORDER, ORDER + 1]}),
        _ => json!({"shop_id": 954_889, "shop_domain": shop}),
    };
    shopify_bytes(&v)
}

const COMPLIANCE: [&str; 3] = ["customers/data_request", "customers/redact", "shop/redact"];

#[tokio::test]
async fn the_compliance_topics_answer_401_on_a_bad_hmac_and_200_when_signed() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    deliver_signed(
        &svc,
        "orders/create",
        &shopify_bytes(&order(ORDER, 0, "paid", &[(LINE_A, 1)])),
    )
    .await;
    let before = item_count(&store).await;
    for topic in COMPLIANCE {
        let body = compliance_body(topic, SHOP);
        let bad = with_header(
            signed_headers(topic, SHOP, SECRET, &body),
            "X-Shopify-Hmac-Sha256",
            &shopify_hmac("shpss_wrong", &body),
        );
        assert_eq!(
            deliver(&svc, &bad, &body).await,
            (401, json!({"error": "unauthorized"})),
            "{topic}"
        );
        let missing = without_header(
            signed_headers(topic, SHOP, SECRET, &body),
            "X-Shopify-Hmac-Sha256",
        );
        assert_eq!(deliver(&svc, &missing, &body).await.0, 401, "{topic}");
    }
    assert_eq!(
        item_count(&store).await,
        before,
        "a refused compliance request changes nothing"
    );

    for topic in ["customers/data_request", "customers/redact"] {
        assert_eq!(
            deliver_signed(&svc, topic, &compliance_body(topic, SHOP)).await,
            ok(),
            "{topic}"
        );
    }
    assert!(
        store
            .get_order(&shop_domain(SHOP), ORDER)
            .await
            .unwrap()
            .is_some(),
        "customer requests keep orders"
    );
    assert_eq!(
        deliver_signed(&svc, "shop/redact", &compliance_body("shop/redact", SHOP)).await,
        ok()
    );
}

#[tokio::test]
async fn shop_redact_deletes_the_shops_orders_and_record_and_nothing_of_another_shop() {
    let store = fresh_store().await;
    let other = "other.myshopify.com";
    let svc = service_with(
        store.clone(),
        credentials(&[(SHOP, &[SECRET]), (other, &["shpss_other"])]),
    );
    for i in 0..30u64 {
        let fin = ["pending", "paid", "refunded"][(i % 3) as usize];
        deliver_signed(
            &svc,
            "orders/create",
            &shopify_bytes(&order(ORDER + i, 0, fin, &[(LINE_A, 1)])),
        )
        .await;
    }
    store
        .mark_uninstalled(&shop_domain(SHOP), ms_hours_ago(49))
        .await
        .unwrap();
    let theirs = shopify_bytes(&order(ORDER, 0, "paid", &[(LINE_A, 1)]));
    assert_eq!(
        deliver(
            &svc,
            &signed_headers("orders/create", other, "shpss_other", &theirs),
            &theirs
        )
        .await,
        ok()
    );

    let body = compliance_body("shop/redact", SHOP);
    let headers = signed_headers("shop/redact", SHOP, SECRET, &body);
    assert_eq!(deliver(&svc, &headers, &body).await, ok());
    for i in 0..30u64 {
        assert!(
            store
                .get_order(&shop_domain(SHOP), ORDER + i)
                .await
                .unwrap()
                .is_none()
        );
    }
    assert!(
        store.get_shop(&shop_domain(SHOP)).await.unwrap().active,
        "the shop record is gone too"
    );
    assert!(
        store
            .get_order(&shop_domain(other), ORDER)
            .await
            .unwrap()
            .is_some()
    );

    // Shopify's retry of the same delivery is acknowledged again.
    assert_eq!(deliver(&svc, &headers, &body).await, ok());
    assert!(
        store
            .get_order(&shop_domain(other), ORDER)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_compliance_body_naming_another_shop_or_unreadable_is_400_and_deletes_or_records_nothing()
{
    let store = fresh_store().await;
    let svc = service(store.clone());
    deliver_signed(
        &svc,
        "orders/create",
        &shopify_bytes(&order(ORDER, 0, "paid", &[(LINE_A, 1)])),
    )
    .await;
    let before = item_count(&store).await;
    for topic in COMPLIANCE {
        for body in [
            compliance_body(topic, "other.myshopify.com"),
            b"{\"shop_id\":954889}".to_vec(),
            b"not json".to_vec(),
        ] {
            let (status, v) = deliver_signed(&svc, topic, &body).await;
            assert_eq!(status, 400, "{topic}: {v}");
        }
    }
    assert_eq!(
        item_count(&store).await,
        before,
        "no delivery recorded, nothing deleted"
    );
    // The same webhook id, now with a valid body (a fixed sender's retry), is acted on.
    let body = compliance_body("shop/redact", SHOP);
    let headers = signed_headers("shop/redact", SHOP, SECRET, &body);
    let bad = b"{\"shop_id\":954889}".to_vec();
    let bad_headers = with_header(
        headers.clone(),
        "X-Shopify-Hmac-Sha256",
        &shopify_hmac(SECRET, &bad),
    );
    assert_eq!(deliver(&svc, &bad_headers, &bad).await.0, 400);
    store
        .mark_uninstalled(&shop_domain(SHOP), ms_hours_ago(48))
        .await
        .unwrap();
    assert_eq!(deliver(&svc, &headers, &body).await, ok());
    assert!(
        store
            .get_order(&shop_domain(SHOP), ORDER)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_signed_delivery_of_a_topic_dropsync_does_not_use_is_acknowledged_and_writes_nothing() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    for topic in [
        "fulfillments/create",
        "orders/edited",
        "products/update",
        "ORDERS/DELETE",
    ] {
        let body = shopify_bytes(&json!({"id": ORDER, "updated_at": ts(1)}));
        assert_eq!(deliver_signed(&svc, topic, &body).await, ok(), "{topic}");
        // Still verified first.
        let bad = with_header(
            signed_headers(topic, SHOP, SECRET, &body),
            "X-Shopify-Hmac-Sha256",
            &shopify_hmac("x", &body),
        );
        assert_eq!(deliver(&svc, &bad, &body).await.0, 401);
    }
    assert_eq!(item_count(&store).await, 0);
}

// ---------------------------------------------------------------------------------------------
// Duplicates and order

#[tokio::test]
async fn the_same_delivery_twice_is_acknowledged_twice_and_written_once() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let body = shopify_bytes(&order(ORDER, 0, "pending", &[(LINE_A, 1)]));
    let headers = signed_headers("orders/create", SHOP, SECRET, &body);
    assert_eq!(deliver(&svc, &headers, &body).await, ok());
    let first = stored(&store, ORDER).await;
    for _ in 0..3 {
        assert_eq!(deliver(&svc, &headers, &body).await, ok());
    }
    let after = stored(&store, ORDER).await;
    assert_eq!(after.version, first.version);
    assert_eq!(after, first);
    assert_eq!(
        item_count(&store).await,
        1,
        "no dedupe records for order topics"
    );
}

#[tokio::test]
async fn the_same_updated_at_under_a_new_webhook_id_changes_nothing() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let body = shopify_bytes(&order(ORDER, 10, "paid", &[(LINE_A, 1)]));
    // Two subscriptions on one topic, or create + paid for one change: new webhook ids.
    assert_eq!(deliver_signed(&svc, "orders/create", &body).await, ok());
    let first = stored(&store, ORDER).await;
    assert_eq!(deliver_signed(&svc, "orders/create", &body).await, ok());
    assert_eq!(deliver_signed(&svc, "orders/paid", &body).await, ok());
    assert_eq!(deliver_signed(&svc, "orders/updated", &body).await, ok());
    assert_eq!(stored(&store, ORDER).await, first);
}

#[tokio::test]
async fn orders_paid_in_the_same_second_as_orders_create_still_counts_in_either_order() {
    // Shopify's updated_at has whole seconds: neither event is newer, so they are joined on what
    // only moves forward (payment, cancellation, fulfilment), never dropped as stale.
    let store = fresh_store().await;
    let svc = service(store.clone());
    let create = shopify_bytes(&order(ORDER, 10, "pending", &[(LINE_A, 1)]));
    let paid = shopify_bytes(&order(ORDER, 10, "paid", &[(LINE_A, 1)]));
    assert_eq!(deliver_signed(&svc, "orders/create", &create).await, ok());
    assert_eq!(deliver_signed(&svc, "orders/paid", &paid).await, ok());
    let a = stored(&store, ORDER).await;
    assert_eq!(a.order.status, OrderStatus::AwaitingOrder);
    assert_eq!(a.order.shopify.financial_status, FinancialStatus::Paid);

    assert_eq!(
        deliver_signed(
            &svc,
            "orders/paid",
            &shopify_bytes(&order(ORDER + 1, 10, "paid", &[(LINE_A, 1)]))
        )
        .await,
        ok()
    );
    assert_eq!(
        deliver_signed(
            &svc,
            "orders/create",
            &shopify_bytes(&order(ORDER + 1, 10, "pending", &[(LINE_A, 1)]))
        )
        .await,
        ok()
    );
    let b = stored(&store, ORDER + 1).await;
    assert_eq!(b.order.status, OrderStatus::AwaitingOrder);
    assert_eq!(
        b.version, 1,
        "the late create moved nothing forward: no write"
    );

    // A same-second cancel joins too, and a duplicate of either writes nothing.
    let mut cancel = order(ORDER, 10, "paid", &[(LINE_A, 1)]);
    cancel["cancelled_at"] = json!("2026-01-01T00:00:10Z");
    assert_eq!(
        deliver_signed(&svc, "orders/cancelled", &shopify_bytes(&cancel)).await,
        ok()
    );
    let c = stored(&store, ORDER).await;
    assert_eq!(c.order.status, OrderStatus::Canceled);
    assert_eq!(deliver_signed(&svc, "orders/paid", &paid).await, ok());
    assert_eq!(deliver_signed(&svc, "orders/create", &create).await, ok());
    assert_eq!(stored(&store, ORDER).await, c);
}

#[tokio::test]
async fn a_stale_retry_does_not_undo_a_newer_update() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    deliver_signed(
        &svc,
        "orders/create",
        &shopify_bytes(&order(ORDER, 0, "pending", &[(LINE_A, 1)])),
    )
    .await;
    deliver_signed(
        &svc,
        "orders/paid",
        &shopify_bytes(&order(ORDER, 50, "paid", &[(LINE_A, 1)])),
    )
    .await;
    let paid = stored(&store, ORDER).await;
    // Shopify's retry of an orders/updated triggered before the payment carries the old payload.
    let mut old = order(ORDER, 20, "pending", &[(LINE_A, 3)]);
    old["name"] = json!("#stale");
    assert_eq!(
        deliver_signed(&svc, "orders/updated", &shopify_bytes(&old)).await,
        ok()
    );
    assert_eq!(stored(&store, ORDER).await, paid);
}

#[tokio::test]
async fn orders_updated_before_orders_create_is_kept_and_the_late_create_changes_nothing() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let mut updated = order(ORDER, 40, "pending", &[(LINE_A, 1), (LINE_B, 2)]);
    updated["tags"] = json!("edited");
    assert_eq!(
        deliver_signed(&svc, "orders/updated", &shopify_bytes(&updated)).await,
        ok()
    );
    let s = stored(&store, ORDER).await;
    assert_eq!(s.order.status, OrderStatus::Pending);
    assert_eq!(s.order.shopify.line_items.len(), 2);

    let create = order(ORDER, 0, "pending", &[(LINE_A, 1)]);
    assert_eq!(
        deliver_signed(&svc, "orders/create", &shopify_bytes(&create)).await,
        ok()
    );
    assert_eq!(stored(&store, ORDER).await, s);
}

#[tokio::test]
async fn orders_paid_before_orders_create_leaves_the_order_awaiting_order() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    assert_eq!(
        deliver_signed(
            &svc,
            "orders/paid",
            &shopify_bytes(&order(ORDER, 30, "paid", &[(LINE_A, 1)]))
        )
        .await,
        ok()
    );
    assert_eq!(
        deliver_signed(
            &svc,
            "orders/create",
            &shopify_bytes(&order(ORDER, 0, "pending", &[(LINE_A, 1)]))
        )
        .await,
        ok()
    );
    let s = stored(&store, ORDER).await;
    assert_eq!(s.order.status, OrderStatus::AwaitingOrder);
    assert_eq!(s.version, 1);
    assert_eq!(s.order.history.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Bad input: a 4xx, nothing written

#[tokio::test]
async fn a_bad_or_missing_hmac_is_401_and_writes_nothing() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let body = shopify_bytes(&order(ORDER, 0, "paid", &[(LINE_A, 1)]));
    let good = signed_headers("orders/create", SHOP, SECRET, &body);
    let real = header(&good, "X-Shopify-Hmac-Sha256").to_owned();
    let hex: String = real.bytes().map(|b| format!("{b:02x}")).collect();
    let cases: Vec<Vec<(String, String)>> = vec![
        without_header(good.clone(), "X-Shopify-Hmac-Sha256"),
        with_header(good.clone(), "X-Shopify-Hmac-Sha256", ""),
        with_header(good.clone(), "X-Shopify-Hmac-Sha256", "garbage"),
        with_header(
            good.clone(),
            "X-Shopify-Hmac-Sha256",
            &shopify_hmac("shpss_other", &body),
        ),
        with_header(good.clone(), "X-Shopify-Hmac-Sha256", &real.to_lowercase()),
        with_header(
            good.clone(),
            "X-Shopify-Hmac-Sha256",
            real.trim_end_matches('='),
        ),
        with_header(good.clone(), "X-Shopify-Hmac-Sha256", &hex),
        // A repeated header reaches Lambda joined with a comma.
        {
            let mut h = good.clone();
            h.push(("X-Shopify-Hmac-Sha256".into(), real.clone()));
            h
        },
    ];
    for h in &cases {
        assert_eq!(
            deliver(&svc, h, &body).await,
            (401, json!({"error": "unauthorized"})),
            "{h:?}"
        );
    }
    // The right HMAC over other bytes.
    let mut changed = body.clone();
    changed.push(b' ');
    assert_eq!(deliver(&svc, &good, &changed).await.0, 401);
    assert_eq!(item_count(&store).await, 0);
    assert_eq!(
        deliver(&svc, &good, &body).await,
        ok(),
        "the same delivery, intact"
    );
}

#[tokio::test]
async fn an_unknown_shop_gets_the_same_401_as_a_bad_hmac() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let body = shopify_bytes(&order(ORDER, 0, "paid", &[(LINE_A, 1)]));
    let unknown = signed_headers("orders/create", "stranger.myshopify.com", SECRET, &body);
    let bad_hmac = with_header(
        signed_headers("orders/create", SHOP, SECRET, &body),
        "X-Shopify-Hmac-Sha256",
        &shopify_hmac("nope", &body),
    );
    let a = deliver(&svc, &unknown, &body).await;
    let b = deliver(&svc, &bad_hmac, &body).await;
    assert_eq!(a, (401, json!({"error": "unauthorized"})));
    assert_eq!(a, b);
    assert_eq!(item_count(&store).await, 0);
}

#[tokio::test]
async fn a_missing_topic_or_shop_header_is_400_and_writes_nothing() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let body = shopify_bytes(&order(ORDER, 0, "paid", &[(LINE_A, 1)]));
    let good = signed_headers("orders/create", SHOP, SECRET, &body);
    let (s, v) = deliver(
        &svc,
        &without_header(good.clone(), "X-Shopify-Topic"),
        &body,
    )
    .await;
    assert_eq!((s, v), (400, json!({"error": "missing X-Shopify-Topic"})));
    let (s, v) = deliver(
        &svc,
        &with_header(good.clone(), "X-Shopify-Topic", "  "),
        &body,
    )
    .await;
    assert_eq!((s, v), (400, json!({"error": "missing X-Shopify-Topic"})));
    let (s, v) = deliver(
        &svc,
        &without_header(good.clone(), "X-Shopify-Shop-Domain"),
        &body,
    )
    .await;
    assert_eq!(
        (s, v),
        (400, json!({"error": "missing X-Shopify-Shop-Domain"}))
    );
    for bad in [
        "example.com",
        "evil.com#.myshopify.com",
        "a.myshopify.com,b.myshopify.com",
    ] {
        let (s, _) = deliver(
            &svc,
            &with_header(good.clone(), "X-Shopify-Shop-Domain", bad),
            &body,
        )
        .await;
        assert_eq!(s, 400, "{bad}");
    }
    assert_eq!(item_count(&store).await, 0);
}

#[tokio::test]
async fn a_signed_body_that_is_not_a_valid_order_is_400_and_writes_nothing() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let valid = order(ORDER, 0, "paid", &[(LINE_A, 1)]);
    let mut no_id = valid.clone();
    no_id.as_object_mut().unwrap().remove("id");
    no_id
        .as_object_mut()
        .unwrap()
        .remove("admin_graphql_api_id");
    let mut no_time = valid.clone();
    no_time["created_at"] = Value::Null;
    no_time["updated_at"] = Value::Null;
    let mut float_id = valid.clone();
    float_id["id"] = json!(9.120_004_388_517_265e18);
    let mut bad_quantity = valid.clone();
    bad_quantity["line_items"][0]["quantity"] = json!(-1);
    bad_quantity["line_items"][0]["current_quantity"] = Value::Null;
    let mut dup_lines = valid.clone();
    dup_lines["line_items"] = json!([valid["line_items"][0], valid["line_items"][0]]);
    let bodies: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"not json".to_vec(),
        b"[1,2,3]".to_vec(),
        b"null".to_vec(),
        shopify_bytes(&no_id),
        shopify_bytes(&no_time),
        shopify_bytes(&float_id),
        shopify_bytes(&bad_quantity),
        shopify_bytes(&dup_lines),
        {
            let mut b = shopify_bytes(&valid);
            b.truncate(b.len() / 2);
            b
        },
    ];
    let order_topics = dropsync_tests::HANDLED_TOPICS
        .into_iter()
        .filter(|t| t.starts_with("orders/"));
    for topic in order_topics {
        for body in &bodies {
            let (s, v) = deliver_signed(&svc, topic, body).await;
            assert_eq!(s, 400, "{topic} {:?}: {v}", String::from_utf8_lossy(body));
            assert!(v["error"].is_string());
            assert!(
                !v.to_string().contains("bob@"),
                "errors never quote the payload"
            );
        }
    }
    assert_eq!(item_count(&store).await, 0);
}

#[tokio::test]
async fn a_body_over_5_mb_is_413_and_writes_nothing() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let mut o = order(ORDER, 0, "paid", &[(LINE_A, 1)]);
    o["note"] = json!("x".repeat(5 * 1024 * 1024));
    let body = shopify_bytes(&o);
    assert!(body.len() > 5 * 1024 * 1024);
    assert_eq!(deliver_signed(&svc, "orders/create", &body).await.0, 413);
    // Refused on size before anything else: unsigned and unknown-shop bodies too.
    assert_eq!(
        deliver(
            &svc,
            &without_header(
                signed_headers("orders/create", "x.myshopify.com", SECRET, &body),
                "X-Shopify-Hmac-Sha256"
            ),
            &body
        )
        .await
        .0,
        413
    );
    assert_eq!(item_count(&store).await, 0);
    // Exactly 5 MiB is not too large (it is refused for its HMAC here, not its size).
    let exact = vec![b' '; 5 * 1024 * 1024];
    let h = with_header(
        signed_headers("orders/create", SHOP, SECRET, b"{}"),
        "X-Shopify-Hmac-Sha256",
        &shopify_hmac(SECRET, b"x"),
    );
    assert_eq!(deliver(&svc, &h, &exact).await.0, 401);
}

#[tokio::test]
async fn a_method_other_than_post_is_405_and_writes_nothing() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let body = shopify_bytes(&order(ORDER, 0, "paid", &[(LINE_A, 1)]));
    let headers = signed_headers("orders/create", SHOP, SECRET, &body);
    for method in ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
        let res =
            dropsync_shopify_webhook::handle_request(&svc, request(method, &headers, &body)).await;
        assert_eq!(res.status().as_u16(), 405, "{method}");
        assert_eq!(res.headers().get("allow").unwrap(), "POST");
    }
    assert_eq!(item_count(&store).await, 0);
}

// ---------------------------------------------------------------------------------------------
// The store failing

#[tokio::test]
async fn dynamodb_unreachable_is_503_so_shopify_retries_and_never_a_panic() {
    let port = closed_port();
    let svc = service(store_at(&format!("http://127.0.0.1:{port}"), "orders").await);
    for (topic, body) in [
        (
            "orders/create",
            shopify_bytes(&order(ORDER, 0, "paid", &[(LINE_A, 1)])),
        ),
        ("app/uninstalled", uninstall_body(SHOP)),
        ("shop/redact", compliance_body("shop/redact", SHOP)),
        (
            "customers/redact",
            compliance_body("customers/redact", SHOP),
        ),
    ] {
        assert_eq!(
            deliver_signed(&svc, topic, &body).await,
            (503, json!({"error": "temporarily unavailable"})),
            "{topic}"
        );
    }
}

#[tokio::test]
async fn a_throttled_dynamodb_is_503() {
    let (url, hits) = throttling_dynamodb();
    let svc = service(store_at(&url, "orders").await);
    let body = shopify_bytes(&order(ORDER, 0, "paid", &[(LINE_A, 1)]));
    assert_eq!(
        deliver_signed(&svc, "orders/create", &body).await,
        (503, json!({"error": "temporarily unavailable"}))
    );
    assert_eq!(
        *hits.lock().unwrap(),
        1,
        "one UpdateItem, answered ThrottlingException"
    );
}

#[tokio::test]
async fn a_missing_table_is_a_5xx_that_says_nothing_of_the_cause() {
    let store = fresh_store().await;
    let missing =
        dropsync_store::Store::new(store.client().clone(), format!("{}-gone", store.table()));
    let svc = service(missing);
    let body = shopify_bytes(&order(ORDER, 0, "paid", &[(LINE_A, 1)]));
    let (status, v) = deliver_signed(&svc, "orders/create", &body).await;
    assert_eq!((status, v), (500, json!({"error": "internal error"})));
}

// ---------------------------------------------------------------------------------------------
// Tenancy and signatures

#[tokio::test]
async fn a_delivery_naming_shop_b_signed_with_shop_as_secret_is_401_and_writes_nothing() {
    let store = fresh_store().await;
    let (a, b) = ("shop-a.myshopify.com", "shop-b.myshopify.com");
    let svc = service_with(
        store.clone(),
        credentials(&[(a, &["shpss_secret_a"]), (b, &["shpss_secret_b"])]),
    );
    let body = shopify_bytes(&order(ORDER, 0, "paid", &[(LINE_A, 1)]));
    for topic in ["orders/create", "app/uninstalled", "shop/redact"] {
        let forged = signed_headers(topic, b, "shpss_secret_a", &body);
        assert_eq!(
            deliver(&svc, &forged, &body).await,
            (401, json!({"error": "unauthorized"})),
            "{topic}"
        );
    }
    assert_eq!(item_count(&store).await, 0);
    // Signed by A for A: recorded under A only.
    assert_eq!(
        deliver(
            &svc,
            &signed_headers("orders/create", a, "shpss_secret_a", &body),
            &body
        )
        .await,
        ok()
    );
    assert!(
        store
            .get_order(&shop_domain(a), ORDER)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_order(&shop_domain(b), ORDER)
            .await
            .unwrap()
            .is_none()
    );
}

/// Shopify's documented vector: its escapes are part of the signed bytes.
const VECTOR_BODY: &[u8] = br##"{"id":820982911946154508,"name":"#9999","note":"a\/b \u0026 c"}"##;
const VECTOR_HMAC: &str = "tcKX1/dyrUALHktowGkZMZGKdIukPqkONANSdHTJ+FE=";

#[test]
fn the_test_signer_reproduces_the_spec_vector() {
    assert_eq!(shopify_hmac(SECRET, VECTOR_BODY), VECTOR_HMAC);
    assert_ne!(shopify_hmac("shpss_other", VECTOR_BODY), VECTOR_HMAC);
}

#[tokio::test]
async fn the_spec_hmac_vector_verifies_through_the_handler_and_the_same_json_re_serialised_does_not()
 {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let headers = |hmac: &str| {
        vec![
            ("x-shopify-topic".to_owned(), "app/uninstalled".to_owned()),
            ("x-shopify-shop-domain".to_owned(), SHOP.to_owned()),
            ("x-shopify-hmac-sha256".to_owned(), hmac.to_owned()),
        ]
    };
    let value: Value = serde_json::from_slice(VECTOR_BODY).unwrap();
    let reserialised = serde_json::to_vec(&value).unwrap();
    assert_ne!(reserialised, VECTOR_BODY);
    assert_eq!(
        deliver(&svc, &headers(VECTOR_HMAC), &reserialised).await.0,
        401
    );
    assert_eq!(item_count(&store).await, 0);
    assert!(store.get_shop(&shop_domain(SHOP)).await.unwrap().active);

    // Verified, then refused for what it is: an order-like body is not the shop resource an
    // uninstall carries, so it cannot deactivate the shop.
    let (status, v) = deliver(&svc, &headers(VECTOR_HMAC), VECTOR_BODY).await;
    assert_eq!(status, 400, "{v}");
    assert!(store.get_shop(&shop_domain(SHOP)).await.unwrap().active);
    // And as an order topic: verified, then refused for what it is (no timestamps), not for its HMAC.
    let mut h = headers(VECTOR_HMAC);
    h[0].1 = "orders/create".into();
    let (status, v) = deliver(&svc, &h, VECTOR_BODY).await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test]
async fn a_body_api_gateway_sends_base64_encoded_is_verified_on_the_decoded_bytes() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let body = shopify_bytes(&order(ORDER, 0, "paid", &[(LINE_A, 1)]));
    let headers = signed_headers("orders/create", SHOP, SECRET, &body);
    assert_eq!(send(&svc, request_base64(&headers, &body)).await, ok());
    assert_eq!(
        stored(&store, ORDER).await.order.status,
        OrderStatus::AwaitingOrder
    );
    // Signed over the base64 text instead of the bytes: refused.
    let text = base64(&body).into_bytes();
    let wrong = with_header(
        headers,
        "X-Shopify-Hmac-Sha256",
        &shopify_hmac(SECRET, &text),
    );
    assert_eq!(send(&svc, request_base64(&wrong, &body)).await.0, 401);
}

#[tokio::test]
async fn during_a_secret_rotation_the_previous_secret_still_verifies() {
    let store = fresh_store().await;
    let svc = service_with(
        store.clone(),
        credentials(&[(SHOP, &["shpss_new_secret", SECRET])]),
    );
    let old = shopify_bytes(&order(ORDER, 0, "paid", &[(LINE_A, 1)]));
    assert_eq!(
        deliver(
            &svc,
            &signed_headers("orders/create", SHOP, SECRET, &old),
            &old
        )
        .await,
        ok()
    );
    let new = shopify_bytes(&order(ORDER + 1, 0, "paid", &[(LINE_A, 1)]));
    assert_eq!(
        deliver(
            &svc,
            &signed_headers("orders/create", SHOP, "shpss_new_secret", &new),
            &new
        )
        .await,
        ok()
    );
    let other = shopify_bytes(&order(ORDER + 2, 0, "paid", &[(LINE_A, 1)]));
    assert_eq!(
        deliver(
            &svc,
            &signed_headers("orders/create", SHOP, "shpss_older_secret", &other),
            &other
        )
        .await
        .0,
        401
    );
    assert_eq!(item_count(&store).await, 2);

    // Once the rotation is over, only the new secret verifies.
    let done = service_with(store.clone(), credentials(&[(SHOP, &["shpss_new_secret"])]));
    let late = shopify_bytes(&order(ORDER + 3, 0, "paid", &[(LINE_A, 1)]));
    assert_eq!(
        deliver(
            &done,
            &signed_headers("orders/create", SHOP, SECRET, &late),
            &late
        )
        .await
        .0,
        401
    );
}

// ---------------------------------------------------------------------------------------------
// DynamoDB requests per delivery

#[tokio::test]
async fn orders_create_and_orders_paid_cost_one_order_write_each_plus_the_tab_counters_add() {
    let store = fresh_store().await;
    let (logged_store, log) = logged(&store).await;
    let svc = service(logged_store);
    let mut figures = Vec::new();
    let mut measure = |what: &str, calls: Vec<String>| {
        figures.push(format!("{what}: {} {calls:?}", calls.len()));
        calls
    };

    let create = shopify_bytes(&order(ORDER, 0, "pending", &[(LINE_A, 1), (LINE_B, 2)]));
    deliver_signed(&svc, "orders/create", &create).await;
    assert_eq!(
        measure("orders/create (new order)", log.take()),
        vec!["UpdateItem", "UpdateItem"]
    );

    let paid = shopify_bytes(&order(ORDER, 30, "paid", &[(LINE_A, 1), (LINE_B, 2)]));
    deliver_signed(&svc, "orders/paid", &paid).await;
    assert_eq!(
        measure("orders/paid (pending -> awaiting_order)", log.take()),
        vec!["UpdateItem", "UpdateItem"]
    );
    assert_eq!(
        stored(&store, ORDER).await.order.status,
        OrderStatus::AwaitingOrder
    );

    deliver_signed(&svc, "orders/paid", &paid).await;
    assert_eq!(
        measure("duplicate (condition fails, no write)", log.take()),
        vec!["UpdateItem"]
    );

    let updated = shopify_bytes(&order(ORDER, 60, "paid", &[(LINE_A, 1), (LINE_B, 2)]));
    deliver_signed(&svc, "orders/updated", &updated).await;
    assert_eq!(
        measure("orders/updated (no supplier orders)", log.take()),
        vec!["UpdateItem"]
    );

    let bad = without_header(
        signed_headers("orders/create", SHOP, SECRET, &create),
        "X-Shopify-Hmac-Sha256",
    );
    deliver(&svc, &bad, &create).await;
    assert!(measure("bad HMAC", log.take()).is_empty());

    // With a supplier order the Shopify facts alone cannot decide: the condition fails and
    // returns the item, then one versioned write merges the event.
    store
        .update_order(&shop_domain(SHOP), ORDER, |o| {
            link_supplier_order(o, 8_198_352_049_851_315, &[LINE_A], vec![], 5).unwrap()
        })
        .await
        .unwrap();
    let linked = stored(&store, ORDER).await.order.status;
    let mut cancel = order(ORDER, 90, "paid", &[(LINE_A, 1), (LINE_B, 2)]);
    cancel["cancelled_at"] = json!(ts(90));
    deliver_signed(&svc, "orders/cancelled", &shopify_bytes(&cancel)).await;
    let calls = measure("orders/cancelled (with a supplier order)", log.take());
    // The tab counter's ADD follows only when the order changed tab.
    let mut want = vec!["UpdateItem", "GetItem", "PutItem"];
    if stored(&store, ORDER).await.order.status != linked {
        want.push("UpdateItem");
    }
    assert_eq!(calls, want);

    deliver_signed(&svc, "app/uninstalled", &uninstall_body(SHOP)).await;
    assert_eq!(
        measure("app/uninstalled", log.take()),
        vec!["GetItem", "UpdateItem"]
    );
    let body = compliance_body("customers/redact", SHOP);
    deliver_signed(&svc, "customers/redact", &body).await;
    assert_eq!(measure("customers/redact", log.take()), vec!["PutItem"]);
    deliver_signed(&svc, "fulfillments/create", b"{}").await;
    assert!(measure("unused topic", log.take()).is_empty());

    for f in &figures {
        println!("DynamoDB requests per webhook — {f}");
    }
}

// ---------------------------------------------------------------------------------------------
// Size: DynamoDB refuses items over 400 KB

#[tokio::test]
async fn a_huge_order_is_stored_compactly_and_one_too_big_to_store_is_413_with_nothing_written() {
    let store = fresh_store().await;
    let svc = service(store.clone());
    let long_title = "長".repeat(1_000);
    let long_sku = "S".repeat(300);
    let with_lines = |id: u64, n: u64| {
        let lines: Vec<(u64, u32)> = (0..n).map(|i| (LINE_A + i * 2, 1)).collect();
        let mut o = order(id, 0, "paid", &lines);
        for li in o["line_items"].as_array_mut().unwrap() {
            li["title"] = json!(long_title);
            li["sku"] = json!(long_sku);
        }
        o
    };

    // A few lines: every text clipped to Shopify's 255 characters, titles kept.
    let body = shopify_bytes(&with_lines(ORDER, 3));
    assert_eq!(deliver_signed(&svc, "orders/create", &body).await, ok());
    let s = stored(&store, ORDER).await;
    for li in &s.order.shopify.line_items {
        assert_eq!(li.title.as_deref().map(|t| t.chars().count()), Some(255));
        assert_eq!(li.sku.as_deref().map(str::len), Some(255));
    }

    // 400 lines with long titles would pass 400 KB: stored without the titles (display only).
    let body = shopify_bytes(&with_lines(ORDER + 1, 400));
    assert_eq!(deliver_signed(&svc, "orders/create", &body).await, ok());
    let s = stored(&store, ORDER + 1).await;
    assert_eq!(s.order.shopify.line_items.len(), 400);
    assert!(s.order.shopify.line_items.iter().all(|l| l.title.is_none()));
    assert_eq!(s.order.status, OrderStatus::AwaitingOrder);

    // Thousands of lines cannot fit at all: a clear 413, and nothing written.
    let body = shopify_bytes(&with_lines(ORDER + 2, 3_000));
    let (status, answer) = deliver_signed(&svc, "orders/create", &body).await;
    assert_eq!(status, 413, "{answer}");
    assert!(
        store
            .get_order(&shop_domain(SHOP), ORDER + 2)
            .await
            .unwrap()
            .is_none()
    );
}
