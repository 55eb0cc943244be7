//! Replays of captured, correctly signed deliveries under forged headers. Shopify's HMAC covers
//! the body only: `X-Shopify-Topic`, `X-Shopify-Shop-Domain` and `X-Shopify-Webhook-Id` can be
//! changed by whoever captured a delivery. Every body of every topic dropsync handles, replayed
//! under every topic, both shops and a fresh webhook id, must change nothing, both when each
//! shop has its own secret and when one secret (the app's client secret) signs every shop.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests --test integration webhook_replay::`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::webhook_support;

use dropsync_tests::{fresh_store, sandbox_post, shopify_sandbox, unique};
use serde_json::{Value, json};
use webhook_support::*;

const TOPICS: [&str; 10] = dropsync_tests::HANDLED_TOPICS;

struct Shop {
    domain: String,
    secret: String,
}

/// Two shops the sandbox Shopify knows (their tokens are valid, so an uninstall is not
/// confirmed), served by one webhook service.
async fn setup(shared_secret: bool) -> (dropsync_store::Store, WebhookService, Shop, Shop) {
    let store = fresh_store().await;
    let common = unique("shpss_app_");
    let mut doc = json!({"admin_token": "admin-token-0123456789abcdef", "shops": {}});
    let mut shops = Vec::new();
    for _ in 0..2 {
        let domain = format!("{}.myshopify.com", unique("replay"));
        let token = unique("shpat_replay_");
        let secret = if shared_secret {
            common.clone()
        } else {
            unique("shpss_")
        };
        sandbox_post(
            &shopify_sandbox(),
            "/_admin/shops",
            json!({"shop": domain, "access_token": token}),
        )
        .await;
        doc["shops"][&domain] = json!({"access_token": token, "webhook_secrets": [secret]});
        shops.push(Shop { domain, secret });
    }
    let svc = service_with(store.clone(), dropsync_tests::credentials(doc));
    let b = shops.pop().unwrap();
    let a = shops.pop().unwrap();
    (store, svc, a, b)
}

type WebhookService = dropsync_app::webhook::WebhookService<dropsync_shopify::admin::AdminClient>;

/// The body Shopify sends for `topic` about `shop` (orders at increasing `updated_at`, so each
/// is applied when delivered genuinely).
fn body_of(topic: &str, shop: &str, i: u32) -> Vec<u8> {
    let v: Value = match topic {
        "app/uninstalled" => json!({"id": 548_380_009, "name": "Example", "domain": "example.com",
            "myshopify_domain": shop, "email": "owner@example.com",
            "created_at": ts(0), "updated_at": ts(0)}),
        "customers/data_request" => json!({"shop_id": 954_889, "shop_domain": shop,
            "orders_requested": [ORDER], "customer": {"id": 191_167, "email": "john@example.com"},
            "data_request": {"id": 9999}}),
        "customers/redact" => json!({"shop_id": 954_889, "shop_domain": shop,
            "customer": {"id": 191_167, "email": "john@example.com"}, "orders_to_redact": [ORDER]}),
        "shop/redact" => json!({"shop_id": 954_889, "shop_domain": shop}),
        _ => {
            let mut o = order(ORDER, i * 10, "paid", &[(LINE_A, 2), (LINE_B, 1)]);
            o["order_status_url"] = json!(format!(
                "https://{shop}/954889/orders/abc/authenticate?key=k"
            ));
            match topic {
                "orders/create" => o["financial_status"] = json!("pending"),
                "orders/cancelled" => o["cancelled_at"] = json!(ts(i * 10)),
                "orders/fulfilled" => {
                    o["fulfillments"] = json!([fulfillment(
                        1,
                        "1Z999AA10123456784",
                        &[(LINE_A, 2), (LINE_B, 1)]
                    )]);
                    o["fulfillment_status"] = json!("fulfilled");
                }
                "orders/partially_fulfilled" => {
                    o["fulfillments"] =
                        json!([fulfillment(2, "1Z999AA10123456795", &[(LINE_A, 1)])]);
                    o["fulfillment_status"] = json!("partial");
                }
                _ => {}
            }
            o
        }
    };
    shopify_bytes(&v)
}

fn headers(topic: &str, shop: &str, secret: &str, body: &[u8], id: &str) -> Vec<(String, String)> {
    with_header(
        signed_headers(topic, shop, secret, body),
        "X-Shopify-Webhook-Id",
        id,
    )
}

async fn replay_matrix(shared_secret: bool) {
    let (store, svc, a, b) = setup(shared_secret).await;
    // Genuine deliveries for A, each topic once, and an order of B's.
    let mut captured = Vec::new();
    for (i, topic) in TOPICS.iter().enumerate() {
        let body = body_of(topic, &a.domain, i as u32 + 1);
        let (status, v) = deliver(
            &svc,
            &headers(topic, &a.domain, &a.secret, &body, &unique("w")),
            &body,
        )
        .await;
        assert_eq!(status, 200, "genuine {topic}: {v}");
        captured.push((*topic, body));
    }
    let theirs = body_of("orders/paid", &b.domain, 1);
    let (status, _) = deliver(
        &svc,
        &headers("orders/paid", &b.domain, &b.secret, &theirs, &unique("w")),
        &theirs,
    )
    .await;
    assert_eq!(status, 200);
    let a_shop = shop_domain(&a.domain);
    assert!(
        store.get_shop(&a_shop).await.unwrap().active,
        "an unconfirmed uninstall"
    );
    assert!(
        store.get_order(&a_shop, ORDER).await.unwrap().is_some(),
        "an unconfirmed redact"
    );
    let before = snapshot(&store).await;

    // Every captured body (signed as captured: same bytes, same HMAC) under every topic, both
    // shop headers and a fresh webhook id.
    let mut replays = 0;
    for (captured_topic, body) in &captured {
        let hmac = shopify_hmac(&a.secret, body);
        for topic in TOPICS {
            for shop in [&a.domain, &b.domain] {
                let h = with_header(
                    headers(topic, shop, &a.secret, body, &unique("forged")),
                    "X-Shopify-Hmac-Sha256",
                    &hmac,
                );
                let (status, v) = deliver(&svc, &h, body).await;
                assert!(
                    matches!(status, 200 | 400 | 401),
                    "{captured_topic} replayed as {topic} for {shop}: {status} {v}"
                );
                replays += 1;
            }
        }
    }
    assert_eq!(replays, 10 * 10 * 2);
    assert_eq!(
        snapshot(&store).await,
        before,
        "a replay with forged headers changed the table"
    );
}

#[tokio::test]
async fn signed_bodies_replayed_under_every_topic_shop_and_id_change_nothing_with_per_shop_secrets()
{
    replay_matrix(false).await;
}

#[tokio::test]
async fn signed_bodies_replayed_under_every_topic_shop_and_id_change_nothing_with_one_app_secret() {
    replay_matrix(true).await;
}

#[tokio::test]
async fn an_uninstall_is_acted_on_only_once_shopify_refuses_the_token_and_a_redact_only_48_hours_later()
 {
    let (store, svc, a, _) = setup(false).await;
    let shop = shop_domain(&a.domain);
    let order_body = body_of("orders/paid", &a.domain, 1);
    let send = |topic: &'static str, body: Vec<u8>| {
        let h = headers(topic, &a.domain, &a.secret, &body, &unique("w"));
        let svc = &svc;
        async move { deliver(svc, &h, &body).await }
    };
    assert_eq!(send("orders/paid", order_body).await.0, 200);
    // Shopify still accepts the token: not uninstalled.
    assert_eq!(
        send("app/uninstalled", body_of("app/uninstalled", &a.domain, 0))
            .await
            .0,
        200
    );
    assert!(store.get_shop(&shop).await.unwrap().active);
    // Shopify revokes the token (the sandbox forgets it): now confirmed.
    sandbox_post(
        &shopify_sandbox(),
        "/_admin/shops",
        json!({"shop": a.domain, "access_token": unique("shpat_new_")}),
    )
    .await;
    assert_eq!(
        send("app/uninstalled", body_of("app/uninstalled", &a.domain, 0))
            .await
            .0,
        200
    );
    let rec = store.get_shop(&shop).await.unwrap();
    assert!(!rec.active && rec.uninstalled_at_ms.is_some());
    // A redact right after the uninstall is not Shopify's (it waits 48 h): nothing deleted.
    assert_eq!(
        send("shop/redact", body_of("shop/redact", &a.domain, 0))
            .await
            .0,
        200
    );
    assert!(store.get_order(&shop, ORDER).await.unwrap().is_some());
    // 48 h after the uninstall, the redact deletes the shop's orders.
    store.mark_uninstalled(&shop, 0).await.unwrap();
    store.set_active(&shop, true).await.unwrap();
    assert_eq!(
        store.get_shop(&shop).await.unwrap().uninstalled_at_ms,
        None,
        "a reconnect forgets the uninstall"
    );
    store
        .mark_uninstalled(&shop, ms_hours_ago(48))
        .await
        .unwrap();
    assert_eq!(
        send("shop/redact", body_of("shop/redact", &a.domain, 0))
            .await
            .0,
        200
    );
    assert!(store.get_order(&shop, ORDER).await.unwrap().is_none());
}

/// With one secret signing every shop, an order body that does not name its shop (its status URL
/// on the shop's own custom domain, as most are) replayed under another shop's header creates
/// nothing: before creating state, the order is confirmed with Shopify for the header's shop,
/// which does not know it. The genuine delivery is confirmed the same way and applied.
#[tokio::test]
async fn a_body_naming_no_shop_replayed_under_another_shops_header_is_refused_once_shopify_does_not_know_it()
 {
    let (store, svc, a, b) = setup(true).await;
    assert_eq!(a.secret, b.secret, "one secret signs both shops");
    let created = sandbox_post(
        &shopify_sandbox(),
        "/_admin/orders",
        json!({"shop": a.domain, "order": {"name": "#7001", "financial_status": "paid",
            "line_items": [{"sku": "SKU-R", "title": "Mug", "quantity": 1, "price": "9.50"}]}}),
    )
    .await;
    let mut order = created["order"].clone();
    order["order_status_url"] =
        json!("https://shop.example.com/954889/orders/abc/authenticate?key=k");
    let id: u64 = order["id"]
        .as_u64()
        .or_else(|| order["id"].as_str().and_then(|s| s.parse().ok()))
        .unwrap();
    let body = shopify_bytes(&order);
    let before = snapshot(&store).await;
    for topic in TOPICS.iter().take(6) {
        let (status, v) = deliver(
            &svc,
            &headers(topic, &b.domain, &a.secret, &body, &unique("forged")),
            &body,
        )
        .await;
        assert!(matches!(status, 200 | 400), "{topic}: {status} {v}");
    }
    assert_eq!(
        snapshot(&store).await,
        before,
        "a replay under another shop's header created state"
    );
    let (status, v) = deliver(
        &svc,
        &headers("orders/paid", &a.domain, &a.secret, &body, &unique("w")),
        &body,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(
        store
            .get_order(&shop_domain(&a.domain), id)
            .await
            .unwrap()
            .is_some(),
        "the genuine delivery is applied"
    );
    assert!(
        store
            .get_order(&shop_domain(&b.domain), id)
            .await
            .unwrap()
            .is_none()
    );
}
