//! Secret and PII hygiene of the logs (logs carry shop and order ids, never
//! secrets, tokens, signatures or customer data).
//!
//! The test runs a realistic flow in a child process of itself, with the production logging
//! (`dropsync_app::init_logging`, JSON on stdout) at `RUST_LOG=trace`, so every event of every
//! crate — dropsync's and its dependencies' — is captured: signed webhooks carrying a customer's
//! name, email, phone and address (from the sandbox Shopify and hand-made), deliveries with bad
//! signatures, merchant API calls with good and wrong tokens, linking, a manual sync and a poll
//! against the sandbox AliExpress (app secret, session token, and a token refresh), and the
//! tracking push to the sandbox Shopify (access token) through the SQS consumer. The parent then
//! fails if any of those secrets or personal strings appears anywhere in the output, and checks
//! that the logs do name the shop and the order (so silence cannot pass).
//!
//! Third-party crates (hyper, the AWS SDK, reqwest, rustls, h2, tower, the Lambda runtime) are
//! capped at INFO by `init_logging` whatever `RUST_LOG` says; the parent checks that none of
//! their DEBUG/TRACE events reached the output.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests --test integration log_hygiene::`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::hostile_support;

use dropsync_aliexpress::TokenStore;
use dropsync_app::push::PushService;
use dropsync_shopify::admin::{AdminClient, AdminConfig};
use dropsync_tests::{sandbox_post, shopify_sandbox};
use hostile_support::*;
use serde_json::{Value, json};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TEST: &str = "log_hygiene::logs_carry_shop_and_order_ids_and_never_a_secret_or_personal_data";
const CHILD: &str = "DROPSYNC_LOG_HYGIENE_OUT";

/// What the child used, for the parent to look for.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Used {
    secrets: Vec<(String, String)>,
    personal: Vec<String>,
    /// (shop, order id) pairs the logs must name.
    orders: Vec<(String, u64)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_shop_and_order_ids_and_never_a_secret_or_personal_data() {
    if let Ok(out) = std::env::var(CHILD) {
        return child(&out).await;
    }
    let dir = std::env::temp_dir().join(unique_name());
    std::fs::create_dir_all(&dir).unwrap();
    let used_path = dir.join("used.json");
    let started = Instant::now();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, &used_path)
        .env("RUST_LOG", "trace")
        .env_remove("AWS_LAMBDA_LOG_LEVEL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "the flow failed ({}):\n{}\n{}",
        output.status,
        tail(&stdout, 60),
        tail(&stderr, 60)
    );
    let used: Used = serde_json::from_slice(&std::fs::read(&used_path).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let all = format!("{stdout}\n{stderr}");

    // Nothing secret or personal, anywhere in the output.
    let mut leaks = Vec::new();
    for (what, value) in used
        .secrets
        .iter()
        .map(|(w, v)| (w.as_str(), v.as_str()))
        .chain(used.personal.iter().map(|p| ("personal data", p.as_str())))
    {
        assert!(value.len() >= 6, "{what} too short to look for: {value:?}");
        if let Some(line) = all.lines().find(|l| l.contains(value)) {
            leaks.push(format!("{what} `{value}` in: {}", short(line)));
        }
    }
    assert!(
        leaks.is_empty(),
        "{} secrets or personal strings in the logs:\n  {}",
        leaks.len(),
        leaks.join("\n  ")
    );

    // The logs are JSON and name the shop and the orders.
    let events: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("level").is_some())
        .collect();
    let with_shop = |shop: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["fields"]["shop"].as_str() == Some(shop))
            .collect()
    };
    // dropsync's own events only (third-party crates are capped below INFO): enough that silence
    // cannot pass, with every order named below.
    assert!(events.len() >= 15, "only {} log events", events.len());
    // At TRACE, third-party crates (hyper, the AWS SDK, reqwest, rustls, h2, tower) print
    // requests, headers and bodies: they are capped at INFO whatever the level. These are
    // messages each of them emits on every request of this flow when uncapped.
    let third_party = [
        "signing request",
        "Http::connect",
        "http1 handshake complete",
        "checkout waiting for idle connection",
        "resolving identity",
        "will apply endpoint",
        "applying client runtime plugins",
    ];
    let verbose: Vec<&Value> = events
        .iter()
        .filter(|e| matches!(e["level"].as_str(), Some("DEBUG" | "TRACE")))
        .collect();
    let uncapped: Vec<String> = verbose
        .iter()
        .filter(|e| {
            let message = e["fields"]["message"].as_str().unwrap_or("");
            message.is_empty() || third_party.iter().any(|m| message.starts_with(m))
        })
        .map(|e| short(&e.to_string()))
        .collect();
    assert!(
        uncapped.is_empty(),
        "{} third-party DEBUG/TRACE events at RUST_LOG=trace, e.g.:\n  {}",
        uncapped.len(),
        uncapped
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    let mut ours = 0;
    for (shop, id) in &used.orders {
        let theirs = with_shop(shop);
        ours += theirs.len();
        let named = theirs.iter().any(|e| {
            let f = &e["fields"];
            f["order_id"].as_u64() == Some(*id) || f["order_id"].as_str() == Some(&id.to_string())
        });
        assert!(
            named,
            "no log event names shop {shop} and order {id}; events with the shop:\n{}",
            theirs
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    eprintln!(
        "log hygiene: {} JSON events ({} naming the shops), {} lines, {} secrets and {} personal \
         strings looked for, in {:.1}s",
        events.len(),
        ours,
        all.lines().count(),
        used.secrets.len(),
        used.personal.len(),
        started.elapsed().as_secs_f64()
    );
}

fn unique_name() -> String {
    format!(
        "dropsync-log-hygiene-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    )
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| short(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asks the sandbox Shopify to deliver a webhook to the stack; returns (status, signature).
async fn sandbox_deliver(base: &str, body: Value) -> (u64, String) {
    let out = sandbox_post(base, "/_admin/webhooks/deliver", body).await;
    let d = &out["deliveries"][0];
    (
        d["status"].as_u64().unwrap_or(0),
        d["hmac"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The flow, in the child process: everything it logs goes to stdout.
async fn child(out: &str) {
    dropsync_app::init_logging();
    // An AliExpress token about to expire: the first call refreshes it (refresh token on the
    // wire, new tokens back).
    let stack = Stack::start_opts(60_000).await;
    let (a, b) = (stack.a.clone(), stack.b.clone());
    let mut used = Used::default();
    let mut secrets: Vec<(String, String)> = Vec::new();
    let mut secret = |what: &str, v: &str| secrets.push((what.to_owned(), v.to_owned()));
    secret("admin token", &stack.admin_token);
    for s in [&a, &b] {
        secret("Shopify access token", &s.access_token);
        secret("webhook secret", &s.webhook_secret);
        secret("API token", &s.api_token);
    }
    secret("AliExpress app secret", &stack.ae.app_secret);
    secret("AliExpress session token", &stack.ae.access_token);
    secret("AliExpress refresh token", &stack.ae.refresh_token);

    let shopify = shopify_sandbox();
    for s in [&a, &b] {
        sandbox_post(
            &shopify,
            "/_admin/shops",
            json!({"shop": s.domain, "access_token": s.access_token,
                   "webhook_secret": s.webhook_secret}),
        )
        .await;
    }
    let admin = Arc::new(
        AdminClient::new(AdminConfig {
            base_override: Some(shopify.clone()),
            ..AdminConfig::default()
        })
        .unwrap(),
    );
    let pusher = Arc::new(PushService {
        store: stack.store.clone(),
        admin,
        credentials: stack.credentials.clone(),
    });
    let consumer = tokio::spawn(dropsync_local::consumer::tracking(
        stack.sqs.clone(),
        stack.queue_url.clone(),
        pusher,
        Some(8),
    ));
    let target = format!("http://{}/webhooks/shopify", stack.addr);
    let mut hmacs = Vec::new();

    // 1. A paid order with the customer's data everywhere Shopify puts it, delivered by the
    //    sandbox Shopify (signed with A's secret), twice; then with a wrong secret, unsigned,
    //    and as orders/updated.
    let customer = Customer::unique();
    let created = sandbox_post(
        &shopify,
        "/_admin/orders",
        json!({"shop": a.domain, "order": {
            "financial_status": "paid", "email": customer.email, "phone": customer.phone,
            "note": format!("Call {} {}", customer.first_name, customer.phone),
            "customer": {"email": customer.email, "first_name": customer.first_name,
                         "last_name": customer.last_name, "phone": customer.phone},
            "shipping_address": customer.address(), "billing_address": customer.address(),
            "line_items": [{"sku": "HYG-LAMP-1", "title": "Camping lamp", "quantity": 1,
                            "price": "19.90"}]}}),
    )
    .await;
    let order_id = created["order"]["id"].as_u64().unwrap();
    let line_id = created["order"]["line_items"][0]["id"].as_u64().unwrap();
    used.orders.push((a.domain.to_string(), order_id));
    for extra in [
        json!({}),
        json!({}),
        json!({"secret": "not-the-secret-0123456789"}),
        json!({"unsigned": true}),
    ] {
        let mut body = json!({"shop": a.domain, "topic": "orders/create", "order_id": order_id,
                              "target_url": target});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, hmac) = sandbox_deliver(&shopify, body).await;
        assert!([200, 401].contains(&status), "{status}");
        if !hmac.is_empty() {
            hmacs.push(hmac);
        }
    }
    // 2. A hand-made delivery for B with another customer, one for B signed with A's secret,
    //    and a compliance request naming the customer.
    let other = Customer::unique();
    let b_order = 7_300_000_000_000_000_001u64;
    used.orders.push((b.domain.to_string(), b_order));
    let body = serde_json::to_vec(&order_payload(
        b_order,
        1,
        "pending",
        &[(b_order + 1, 2, "HYG-X")],
        &other,
    ))
    .unwrap();
    for (secret_used, want) in [(&b.webhook_secret, 200), (&a.webhook_secret, 401)] {
        let req = stack.delivery(&b.domain, secret_used, "orders/create", &body);
        hmacs.push(
            req.headers
                .iter()
                .find(|(k, _)| k == "X-Shopify-Hmac-Sha256")
                .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
                .unwrap(),
        );
        let res = stack.send(&req).await;
        assert_eq!(res.status, want, "{}", res.text());
    }
    let redact = serde_json::to_vec(&json!({"shop_id": 1, "shop_domain": b.domain,
        "customer": {"id": 115_310_627_314_723_954_u64, "email": other.email, "phone": other.phone},
        "orders_to_redact": [b_order]}))
    .unwrap();
    let res = stack
        .send(&stack.delivery(&b.domain, &b.webhook_secret, "customers/redact", &redact))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    // A malformed body from a verified sender: the error must not quote it.
    let bad = format!(
        "{{\"id\": 5, \"email\": \"{}\", \"line_items\": [",
        other.email
    );
    let res = stack
        .send(&stack.delivery(
            &b.domain,
            &b.webhook_secret,
            "orders/updated",
            bad.as_bytes(),
        ))
        .await;
    assert_eq!(res.status, 400);
    let wrong_type = json!({"id": 5, "updated_at": rest_time(1), "line_items": other.address1, "email": other.email});
    let res = stack
        .send(&stack.delivery(
            &b.domain,
            &b.webhook_secret,
            "orders/updated",
            wrong_type.to_string().as_bytes(),
        ))
        .await;
    assert_eq!(res.status, 400);

    // 3. Merchant API calls with tokens, good and wrong.
    let a_dom = a.domain.as_str();
    let mut near = stack.admin_token.clone().into_bytes();
    let last = near.len() - 1;
    near[last] = if near[last] == b'x' { b'y' } else { b'x' };
    let near = String::from_utf8(near).unwrap();
    secret("a near miss of the admin token", &near);
    for (token, want) in [
        (stack.admin_token.as_str(), 200),
        (a.api_token.as_str(), 200),
        (b.api_token.as_str(), 403),
        (near.as_str(), 401),
    ] {
        let res = stack
            .send(&stack.api(
                "GET",
                &format!("/shops/{a_dom}/orders/{order_id}"),
                Some(token),
                b"",
            ))
            .await;
        assert_eq!(res.status, want, "{}", res.text());
        let res = stack
            .send(&stack.api(
                "GET",
                &format!("/shops/{a_dom}/orders?status=awaiting_order"),
                Some(token),
                b"",
            ))
            .await;
        assert_eq!(res.status, want, "{}", res.text());
    }

    // 4. The AliExpress side: an order placed for the line, linked, shipped; a manual sync
    //    (which first refreshes the expiring token) finds the tracking and queues the push.
    let ae_order = sandbox_post(
        &stack.ae.base,
        "/_admin/orders",
        json!({"app_key": stack.ae.app_key, "account": stack.ae.account,
               "status": "WAIT_SELLER_SEND_GOODS",
               "items": [{"product_id": "1005006123456789", "sku_id": "HYG-LAMP-1", "count": 1}]}),
    )
    .await;
    let ae = ae_order["order_id"].as_str().unwrap().to_owned();
    let link = json!({"aliexpress_order_id": ae, "line_item_ids": [line_id.to_string()]});
    let res = stack
        .send(&stack.api(
            "PUT",
            &format!("/shops/{a_dom}/orders/{order_id}/supplier-orders"),
            Some(&a.api_token),
            link.to_string().as_bytes(),
        ))
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    sandbox_post(
        &stack.ae.base,
        &format!("/_admin/orders/{ae}/ship"),
        json!({}),
    )
    .await;
    let res = stack
        .send(&stack.api(
            "POST",
            &format!("/shops/{a_dom}/orders/{order_id}/sync"),
            Some(&stack.admin_token),
            b"",
        ))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let res = stack
        .send(&stack.api(
            "POST",
            &format!("/shops/{a_dom}/sync"),
            Some(&a.api_token),
            b"",
        ))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    // The scheduled poll's path too.
    let report = stack
        .sync
        .poll(None, Instant::now() + Duration::from_secs(30))
        .await
        .unwrap();
    assert!(report.orders >= 1, "{report:?}");

    // 5. The pusher (fed by the SQS consumer) creates the fulfillment in the sandbox Shopify.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let res = stack
            .send(&stack.api(
                "GET",
                &format!("/shops/{a_dom}/orders/{order_id}"),
                Some(&stack.admin_token),
                b"",
            ))
            .await;
        let o = res.json().unwrap();
        if o["supplier_orders"][0]["packages"][0]["pushed_to_shopify"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the package was never pushed: {o}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let stats = dropsync_tests::sandbox_get(&shopify, &format!("/_admin/stats?shop={a_dom}")).await;
    assert_eq!(stats["fulfillments_created"], 1, "{stats}");
    consumer.abort();

    // The tokens the refresh brought.
    let refreshed = stack
        .ae_tokens
        .load(&stack.ae.app_key)
        .await
        .unwrap()
        .expect("the expiring AliExpress token was refreshed");
    assert_ne!(refreshed.access_token, stack.ae.access_token);
    let mut secret = |what: &str, v: &str| secrets.push((what.to_owned(), v.to_owned()));
    secret(
        "refreshed AliExpress session token",
        &refreshed.access_token,
    );
    secret(
        "refreshed AliExpress refresh token",
        &refreshed.refresh_token,
    );
    for h in &hmacs {
        secret("X-Shopify-Hmac-Sha256 value", h);
    }
    used.secrets = secrets;
    for c in [&customer, &other] {
        used.personal.extend(c.strings());
    }
    std::fs::write(out, serde_json::to_vec(&used).unwrap()).unwrap();
}
