//! Placing supplier orders through the HTTP routes, against the emulator and both sandboxes:
//! mappings, every outcome (success, business error, lost answer), re-placing, the races, the
//! ownership 409, and a placed order running its whole lifecycle.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests --test integration place_flow::`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use dropsync_aliexpress::{IopClient, IopConfig, MemoryTokenStore};
use dropsync_api::Api;
use dropsync_app::place::{PlaceService, Placer};
use dropsync_app::queue::SqsQueue;
use dropsync_app::sync::SyncService;
use dropsync_domain::{FinancialStatus, LineItem, ShopDomain, ShopifyFacts};
use dropsync_shopify::admin::{AdminClient, AdminConfig};
use dropsync_store::Store;
use dropsync_tests::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

const ADMIN: &str = "admin-token-place-0123456789";
const BOTTLE: u64 = 1005006123456789;
const BOTTLE_SILVER: &str = "12000037000000001";
const CASE: u64 = 1005007111111111;
const CASE_RED_S: &str = "12000041000000001";
const BRUSH: u64 = 1005006987654321;
const BRUSH_SKU: &str = "12000038000000002";

struct Fx {
    api: Arc<Api<IopClient, SqsQueue>>,
    store: Store,
    shop: ShopDomain,
    ae_base: String,
    ae: Arc<IopClient>,
    admin: Arc<AdminClient>,
    credentials: Arc<dropsync_app::Credentials>,
}

fn us_address(phone: Option<&str>) -> Value {
    json!({"first_name": "Jane", "last_name": "Doe", "name": "Jane Doe", "company": null,
           "address1": "123 Main St", "address2": null, "city": "Vineland", "province": "New Jersey",
           "province_code": "NJ", "zip": "08360", "country": "United States", "country_code": "US",
           "phone": phone})
}

async fn fixture() -> Fx {
    let store = fresh_store().await;
    let n = fastrand::u64(..);
    let domain = format!("place-{n:x}.myshopify.com");
    let token = format!("shpat_place_{n:x}");
    sandbox_post(
        &shopify_sandbox(),
        "/_admin/shops",
        json!({"shop": domain, "access_token": token, "bucket_size": 1000, "restore_rate": 100}),
    )
    .await;
    let shop = ShopDomain::parse(&domain).unwrap();
    let creds = credentials(json!({
        "admin_token": ADMIN,
        "shops": { domain.clone(): {"access_token": token, "webhook_secrets": ["s"]} },
    }));
    let ae_base = aliexpress_sandbox();
    let app_key = format!("{}", 100_000 + fastrand::u32(..900_000));
    let ae_tokens = dropsync_tests::sandbox_ae_app(
        &ae_base,
        json!({"app_key": app_key, "app_secret": "place-secret"}),
        json!({"access_token": format!("tok-{app_key}"), "refresh_token": format!("ref-{app_key}"), "account": format!("acct-{app_key}"), "expires_in": 86400}),
    )
    .await;
    let ae = Arc::new(
        IopClient::new(
            IopConfig {
                base_url: ae_base.clone(),
                calls_per_second: 50.0,
                ..IopConfig::new(app_key.clone(), "place-secret", ae_tokens)
            },
            Arc::new(MemoryTokenStore::new()),
        )
        .unwrap(),
    );
    let admin = Arc::new(
        AdminClient::new(AdminConfig {
            base_override: Some(shopify_sandbox()),
            ..AdminConfig::default()
        })
        .unwrap(),
    );
    let place: Arc<dyn Placer> = Arc::new(PlaceService {
        store: store.clone(),
        ae: ae.clone(),
        shopify: admin.clone(),
        credentials: creds.clone(),
    });
    let conf = aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let queue_url = dropsync_tests::create_queue(&sqs, "place-q").await;
    let sync = Arc::new(SyncService {
        store: store.clone(),
        ae: ae.clone(),
        queue: Arc::new(SqsQueue::new(sqs, queue_url)),
        concurrency: 4,
    });
    Fx {
        api: Arc::new(Api {
            store: store.clone(),
            credentials: creds.clone(),
            sync: Some(sync),
            place: Some(place),
            connect: None,
            reconcile: None,
        }),
        admin,
        credentials: creds,
        store,
        shop,

        ae_base,
        ae,
    }
}

impl Fx {
    async fn call(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let auth = format!("Bearer {ADMIN}");
        let headers = [
            ("content-type", "application/json"),
            ("authorization", auth.as_str()),
        ];
        let raw = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let req = apigw_request(method, path, &headers, &raw);
        response_json(self.api.handle(req).await)
    }

    /// Maps a variant to one AliExpress SKU through the route.
    async fn map(&self, variant: u64, product: u64, sku: &str) -> Value {
        let (status, body) = self
            .call(
                "PUT",
                &format!("/shops/{}/mappings/{variant}", self.shop),
                json!({"aliexpress_product_id": product.to_string(), "aliexpress_sku_id": sku}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// A paid order in the Shopify sandbox and in dropsync (as its webhook would record it):
    /// `(order id, line item ids)`. Each line is `(variant id, quantity)`.
    async fn order(&self, lines: &[(u64, u32)], address: Value) -> (u64, Vec<u64>) {
        let items: Vec<Value> = lines
            .iter()
            .map(|(v, q)| json!({"variant_id": v, "quantity": q, "price": "20.00"}))
            .collect();
        let created = sandbox_post(
            &shopify_sandbox(),
            "/_admin/orders",
            json!({"shop": self.shop.as_str(), "order": {"line_items": items, "financial_status": "paid",
                   "shipping_address": address}}),
        )
        .await;
        let id = created["order"]["id"].as_u64().unwrap();
        let line_ids: Vec<u64> = created["order"]["line_items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|li| li["id"].as_u64().unwrap())
            .collect();
        let facts = ShopifyFacts {
            name: "#1001".into(),
            created_at_ms: 1_700_000_000_000,
            updated_at_ms: 10,
            financial_status: FinancialStatus::parse("paid"),
            cancelled: false,
            test: false,
            fulfillment_status: None,
            line_items: line_ids
                .iter()
                .zip(lines)
                .map(|(lid, (v, q))| LineItem {
                    variant_id: Some(*v),
                    ..LineItem::new(*lid, *q)
                })
                .collect(),
            fulfillment_tracking: vec![],
        };
        self.store
            .save_shopify_facts(&self.shop, id, facts, "orders/create", 1)
            .await
            .unwrap();
        (id, line_ids)
    }

    async fn place(&self, id: u64) -> (u16, Value) {
        self.call(
            "POST",
            &format!("/shops/{}/orders/{id}/place", self.shop),
            Value::Null,
        )
        .await
    }

    /// The sandbox's record of every order.create that reached it for this order.
    async fn creates(&self, id: u64) -> Vec<Value> {
        let log = sandbox_get(&self.ae_base, "/_admin/placements").await;
        let prefix = format!("{id}-");
        log["placements"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| {
                p["out_order_id"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(&prefix)
            })
            .cloned()
            .collect()
    }

    async fn created_orders(&self, id: u64) -> usize {
        self.creates(id)
            .await
            .iter()
            .filter(|p| p["outcome"] == "created")
            .map(|p| p["order_ids"].as_array().map_or(0, Vec::len))
            .sum()
    }
}

fn variant() -> u64 {
    40_000_000_000 + fastrand::u64(..1_000_000_000)
}

#[tokio::test]
async fn a_mapped_order_is_placed_as_one_aliexpress_order_per_seller_awaiting_payment() {
    let fx = fixture().await;
    let (v1, v2, v3) = (variant(), variant(), variant());
    let m = fx.map(v1, BOTTLE, BOTTLE_SILVER).await;
    assert_eq!(m["seller_id"], "1102233445");
    assert_eq!(m["sku_attr"], "14:175#Silver");
    assert_eq!(m["title"], "Steel bottle 500ml");
    fx.map(v2, BRUSH, BRUSH_SKU).await;
    fx.map(v3, CASE, CASE_RED_S).await;
    let (id, lines) = fx
        .order(
            &[(v1, 2), (v2, 1), (v3, 1)],
            us_address(Some("+1 555-360-0000")),
        )
        .await;
    let (status, order) = fx.place(id).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "awaiting_payment", "{order}");
    let sos = order["supplier_orders"].as_array().unwrap();
    assert_eq!(sos.len(), 2, "two sellers, two AliExpress orders");
    for so in sos {
        assert_eq!(so["status"], "awaiting_payment");
        assert!(so["payment_due_at"].is_string(), "{so}");
    }
    let covered: Vec<String> = sos
        .iter()
        .flat_map(|so| so["line_item_ids"].as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    for l in &lines {
        assert!(covered.contains(&l.to_string()));
    }
    let placements = order["placements"].as_array().unwrap();
    assert!(
        placements
            .iter()
            .all(|p| p["state"] == "placed" && p["attempt"] == 1)
    );
    assert!(
        placements
            .iter()
            .any(|p| p["out_order_id"] == format!("{id}-1102233445-1"))
    );
    assert_eq!(fx.created_orders(id).await, 2);
    // Placing again sends nothing.
    let (status, again) = fx.place(id).await;
    assert_eq!(status, 200);
    assert_eq!(again["supplier_orders"], order["supplier_orders"]);
    assert_eq!(fx.creates(id).await.len(), 2);
}

#[tokio::test]
async fn a_business_error_fails_the_order_with_advice_and_re_placing_uses_the_next_attempt() {
    let fx = fixture().await;
    let v = variant();
    fx.map(v, BRUSH, BRUSH_SKU).await;
    let (id, _) = fx.order(&[(v, 1)], us_address(Some("5553600000"))).await;
    sandbox_post(
        &fx.ae_base,
        "/_admin/faults/order-create",
        json!({"mode": "business_error", "code": "INVENTORY_HOLD_ERROR", "message": "Inventory hold failed",
               "times": 1, "out_order_id_prefix": format!("{id}-")}),
    )
    .await;
    let (status, order) = fx.place(id).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "failed", "{order}");
    assert_eq!(order["failure"]["code"], "INVENTORY_HOLD_ERROR");
    assert_eq!(order["failure"]["message"], "Inventory hold failed");
    assert!(
        order["failure"]["advice"]
            .as_str()
            .unwrap()
            .contains("stock")
    );
    assert_eq!(fx.created_orders(id).await, 0);
    let (_, order) = fx.place(id).await;
    assert_eq!(order["status"], "awaiting_payment", "{order}");
    assert_eq!(order["failure"], Value::Null);
    let sent: Vec<String> = fx
        .creates(id)
        .await
        .iter()
        .map(|p| p["out_order_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        sent,
        [format!("{id}-1102233445-1"), format!("{id}-1102233445-2")]
    );
}

#[tokio::test]
async fn a_lost_answer_is_unconfirmed_never_a_new_attempt_and_is_resolved_by_linking() {
    let fx = fixture().await;
    let v = variant();
    fx.map(v, BRUSH, BRUSH_SKU).await;
    let (id, lines) = fx.order(&[(v, 1)], us_address(Some("5553600000"))).await;
    sandbox_post(
        &fx.ae_base,
        "/_admin/faults/order-create",
        json!({"mode": "lose_answer", "status": 504, "times": 1, "out_order_id_prefix": format!("{id}-")}),
    )
    .await;
    let (status, order) = fx.place(id).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "awaiting_order");
    let attention = order["attention"].as_array().unwrap();
    assert!(
        attention
            .iter()
            .any(|a| a["code"] == "placement_unconfirmed" && a["created"] == false),
        "{order}"
    );
    // Placing again re-sends the same key: AliExpress says it was created.
    let (_, order) = fx.place(id).await;
    assert!(
        order["attention"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["code"] == "placement_unconfirmed" && a["created"] == true),
        "{order}"
    );
    // And again: nothing more is sent.
    fx.place(id).await;
    let creates = fx.creates(id).await;
    assert_eq!(creates.len(), 2, "{creates:?}");
    assert!(
        creates
            .iter()
            .all(|p| p["out_order_id"] == format!("{id}-1102233445-1"))
    );
    assert_eq!(fx.created_orders(id).await, 1, "never a duplicate");
    // The merchant finds it on AliExpress and links it.
    let ae_id = creates[0]["order_ids"][0].as_str().unwrap().to_owned();
    let (status, order) = fx
        .call(
            "PUT",
            &format!("/shops/{}/orders/{id}/supplier-orders", fx.shop),
            json!({"aliexpress_order_id": ae_id, "line_item_ids": [lines[0].to_string()]}),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "awaiting_payment");
    assert!(
        order["attention"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["code"] != "placement_unconfirmed")
    );
}

#[tokio::test]
async fn twenty_concurrent_placements_of_one_order_make_one_create_per_seller() {
    let fx = fixture().await;
    let (v1, v2) = (variant(), variant());
    fx.map(v1, BOTTLE, BOTTLE_SILVER).await;
    fx.map(v2, CASE, CASE_RED_S).await;
    let (id, _) = fx
        .order(&[(v1, 1), (v2, 1)], us_address(Some("5553600000")))
        .await;
    let fx = Arc::new(fx);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let fx = fx.clone();
        tasks.push(tokio::spawn(async move {
            if i % 4 == 0 {
                fx.call(
                    "POST",
                    &format!("/shops/{}/orders/place", fx.shop),
                    json!({"order_ids": [id.to_string()]}),
                )
                .await
            } else {
                fx.place(id).await
            }
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert!(status == 200 || status == 503, "{status} {body}");
    }
    let creates = fx.creates(id).await;
    assert_eq!(creates.len(), 2, "one create per seller: {creates:?}");
    assert_eq!(fx.created_orders(id).await, 2);
    let stored = fx.store.get_order(&fx.shop, id).await.unwrap().unwrap();
    assert_eq!(stored.order.supplier_orders.len(), 2);
}

#[tokio::test]
async fn an_aliexpress_order_linked_elsewhere_is_a_409_and_nothing_changes() {
    let fx = fixture().await;
    let v = variant();
    fx.map(v, BRUSH, BRUSH_SKU).await;
    let (a, _) = fx.order(&[(v, 1)], us_address(Some("5553600000"))).await;
    let (b, b_lines) = fx.order(&[(v, 1)], us_address(Some("5553600000"))).await;
    let (_, placed) = fx.place(a).await;
    let ae_id = placed["supplier_orders"][0]["aliexpress_order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = fx.store.get_order(&fx.shop, b).await.unwrap().unwrap();
    let (status, body) = fx
        .call(
            "PUT",
            &format!("/shops/{}/orders/{b}/supplier-orders", fx.shop),
            json!({"aliexpress_order_id": ae_id, "line_item_ids": [b_lines[0].to_string()]}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let after = fx.store.get_order(&fx.shop, b).await.unwrap().unwrap();
    assert_eq!(before, after);
    // Linking it again to its own order is fine (idempotent).
    let lines_a: Vec<String> = placed["supplier_orders"][0]["line_item_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let (status, _) = fx
        .call(
            "PUT",
            &format!("/shops/{}/orders/{a}/supplier-orders", fx.shop),
            json!({"aliexpress_order_id": ae_id, "line_item_ids": lines_a}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_unknown_product_or_sku_is_a_422_naming_it_and_nothing_is_stored() {
    let fx = fixture().await;
    let v = variant();
    let path = format!("/shops/{}/mappings/{v}", fx.shop);
    let (status, body) = fx
        .call(
            "PUT",
            &path,
            json!({"aliexpress_product_id": "4242", "aliexpress_sku_id": "1"}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(body["error"].as_str().unwrap().contains("4242"), "{body}");
    let (status, body) = fx
        .call(
            "PUT",
            &path,
            json!({"aliexpress_product_id": BOTTLE.to_string(), "aliexpress_sku_id": "999"}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(body["error"].as_str().unwrap().contains("999"), "{body}");
    assert!(fx.store.get_mapping(&fx.shop, v).await.unwrap().is_none());
    let (status, list) = fx
        .call("GET", &format!("/shops/{}/mappings", fx.shop), Value::Null)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["mappings"], json!([]));
}

#[tokio::test]
async fn mappings_page_with_a_cursor_hold_bundles_and_are_deleted() {
    let fx = fixture().await;
    let vs: Vec<u64> = (0..3).map(|i| 50_000_000_000 + i).collect();
    for v in &vs {
        fx.map(*v, BRUSH, BRUSH_SKU).await;
    }
    let (status, bundle) = fx
        .call(
            "PUT",
            &format!("/shops/{}/mappings/{}", fx.shop, vs[0]),
            json!({"rows": [
                {"aliexpress_product_id": BOTTLE, "aliexpress_sku_id": BOTTLE_SILVER, "quantity": 2},
                {"aliexpress_product_id": BRUSH, "aliexpress_sku_id": BRUSH_SKU, "shipping_method": "EMS",
                 "ship_to_countries": ["US"]}]}),
        )
        .await;
    assert_eq!(status, 200, "{bundle}");
    assert_eq!(bundle["rows"].as_array().unwrap().len(), 2);
    assert_eq!(bundle["rows"][1]["ship_to_countries"], json!(["US"]));
    let (_, page1) = fx
        .call(
            "GET",
            &format!("/shops/{}/mappings?limit=2", fx.shop),
            Value::Null,
        )
        .await;
    assert_eq!(page1["mappings"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap().to_owned();
    let (_, page2) = fx
        .call(
            "GET",
            &format!("/shops/{}/mappings?limit=2&cursor={cursor}", fx.shop),
            Value::Null,
        )
        .await;
    assert_eq!(page2["mappings"].as_array().unwrap().len(), 1);
    assert_eq!(page2["mappings"][0]["variant_id"], vs[2].to_string());
    let (status, _) = fx
        .call(
            "DELETE",
            &format!("/shops/{}/mappings/{}", fx.shop, vs[2]),
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    assert!(
        fx.store
            .get_mapping(&fx.shop, vs[2])
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_bad_address_or_a_missing_mapping_fails_before_any_create_with_advice() {
    let fx = fixture().await;
    let v = variant();
    fx.map(v, BRUSH, BRUSH_SKU).await;
    let (id, _) = fx.order(&[(v, 1)], us_address(None)).await;
    let (status, order) = fx.place(id).await;
    assert_eq!(status, 200);
    assert_eq!(order["status"], "failed");
    assert_eq!(order["failure"]["code"], "ADDRESS_INVALID");
    assert!(
        order["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("phone")
    );
    let unmapped = variant();
    let (id2, _) = fx
        .order(&[(unmapped, 1)], us_address(Some("5553600000")))
        .await;
    let (_, order) = fx.place(id2).await;
    assert_eq!(order["status"], "failed");
    assert_eq!(order["failure"]["code"], "NO_MAPPING");
    assert!(fx.creates(id).await.is_empty() && fx.creates(id2).await.is_empty());
    // The address never appears in what dropsync stores.
    let stored = fx.store.get_order(&fx.shop, id).await.unwrap().unwrap();
    let text = format!("{stored:?}");
    assert!(!text.contains("Main St") && !text.contains("Vineland"));
}

#[tokio::test]
async fn a_product_taken_offline_or_a_sku_gone_since_mapping_fails_with_advice_and_creates_nothing()
{
    let fx = fixture().await;
    let product = 1_005_009_000_000_000 + fastrand::u64(..1_000_000_000);
    let seller = 2_200_000_000 + fastrand::u64(..1_000_000);
    let skus = json!([{"sku_id": "91", "sku_attr": "14:175#Red"}, {"sku_id": "92", "sku_attr": "14:193#Blue"}]);
    let upsert = |status: &str, skus: Value| json!({"product_id": product, "store_id": seller, "title": "Lamp", "status": status, "skus": skus});
    sandbox_post(
        &fx.ae_base,
        "/_admin/products",
        upsert("onSelling", skus.clone()),
    )
    .await;
    let (red, blue) = (variant(), variant());
    fx.map(red, product, "91").await;
    fx.map(blue, product, "92").await;

    // The seller takes the product down after it was mapped.
    sandbox_post(
        &fx.ae_base,
        "/_admin/products",
        upsert("offline", skus.clone()),
    )
    .await;
    let (id, _) = fx.order(&[(red, 1)], us_address(Some("5553600000"))).await;
    let (status, order) = fx.place(id).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "failed", "{order}");
    assert_eq!(order["failure"]["code"], "PRODUCT_UNAVAILABLE");
    assert!(
        order["failure"]["message"]
            .as_str()
            .unwrap()
            .contains(&product.to_string())
    );
    assert!(
        order["failure"]["advice"]
            .as_str()
            .unwrap()
            .contains("Map the variant to another")
    );
    assert!(fx.creates(id).await.is_empty());

    // Back on sale, but without the blue SKU.
    sandbox_post(
        &fx.ae_base,
        "/_admin/products",
        upsert(
            "onSelling",
            json!([{"sku_id": "91", "sku_attr": "14:175#Red"}]),
        ),
    )
    .await;
    let (id2, _) = fx.order(&[(blue, 1)], us_address(Some("5553600000"))).await;
    let (_, order) = fx.place(id2).await;
    assert_eq!(order["status"], "failed", "{order}");
    assert_eq!(order["failure"]["code"], "SKU_CHANGED");
    assert!(order["failure"]["message"].as_str().unwrap().contains("92"));
    assert!(fx.creates(id2).await.is_empty());

    // The first order, once the product is back, is placed with the next attempt.
    let (_, order) = fx.place(id).await;
    assert_eq!(order["status"], "awaiting_payment", "{order}");
    let sent: Vec<String> = fx
        .creates(id)
        .await
        .iter()
        .map(|p| p["out_order_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent, [format!("{id}-{seller}-2")]);
}

#[tokio::test]
async fn shop_redaction_releases_the_aliexpress_order_ids_its_orders_owned() {
    let fx = fixture().await;
    let v = variant();
    fx.map(v, BRUSH, BRUSH_SKU).await;
    let (id, _) = fx.order(&[(v, 1)], us_address(Some("5553600000"))).await;
    let (_, order) = fx.place(id).await;
    assert_eq!(order["status"], "awaiting_payment", "{order}");
    let placed: u64 = order["supplier_orders"][0]["aliexpress_order_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // A linked order owns its id too.
    let (id2, lines2) = fx.order(&[(v, 1)], us_address(Some("5553600000"))).await;
    let linked = 8_100_000_000_000_000 + fastrand::u64(..1_000_000_000);
    let (status, body) = fx
        .call(
            "PUT",
            &format!("/shops/{}/orders/{id2}/supplier-orders", fx.shop),
            json!({"aliexpress_order_id": linked.to_string(), "line_item_ids": [lines2[0].to_string()]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let other = ShopDomain::parse(&format!("other-{:x}.myshopify.com", fastrand::u64(..))).unwrap();
    assert!(matches!(
        fx.store
            .claim_aliexpress_order(&other, 1, placed)
            .await
            .unwrap(),
        dropsync_store::Ownership::Elsewhere { .. }
    ));

    fx.store.delete_shop_data(&fx.shop).await.unwrap();

    // Nothing of the shop is left to own them: the ids are free again.
    assert!(matches!(
        fx.store
            .claim_aliexpress_order(&other, 1, placed)
            .await
            .unwrap(),
        dropsync_store::Ownership::Claimed
    ));
    assert!(matches!(
        fx.store
            .claim_aliexpress_order(&other, 2, linked)
            .await
            .unwrap(),
        dropsync_store::Ownership::Claimed
    ));
}

#[tokio::test]
async fn bulk_placement_answers_each_order_independently() {
    let fx = fixture().await;
    let v = variant();
    fx.map(v, BRUSH, BRUSH_SKU).await;
    let (good, _) = fx.order(&[(v, 1)], us_address(Some("5553600000"))).await;
    let (status, body) = fx
        .call(
            "POST",
            &format!("/shops/{}/orders/place", fx.shop),
            json!({"order_ids": [good.to_string(), "123"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"],
        json!([{"order_id": good.to_string(), "status": "awaiting_payment"},
               {"order_id": "123", "status": "not_found", "error": "order not found"}])
    );
    let too_many: Vec<String> = (0..51).map(|i| i.to_string()).collect();
    let (status, _) = fx
        .call(
            "POST",
            &format!("/shops/{}/orders/place", fx.shop),
            json!({"order_ids": too_many}),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_placed_order_runs_paid_shipped_pushed_and_fulfilled_through_the_existing_paths() {
    let fx = fixture().await;
    let v = variant();
    fx.map(v, BRUSH, BRUSH_SKU).await;
    let (id, _) = fx.order(&[(v, 1)], us_address(Some("5553600000"))).await;
    let (_, order) = fx.place(id).await;
    let ae_id = order["supplier_orders"][0]["aliexpress_order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    sandbox_post(
        &fx.ae_base,
        &format!("/_admin/orders/{ae_id}/pay"),
        json!({}),
    )
    .await;
    let (_, order) = fx
        .call(
            "POST",
            &format!("/shops/{}/orders/{id}/sync", fx.shop),
            Value::Null,
        )
        .await;
    assert_eq!(order["status"], "awaiting_shipment", "{order}");
    sandbox_post(
        &fx.ae_base,
        &format!("/_admin/orders/{ae_id}/ship"),
        json!({"mail_no": format!("YT{id}"), "carrier_name": "AliExpress Standard Shipping"}),
    )
    .await;
    let (_, order) = fx
        .call(
            "POST",
            &format!("/shops/{}/orders/{id}/sync", fx.shop),
            Value::Null,
        )
        .await;
    assert_eq!(order["status"], "awaiting_fulfillment", "{order}");
    let pkg = &order["supplier_orders"][0]["packages"][0];
    assert_eq!(pkg["tracking_number"], format!("YT{id}"));
    assert_eq!(pkg["pushed_to_shopify"], false);
    // The tracking pusher handles the package's message as it would from the queue.
    let pusher = dropsync_app::push::PushService {
        store: fx.store.clone(),
        admin: fx.admin.clone(),
        credentials: fx.credentials.clone(),
    };
    let ae: u64 = ae_id.parse().unwrap();
    let msg = dropsync_app::queue::PushMessage::new(&fx.shop, id, ae, &format!("YT{id}"));
    pusher.handle(&msg, id, ae).await.unwrap();
    let (_, order) = fx
        .call(
            "GET",
            &format!("/shops/{}/orders/{id}", fx.shop),
            Value::Null,
        )
        .await;
    assert_eq!(order["status"], "fulfilled", "{order}");
    assert_eq!(
        order["supplier_orders"][0]["packages"][0]["pushed_to_shopify"],
        true
    );
}

#[tokio::test]
async fn placement_latency_and_aliexpress_calls_per_placed_order_are_reported() {
    let fx = fixture().await;
    let v = variant();
    fx.map(v, BRUSH, BRUSH_SKU).await;
    let before = fx.ae.stats().calls;
    let mut latencies = Vec::new();
    let n = 20;
    for _ in 0..n {
        let (id, _) = fx.order(&[(v, 1)], us_address(Some("5553600000"))).await;
        let t = Instant::now();
        let (status, order) = fx.place(id).await;
        latencies.push(t.elapsed());
        assert_eq!(status, 200);
        assert_eq!(order["status"], "awaiting_payment");
    }
    let calls = fx.ae.stats().calls - before;
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "placement: {n} orders, AliExpress calls per placed order {:.1}, latency p50 {:?} p99 {:?}",
        calls as f64 / n as f64,
        p(0.50),
        p(0.99)
    );
    // One product.get (the product may have gone since it was mapped), one freight.query (no
    // shipping method on the mapping) and one order.create.
    assert_eq!(calls, 3 * n as u64);
}

/// A paid order's `orders/create` webhook, signed for the fixture's shop, for the sandbox order
/// `id` with `lines` `(line item id, variant id)`.
fn paid_delivery(fx: &Fx, id: u64, lines: &[(u64, u64)]) -> lambda_http::Request {
    let mut body = crate::webhook_support::order(
        id,
        5,
        "paid",
        &lines.iter().map(|(l, _)| (*l, 1)).collect::<Vec<_>>(),
    );
    for (i, (_, variant)) in lines.iter().enumerate() {
        body["line_items"][i]["variant_id"] = json!(variant);
    }
    let raw = body.to_string().into_bytes();
    let headers =
        crate::webhook_support::signed_headers("orders/create", fx.shop.as_str(), "s", &raw);
    crate::webhook_support::request("POST", &headers, &raw)
}

impl Fx {
    /// A paid order in the Shopify sandbox only (dropsync learns of it by its webhook).
    async fn sandbox_order(&self, variants: &[u64]) -> (u64, Vec<(u64, u64)>) {
        let items: Vec<Value> = variants
            .iter()
            .map(|v| json!({"variant_id": v, "quantity": 1, "price": "20.00"}))
            .collect();
        let created = sandbox_post(
            &shopify_sandbox(),
            "/_admin/orders",
            json!({"shop": self.shop.as_str(), "order": {"line_items": items, "financial_status": "paid",
                   "shipping_address": us_address(Some("5553600000"))}}),
        )
        .await;
        let id = created["order"]["id"].as_u64().unwrap();
        let lines = created["order"]["line_items"]
            .as_array()
            .unwrap()
            .iter()
            .zip(variants)
            .map(|(li, v)| (li["id"].as_u64().unwrap(), *v))
            .collect();
        (id, lines)
    }

    async fn set_auto_place(&self, on: bool) {
        let (status, body) = self
            .call(
                "PUT",
                &format!("/shops/{}/settings", self.shop),
                json!({"notify_customer": true, "auto_place": on}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["auto_place"], on);
    }
}

/// One HTTPS delivery as the webhook function answers it with a placement queue.
async fn deliver(
    svc: &dropsync_app::webhook::WebhookService<AdminClient>,
    queue: &dropsync_app::auto_place::SqsPlaceQueue,
    req: lambda_http::Request,
) -> lambda_http::Response<lambda_http::Body> {
    use dropsync_shopify_webhook::{header_lookup, post_only, respond};
    if let Some(refused) = post_only(&req) {
        return refused;
    }
    respond(
        dropsync_app::auto_place::deliver_and_queue(
            svc,
            queue,
            header_lookup(&req),
            req.body().as_ref(),
        )
        .await,
    )
}

/// Everything waiting in the queue, as the SQS event Lambda would hand the order placer.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> aws_lambda_events::event::sqs::SqsEvent {
    let mut records = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if out.messages().is_empty() {
            break;
        }
        for m in out.messages() {
            records.push(
                json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(),
                                "body": m.body(), "attributes": {}, "messageAttributes": {},
                                "eventSource": "aws:sqs"}),
            );
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

#[tokio::test]
async fn with_auto_place_on_a_paid_mapped_order_is_queued_by_its_webhook_and_placed_by_the_order_placer()
 {
    let fx = fixture().await;
    let conf = aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let url = dropsync_tests::create_queue(&sqs, "auto-place-q").await;
    let queue = dropsync_app::auto_place::SqsPlaceQueue::new(sqs.clone(), url.clone());
    let webhooks = dropsync_app::webhook::WebhookService {
        store: fx.store.clone(),
        credentials: fx.credentials.clone(),
        admin: Some(fx.admin.clone()),
    };
    let placer = fx.api.place.clone().unwrap();
    let (bottle, case, unmapped) = (variant(), variant(), variant());
    fx.map(bottle, BOTTLE, BOTTLE_SILVER).await;
    fx.map(case, CASE, CASE_RED_S).await;

    // Off (the default): the webhook records the order and queues nothing.
    let (off, off_lines) = fx.sandbox_order(&[bottle]).await;
    let res = deliver(&webhooks, &queue, paid_delivery(&fx, off, &off_lines)).await;
    assert_eq!(res.status(), 200);
    assert!(drain(&sqs, &url).await.records.is_empty());

    fx.set_auto_place(true).await;
    // On, but an item has no mapping: not queued, and not a failure either.
    let (partial, partial_lines) = fx.sandbox_order(&[bottle, unmapped]).await;
    let res = deliver(
        &webhooks,
        &queue,
        paid_delivery(&fx, partial, &partial_lines),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(drain(&sqs, &url).await.records.is_empty());

    // On, every item mapped, two sellers: queued by the webhook, which itself places nothing.
    let (id, lines) = fx.sandbox_order(&[bottle, case]).await;
    let res = deliver(&webhooks, &queue, paid_delivery(&fx, id, &lines)).await;
    assert_eq!(res.status(), 200);
    assert!(
        fx.creates(id).await.is_empty(),
        "nothing placed inside the webhook"
    );
    let event = drain(&sqs, &url).await;
    assert_eq!(event.records.len(), 1);
    let again = event.clone();
    let response = dropsync_order_placer::handle(&*placer, &fx.store, event).await;
    assert!(response.batch_item_failures.is_empty());
    let order = fx.store.get_order(&fx.shop, id).await.unwrap().unwrap();
    assert_eq!(
        order.order.status,
        dropsync_domain::OrderStatus::AwaitingPayment
    );
    assert_eq!(fx.created_orders(id).await, 2, "one create per seller");
    // A second delivery of the same message places nothing more.
    let response = dropsync_order_placer::handle(&*placer, &fx.store, again).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(fx.creates(id).await.len(), 2);

    for other in [off, partial] {
        let o = fx.store.get_order(&fx.shop, other).await.unwrap().unwrap();
        assert_eq!(o.order.status, dropsync_domain::OrderStatus::AwaitingOrder);
        assert!(o.order.placements.is_empty() && fx.creates(other).await.is_empty());
    }
}
