//! Tenancy on the webhook route, over real HTTP through the local stack's server: a shop's
//! webhook secret verifies deliveries for that shop only, a verified delivery writes under its
//! own shop's keys only, and `shop/redact` of one shop leaves every other shop's data intact.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests --test integration tenancy_webhooks::`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::hostile_support;

use hostile_support::*;
use serde_json::json;

fn order_body(id: u64, updated: u32, lines: &[(u64, u32, &str)]) -> Vec<u8> {
    serde_json::to_vec(&order_payload(
        id,
        updated,
        "paid",
        lines,
        &Customer::unique(),
    ))
    .unwrap()
}

/// Records an order for `shop` through a signed delivery; panics unless it is accepted.
async fn deliver_order(stack: &Stack, shop: &ShopSecrets, id: u64, updated: u32) {
    let body = order_body(id, updated, &[(id * 10 + 1, 1, "SKU-1")]);
    let res = stack
        .send(&stack.delivery(&shop.domain, &shop.webhook_secret, "orders/create", &body))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
}

#[tokio::test]
async fn a_shops_webhook_secret_never_verifies_a_delivery_for_another_shop() {
    let stack = Stack::start().await;
    let (a, b) = (&stack.a, &stack.b);
    // Both shops hold an order, so "nothing changed" is about real data.
    deliver_order(&stack, a, 500, 1).await;
    deliver_order(&stack, b, 600, 1).await;
    let before = snapshot(&stack).await;
    assert_eq!(of_shop(&before, &a.domain).len(), 1);
    assert_eq!(of_shop(&before, &b.domain).len(), 1);

    let customer = Customer::unique();
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "orders/create",
            serde_json::to_vec(&order_payload(601, 5, "paid", &[(6011, 1, "X")], &customer))
                .unwrap(),
        ),
        (
            "orders/updated",
            serde_json::to_vec(&order_payload(
                600,
                9,
                "refunded",
                &[(6001, 1, "X")],
                &customer,
            ))
            .unwrap(),
        ),
        (
            "orders/cancelled",
            serde_json::to_vec(&{
                let mut o = order_payload(600, 9, "refunded", &[(6001, 1, "X")], &customer);
                o["cancelled_at"] = json!(rest_time(9));
                o
            })
            .unwrap(),
        ),
        (
            "app/uninstalled",
            serde_json::to_vec(&json!({"id": 1, "domain": b.domain})).unwrap(),
        ),
        (
            "shop/redact",
            serde_json::to_vec(&json!({"shop_id": 1, "shop_domain": b.domain})).unwrap(),
        ),
        (
            "customers/redact",
            serde_json::to_vec(&json!({"shop_id": 1, "shop_domain": b.domain,
                "customer": {"id": 1}, "orders_to_redact": [600]}))
            .unwrap(),
        ),
    ];
    for (topic, body) in &bodies {
        // Addressed to B, signed with A's secret (and, to be thorough, with A's header casing
        // and A's access token as the secret, which is also not B's secret).
        for signing_key in [&a.webhook_secret, &a.access_token, &a.api_token] {
            let res = stack
                .send(&stack.delivery(&b.domain, signing_key, topic, body))
                .await;
            assert_eq!(
                res.status,
                401,
                "{topic} for B signed with A's key: {}",
                res.text()
            );
            assert_eq!(res.json().unwrap()["error"], "unauthorized");
        }
        // And the other way round: addressed to A, signed with B's secret.
        let res = stack
            .send(&stack.delivery(&a.domain, &b.webhook_secret, topic, body))
            .await;
        assert_eq!(res.status, 401, "{topic} for A signed with B's secret");
    }
    assert_eq!(
        snapshot(&stack).await,
        before,
        "a refused delivery wrote something"
    );
}

#[tokio::test]
async fn a_verified_delivery_for_one_shop_never_touches_another_shops_items() {
    let stack = Stack::start().await;
    let (a, b) = (&stack.a, &stack.b);
    // B has order 700; A receives deliveries for an order with the same id, and B's domain
    // wherever a payload can name one.
    deliver_order(&stack, b, 700, 1).await;
    let b_before = of_shop(&snapshot(&stack).await, &b.domain);
    let mut body = order_payload(700, 2, "paid", &[(7001, 3, "SKU-A")], &Customer::unique());
    body["order_status_url"] = json!(format!("https://{}/orders/700", b.domain));
    body["source_url"] = json!(format!("https://{}/admin", b.domain));
    body["shop"] = json!(b.domain);
    let body = serde_json::to_vec(&body).unwrap();
    // The order status URL names B: a body that names a shop must name the header's.
    for topic in ["orders/create", "orders/paid", "orders/updated"] {
        let res = stack
            .send(&stack.delivery(&a.domain, &a.webhook_secret, topic, &body))
            .await;
        assert_eq!(res.status, 400, "{topic}: {}", res.text());
    }
    assert_eq!(of_shop(&snapshot(&stack).await, &b.domain), b_before);
    let mut body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    body["order_status_url"] = json!(format!("https://{}/orders/700", a.domain));
    let body = serde_json::to_vec(&body).unwrap();
    for topic in ["orders/create", "orders/paid", "orders/updated"] {
        let res = stack
            .send(&stack.delivery(&a.domain, &a.webhook_secret, topic, &body))
            .await;
        assert_eq!(res.status, 200, "{topic}: {}", res.text());
    }
    let after = snapshot(&stack).await;
    assert_eq!(of_shop(&after, &b.domain), b_before, "B's items changed");
    let a_items = of_shop(&after, &a.domain);
    assert_eq!(a_items.len(), 1, "{:?}", a_items.keys());
    assert!(
        a_items
            .keys()
            .all(|k| k.starts_with(&format!("SHOP#{}#ORDER#700|", a.domain)))
    );
    // Each shop's tab counter (`SHOP#{shop}|TABS`) is its own, left out of `of_shop`.
    assert_eq!(
        after.keys().filter(|k| !k.ends_with("|TABS")).count(),
        a_items.len() + b_before.len(),
        "items outside both shops"
    );
    // B's order still reads as B's (its line item, not the one A's delivery carried).
    let b_order = stack
        .store
        .get_order(&b.domain, 700)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b_order.order.shopify.line_items[0].id, 7001);
    assert_eq!(b_order.order.shopify.line_items[0].quantity, 1);
    let a_order = stack
        .store
        .get_order(&a.domain, 700)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a_order.order.shopify.line_items[0].quantity, 3);

    // A compliance delivery for A that names B in its body is refused, nothing written.
    let before = snapshot(&stack).await;
    for topic in ["shop/redact", "customers/redact", "customers/data_request"] {
        let body = serde_json::to_vec(&json!({"shop_id": 1, "shop_domain": b.domain,
            "customer": {"id": 1}, "orders_to_redact": [700], "orders_requested": [700]}))
        .unwrap();
        let res = stack
            .send(&stack.delivery(&a.domain, &a.webhook_secret, topic, &body))
            .await;
        assert_eq!(res.status, 400, "{topic}: {}", res.text());
    }
    assert_eq!(snapshot(&stack).await, before);

    // A's app/uninstalled naming B is refused; naming A, it cannot be confirmed by this stack
    // (no Shopify client): 503 for Shopify to retry, and nothing changes for either shop.
    for (named, want) in [(&b.domain, 400), (&a.domain, 503)] {
        let body =
            serde_json::to_vec(&json!({"id": 1, "domain": "a.example", "myshopify_domain": named}))
                .unwrap();
        let res = stack
            .send(&stack.delivery(&a.domain, &a.webhook_secret, "app/uninstalled", &body))
            .await;
        assert_eq!(res.status, want, "{}", res.text());
    }
    assert!(stack.store.get_shop(&a.domain).await.unwrap().active);
    assert!(stack.store.get_shop(&b.domain).await.unwrap().active);
    assert_eq!(of_shop(&snapshot(&stack).await, &b.domain), b_before);
}

#[tokio::test]
async fn shop_redact_of_one_shop_leaves_the_other_shop_intact() {
    let stack = Stack::start().await;
    let (a, b) = (&stack.a, &stack.b);
    for id in [800, 801, 802] {
        deliver_order(&stack, a, id, 1).await;
        deliver_order(&stack, b, id, 1).await;
    }
    // Both have settings of their own, and B an order in another tab.
    for (s, notify) in [(a, false), (b, false)] {
        let res = stack
            .send(&stack.api(
                "PUT",
                &format!("/shops/{}/settings", s.domain),
                Some(&s.api_token),
                json!({"notify_customer": notify}).to_string().as_bytes(),
            ))
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
    }
    let cancelled = {
        let mut o = order_payload(803, 2, "refunded", &[(8031, 1, "X")], &Customer::unique());
        o["cancelled_at"] = json!(rest_time(2));
        serde_json::to_vec(&o).unwrap()
    };
    let res = stack
        .send(&stack.delivery(&b.domain, &b.webhook_secret, "orders/cancelled", &cancelled))
        .await;
    assert_eq!(res.status, 200);
    let before = snapshot(&stack).await;
    let b_before = of_shop(&before, &b.domain);
    assert!(b_before.len() >= 5, "{:?}", b_before.keys());

    // Shopify sends shop/redact 48 h after a (confirmed) uninstall.
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 49 * 3600 * 1000;
    stack.store.mark_uninstalled(&a.domain, at).await.unwrap();
    let before = snapshot(&stack).await;
    let b_before = of_shop(&before, &b.domain);
    let body = serde_json::to_vec(&json!({"shop_id": 1, "shop_domain": a.domain})).unwrap();
    let res = stack
        .send(&stack.delivery(&a.domain, &a.webhook_secret, "shop/redact", &body))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());

    let after = snapshot(&stack).await;
    // A's orders and settings are gone (only the delivery's dedupe record may remain).
    let a_left: Vec<String> = of_shop(&after, &a.domain)
        .into_keys()
        .filter(|k| !k.contains("#WEBHOOK#"))
        .collect();
    assert!(
        a_left.is_empty(),
        "A's data survived its redact: {a_left:?}"
    );
    for id in [800, 801, 802] {
        assert!(
            stack
                .store
                .get_order(&a.domain, id)
                .await
                .unwrap()
                .is_none()
        );
    }
    // B: every item exactly as before.
    assert_eq!(of_shop(&after, &b.domain), b_before);
    for id in [800, 801, 802, 803] {
        assert!(
            stack
                .store
                .get_order(&b.domain, id)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert!(
        !stack
            .store
            .get_shop(&b.domain)
            .await
            .unwrap()
            .settings
            .notify_customer
    );
    // And through the API, B's tabs still list its orders.
    let res = stack
        .send(&stack.api(
            "GET",
            &format!("/shops/{}/orders?status=awaiting_order", b.domain),
            Some(&b.api_token),
            b"",
        ))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json().unwrap()["orders"].as_array().unwrap().len(), 3);
}
