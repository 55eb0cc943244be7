//! Deliveries signed by the sandbox Shopify (Python, independent of dropsync's code) over real
//! HTTP to the webhook handler, served as API Gateway serves it (the local stack's server: the
//! request becomes an API Gateway v2 event, decoded by lambda_http as on Lambda). The test signs
//! nothing itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::webhook_support;

use dropsync_app::webhook::WebhookService;
use dropsync_domain::{OrderStatus, ShopDomain};
use dropsync_shopify::admin::AdminClient;
use dropsync_store::Store;
use dropsync_tests::{fresh_store, sandbox_get, sandbox_post, shopify_sandbox, unique};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use webhook_support::*;

struct Hook(WebhookService<AdminClient>);

impl dropsync_local::server::Handler for Hook {
    async fn call(&self, req: Request) -> Response<Body> {
        dropsync_shopify_webhook::handle_request(&self.0, req).await
    }
}

/// The webhook function on a loopback port; its URL.
async fn serve(svc: WebhookService<AdminClient>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{PATH}", listener.local_addr().unwrap());
    tokio::spawn(dropsync_local::server::serve(listener, Arc::new(Hook(svc))));
    url
}

struct Setup {
    store: Store,
    shop: String,
    domain: ShopDomain,
    target: String,
}

/// A sandbox shop with its secrets (current, previous), a fresh table, and the function serving
/// that shop with the same secrets.
async fn setup(extra: Value) -> Setup {
    let store = fresh_store().await;
    let shop = format!("{}.myshopify.com", unique("sbx"));
    let (current, previous) = (
        format!("shpss_{}", unique("cur")),
        format!("shpss_{}", unique("prev")),
    );
    let mut cfg = json!({"shop": shop, "access_token": format!("shpat_{}", unique("t")),
        "webhook_secret": current, "previous_webhook_secret": previous});
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let svc = service_with(
        store.clone(),
        credentials(&[(&shop, &[&current, &previous])]),
    );
    let target = serve(svc).await;
    if cfg.get("webhook_subscriptions").is_some() {
        for sub in cfg["webhook_subscriptions"].as_array_mut().unwrap() {
            sub["target_url"] = json!(target);
        }
    }
    sandbox_post(&shopify_sandbox(), "/_admin/shops", cfg).await;
    Setup {
        store,
        domain: shop_domain(&shop),
        shop,
        target,
    }
}

impl Setup {
    async fn create_order(&self, order: Value) -> (u64, Vec<u64>) {
        let created = sandbox_post(
            &shopify_sandbox(),
            "/_admin/orders",
            json!({"shop": self.shop, "order": order}),
        )
        .await;
        let id = created["order"]["id"].as_u64().unwrap();
        let lines = created["order"]["line_items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_u64().unwrap())
            .collect();
        (id, lines)
    }

    /// `/_admin/webhooks/deliver` with these options: the statuses the function answered.
    async fn deliver(&self, topic: &str, options: Value) -> Vec<(u16, Value)> {
        let mut req = json!({"shop": self.shop, "topic": topic, "target_url": self.target});
        for (k, v) in options.as_object().unwrap() {
            req[k] = v.clone();
        }
        let res = sandbox_post(&shopify_sandbox(), "/_admin/webhooks/deliver", req).await;
        res["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let status = u16::try_from(d["status"].as_u64().unwrap()).unwrap();
                let body = serde_json::from_str(d["body"].as_str().unwrap_or("null"))
                    .unwrap_or(Value::Null);
                (status, body)
            })
            .collect()
    }

    async fn order(&self, id: u64) -> dropsync_store::StoredOrder {
        self.store
            .get_order(&self.domain, id)
            .await
            .unwrap()
            .unwrap()
    }
}

fn all_ok(res: &[(u16, Value)]) -> bool {
    !res.is_empty()
        && res
            .iter()
            .all(|(s, b)| *s == 200 && *b == json!({"ok": true}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_from_the_sandbox_shopify_drive_an_order_through_its_topics() {
    let s = setup(json!({})).await;
    // Slashes, ampersands and angle brackets: Shopify escapes them inside the signed bytes.
    let (id, lines) = s
        .create_order(json!({"name": "#3001", "financial_status": "pending", "note": "a/b & c <fragile>",
            "tags": "gift/wrap & ribbon",
            "line_items": [{"sku": "MUG/BLUE", "title": "Mug & saucer", "quantity": 2, "price": "9.50"},
                           {"sku": "TEA-1", "title": "Tea", "quantity": 1, "price": "4.00"}]}))
        .await;
    let o = json!({"order_id": id.to_string()});
    assert!(all_ok(&s.deliver("orders/create", o.clone()).await));
    let first = s.order(id).await;
    assert_eq!(first.order.status, OrderStatus::Pending);
    assert_eq!(
        first
            .order
            .shopify
            .line_items
            .iter()
            .map(|l| l.id)
            .collect::<Vec<_>>(),
        lines
    );

    // Duplicates: the same webhook id three times, then new ids (a second subscription).
    let wid = json!({"order_id": id.to_string(), "times": 3, "webhook_id": "b54557e4-0000-4000-8000-000000000001"});
    assert!(all_ok(&s.deliver("orders/create", wid).await));
    assert!(all_ok(
        &s.deliver(
            "orders/updated",
            json!({"order_id": id.to_string(), "times": 2, "new_webhook_id_each": true})
        )
        .await
    ));
    assert_eq!(
        s.order(id).await,
        first,
        "no write for what is already stored"
    );

    sandbox_post(
        &shopify_sandbox(),
        &format!("/_admin/orders/{id}/update"),
        json!({"shop": s.shop, "financial_status": "paid"}),
    )
    .await;
    // HTTP/2-style lower-case header names.
    assert!(all_ok(
        &s.deliver(
            "orders/paid",
            json!({"order_id": id.to_string(), "lowercase_headers": true})
        )
        .await
    ));
    let paid = s.order(id).await;
    assert_eq!(paid.order.status, OrderStatus::AwaitingOrder);
    assert_eq!(paid.version, first.version + 1);

    sandbox_post(
        &shopify_sandbox(),
        &format!("/_admin/orders/{id}/fulfill"),
        json!({"shop": s.shop,
        "tracking_number": "1Z999AA10123456784", "company": "UPS",
        "line_items": [{"line_item_id": lines[0].to_string(), "quantity": 1}]}),
    )
    .await;
    assert!(all_ok(
        &s.deliver("orders/partially_fulfilled", o.clone()).await
    ));
    let partial = s.order(id).await;
    assert_eq!(
        partial
            .order
            .shopify
            .line_items
            .iter()
            .map(|l| l.fulfilled_quantity)
            .collect::<Vec<_>>(),
        vec![1, 0]
    );
    assert_eq!(
        partial.order.shopify.fulfillment_tracking,
        vec!["1Z999AA10123456784"]
    );

    sandbox_post(
        &shopify_sandbox(),
        &format!("/_admin/orders/{id}/update"),
        json!({"shop": s.shop, "cancelled_at": true, "cancel_reason": "customer"}),
    )
    .await;
    assert!(all_ok(&s.deliver("orders/cancelled", o).await));
    assert_eq!(s.order(id).await.order.status, OrderStatus::Canceled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandboxs_forged_and_unsigned_deliveries_are_refused_and_its_previous_secret_is_accepted()
 {
    let s = setup(json!({})).await;
    let (id, _) = s
        .create_order(
            json!({"financial_status": "paid", "line_items": [{"sku": "A", "quantity": 1}]}),
        )
        .await;
    let o = |extra: Value| {
        let mut v = json!({"order_id": id.to_string()});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    for bad in [
        json!({"secret": "shpss_not_this_one"}),
        json!({"unsigned": true}),
    ] {
        let res = s.deliver("orders/create", o(bad.clone())).await;
        assert_eq!(res, vec![(401, json!({"error": "unauthorized"}))], "{bad}");
    }
    // Signed with the shop's secret, but claiming another shop (tenancy).
    let res = s
        .deliver(
            "orders/create",
            o(json!({"extra_headers": {"X-Shopify-Shop-Domain": "someone-else.myshopify.com"}})),
        )
        .await;
    assert_eq!(res, vec![(401, json!({"error": "unauthorized"}))]);
    assert_eq!(item_count(&s.store).await, 0);

    // The previous secret, during a rotation.
    assert!(all_ok(
        &s.deliver("orders/create", o(json!({"use_previous_secret": true})))
            .await
    ));
    assert_eq!(s.order(id).await.order.status, OrderStatus::AwaitingOrder);

    // Raw bytes as given (Shopify's documented vector body), signed by the sandbox: verified, then refused
    // for what they are, not for their signature.
    let raw = r##"{"id":820982911946154508,"name":"#9999","note":"a\/b \u0026 c"}"##;
    let res = s.deliver("orders/create", json!({"body": raw})).await;
    assert_eq!(res[0].0, 400, "{res:?}");
    let res = s.deliver("app/uninstalled", json!({"body": raw})).await;
    assert_eq!(res[0].0, 400, "{res:?}");
    assert!(s.store.get_shop(&s.domain).await.unwrap().active);
    // A compliance request the sandbox signs.
    let redact = json!({"shop_id": 1, "shop_domain": s.shop, "customer": {"id": 5, "email": "x@example.com"}, "orders_to_redact": [id]});
    assert!(all_ok(
        &s.deliver("customers/redact", json!({"body": redact})).await
    ));
    // Shopify redacts 48 h after an uninstall.
    s.store
        .mark_uninstalled(&s.domain, dropsync_tests::now_ms() - 49 * 3600 * 1000)
        .await
        .unwrap();
    assert!(all_ok(
        &s.deliver(
            "shop/redact",
            json!({"body": {"shop_id": 1, "shop_domain": s.shop}})
        )
        .await
    ));
    assert!(s.store.get_order(&s.domain, id).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandboxs_own_subscriptions_deliver_the_order_events_and_each_is_answered_200() {
    let topics = [
        "orders/create",
        "orders/paid",
        "orders/updated",
        "orders/cancelled",
        "orders/fulfilled",
        "orders/partially_fulfilled",
        "fulfillments/create",
    ];
    let subs: Vec<Value> = topics
        .iter()
        .map(|t| json!({"topic": t, "target_url": ""}))
        .collect();
    let s = setup(json!({"webhook_subscriptions": subs})).await;
    let (id, lines) = s
        .create_order(json!({"financial_status": "pending",
        "line_items": [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}]}))
        .await;
    sandbox_post(
        &shopify_sandbox(),
        &format!("/_admin/orders/{id}/update"),
        json!({"shop": s.shop, "financial_status": "paid"}),
    )
    .await;
    sandbox_post(
        &shopify_sandbox(),
        &format!("/_admin/orders/{id}/fulfill"),
        json!({"shop": s.shop,
        "tracking_number": "YT2600000000000001", "company": "YunExpress"}),
    )
    .await;

    let log = sandbox_get(
        &shopify_sandbox(),
        &format!("/_admin/webhooks/log?shop={}", s.shop),
    )
    .await;
    let deliveries = log["deliveries"].as_array().unwrap();
    let seen: Vec<&str> = deliveries
        .iter()
        .map(|d| d["topic"].as_str().unwrap_or("?"))
        .collect();
    for topic in [
        "orders/create",
        "orders/paid",
        "orders/updated",
        "orders/fulfilled",
        "fulfillments/create",
    ] {
        assert!(seen.contains(&topic), "{topic} not delivered: {seen:?}");
    }
    for d in deliveries {
        assert_eq!(d["status"], 200, "{d}");
    }
    // Delivered asynchronously and in no guaranteed order: the newest state wins all the same.
    let o = s.order(id).await;
    assert_eq!(o.order.status, OrderStatus::Fulfilled);
    assert_eq!(
        o.order
            .shopify
            .line_items
            .iter()
            .map(|l| (l.id, l.fulfilled_quantity))
            .collect::<Vec<_>>(),
        vec![(lines[0], 2), (lines[1], 1)]
    );
    assert_eq!(
        o.order.shopify.fulfillment_tracking,
        vec!["YT2600000000000001"]
    );
}
