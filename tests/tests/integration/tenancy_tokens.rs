//! Tenancy and auth of the merchant API, over real HTTP through the local stack's server, as a
//! complement to `api.rs` (which checks, handler-level, that shop A's token gets 403 on each of
//! B's routes): here both shops hold orders with the same ids, linked to AliExpress orders, and
//! every answer and every item is checked — a token sees its own shop's data and nothing else,
//! whatever the path, id or cursor; a manual sync of one shop never syncs another's orders; the
//! admin token sees configured shops only, on every route; and a wrong token of any length is
//! refused, through the constant-time comparison.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests --test integration tenancy_tokens::`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::hostile_support;

use dropsync_app::credentials::Access;
use dropsync_tests::sandbox_post;
use hostile_support::*;
use serde_json::{Value, json};

const FORBIDDEN: &str = "this token may not access this shop";

/// Records order `id` for `shop` (one line `id*10+1`, SKU `SKU-{id}`) through a signed delivery.
async fn deliver_order(stack: &Stack, shop: &ShopSecrets, id: u64) {
    let body = serde_json::to_vec(&order_payload(
        id,
        1,
        "paid",
        &[(id * 10 + 1, 1, &format!("SKU-{id}"))],
        &Customer::unique(),
    ))
    .unwrap();
    let res = stack
        .send(&stack.delivery(&shop.domain, &shop.webhook_secret, "orders/create", &body))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
}

/// Places an AliExpress order in the sandbox for order `id`'s line, ships it, and links it
/// through the API with the admin token; returns the tracking number.
async fn link_shipped(stack: &Stack, shop: &ShopSecrets, id: u64) -> String {
    let created = sandbox_post(
        &stack.ae.base,
        "/_admin/orders",
        json!({"app_key": stack.ae.app_key, "account": stack.ae.account,
               "status": "WAIT_SELLER_SEND_GOODS",
               "items": [{"product_id": "1005006123456789", "sku_id": format!("SKU-{id}"), "count": 1}]}),
    )
    .await;
    let ae = created["order_id"].as_str().unwrap().to_owned();
    let link = json!({"aliexpress_order_id": ae, "line_item_ids": [(id * 10 + 1).to_string()]});
    let res = stack
        .send(&stack.api(
            "PUT",
            &format!("/shops/{}/orders/{id}/supplier-orders", shop.domain),
            Some(&stack.admin_token),
            link.to_string().as_bytes(),
        ))
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    let shipped = sandbox_post(
        &stack.ae.base,
        &format!("/_admin/orders/{ae}/ship"),
        json!({}),
    )
    .await;
    shipped["mail_no"].as_str().unwrap().to_owned()
}

/// Every string in a JSON document.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out);
        }),
        _ => {}
    }
}

#[tokio::test]
async fn a_shops_token_sees_its_own_data_and_nothing_of_another_shop_through_any_route() {
    let stack = Stack::start().await;
    let (a, b) = (stack.a.clone(), stack.b.clone());
    // The same order ids in both shops; B's are linked and shipped.
    for id in [901, 902] {
        deliver_order(&stack, &a, id).await;
        deliver_order(&stack, &b, id).await;
    }
    deliver_order(&stack, &b, 903).await;
    let b_tracking = link_shipped(&stack, &b, 901).await;
    let before = snapshot(&stack).await;
    let b_before = of_shop(&before, &b.domain);

    // Each token, on the other shop's every route: 403 with nothing but the error.
    for (me, other) in [(&a, &b), (&b, &a)] {
        let o = other.domain.as_str();
        for (m, p, body) in [
            (
                "GET",
                format!("/shops/{o}/orders?status=awaiting_order"),
                "",
            ),
            (
                "GET",
                format!("/shops/{o}/orders?status=awaiting_payment"),
                "",
            ),
            ("GET", format!("/shops/{o}/orders/901"), ""),
            ("GET", format!("/shops/{o}/orders/903"), ""),
            ("GET", format!("/shops/{o}/orders/404"), ""),
            (
                "PUT",
                format!("/shops/{o}/orders/902/supplier-orders"),
                r#"{"aliexpress_order_id": "1", "line_item_ids": ["9021"]}"#,
            ),
            ("POST", format!("/shops/{o}/orders/901/sync"), ""),
            ("POST", format!("/shops/{o}/sync"), ""),
            ("GET", format!("/shops/{o}/settings"), ""),
            (
                "PUT",
                format!("/shops/{o}/settings"),
                r#"{"notify_customer": false}"#,
            ),
            // Paths that resolve to the other shop.
            ("GET", format!("/shops/{}/../{o}/settings", me.domain), ""),
            (
                "GET",
                format!("/shops/{}/%2e%2e/{o}/orders/901", me.domain),
                "",
            ),
            (
                "GET",
                format!("/shops/{}/orders", o.to_ascii_uppercase()) + "?status=awaiting_order",
                "",
            ),
        ] {
            let res = stack
                .send(&stack.api(m, &p, Some(&me.api_token), body.as_bytes()))
                .await;
            assert_eq!(
                res.status,
                403,
                "{m} {p} with {}'s token: {}",
                me.domain,
                res.text()
            );
            assert_eq!(res.json().unwrap(), json!({"error": FORBIDDEN}), "{m} {p}");
        }
    }

    // On its own shop, A's token reads A's orders only — never B's, though the ids are B's too.
    let a_dom = a.domain.as_str();
    let mut seen = Vec::new();
    for (path, want) in [
        (format!("/shops/{a_dom}/orders?status=awaiting_order"), 200),
        (
            format!("/shops/{a_dom}/orders?status=awaiting_payment"),
            200,
        ),
        (format!("/shops/{a_dom}/orders/901"), 200),
        (format!("/shops/{a_dom}/orders/903"), 404),
        (format!("/shops/{a_dom}/settings"), 200),
    ] {
        let res = stack
            .send(&stack.api("GET", &path, Some(&a.api_token), b""))
            .await;
        assert_eq!(res.status, want, "{path}: {}", res.text());
        strings(&res.json().unwrap(), &mut seen);
    }
    assert!(
        !seen.iter().any(|s| s.contains(b.domain.as_str())),
        "B's domain in A's answers"
    );
    assert!(
        !seen.contains(&b_tracking),
        "B's tracking number in A's answers"
    );
    // A's tabs hold A's two orders, none linked.
    let res = stack
        .send(&stack.api(
            "GET",
            &format!("/shops/{a_dom}/orders?status=awaiting_order"),
            Some(&a.api_token),
            b"",
        ))
        .await;
    let body = res.json().unwrap();
    let ids: Vec<&str> = body["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{body}");
    assert!(
        body["orders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["shop"] == a_dom)
    );
    assert_eq!(body["counts"]["awaiting_payment"], 0);

    // A's token on A's order 903, which exists only in B: 404 for read, link and sync.
    for (m, p, body) in [
        ("GET", format!("/shops/{a_dom}/orders/903"), ""),
        (
            "PUT",
            format!("/shops/{a_dom}/orders/903/supplier-orders"),
            r#"{"aliexpress_order_id": "5", "line_item_ids": ["9031"]}"#,
        ),
        ("POST", format!("/shops/{a_dom}/orders/903/sync"), ""),
    ] {
        let res = stack
            .send(&stack.api(m, &p, Some(&a.api_token), body.as_bytes()))
            .await;
        assert_eq!(res.status, 404, "{m} {p}: {}", res.text());
    }

    // A manual sync of A (all its open orders, then one order) never syncs B's linked order.
    let res = stack
        .send(&stack.api(
            "POST",
            &format!("/shops/{a_dom}/sync"),
            Some(&a.api_token),
            b"",
        ))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        res.json().unwrap()["orders"],
        0,
        "A has no open supplier order"
    );
    let res = stack
        .send(&stack.api(
            "POST",
            &format!("/shops/{a_dom}/orders/901/sync"),
            Some(&a.api_token),
            b"",
        ))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json().unwrap()["supplier_orders"], json!([]));
    let msgs = stack
        .sqs
        .receive_message()
        .queue_url(&stack.queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    assert!(
        msgs.messages().is_empty(),
        "a push was queued: {:?}",
        msgs.messages()
    );

    // Nothing of B changed, through any of it.
    assert_eq!(of_shop(&snapshot(&stack).await, &b.domain), b_before);
    // And B's own token does see B's tracking, so the check above was not vacuous.
    let res = stack
        .send(&stack.api(
            "POST",
            &format!("/shops/{}/orders/901/sync", b.domain),
            Some(&b.api_token),
            b"",
        ))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        res.json().unwrap()["supplier_orders"][0]["packages"][0]["tracking_number"],
        b_tracking.as_str()
    );
}

#[tokio::test]
async fn the_admin_token_sees_every_configured_shop_and_no_other_on_every_route() {
    let stack = Stack::start().await;
    let before = snapshot(&stack).await;
    for (m, t) in dropsync_api::ROUTES {
        if !t.contains("{shop}") {
            continue;
        }
        let body: &[u8] = match *t {
            "/shops/{shop}/settings" if *m == "PUT" => br#"{"notify_customer": false}"#,
            "/shops/{shop}/orders/{order_id}/supplier-orders" => {
                br#"{"aliexpress_order_id": "1", "line_item_ids": ["1"]}"#
            }
            _ => b"",
        };
        for stranger in [
            "stranger.myshopify.com",
            "hostile-a.myshopify.com",
            "example.myshopify.com",
        ] {
            let p = t
                .replace("{shop}", stranger)
                .replace("{order_id}", "1")
                .replace("{variant_id}", "1")
                + if t.ends_with("/orders") {
                    "?status=pending"
                } else {
                    ""
                };
            let res = stack
                .send(&stack.api(m, &p, Some(&stack.admin_token), body))
                .await;
            assert_eq!(res.status, 403, "{m} {p}: {}", res.text());
            assert_eq!(res.json().unwrap(), json!({"error": FORBIDDEN}));
        }
        // The configured shops: never a 401 or 403.
        for s in [&stack.a, &stack.b] {
            let p = t
                .replace("{shop}", s.domain.as_str())
                .replace("{order_id}", "1")
                .replace("{variant_id}", "1")
                + if t.ends_with("/orders") {
                    "?status=pending"
                } else {
                    ""
                };
            let m = if *m == "PUT" { "GET" } else { m };
            if m == "GET" && t.ends_with("/supplier-orders") {
                continue;
            }
            let res = stack
                .send(&stack.api(m, &p, Some(&stack.admin_token), b""))
                .await;
            assert!(![401, 403].contains(&res.status), "{m} {p}: {}", res.text());
        }
    }
    // The accepted shop syncs of the configured shops record their gate (one sync at a time per
    // shop); nothing else may change.
    let mut after = snapshot(&stack).await;
    // Reading a shop's tabs may store its counter's first count: derived, not a change.
    after.retain(|k, _| !k.ends_with("|SYNCGATE") && !k.ends_with("|TABS"));
    let mut before = before;
    before.retain(|k, _| !k.ends_with("|TABS"));
    assert_eq!(after, before, "a refused request wrote something");
}

/// Tokens near `real`: every shorter prefix, every length up to twice as long (padding with
/// each of a few bytes), every single-byte change, case changes and whitespace around it.
fn near_misses(real: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = real.as_bytes();
    for len in 0..bytes.len() {
        out.push(real[..len].to_owned());
        out.push(real[bytes.len() - len..].to_owned());
    }
    for extra in 1..=bytes.len() + 2 {
        for pad in ["a", "0", "\u{0}", " x"] {
            out.push(format!("{real}{}", pad.repeat(extra)));
        }
        out.push(format!("{}{real}", "z".repeat(extra)));
    }
    for i in 0..bytes.len() {
        for replacement in [b'A', b'_', b'0'] {
            let mut v = bytes.to_vec();
            if v[i] != replacement {
                v[i] = replacement;
                out.push(String::from_utf8(v).unwrap());
            }
        }
    }
    out.push(real.to_ascii_uppercase());
    out.push(format!("{real}\n"));
    out.push(format!("Bearer {real}"));
    out.push("\u{e9}".repeat(bytes.len() / 2));
    out.retain(|t| t != real);
    out
}

#[tokio::test]
async fn wrong_tokens_of_every_length_are_refused() {
    let stack = Stack::start().await;
    let creds = &stack.credentials;
    let (a, b) = (&stack.a, &stack.b);
    // Random tokens of every length up to 4 KB.
    for len in (0..=256).chain([511, 512, 1024, 4096]) {
        let t: String = (0..len).map(|_| fastrand::alphanumeric()).collect();
        for shop in [&a.domain, &b.domain] {
            assert_eq!(
                creds.token_sees(&t, shop),
                Access::Unknown,
                "random token of {len}"
            );
        }
    }
    // Near misses of the admin token and of each shop's token, on every shop.
    for (real, name) in [
        (&stack.admin_token, "admin"),
        (&a.api_token, "A's"),
        (&b.api_token, "B's"),
    ] {
        let misses = near_misses(real);
        assert!(misses.len() > 3 * real.len(), "{}", misses.len());
        for t in &misses {
            for shop in [&a.domain, &b.domain] {
                assert_eq!(
                    creds.token_sees(t, shop),
                    Access::Unknown,
                    "a near miss of the {name} token ({} bytes) was not refused",
                    t.len()
                );
            }
        }
    }
    // The real ones, for contrast.
    assert_eq!(
        creds.token_sees(&stack.admin_token, &b.domain),
        Access::Granted
    );
    assert_eq!(creds.token_sees(&a.api_token, &a.domain), Access::Granted);
    assert_eq!(creds.token_sees(&a.api_token, &b.domain), Access::Forbidden);
    // Other secrets of the document are not tokens.
    for t in [
        &a.access_token,
        &a.webhook_secret,
        &stack.ae.app_secret,
        &stack.ae.access_token,
    ] {
        assert_eq!(creds.token_sees(t, &a.domain), Access::Unknown);
    }
    // And over HTTP, on a merchant route: a sample of lengths, all 401 with the challenge.
    let path = format!("/shops/{}/settings", a.domain);
    let admin = &stack.admin_token;
    let mut flipped = admin.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    for t in [
        String::new(),
        "x".into(),
        admin[..admin.len() - 1].to_owned(),
        String::from_utf8(flipped).unwrap(),
        format!("{admin}x"),
        a.access_token.clone(),
        a.webhook_secret.clone(),
        "t".repeat(4096),
    ] {
        let res = stack.send(&stack.api("GET", &path, Some(&t), b"")).await;
        assert_eq!(res.status, 401, "a {}-byte token: {}", t.len(), res.text());
        assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    }
    assert!(snapshot(&stack).await.is_empty());
}

/// A structural check that `token_sees` compares tokens only through `secrets_equal`, and that
/// `secrets_equal` compares fixed-length digests with `subtle`'s constant-time equality (no early
/// exit): timing cannot be measured reliably here, the shape of the code can.
#[test]
fn tokens_are_compared_only_through_the_constant_time_comparison() {
    let src = include_str!("../../../shared/app/src/credentials.rs");
    let body_of = |name: &str| -> String {
        let start = src
            .find(&format!("fn {name}("))
            .unwrap_or_else(|| panic!("fn {name} not found in credentials.rs"));
        let open = start + src[start..].find('{').unwrap();
        let mut depth = 0;
        for (i, c) in src[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return src[open..=open + i].to_owned();
                    }
                }
                _ => {}
            }
        }
        panic!("unbalanced fn {name}");
    };
    let sees = body_of("token_sees");
    assert!(sees.matches("secrets_equal(").count() >= 2, "{sees}");
    for line in sees.lines().filter(|l| l.contains("token")) {
        for op in [
            "==",
            "!=",
            ".eq(",
            ".cmp(",
            "starts_with",
            "ends_with",
            ".contains(",
            ".find(",
        ] {
            assert!(!line.contains(op), "token compared with {op}: {line}");
        }
    }
    let eq = body_of("secrets_equal");
    // Digests have one length: no early exit at all, so lengths do not leak either.
    assert_eq!(eq.matches("return").count(), 0, "no early exit: {eq}");
    assert!(eq.contains("Sha256::digest"), "compared over digests: {eq}");
    assert!(
        !eq.contains("break") && !eq.contains("all(") && !eq.contains("any("),
        "{eq}"
    );
    assert!(!eq.contains("a == b") && eq.contains(".ct_eq("), "{eq}");
}
