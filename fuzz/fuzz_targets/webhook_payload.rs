//! Shopify webhook bodies: whatever bytes arrive (after the HMAC, which an attacker holding a
//! shop's secret — or Shopify itself — can satisfy) must parse or be refused, never panic.
//! Also the EventBridge envelope, and the full payload it may carry.
#![no_main]

use dropsync_shopify::webhook::{
    EventBridgePayload, parse_customers_redact, parse_data_request, parse_eventbridge, parse_order,
    parse_shop_redact, verify_hmac,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(order) = parse_order(data) {
        // Every parsed id round-trips through the GID the admin API uses.
        let _ = order.gid();
    }
    let _ = parse_shop_redact(data);
    let _ = parse_customers_redact(data);
    let _ = parse_data_request(data);
    if let Ok(event) = serde_json::from_slice::<serde_json::Value>(data)
        && let Ok(delivery) = parse_eventbridge(&event)
    {
        let _ = delivery.from_shopify_partner_source();
        if let EventBridgePayload::Full(body) = &delivery.payload {
            let _ = parse_order(body);
        }
    }
    // The signature check takes the header as sent: any text, any length.
    if let Some((header, body)) = data.split_first().map(|(n, rest)| {
        let n = usize::from(*n).min(rest.len());
        rest.split_at(n)
    }) {
        let header = String::from_utf8_lossy(header);
        let _ = verify_hmac(&["fuzz-secret"], body, &header);
    }
});
