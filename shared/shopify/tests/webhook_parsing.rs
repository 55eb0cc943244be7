//! Webhook payloads end to end: real and realistic bodies, the EventBridge envelope, and
//! property tests (nothing panics on any input; ids survive exactly up to `u64::MAX`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use dropsync_domain::{FinancialStatus, gid};
use dropsync_shopify::webhook::{
    EventBridgePayload, ParsedOrder, PayloadError, Topic, parse_customers_redact,
    parse_data_request, parse_eventbridge, parse_order, parse_shop_redact, verify_hmac,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const FIXTURE_2008: &[u8] = include_bytes!("fixtures/order-rest-2008.json");
const ORDERS_CREATE: &[u8] = include_bytes!("fixtures/orders-create-2026-10.json");
const ORDERS_UPDATED: &[u8] = include_bytes!("fixtures/orders-updated-2026-10.json");
const CUSTOMERS_REDACT: &[u8] = include_bytes!("fixtures/customers-redact.json");
const EVENTBRIDGE: &[u8] = include_bytes!("fixtures/eventbridge-orders-create.json");

const ORDER_ID: u64 = 9_120_004_388_517_265_409;
const LED_STRIP: u64 = 9_120_004_388_517_265_411;
const GIFT_WRAP: u64 = 9_120_004_388_517_265_413;
const PHONE_CASE: u64 = 9_120_004_388_517_265_417;

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn parse_value(v: &Value) -> Result<ParsedOrder, PayloadError> {
    parse_order(&serde_json::to_vec(v).unwrap())
}

// ---------------------------------------------------------------------------------------------
// Shopify's 2008 REST fixture
// ---------------------------------------------------------------------------------------------

#[test]
fn the_2008_rest_fixture_parses_in_its_rest_wrapper() {
    let o = parse_order(FIXTURE_2008).unwrap();
    assert_eq!(o.id, 450_789_469);
    assert_eq!(o.facts.name, "#1001");
    assert_eq!(o.facts.created_at_ms, 1_199_980_800_000);
    assert_eq!(o.facts.updated_at_ms, 1_199_980_800_000);
    assert!(!o.facts.test);
    assert!(!o.facts.cancelled);
    assert_eq!(o.facts.fulfillment_status, None);
    let lines: Vec<(u64, u32, Option<&str>, Option<u64>)> = o
        .facts
        .line_items
        .iter()
        .map(|l| (l.id, l.quantity, l.sku.as_deref(), l.variant_id))
        .collect();
    assert_eq!(
        lines,
        vec![
            (466_157_049, 1, Some("IPOD2008GREEN"), Some(39_072_856)),
            (518_995_019, 1, Some("IPOD2008RED"), Some(49_148_385)),
            (703_073_504, 1, Some("IPOD2008BLACK"), Some(457_924_702)),
        ]
    );
    for l in &o.facts.line_items {
        assert_eq!(l.product_id, Some(632_910_392));
        assert_eq!(l.title.as_deref(), Some("IPod Nano - 8gb"));
    }
}

#[test]
fn the_2008_order_is_authorized_and_not_paid() {
    let o = parse_order(FIXTURE_2008).unwrap();
    assert_eq!(o.facts.financial_status, FinancialStatus::Authorized);
    assert!(!o.facts.financial_status.is_captured());
    assert!(!o.facts.financial_status.is_void());
}

#[test]
fn the_failed_2008_fulfillment_fulfils_nothing_and_gives_no_tracking() {
    let o = parse_order(FIXTURE_2008).unwrap();
    assert!(o.facts.line_items.iter().all(|l| l.fulfilled_quantity == 0));
    assert!(o.facts.fulfillment_tracking.is_empty());

    // The same fulfillment marked successful does count: only its status excluded it.
    let mut v = json_of(FIXTURE_2008);
    v["order"]["fulfillments"][0]["status"] = json!("success");
    let o = parse_value(&v).unwrap();
    assert_eq!(o.facts.line_items[0].fulfilled_quantity, 1);
    assert_eq!(o.facts.line_items[1].fulfilled_quantity, 0);
    assert_eq!(o.facts.fulfillment_tracking, vec!["1Z2345"]);
}

#[test]
fn the_2008_order_without_graphql_ids_gets_them_derived() {
    let o = parse_order(FIXTURE_2008).unwrap();
    assert_eq!(o.gid(), "gid://shopify/Order/450789469");
    let line_gids: Vec<String> = o
        .facts
        .line_items
        .iter()
        .map(|l| gid("LineItem", l.id))
        .collect();
    assert_eq!(line_gids[0], "gid://shopify/LineItem/466157049");
    assert_eq!(line_gids.len(), 3);
}

#[test]
fn the_2008_order_unwrapped_like_a_webhook_body_parses_the_same() {
    let inner = json_of(FIXTURE_2008)["order"].clone();
    assert_eq!(
        parse_value(&inner).unwrap(),
        parse_order(FIXTURE_2008).unwrap()
    );
}

// ---------------------------------------------------------------------------------------------
// A modern (2026-10) orders/create and orders/updated
// ---------------------------------------------------------------------------------------------

#[test]
fn a_modern_orders_create_body_parses_with_exact_u64_ids() {
    let o = parse_order(ORDERS_CREATE).unwrap();
    assert_eq!(o.id, ORDER_ID);
    assert_eq!(o.gid(), format!("gid://shopify/Order/{ORDER_ID}"));
    assert_eq!(o.facts.name, "#1042");
    assert_eq!(o.facts.created_at_ms, 1_793_614_502_000);
    assert_eq!(o.facts.updated_at_ms, 1_793_614_503_000);
    assert_eq!(o.facts.financial_status, FinancialStatus::Paid);
    assert!(o.facts.financial_status.is_captured());
    assert!(!o.facts.cancelled && !o.facts.test);
    assert_eq!(o.facts.fulfillment_status, None);
    assert!(o.facts.fulfillment_tracking.is_empty());

    let ids: Vec<u64> = o.facts.line_items.iter().map(|l| l.id).collect();
    assert_eq!(ids, vec![LED_STRIP, GIFT_WRAP, PHONE_CASE]);
    let led = &o.facts.line_items[0];
    assert_eq!(led.quantity, 2);
    assert_eq!(led.sku.as_deref(), Some("LED-5M-RGB"));
    assert_eq!(led.variant_id, Some(4_820_113_905_552_117_301));
    assert_eq!(led.product_id, Some(8_904_117_362_145_280_019));
    assert_eq!(led.fulfilled_quantity, 0);
}

#[test]
fn a_custom_item_has_no_sku_variant_or_product_and_its_title_is_unescaped() {
    let o = parse_order(ORDERS_CREATE).unwrap();
    let gift = &o.facts.line_items[1];
    assert_eq!(gift.sku, None, "an empty sku is no sku");
    assert_eq!(gift.variant_id, None);
    assert_eq!(gift.product_id, None);
    assert_eq!(gift.title.as_deref(), Some("Gift wrapping & card"));
    assert_eq!(
        o.facts.line_items[2].title.as_deref(),
        Some("Silicone case <iPhone 16>")
    );
}

#[test]
fn a_partially_refunded_and_partly_fulfilled_update_parses() {
    let o = parse_order(ORDERS_UPDATED).unwrap();
    assert_eq!(o.id, ORDER_ID);
    assert_eq!(o.facts.updated_at_ms, 1_794_242_537_000);
    assert_eq!(o.facts.financial_status, FinancialStatus::PartiallyRefunded);
    assert!(o.facts.financial_status.is_captured());
    assert_eq!(o.facts.fulfillment_status.as_deref(), Some("partial"));
    let by_line: Vec<(u64, u32, u32)> = o
        .facts
        .line_items
        .iter()
        .map(|l| (l.id, l.quantity, l.fulfilled_quantity))
        .collect();
    // The LED strip shipped once (the failed 4PX attempt does not count twice); the refunded
    // phone case's quantity is its current_quantity, 0.
    assert_eq!(
        by_line,
        vec![(LED_STRIP, 2, 2), (GIFT_WRAP, 1, 0), (PHONE_CASE, 0, 0)]
    );
    assert_eq!(o.facts.fulfillment_tracking, vec!["YT2601234567890123"]);
}

#[test]
fn an_unknown_financial_status_is_kept_as_is() {
    let mut v = json_of(ORDERS_CREATE);
    v["financial_status"] = json!("pending_review");
    let o = parse_value(&v).unwrap();
    assert_eq!(
        o.facts.financial_status,
        FinancialStatus::Other("pending_review".into())
    );
    assert_eq!(o.facts.financial_status.as_str(), "pending_review");
    assert!(!o.facts.financial_status.is_captured());
}

#[test]
fn a_cancelled_test_order_is_flagged_as_both() {
    let mut v = json_of(ORDERS_CREATE);
    v["cancelled_at"] = json!("2026-11-02T06:00:00-05:00");
    v["cancel_reason"] = json!("customer");
    v["test"] = json!(true);
    let o = parse_value(&v).unwrap();
    assert!(o.facts.cancelled);
    assert!(o.facts.test);
}

#[test]
fn an_order_known_only_by_its_gid_or_a_string_id_keeps_its_exact_id() {
    let mut v = json_of(ORDERS_CREATE);
    v.as_object_mut().unwrap().remove("id");
    assert_eq!(parse_value(&v).unwrap().id, ORDER_ID);
    v["id"] = json!(ORDER_ID.to_string());
    assert_eq!(parse_value(&v).unwrap().id, ORDER_ID);
    v["id"] = json!(ORDER_ID + 1);
    assert!(matches!(
        parse_value(&v),
        Err(PayloadError::Invalid { field, .. }) if field == "admin_graphql_api_id"
    ));
}

#[test]
fn nothing_personal_from_the_payload_is_kept() {
    for body in [ORDERS_CREATE, ORDERS_UPDATED, FIXTURE_2008] {
        let kept = format!("{:?}", parse_order(body).unwrap());
        for personal in [
            "Jane",
            "jane@example.com",
            "Sample Road",
            "+16135550100",
            "203.0.113.7",
            "Bob",
            "Chestnut",
            "hostmail",
            "XXXX-XXXX-XXXX-4242",
            "Visa",
            "Happy birthday",
            "leave at the door",
        ] {
            assert!(!kept.contains(personal), "{personal} kept: {kept}");
        }
    }
}

#[test]
fn the_fixture_body_verifies_as_sent_and_not_once_re_serialised() {
    // Signature computed independently (Python's hmac) over the fixture's exact bytes.
    let header = "Jwvb9J7QeLJmVZCdThI/kjB/dXA12B9arIVopvH9HiE=";
    assert!(verify_hmac(&["shpss_test_secret"], ORDERS_CREATE, header));
    let reserialised = serde_json::to_vec(&json_of(ORDERS_CREATE)).unwrap();
    assert!(!verify_hmac(&["shpss_test_secret"], &reserialised, header));
    // The re-serialised body still parses to the same order: only the bytes differ.
    assert_eq!(
        parse_order(&reserialised).unwrap(),
        parse_order(ORDERS_CREATE).unwrap()
    );
}

#[test]
fn bodies_that_are_not_orders_are_rejected() {
    for body in [
        &b""[..],
        b"null",
        b"[]",
        b"\"order\"",
        b"{}",
        b"{\"order\": {}}",
        b"{\"id\": 1}",
        &b"{\"id\": 1, \"created_at\": \"2026-01-01T00:00:00Z\""[..],
    ] {
        assert!(
            parse_order(body).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(parse_order(b"{\"id\": 1}"), Err(PayloadError::NoTimestamp));
}

// ---------------------------------------------------------------------------------------------
// Compliance topics
// ---------------------------------------------------------------------------------------------

#[test]
fn a_customers_redact_body_keeps_ids_only() {
    let r = parse_customers_redact(CUSTOMERS_REDACT).unwrap();
    assert_eq!(r.shop_domain.as_str(), "example.myshopify.com");
    assert_eq!(r.shop_id, Some(90_817_283));
    assert_eq!(r.customer_id, Some(9_120_004_388_517_900_001));
    assert_eq!(
        r.orders_to_redact,
        vec![ORDER_ID, 9_120_004_388_517_265_501]
    );
    let kept = format!("{r:?}");
    assert!(
        !kept.contains("jane") && !kept.contains("6135550100"),
        "{kept}"
    );
}

#[test]
fn a_shop_redact_body_parses() {
    let r =
        parse_shop_redact(br#"{"shop_id":954889,"shop_domain":"Example.myshopify.com"}"#).unwrap();
    assert_eq!(r.shop_domain.as_str(), "example.myshopify.com");
    assert_eq!(r.shop_id, Some(954_889));
}

#[test]
fn a_data_request_body_keeps_ids_only() {
    // Shopify's documented sample shape.
    let body = br#"{"shop_id":954889,"shop_domain":"example.myshopify.com","orders_requested":[299938,280263,220458],"customer":{"id":191167,"email":"john@example.com","phone":"555-625-1199"},"data_request":{"id":9999}}"#;
    let r = parse_data_request(body).unwrap();
    assert_eq!(r.customer_id, Some(191_167));
    assert_eq!(r.orders_requested, vec![299_938, 280_263, 220_458]);
    assert_eq!(r.data_request_id, Some(9999));
    assert!(!format!("{r:?}").contains("john"));
}

#[test]
fn compliance_bodies_with_bad_ids_are_rejected() {
    assert!(matches!(
        parse_customers_redact(
            br#"{"shop_domain":"a.myshopify.com","orders_to_redact":[1,"x"]}"#
        ),
        Err(PayloadError::Invalid { field, .. }) if field == "orders_to_redact[1]"
    ));
    assert!(matches!(
        parse_data_request(
            br#"{"shop_domain":"a.myshopify.com","orders_requested":[],"customer":{"id":-1}}"#
        ),
        Err(PayloadError::Invalid { field, .. }) if field == "customer.id"
    ));
}

// ---------------------------------------------------------------------------------------------
// EventBridge
// ---------------------------------------------------------------------------------------------

#[test]
fn an_eventbridge_envelope_with_a_full_payload_parses_like_the_https_body() {
    let d = parse_eventbridge(&json_of(EVENTBRIDGE)).unwrap();
    assert_eq!(d.headers.topic, Topic::OrdersCreate);
    assert_eq!(d.headers.shop.as_str(), "example.myshopify.com");
    assert_eq!(
        d.headers.webhook_id.as_deref(),
        Some("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
    );
    assert_eq!(
        d.headers.event_id.as_deref(),
        Some("98880550-7158-44d4-b7cd-2c97c8a091b5")
    );
    assert_eq!(d.headers.triggered_at_ms(), Some(1_793_614_502_918));
    assert!(d.headers.is_pinned_api_version());
    assert!(d.from_shopify_partner_source());
    let EventBridgePayload::Full(bytes) = &d.payload else {
        panic!("expected a full payload, got {:?}", d.payload);
    };
    assert_eq!(
        parse_order(bytes).unwrap(),
        parse_order(ORDERS_CREATE).unwrap()
    );
}

#[test]
fn an_oversized_eventbridge_order_arrives_as_its_id_only() {
    let mut e = json_of(EVENTBRIDGE);
    e["detail"]["payload"] = json!({ "id": ORDER_ID });
    let d = parse_eventbridge(&e).unwrap();
    assert_eq!(d.payload, EventBridgePayload::IdOnly(ORDER_ID));
    // One more field and it is a (tiny) full payload, for parse_order to judge.
    e["detail"]["payload"]["name"] = json!("#1042");
    assert!(matches!(
        parse_eventbridge(&e).unwrap().payload,
        EventBridgePayload::Full(_)
    ));
}

#[test]
fn an_eventbridge_event_from_elsewhere_is_told_apart() {
    let mut e = json_of(EVENTBRIDGE);
    e["source"] = json!("my.custom.source");
    assert!(!parse_eventbridge(&e).unwrap().from_shopify_partner_source());
    e["detail"]["metadata"]["X-Shopify-Shop-Domain"] = json!("evil.example.com");
    assert!(parse_eventbridge(&e).is_err());
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// Keys and strings that steer arbitrary JSON into the parsers' paths.
const KEYS: &[&str] = &[
    "id",
    "admin_graphql_api_id",
    "order",
    "created_at",
    "updated_at",
    "financial_status",
    "cancelled_at",
    "test",
    "name",
    "fulfillment_status",
    "line_items",
    "quantity",
    "current_quantity",
    "sku",
    "variant_id",
    "product_id",
    "title",
    "fulfillments",
    "status",
    "tracking_number",
    "tracking_numbers",
    "detail",
    "metadata",
    "payload",
    "source",
    "X-Shopify-Topic",
    "x-shopify-shop-domain",
    "shop_domain",
    "customer",
    "orders_to_redact",
];

const STRINGS: &[&str] = &[
    "",
    "success",
    "SUCCESS",
    "failure",
    "paid",
    "2026-10-31T19:00:00-05:00",
    "2026-11-02T10:15:02.918273645Z",
    "gid://shopify/Order/820982911946154508",
    "gid://shopify/LineItem/1",
    "820982911946154508",
    "18446744073709551616",
    "orders/create",
    "a.myshopify.com",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // non-finite becomes null
        prop::sample::select(STRINGS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![prop::sample::select(KEYS).prop_map(str::to_owned), ".{0,6}"],
                    inner
                ),
                0..6
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// How a generated order spells its id.
#[derive(Debug, Clone, Copy)]
enum IdSpelling {
    Integer,
    String,
    GidOnly,
    Both,
}

fn id_json(spelling: IdSpelling, kind: &str, id: u64, obj: &mut serde_json::Map<String, Value>) {
    let g = format!("gid://shopify/{kind}/{id}");
    match spelling {
        IdSpelling::Integer => {
            obj.insert("id".into(), json!(id));
        }
        IdSpelling::String => {
            obj.insert("id".into(), json!(id.to_string()));
        }
        IdSpelling::GidOnly => {
            obj.insert("admin_graphql_api_id".into(), json!(g));
        }
        IdSpelling::Both => {
            obj.insert("id".into(), json!(id));
            obj.insert("admin_graphql_api_id".into(), json!(g));
        }
    }
}

fn arb_spelling() -> impl Strategy<Value = IdSpelling> {
    prop_oneof![
        Just(IdSpelling::Integer),
        Just(IdSpelling::String),
        Just(IdSpelling::GidOnly),
        Just(IdSpelling::Both),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_any_parser(
        body in prop::collection::vec(any::<u8>(), 0..512),
        header in ".{0,60}",
    ) {
        let _ = parse_order(&body);
        let _ = parse_customers_redact(&body);
        let _ = parse_shop_redact(&body);
        let _ = parse_data_request(&body);
        let _ = verify_hmac(&["shpss_test_secret", ""], &body, &header);
        let _ = verify_hmac::<&str>(&[], &body, &header);
    }

    #[test]
    fn arbitrary_json_never_panics_any_parser(v in arb_json()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        let _ = parse_order(&bytes);
        let _ = parse_customers_redact(&bytes);
        let _ = parse_data_request(&bytes);
        let _ = parse_eventbridge(&v);
        let _ = verify_hmac(&["k"], &bytes, "tcKX1/dyrUALHktowGkZMZGKdIukPqkONANSdHTJ+FE=");
        // The same value placed where the parsers look deeper.
        let order = json!({"id": 1, "created_at": "2026-01-01T00:00:00Z",
            "line_items": [{"id": 2, "quantity": 1}], "fulfillments": [v.clone()]});
        let _ = parse_value(&order);
        let order = json!({"id": 1, "created_at": "2026-01-01T00:00:00Z", "line_items": [v.clone()]});
        let _ = parse_value(&order);
        let event = json!({"detail": {"metadata": {"X-Shopify-Topic": "orders/create",
            "X-Shopify-Shop-Domain": "a.myshopify.com"}, "payload": v.clone()}});
        if let Ok(d) = parse_eventbridge(&event)
            && let EventBridgePayload::Full(bytes) = d.payload
        {
            let _ = parse_order(&bytes);
        }
        let event = json!({"detail": {"metadata": v, "payload": {"id": 1}}});
        let _ = parse_eventbridge(&event);
    }

    #[test]
    fn an_arbitrary_valid_order_round_trips_its_ids_and_quantities_exactly(
        id in 1..=u64::MAX,
        spelling in arb_spelling(),
        lines in prop::collection::btree_map(1..=u64::MAX, (0..=u32::MAX, arb_spelling()), 0..5),
        fulfillments in prop::collection::vec(
            (prop::sample::select(&["success", "Success", "failure", "cancelled", "error", "pending"][..]),
             prop::collection::vec((any::<prop::sample::Index>(), 0..1000_u32), 0..4)),
            0..4,
        ),
        seconds in 0_i64..253_402_300_799,
    ) {
        let line_ids: Vec<u64> = lines.keys().copied().collect();
        let mut order = serde_json::Map::new();
        id_json(spelling, "Order", id, &mut order);
        let at = time::OffsetDateTime::from_unix_timestamp(seconds)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        order.insert("updated_at".into(), json!(at));
        let mut items = Vec::new();
        for (line_id, (quantity, line_spelling)) in &lines {
            let mut item = serde_json::Map::new();
            id_json(*line_spelling, "LineItem", *line_id, &mut item);
            item.insert("quantity".into(), json!(quantity));
            items.push(Value::Object(item));
        }
        order.insert("line_items".into(), Value::Array(items));

        let mut expected_fulfilled = std::collections::BTreeMap::<u64, u32>::new();
        let mut fulfillment_json = Vec::new();
        for (status, shipped) in &fulfillments {
            let mut shipped_json = Vec::new();
            for (index, quantity) in shipped {
                if line_ids.is_empty() {
                    break;
                }
                let line_id = line_ids[index.index(line_ids.len())];
                shipped_json.push(json!({"id": line_id, "quantity": quantity}));
                if status.eq_ignore_ascii_case("success") {
                    *expected_fulfilled.entry(line_id).or_insert(0) += quantity;
                }
            }
            fulfillment_json.push(json!({"status": status, "line_items": shipped_json}));
        }
        order.insert("fulfillments".into(), Value::Array(fulfillment_json));

        let order = Value::Object(order);
        let parsed = parse_value(&order).unwrap();
        prop_assert_eq!(parsed.id, id);
        prop_assert_eq!(parsed.facts.created_at_ms, seconds * 1000);
        prop_assert_eq!(parsed.facts.updated_at_ms, seconds * 1000);
        let got: Vec<(u64, u32, u32)> = parsed
            .facts
            .line_items
            .iter()
            .map(|l| (l.id, l.quantity, l.fulfilled_quantity))
            .collect();
        let want: Vec<(u64, u32, u32)> = lines
            .iter()
            .map(|(line_id, (quantity, _))| {
                (*line_id, *quantity, expected_fulfilled.get(line_id).copied().unwrap_or(0))
            })
            .collect();
        prop_assert_eq!(got, want);

        // The same order through EventBridge, in full and id-only.
        let metadata = json!({"X-Shopify-Topic": "orders/updated",
            "X-Shopify-Shop-Domain": "a.myshopify.com"});
        let event = json!({"detail": {"metadata": metadata, "payload": order}});
        let EventBridgePayload::Full(bytes) = parse_eventbridge(&event).unwrap().payload else {
            panic!("expected a full payload");
        };
        prop_assert_eq!(parse_order(&bytes).unwrap(), parsed);
        let event = json!({"detail": {"metadata": metadata, "payload": {"id": id}}});
        prop_assert_eq!(parse_eventbridge(&event).unwrap().payload, EventBridgePayload::IdOnly(id));
    }
}
