//! The webhook against the in-memory store and Shopify: what each delivery writes, and what it
//! must not.

use super::*;
use crate::memory::{AdminCall, FakeShopify, MemoryStore, Scripted};
use dropsync_domain::{OrderStatus, SupplierOrder};
use dropsync_shopify::admin::AdminError;
use dropsync_store::ShopRecord;
use serde_json::{Value, json};

const SECRET: &str = "whsec-legacy";
const ORDER: u64 = 820_982_911_946_154_508;

fn shop() -> ShopDomain {
    ShopDomain::parse("legacy.myshopify.com").unwrap()
}

fn service() -> (
    WebhookService<FakeShopify, MemoryStore>,
    MemoryStore,
    Arc<FakeShopify>,
) {
    let credentials = Credentials::parse(
        format!(r#"{{"admin_token":"0123456789abcdef-admin","shops":{{"legacy.myshopify.com":{{"access_token":"shpat_legacy","webhook_secrets":["{SECRET}"]}}}}}}"#)
            .as_bytes(),
    )
    .unwrap();
    let store = MemoryStore::new();
    let shopify = Arc::new(FakeShopify::new());
    let svc = WebhookService {
        store: store.clone(),
        credentials: Arc::new(credentials),
        admin: Some(shopify.clone()),
    };
    (svc, store, shopify)
}

/// An order payload as Shopify sends it (trimmed to what dropsync reads, plus some of the rest),
/// updated `updated` seconds after it was created.
fn order_body(updated: u32, financial: &str) -> Vec<u8> {
    json!({
        "id": ORDER, "admin_graphql_api_id": format!("gid://shopify/Order/{ORDER}"),
        "name": "#1001", "order_number": 1001,
        "created_at": "2026-11-02T10:00:00-05:00",
        "updated_at": format!("2026-11-02T10:00:{updated:02}-05:00"),
        "cancelled_at": null, "financial_status": financial, "fulfillment_status": null,
        "test": false, "currency": "USD",
        "line_items": [{
            "id": 866_550_311_766_439_020_u64, "variant_id": 44_100_000_000_000_020_u64,
            "product_id": 8_100_000_000_000_020_u64, "sku": "MUG-BLUE-350", "title": "Mug",
            "quantity": 2, "current_quantity": 2, "fulfillable_quantity": 2,
            "fulfillment_status": null, "requires_shipping": true
        }],
        "fulfillments": []
    })
    .to_string()
    .into_bytes()
}

fn sign(body: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Delivers `body` over HTTPS under `topic`, signed with the shop's secret (or with `hmac`).
async fn deliver_signed(
    svc: &WebhookService<FakeShopify, MemoryStore>,
    topic: &str,
    body: &[u8],
    hmac: Option<&str>,
) -> Result<Outcome, WebhookError> {
    let signature = hmac.map_or_else(|| sign(body), str::to_owned);
    let headers: Vec<(&str, String)> = vec![
        ("x-shopify-topic", topic.to_owned()),
        ("x-shopify-shop-domain", shop().to_string()),
        ("x-shopify-hmac-sha256", signature),
        ("x-shopify-api-version", "2026-10".to_owned()),
        (
            "x-shopify-webhook-id",
            "b54557e4-bdd9-4b37-8a5f-000000000001".to_owned(),
        ),
    ];
    svc.handle_signed_delivery(
        |name| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        },
        body,
    )
    .await
}

async fn deliver(
    svc: &WebhookService<FakeShopify, MemoryStore>,
    topic: &str,
    body: &[u8],
) -> Result<Outcome, WebhookError> {
    deliver_signed(svc, topic, body, None).await
}

fn status(store: &MemoryStore) -> OrderStatus {
    store.stored_order(&shop(), ORDER).unwrap().order.status
}

/// The order arrives paid, and dropsync places it on AliExpress (awaiting payment there).
async fn paid_and_placed(svc: &WebhookService<FakeShopify, MemoryStore>, store: &MemoryStore) {
    deliver(svc, "orders/paid", &order_body(5, "paid"))
        .await
        .unwrap();
    store.change_order(&shop(), ORDER, |o| {
        let line = o.shopify.line_items[0].id;
        o.supplier_orders
            .push(SupplierOrder::new(9001, vec![line], Vec::new()));
        o.status = o.derive_status();
    });
}

#[tokio::test]
async fn an_unpaid_order_lands_in_pending_and_a_paid_one_in_awaiting_order() {
    let (svc, store, _) = service();
    assert_eq!(
        deliver(&svc, "orders/create", &order_body(0, "pending"))
            .await
            .unwrap(),
        Outcome::Order(ShopifyApplied::Created(OrderStatus::Pending))
    );
    assert_eq!(status(&store), OrderStatus::Pending);

    assert_eq!(
        deliver(&svc, "orders/paid", &order_body(5, "paid"))
            .await
            .unwrap(),
        Outcome::Order(ShopifyApplied::Updated(OrderStatus::AwaitingOrder))
    );
    assert_eq!(status(&store), OrderStatus::AwaitingOrder);
}

#[tokio::test]
async fn an_older_updated_at_does_not_overwrite_a_newer_one() {
    let (svc, store, _) = service();
    deliver(&svc, "orders/paid", &order_body(5, "paid"))
        .await
        .unwrap();
    // The earlier `orders/create`, retried by Shopify after the payment.
    assert_eq!(
        deliver(&svc, "orders/create", &order_body(0, "pending"))
            .await
            .unwrap(),
        Outcome::Order(ShopifyApplied::Stale)
    );
    // And an older event that would not even move the order between tabs.
    assert_eq!(
        deliver(&svc, "orders/updated", &order_body(1, "paid"))
            .await
            .unwrap(),
        Outcome::Order(ShopifyApplied::Stale)
    );
    let stored = store.stored_order(&shop(), ORDER).unwrap();
    assert_eq!(stored.order.status, OrderStatus::AwaitingOrder);
    assert!(stored.order.shopify.financial_status.is_captured());
    assert_eq!(stored.order.shopify.updated_at_ms % 60_000, 5_000);
}

#[tokio::test]
async fn a_duplicate_delivery_is_a_no_op() {
    let (svc, store, _) = service();
    let body = order_body(5, "paid");
    deliver(&svc, "orders/paid", &body).await.unwrap();
    let writes = store.order_writes();
    let before = store.stored_order(&shop(), ORDER).unwrap();

    assert_eq!(
        deliver(&svc, "orders/paid", &body).await.unwrap(),
        Outcome::Order(ShopifyApplied::Stale)
    );
    assert_eq!(store.order_writes(), writes);
    assert_eq!(store.stored_order(&shop(), ORDER).unwrap(), before);
}

#[tokio::test]
async fn a_delivery_with_a_bad_signature_is_refused_and_writes_nothing() {
    let (svc, store, _) = service();
    let body = order_body(0, "paid");
    let forged = sign(b"another body");
    let err = deliver_signed(&svc, "orders/create", &body, Some(&forged))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 401);
    assert!(store.stored_order(&shop(), ORDER).is_none());
}

#[tokio::test]
async fn a_newer_order_event_keeps_the_supplier_orders_dropsync_added() {
    let (svc, store, _) = service();
    paid_and_placed(&svc, &store).await;
    let placed = status(&store);
    assert_eq!(placed, OrderStatus::AwaitingPayment);

    let updated = deliver(&svc, "orders/updated", &order_body(9, "paid"))
        .await
        .unwrap();
    assert_eq!(updated, Outcome::Order(ShopifyApplied::Updated(placed)));
    let stored = store.stored_order(&shop(), ORDER).unwrap();
    assert_eq!(stored.order.supplier_orders.len(), 1);
    assert_eq!(
        stored.order.shopify.updated_at_ms % 60_000,
        9_000,
        "the newer facts are applied"
    );
}

#[tokio::test]
async fn a_cancelled_order_with_a_supplier_order_moves_to_canceled_by_the_domains_rules() {
    let (svc, store, _) = service();
    paid_and_placed(&svc, &store).await;
    let mut cancelled: Value = serde_json::from_slice(&order_body(9, "voided")).unwrap();
    cancelled["cancelled_at"] = json!("2026-11-02T10:00:09-05:00");
    let body = cancelled.to_string().into_bytes();
    assert_eq!(
        deliver(&svc, "orders/cancelled", &body).await.unwrap(),
        Outcome::Order(ShopifyApplied::Updated(OrderStatus::Canceled))
    );
    let stored = store.stored_order(&shop(), ORDER).unwrap();
    assert!(stored.order.attention().iter().any(|a| matches!(
        a,
        dropsync_domain::Attention::CancelOnAliexpressByHand { .. }
    )));
}

#[tokio::test]
async fn a_compliance_delivery_seen_before_is_a_duplicate() {
    let (svc, _, _) = service();
    let body = json!({"shop_id": 548_380_009, "shop_domain": shop().to_string(),
        "customer": {"id": 1}, "orders_to_redact": [ORDER]})
    .to_string()
    .into_bytes();
    assert_eq!(
        deliver(&svc, "customers/redact", &body).await.unwrap(),
        Outcome::ComplianceAcknowledged
    );
    assert_eq!(
        deliver(&svc, "customers/redact", &body).await.unwrap(),
        Outcome::Duplicate
    );
}

fn uninstalled_body() -> Vec<u8> {
    json!({"id": 548_380_009, "name": "Example Shop", "myshopify_domain": shop().to_string()})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn an_uninstall_shopify_still_accepts_the_token_for_changes_nothing() {
    let (svc, store, _) = service();
    assert_eq!(
        deliver(&svc, "app/uninstalled", &uninstalled_body())
            .await
            .unwrap(),
        Outcome::Unconfirmed
    );
    assert!(WebhookStore::shop(&store, &shop()).await.unwrap().active);
}

#[tokio::test]
async fn an_uninstall_confirmed_by_a_refused_token_deactivates_the_shop_once() {
    let (svc, store, shopify) = service();
    shopify.refuse_token("shpat_legacy");
    assert_eq!(
        deliver(&svc, "app/uninstalled", &uninstalled_body())
            .await
            .unwrap(),
        Outcome::ShopDeactivated
    );
    let record = WebhookStore::shop(&store, &shop()).await.unwrap();
    assert!(!record.active);
    assert!(record.uninstalled_at_ms.is_some());
    assert_eq!(
        deliver(&svc, "app/uninstalled", &uninstalled_body())
            .await
            .unwrap(),
        Outcome::Duplicate
    );
}

#[tokio::test]
async fn an_uninstall_shopify_cannot_confirm_now_asks_shopify_to_retry() {
    let (svc, store, shopify) = service();
    shopify.script(
        AdminCall::TokenRefused,
        Scripted::Fail(AdminError::Retryable("503".into())),
    );
    let err = deliver(&svc, "app/uninstalled", &uninstalled_body())
        .await
        .unwrap_err();
    assert_eq!(err.status(), 503);
    assert!(WebhookStore::shop(&store, &shop()).await.unwrap().active);
}

#[tokio::test]
async fn shop_redact_deletes_the_shops_orders_only_48_hours_after_a_confirmed_uninstall() {
    let (svc, store, _) = service();
    deliver(&svc, "orders/paid", &order_body(5, "paid"))
        .await
        .unwrap();
    let body = json!({"shop_id": 548_380_009, "shop_domain": shop().to_string()})
        .to_string()
        .into_bytes();

    // Still installed: a redact is not Shopify's.
    assert_eq!(
        deliver(&svc, "shop/redact", &body).await.unwrap(),
        Outcome::Unconfirmed
    );
    assert!(store.stored_order(&shop(), ORDER).is_some());

    // Uninstalled, but less than 48 hours ago.
    store.set_shop(
        &shop(),
        ShopRecord {
            active: false,
            uninstalled_at_ms: Some(now_ms() - REDACT_AFTER_UNINSTALL_MS / 2),
            ..ShopRecord::default()
        },
    );
    assert_eq!(
        deliver(&svc, "shop/redact", &body).await.unwrap(),
        Outcome::Unconfirmed
    );
    assert!(store.stored_order(&shop(), ORDER).is_some());

    store.set_shop(
        &shop(),
        ShopRecord {
            active: false,
            uninstalled_at_ms: Some(now_ms() - REDACT_AFTER_UNINSTALL_MS - 1),
            ..ShopRecord::default()
        },
    );
    assert_eq!(
        deliver(&svc, "shop/redact", &body).await.unwrap(),
        Outcome::ShopRedacted(1)
    );
    assert!(store.stored_order(&shop(), ORDER).is_none());
}

fn id_only_event() -> Value {
    json!({
        "version": "0", "id": "6f1c0b7e-3c1d-4f0a-9d55-000000000002",
        "detail-type": "shopifyWebhook",
        "source": "aws.partner/shopify.com/580111/dropsync-orders",
        "detail": {
            "metadata": {
                "X-Shopify-Topic": "orders/updated",
                "X-Shopify-Shop-Domain": shop().to_string(),
                "X-Shopify-API-Version": "2026-10",
                "X-Shopify-Webhook-Id": "c64557e4-bdd9-4b37-8a5f-000000000002"
            },
            "payload": {"id": ORDER}
        }
    })
}

#[tokio::test]
async fn an_id_only_event_is_fetched_from_shopify_and_applied() {
    let (svc, store, shopify) = service();
    let parsed =
        dropsync_shopify::webhook::parse_order_delivery(&order_body(5, "paid"), &shop()).unwrap();
    shopify.set_facts(&shop(), ORDER, parsed.facts);

    assert_eq!(
        svc.handle_eventbridge(&id_only_event()).await.unwrap(),
        Outcome::Order(ShopifyApplied::Created(OrderStatus::AwaitingOrder))
    );
    assert!(!store.needs_refetch(&shop(), ORDER));
}

#[tokio::test]
async fn an_id_only_event_shopify_cannot_answer_is_kept_for_a_refetch() {
    let (svc, store, shopify) = service();
    shopify.script(
        AdminCall::FetchOrder,
        Scripted::Fail(AdminError::Retryable("timeout".into())),
    );
    assert_eq!(
        svc.handle_eventbridge(&id_only_event()).await.unwrap(),
        Outcome::NeedsRefetch
    );
    assert!(store.needs_refetch(&shop(), ORDER));
    assert!(store.stored_order(&shop(), ORDER).is_none());

    // The next full delivery makes it an order and clears the mark.
    deliver(&svc, "orders/updated", &order_body(5, "paid"))
        .await
        .unwrap();
    assert!(!store.needs_refetch(&shop(), ORDER));
}

#[tokio::test]
async fn an_unsigned_event_not_from_shopifys_partner_source_is_refused() {
    let (svc, store, _) = service();
    let mut event = id_only_event();
    event["source"] = json!("my.own.source");
    let err = svc.handle_eventbridge(&event).await.unwrap_err();
    assert_eq!(err.status(), 401);
    assert!(!store.needs_refetch(&shop(), ORDER));
}
