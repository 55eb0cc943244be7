//! The webhook's CPU work per delivery, everything up to the DynamoDB call: verify the HMAC over
//! the raw body, read the headers, parse the order, build the domain order and the JSON the
//! write carries — for orders of 1, 10 and 100 line items.
//!
//! ```sh
//! cargo bench -p dropsync-shopify-webhook --bench webhook
//! ```
//!
//! The UpdateItem's attribute map itself is built inside `Store::save_shopify_facts` by private
//! functions (`codec::shopify_attrs`), so it cannot be timed without a network call. What is
//! timed in its place is the work that dominates it: `Order::from_shopify` (which
//! `save_shopify_facts` calls first) and the JSON encoding of the line items and tracking numbers,
//! which `shopify_attrs` stores as two string attributes. The remaining few `AttributeValue`s
//! and the expression strings are a handful of small allocations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark, not an input path

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dropsync_domain::{Order, ShopDomain};
use dropsync_shopify::webhook::{parse_order, read_headers, verify_hmac};
use serde_json::{Value, json};
use std::hint::black_box;

const SECRET: &str = "shpss_test_secret";
const SHOP: &str = "example.myshopify.com";

/// A realistic REST order payload with `lines` line items, serialised the
/// way Shopify signs it (compact, `\/` and `\u0026` escapes).
fn body(lines: usize) -> Vec<u8> {
    let line_items: Vec<Value> = (0..lines as u64)
        .map(|i| {
            let id = 866_550_311_766_439_020_u64 + i;
            json!({
                "id": id, "admin_graphql_api_id": format!("gid://shopify/LineItem/{id}"),
                "variant_id": 44_100_000_000_000_000_u64 + i, "product_id": 8_100_000_000_000_000_u64 + i,
                "sku": format!("SKU-{i:05}"), "title": "Stainless steel water bottle / 750 ml",
                "name": "Stainless steel water bottle / 750 ml - Silver", "variant_title": "Silver",
                "vendor": "Acme & Co", "quantity": 1 + i % 3, "current_quantity": 1 + i % 3,
                "fulfillable_quantity": 1 + i % 3, "fulfillment_status": null,
                "fulfillment_service": "manual", "requires_shipping": true, "gift_card": false,
                "taxable": true, "price": "19.90", "grams": 350,
                "price_set": {"shop_money": {"amount": "19.90", "currency_code": "USD"},
                              "presentment_money": {"amount": "19.90", "currency_code": "USD"}},
                "total_discount": "0.00", "properties": [], "tax_lines": [{"price": "1.99", "rate": 0.1, "title": "GST"}],
                "discount_allocations": [], "duties": []
            })
        })
        .collect();
    let order = json!({
        "id": 820_982_911_946_154_508_u64, "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
        "name": "#1001", "order_number": 1001, "email": "jane.doe@example.com", "phone": null,
        "created_at": "2026-11-02T10:00:00-05:00", "updated_at": "2026-11-02T10:01:00-05:00",
        "processed_at": "2026-11-02T10:00:00-05:00", "cancelled_at": null, "cancel_reason": null,
        "financial_status": "paid", "fulfillment_status": null, "test": false,
        "currency": "USD", "total_price": "199.00", "subtotal_price": "199.00", "total_tax": "19.90",
        "tags": "vip, wholesale", "note": "Leave at the back door / ring twice & wait",
        "shipping_address": {"first_name": "Jane", "last_name": "Doe", "address1": "1 Main St",
            "city": "Ottawa", "province_code": "ON", "zip": "K1A 0B1", "country_code": "CA"},
        "customer": {"id": 115_310_627_314_723_954_u64, "email": "jane.doe@example.com"},
        "line_items": line_items, "fulfillments": [], "refunds": [], "shipping_lines": [],
        "discount_codes": []
    });
    serde_json::to_string(&order)
        .unwrap()
        .replace('/', "\\/")
        .replace('&', "\\u0026")
        .into_bytes()
}

/// base64(HMAC-SHA256) of the body, computed once per size outside the timed loop (through the
/// AliExpress signer: with one unnamed parameter it signs exactly the body, in hex).
fn sign(body: &[u8]) -> String {
    let text = std::str::from_utf8(body).unwrap().to_owned();
    let hex = dropsync_aliexpress::sign::sign(SECRET, None, &[(String::new(), text)]);
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap(), 16).unwrap())
        .collect();
    let mut data = aws_lambda_events::encodings::Base64Data::default();
    data.extend_from_slice(&bytes);
    serde_json::to_value(data)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

struct Delivery {
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

fn delivery(lines: usize) -> Delivery {
    let body = body(lines);
    let hmac = sign(&body);
    let headers = vec![
        ("x-shopify-topic", "orders/create".to_owned()),
        ("x-shopify-hmac-sha256", hmac),
        ("x-shopify-shop-domain", SHOP.to_owned()),
        ("x-shopify-api-version", "2026-10".to_owned()),
        (
            "x-shopify-webhook-id",
            "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043".to_owned(),
        ),
        (
            "x-shopify-event-id",
            "98880550-7158-44d4-b7cd-2c97c8a091b5".to_owned(),
        ),
        (
            "x-shopify-triggered-at",
            "2026-11-02T15:06:59.110521905Z".to_owned(),
        ),
    ];
    Delivery { body, headers }
}

/// Everything the handler does before its one DynamoDB call; returns the bytes the write
/// carries, so nothing is optimised away.
fn process(d: &Delivery, secrets: &[&str]) -> usize {
    let get = |name: &str| {
        d.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let shop = ShopDomain::parse(get("x-shopify-shop-domain").unwrap()).unwrap();
    assert!(verify_hmac(
        secrets,
        &d.body,
        get("x-shopify-hmac-sha256").unwrap()
    ));
    let headers = read_headers(get).unwrap();
    let parsed = parse_order(&d.body).unwrap();
    let order = Order::from_shopify(
        shop,
        parsed.id,
        parsed.facts,
        headers.topic.as_str(),
        1_793_632_020_000,
    );
    let lines = serde_json::to_string(&order.shopify.line_items).unwrap();
    let tracking = serde_json::to_string(&order.shopify.fulfillment_tracking).unwrap();
    lines.len() + tracking.len() + order.history.len()
}

fn bench(c: &mut Criterion) {
    let sizes = [1usize, 10, 100];
    let deliveries: Vec<(usize, Delivery)> = sizes.iter().map(|&n| (n, delivery(n))).collect();

    let mut whole = c.benchmark_group("webhook");
    for (n, d) in &deliveries {
        whole.throughput(Throughput::Elements(1));
        whole.bench_with_input(
            BenchmarkId::new("verify+parse+build", format!("{n}_lines_{}B", d.body.len())),
            d,
            |b, d| b.iter(|| black_box(process(black_box(d), &[SECRET]))),
        );
    }
    // During a secret rotation both secrets are tried, whichever matches (constant time).
    if let Some((n, d)) = deliveries.get(1) {
        whole.bench_with_input(
            BenchmarkId::new("verify+parse+build_rotation", format!("{n}_lines")),
            d,
            |b, d| b.iter(|| black_box(process(black_box(d), &["shpss_new_secret", SECRET]))),
        );
    }
    whole.finish();

    let mut parts = c.benchmark_group("webhook_parts");
    for (n, d) in &deliveries {
        let hmac = d.headers.get(1).map(|(_, v)| v.clone()).unwrap();
        parts.bench_with_input(BenchmarkId::new("verify_hmac", n), d, |b, d| {
            b.iter(|| black_box(verify_hmac(&[SECRET], black_box(&d.body), &hmac)))
        });
        parts.bench_with_input(BenchmarkId::new("parse_order", n), d, |b, d| {
            b.iter(|| black_box(parse_order(black_box(&d.body)).map(|p| p.id)))
        });
    }
    parts.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
