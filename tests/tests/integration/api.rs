//! The merchant API against the emulator (and the AliExpress sandbox for manual sync): every
//! route, auth, validation, pagination, tenancy.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use dropsync_aliexpress::{IopClient, IopConfig, MemoryTokenStore};
use dropsync_api::Api;
use dropsync_app::queue::SqsQueue;
use dropsync_app::sync::SyncService;
use dropsync_domain::{OrderStatus, ShopDomain};
use dropsync_store::Store;
use dropsync_tests::*;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

const ADMIN: &str = "admin-token-0123456789";
const TOKEN_A: &str = "shop-a-token-0123456789";

struct Fixture {
    api: Api<IopClient, SqsQueue>,
    store: Store,
    a: ShopDomain,
    b: ShopDomain,
    queue_url: String,
    sqs: aws_sdk_sqs::Client,
    ae_base: String,
    app_key: String,
}

async fn fixture() -> Fixture {
    let store = fresh_store().await;
    let a = shop(&unique("api-a").to_lowercase());
    let b = shop(&unique("api-b").to_lowercase());
    let creds = credentials(json!({
        "admin_token": ADMIN,
        "shops": {
            a.as_str(): {"access_token": "shpat_a", "webhook_secrets": ["s_a"], "api_token": TOKEN_A},
            b.as_str(): {"access_token": "shpat_b", "webhook_secrets": ["s_b"]},
        },
    }));
    let ae_base = aliexpress_sandbox();
    let app_key = format!("{}", 100_000 + fastrand::u32(..900_000));
    let ae_tokens = dropsync_tests::sandbox_ae_app(
        &ae_base,
        json!({"app_key": app_key, "app_secret": "api-secret"}),
        json!({"access_token": format!("tok-{app_key}"), "refresh_token": format!("ref-{app_key}"), "account": format!("acct-{app_key}"), "expires_in": 86400}),
    )
    .await;
    let ae = IopClient::new(
        IopConfig {
            base_url: ae_base.clone(),
            calls_per_second: 50.0,
            ..IopConfig::new(app_key.clone(), "api-secret", ae_tokens)
        },
        Arc::new(MemoryTokenStore::new()),
    )
    .unwrap();
    let conf = aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let queue_url = dropsync_tests::create_queue(&sqs, "api-q").await;
    let sync = Arc::new(SyncService {
        store: store.clone(),
        ae: Arc::new(ae),
        queue: Arc::new(SqsQueue::new(sqs.clone(), queue_url.clone())),
        concurrency: 4,
    });
    Fixture {
        api: Api {
            store: store.clone(),
            credentials: creds,
            sync: Some(sync),
            place: None,
            connect: None,
            reconcile: None,
        },
        store,
        a,
        b,
        queue_url,
        sqs,
        ae_base,
        app_key,
    }
}

impl Fixture {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> (u16, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let req = apigw_request(method, path, &headers, body);
        response_json(self.api.handle(req).await)
    }

    /// Bodies of the push messages on the queue now (received ones stay hidden for 30 s).
    async fn queued(&self) -> Vec<String> {
        let msgs = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        msgs.messages()
            .iter()
            .filter_map(|m| m.body().map(str::to_owned))
            .collect()
    }

    async fn order(&self, shop: &ShopDomain, id: u64, financial: &str, created: i64) {
        let mut f = facts(financial, 10, &[(id * 10 + 1, 1), (id * 10 + 2, 2)]);
        f.created_at_ms = created;
        self.store
            .save_shopify_facts(shop, id, f, "orders/create", 1)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn health_answers_without_auth_and_fails_when_the_table_is_gone() {
    let fx = fixture().await;
    assert_eq!(fx.call("GET", "/health", None, b"").await.0, 200);
    let gone = Api::<IopClient, SqsQueue> {
        store: Store::new(fx.store.client().clone(), "no-such-table"),
        credentials: fx.api.credentials.clone(),
        sync: None,
        place: None,
        connect: None,
        reconcile: None,
    };
    let (status, body) =
        response_json(gone.handle(apigw_request("GET", "/health", &[], b"")).await);
    assert_eq!(status, 503);
    assert_eq!(body, json!({"error": "temporarily unavailable"}));
}

#[tokio::test]
async fn merchant_routes_need_a_token_that_sees_the_shop() {
    let fx = fixture().await;
    fx.order(&fx.a, 1, "paid", 1).await;
    fx.order(&fx.b, 1, "paid", 1).await;
    let a = format!("/shops/{}/orders/1", fx.a);
    let b = format!("/shops/{}/orders/1", fx.b);
    assert_eq!(fx.call("GET", &a, None, b"").await.0, 401);
    assert_eq!(
        fx.call("GET", &a, Some("wrong-token-0123456789"), b"")
            .await
            .0,
        401
    );
    assert_eq!(fx.call("GET", &a, Some(TOKEN_A), b"").await.0, 200);
    assert_eq!(fx.call("GET", &a, Some(ADMIN), b"").await.0, 200);
    // Shop A's token reads, links, syncs and configures nothing of shop B's.
    assert_eq!(fx.call("GET", &b, Some(TOKEN_A), b"").await.0, 403);
    let bs = fx.b.as_str();
    for (m, p, body) in [
        (
            "GET",
            format!("/shops/{bs}/orders?status=awaiting_order"),
            "".to_owned(),
        ),
        (
            "PUT",
            format!("/shops/{bs}/orders/1/supplier-orders"),
            json!({"aliexpress_order_id": "1", "line_item_ids": ["11"]}).to_string(),
        ),
        ("POST", format!("/shops/{bs}/orders/1/sync"), "".to_owned()),
        ("POST", format!("/shops/{bs}/sync"), "".to_owned()),
        ("GET", format!("/shops/{bs}/settings"), "".to_owned()),
        (
            "PUT",
            format!("/shops/{bs}/settings"),
            json!({"notify_customer": false}).to_string(),
        ),
    ] {
        assert_eq!(
            fx.call(m, &p, Some(TOKEN_A), body.as_bytes()).await.0,
            403,
            "{m} {p}"
        );
    }
    // The admin token sees configured shops only.
    let other = "/shops/stranger.myshopify.com/orders/1";
    assert_eq!(fx.call("GET", other, Some(ADMIN), b"").await.0, 403);
    // Nothing of B changed.
    let b_order = fx.store.get_order(&fx.b, 1).await.unwrap().unwrap();
    assert!(b_order.order.supplier_orders.is_empty());
    assert!(
        fx.store
            .get_shop(&fx.b)
            .await
            .unwrap()
            .settings
            .notify_customer
    );
}

#[tokio::test]
async fn a_tab_of_250_orders_pages_newest_first_with_no_duplicates_or_gaps() {
    let fx = fixture().await;
    let store = Arc::new(fx.store.clone());
    let mut tasks = Vec::new();
    for chunk in 0..5u64 {
        let store = store.clone();
        let a = fx.a.clone();
        tasks.push(tokio::spawn(async move {
            for i in chunk * 50..(chunk + 1) * 50 {
                let mut f = facts("paid", 10, &[(i * 10 + 1, 1)]);
                f.created_at_ms = 1_000_000 + i as i64;
                store
                    .save_shopify_facts(&a, 1000 + i, f, "orders/create", 1)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    fx.order(&fx.a, 5, "pending", 7).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "/shops/{}/orders?status=awaiting_order&limit=40&cursor={c}",
                fx.a
            ),
            None => format!("/shops/{}/orders?status=awaiting_order&limit=40", fx.a),
        };
        let (status, body) = fx.call("GET", &path, Some(ADMIN), b"").await;
        assert_eq!(status, 200, "{body}");
        for o in body["orders"].as_array().unwrap() {
            assert_eq!(o["status"], "awaiting_order");
            assert!(o["id"].is_string());
            seen.push(o["id"].as_str().unwrap().parse::<u64>().unwrap());
        }
        assert_eq!(body["counts"]["awaiting_order"], 250);
        assert_eq!(body["counts"]["pending"], 1);
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 250);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 250);
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");
}

#[tokio::test]
async fn listing_rejects_bad_status_limit_and_cursor() {
    let fx = fixture().await;
    let base = format!("/shops/{}/orders", fx.a);
    for q in [
        "",
        "?status=shipped",
        "?status=pending&limit=0",
        "?status=pending&limit=251",
        "?status=pending&cursor=zz",
        "?status=pending&status=failed",
    ] {
        let (status, body) = fx
            .call("GET", &format!("{base}{q}"), Some(ADMIN), b"")
            .await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body["error"].is_string());
    }
    // A cursor handed out for another shop's tab is refused.
    for i in 0..3 {
        fx.order(&fx.b, 100 + i, "paid", i as i64).await;
    }
    let (_, page) = fx
        .call(
            "GET",
            &format!("/shops/{}/orders?status=awaiting_order&limit=1", fx.b),
            Some(ADMIN),
            b"",
        )
        .await;
    let c = page["next_cursor"].as_str().unwrap();
    let (status, _) = fx
        .call(
            "GET",
            &format!("{base}?status=awaiting_order&cursor={c}"),
            Some(ADMIN),
            b"",
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn order_detail_has_the_contract_shape_and_unknown_orders_are_404() {
    let fx = fixture().await;
    fx.order(&fx.a, 820982911946154508, "paid", 1).await;
    let (status, o) = fx
        .call(
            "GET",
            &format!("/shops/{}/orders/820982911946154508", fx.a),
            Some(ADMIN),
            b"",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(o["id"], "820982911946154508");
    assert_eq!(o["shop"], fx.a.as_str());
    assert_eq!(o["status"], "awaiting_order");
    assert_eq!(o["supplier_orders"], json!([]));
    assert!(o["history"].as_array().is_some_and(|h| !h.is_empty()));
    assert_eq!(
        fx.call(
            "GET",
            &format!("/shops/{}/orders/9", fx.a),
            Some(ADMIN),
            b""
        )
        .await
        .0,
        404
    );
    assert_eq!(
        fx.call(
            "GET",
            &format!("/shops/{}/orders/x9", fx.a),
            Some(ADMIN),
            b""
        )
        .await
        .0,
        400
    );
    let long = "9".repeat(40);
    assert_eq!(
        fx.call(
            "GET",
            &format!("/shops/{}/orders/{long}", fx.a),
            Some(ADMIN),
            b""
        )
        .await
        .0,
        400
    );
}

#[tokio::test]
async fn linking_an_aliexpress_order_moves_to_awaiting_payment_idempotently_and_conflicts_are_409()
{
    let fx = fixture().await;
    fx.order(&fx.a, 7, "paid", 1).await;
    let path = format!("/shops/{}/orders/7/supplier-orders", fx.a);
    let body =
        json!({"aliexpress_order_id": "8198352049851315", "line_item_ids": ["71", 72]}).to_string();
    let (status, o) = fx.call("PUT", &path, Some(ADMIN), body.as_bytes()).await;
    assert_eq!(status, 201, "{o}");
    assert_eq!(o["status"], "awaiting_payment");
    assert_eq!(
        o["supplier_orders"][0]["aliexpress_order_id"],
        "8198352049851315"
    );
    let v = fx.store.get_order(&fx.a, 7).await.unwrap().unwrap().version;
    // The same link again changes nothing.
    let (status, _) = fx.call("PUT", &path, Some(ADMIN), body.as_bytes()).await;
    assert_eq!(status, 200);
    assert_eq!(
        fx.store.get_order(&fx.a, 7).await.unwrap().unwrap().version,
        v
    );
    // Items already linked elsewhere.
    let other = json!({"aliexpress_order_id": 5, "line_item_ids": ["71"]}).to_string();
    assert_eq!(
        fx.call("PUT", &path, Some(ADMIN), other.as_bytes()).await.0,
        409
    );
    // Bad input: 400 and nothing written.
    for bad in [
        "not json".to_owned(),
        json!({"aliexpress_order_id": "1", "line_item_ids": ["71"], "extra": true}).to_string(),
        json!({"aliexpress_order_id": "1", "line_item_ids": []}).to_string(),
        json!({"aliexpress_order_id": "1.5", "line_item_ids": ["71"]}).to_string(),
        json!({"aliexpress_order_id": 1, "line_item_ids": ["999"]}).to_string(),
        json!({"aliexpress_order_id": {"x": 1}, "line_item_ids": ["71"]}).to_string(),
    ] {
        let (status, body) = fx.call("PUT", &path, Some(ADMIN), bad.as_bytes()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(
        fx.store.get_order(&fx.a, 7).await.unwrap().unwrap().version,
        v
    );
    let missing = format!("/shops/{}/orders/404/supplier-orders", fx.a);
    assert_eq!(
        fx.call("PUT", &missing, Some(ADMIN), body.as_bytes())
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn a_link_reads_the_order_once_and_writes_the_claim_the_order_and_its_tab() {
    let fx = fixture().await;
    fx.order(&fx.a, 8, "paid", 1).await;
    let (store, log) = crate::webhook_support::logged(&fx.store).await;
    let api = Api {
        store,
        credentials: fx.api.credentials.clone(),
        sync: fx.api.sync.clone(),
        place: None,
        connect: None,
        reconcile: None,
    };
    let path = format!("/shops/{}/orders/8/supplier-orders", fx.a);
    let body =
        json!({"aliexpress_order_id": "8198352049851316", "line_item_ids": ["81", 82]}).to_string();
    let req = apigw_request(
        "PUT",
        &path,
        &[
            ("authorization", &format!("Bearer {ADMIN}")),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    );
    let (status, o) = response_json(api.handle(req).await);
    assert_eq!(status, 201, "{o}");
    // The order read (it must exist before its AliExpress order is claimed), the ownership claim,
    // the order's conditional write decided on that read, and the tab counter's ADD.
    assert_eq!(
        log.take(),
        vec!["GetItem", "PutItem", "PutItem", "UpdateItem"]
    );
    assert_eq!(o["status"], "awaiting_payment");
}

#[tokio::test]
async fn settings_round_trip_and_unknown_or_invalid_fields_are_400() {
    let fx = fixture().await;
    let path = format!("/shops/{}/settings", fx.a);
    let (status, s) = fx.call("GET", &path, Some(ADMIN), b"").await;
    assert_eq!(status, 200);
    assert_eq!(s["notify_customer"], true);
    let new = json!({"notify_customer": false, "carrier_mapping": {"AliExpress Selection Standard": "YunExpress"}, "tracking_url_template": "https://t.17track.net/en#nums={number}"});
    assert_eq!(
        fx.call("PUT", &path, Some(ADMIN), new.to_string().as_bytes())
            .await
            .0,
        200
    );
    // Fields the request left out come back with their defaults.
    let mut expected = new.clone();
    expected["auto_place"] = json!(false);
    assert_eq!(fx.call("GET", &path, Some(ADMIN), b"").await.1, expected);
    for bad in [
        json!({"notify_customer": true, "surprise": 1}),
        json!({"notify_customer": "yes"}),
        json!({"notify_customer": true, "tracking_url_template": "http://x/{number}"}),
        json!({"notify_customer": true, "tracking_url_template": "https://x/"}),
        json!({}),
    ] {
        assert_eq!(
            fx.call("PUT", &path, Some(ADMIN), bad.to_string().as_bytes())
                .await
                .0,
            400,
            "{bad}"
        );
    }
    // Fields the request left out come back with their defaults.
    let mut expected = new.clone();
    expected["auto_place"] = json!(false);
    assert_eq!(fx.call("GET", &path, Some(ADMIN), b"").await.1, expected);
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let fx = fixture().await;
    assert_eq!(fx.call("GET", "/nope", Some(ADMIN), b"").await.0, 404);
    assert_eq!(
        fx.call("GET", &format!("/shops/{}/unknown", fx.a), Some(ADMIN), b"")
            .await
            .0,
        404
    );
    let res = fx
        .api
        .handle(apigw_request(
            "DELETE",
            &format!("/shops/{}/settings", fx.a),
            &[],
            b"",
        ))
        .await;
    assert_eq!(res.status().as_u16(), 405);
    assert_eq!(res.headers()["allow"], "GET, PUT");
    assert_eq!(fx.call("POST", "/health", None, b"").await.0, 405);
}

#[tokio::test]
async fn a_manual_sync_of_one_order_answers_with_the_new_state_and_queues_the_push() {
    let fx = fixture().await;
    fx.order(&fx.a, 31, "paid", 1).await;
    let created = sandbox_post(
        &fx.ae_base,
        "/_admin/orders",
        json!({"app_key": fx.app_key, "account": format!("acct-{}", fx.app_key), "status": "WAIT_SELLER_SEND_GOODS",
               "items": [{"product_id": "1005006123456789", "sku_id": "SKU-311", "count": 1}, {"product_id": "1005006123456790", "sku_id": "SKU-312", "count": 2}]}),
    )
    .await;
    let ae = created["order_id"].as_str().unwrap().to_owned();
    let link = json!({"aliexpress_order_id": ae, "line_item_ids": ["311", "312"]}).to_string();
    let path = format!("/shops/{}/orders/31/supplier-orders", fx.a);
    assert_eq!(
        fx.call("PUT", &path, Some(ADMIN), link.as_bytes()).await.0,
        201
    );
    let shipped = sandbox_post(&fx.ae_base, &format!("/_admin/orders/{ae}/ship"), json!({})).await;
    let mail_no = shipped["mail_no"].as_str().unwrap().to_owned();

    let (status, o) = fx
        .call(
            "POST",
            &format!("/shops/{}/orders/31/sync", fx.a),
            Some(ADMIN),
            b"",
        )
        .await;
    assert_eq!(status, 200, "{o}");
    assert_eq!(o["status"], "awaiting_fulfillment");
    let pkg = &o["supplier_orders"][0]["packages"][0];
    assert_eq!(pkg["tracking_number"], mail_no.as_str());
    assert_eq!(pkg["pushed_to_shopify"], false);
    let bodies = fx.queued().await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(bodies[0].contains(&mail_no));

    // Shopify refuses the push (say, the order is on hold): it is flagged. Once the merchant has
    // fixed it, a manual sync of the order is the "try again": the push is due and queued again.
    let ae_id: u64 = ae.parse().unwrap();
    fx.store
        .update_order(&fx.a, 31, |o| {
            dropsync_domain::ops::mark_push_failed(
                o,
                ae_id,
                &mail_no,
                "fulfillment order is ON_HOLD",
            )
        })
        .await
        .unwrap();
    let (_, listed) = fx
        .call(
            "GET",
            &format!("/shops/{}/attention", fx.a),
            Some(ADMIN),
            b"",
        )
        .await;
    assert_eq!(
        listed["orders"][0]["attention"][0]["code"], "push_failed",
        "{listed}"
    );
    let (status, o) = fx
        .call(
            "POST",
            &format!("/shops/{}/orders/31/sync", fx.a),
            Some(ADMIN),
            b"",
        )
        .await;
    assert_eq!(status, 200, "{o}");
    assert_eq!(
        o["supplier_orders"][0]["packages"][0]["push_state"],
        "pending"
    );
    assert_eq!(o["attention"], json!([]));
    let bodies = fx.queued().await;
    assert_eq!(bodies.len(), 1, "the retried push is queued: {bodies:?}");
    assert!(bodies[0].contains(&mail_no));
    let (_, listed) = fx
        .call(
            "GET",
            &format!("/shops/{}/attention", fx.a),
            Some(ADMIN),
            b"",
        )
        .await;
    assert_eq!(listed["orders"], json!([]));

    let (status, report) = fx
        .call("POST", &format!("/shops/{}/sync", fx.a), Some(ADMIN), b"")
        .await;
    assert_eq!(status, 200);
    assert_eq!(report["orders"], 1);
    assert_eq!(report["complete"], true, "{report}");
    assert_eq!(report["next_cursor"], Value::Null);
    for bad in ["zz", "99", "3-zz", "-1", "1-", "0-0"] {
        let (status, body) = fx
            .call(
                "POST",
                &format!("/shops/{}/sync?cursor={bad}", fx.a),
                Some(ADMIN),
                b"",
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let stored = fx.store.get_order(&fx.a, 31).await.unwrap().unwrap();
    assert_eq!(stored.order.status, OrderStatus::AwaitingFulfillment);
}

#[tokio::test]
async fn the_attention_list_shows_only_orders_needing_the_merchant_with_reasons_paged_and_per_shop()
{
    let fx = fixture().await;
    // Orders 1..=3 of shop A are linked to AliExpress and then canceled in Shopify: AliExpress has
    // no cancel API, so each needs the merchant. Order 4 is linked but fine; order 5 untouched.
    for id in 1..=5u64 {
        fx.order(&fx.a, id, "paid", 1_000 + i64::try_from(id).unwrap())
            .await;
    }
    for id in 1..=4u64 {
        let path = format!("/shops/{}/orders/{id}/supplier-orders", fx.a);
        let body =
            json!({"aliexpress_order_id": 8_000 + id, "line_item_ids": [id * 10 + 1, id * 10 + 2]});
        let (status, o) = fx
            .call("PUT", &path, Some(ADMIN), body.to_string().as_bytes())
            .await;
        assert_eq!(status, 201, "{o}");
    }
    let cancel = |id: u64| {
        let mut f = facts("paid", 50, &[(id * 10 + 1, 1), (id * 10 + 2, 2)]);
        f.created_at_ms = 1_000 + i64::try_from(id).unwrap();
        f.cancelled = true;
        f
    };
    for id in 1..=3u64 {
        fx.store
            .save_shopify_facts(&fx.a, id, cancel(id), "orders/cancelled", 2)
            .await
            .unwrap();
    }
    fx.order(&fx.b, 9, "paid", 1).await;
    let path = format!("/shops/{}/orders/9/supplier-orders", fx.b);
    let body = json!({"aliexpress_order_id": 9_001, "line_item_ids": [91]}).to_string();
    assert_eq!(
        fx.call("PUT", &path, Some(ADMIN), body.as_bytes()).await.0,
        201
    );
    fx.store
        .save_shopify_facts(&fx.b, 9, cancel(9), "orders/cancelled", 2)
        .await
        .unwrap();

    // Two pages of two, newest first, each order with its reason.
    let list = format!("/shops/{}/attention?limit=2", fx.a);
    let (status, page1) = fx.call("GET", &list, Some(TOKEN_A), b"").await;
    assert_eq!(status, 200, "{page1}");
    let ids = |v: &Value| -> Vec<String> {
        v["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&page1), ["3", "2"]);
    let reason = &page1["orders"][0]["attention"][0];
    assert_eq!(reason["code"], "cancel_on_aliexpress_by_hand", "{reason}");
    assert_eq!(reason["aliexpress_order_ids"], json!(["8003"]));
    let cursor = page1["next_cursor"].as_str().expect("a second page");
    let (status, page2) = fx
        .call(
            "GET",
            &format!("{list}&cursor={cursor}"),
            Some(TOKEN_A),
            b"",
        )
        .await;
    assert_eq!(status, 200, "{page2}");
    assert_eq!(ids(&page2), ["1"]);
    assert_eq!(page2["next_cursor"], Value::Null);

    // Shop B's order is its own: not on A's list, and A's token cannot read B's list.
    let (status, b_list) = fx
        .call(
            "GET",
            &format!("/shops/{}/attention", fx.b),
            Some(ADMIN),
            b"",
        )
        .await;
    assert_eq!((status, ids(&b_list)), (200, vec!["9".to_owned()]));
    let denied = fx
        .call(
            "GET",
            &format!("/shops/{}/attention", fx.b),
            Some(TOKEN_A),
            b"",
        )
        .await;
    assert_eq!(denied.0, 403);
    let anonymous = fx
        .call("GET", &format!("/shops/{}/attention", fx.a), None, b"")
        .await;
    assert_eq!(anonymous.0, 401);

    // A cursor of another listing, or of another shop's attention list, is a 400.
    let (_, tab) = fx
        .call(
            "GET",
            &format!("/shops/{}/orders?status=canceled&limit=1", fx.a),
            Some(ADMIN),
            b"",
        )
        .await;
    let tab_cursor = tab["next_cursor"].as_str().expect("more than one canceled");
    for bad in [tab_cursor, "zz", "00"] {
        let (status, body) = fx
            .call("GET", &format!("{list}&cursor={bad}"), Some(ADMIN), b"")
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (_, b_page) = fx
        .call(
            "GET",
            &format!("/shops/{}/attention?limit=1", fx.a),
            Some(ADMIN),
            b"",
        )
        .await;
    let a_cursor = b_page["next_cursor"].as_str().unwrap();
    let (status, _) = fx
        .call(
            "GET",
            &format!("/shops/{}/attention?cursor={a_cursor}", fx.b),
            Some(ADMIN),
            b"",
        )
        .await;
    assert_eq!(status, 400, "a cursor of shop A's list on shop B's");
}
