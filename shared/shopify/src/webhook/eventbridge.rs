//! Amazon EventBridge deliveries: the alternative ingestion path, unsigned (trust
//! comes from the AWS partner event source), with oversized payloads reduced to an id.

use super::error::PayloadError;
use super::headers::{DeliveryHeaders, read_headers};
use super::json::{Obj, id_from_value};
use serde_json::Value;

/// The `source` prefix of Shopify's partner event sources.
const SHOPIFY_PARTNER_SOURCE: &str = "aws.partner/shopify.com/";

/// One Shopify webhook delivered through EventBridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBridgeDelivery {
    /// From `detail.metadata`, read like HTTP headers (keys case-insensitively). `hmac` is
    /// whatever the metadata carries and is not checked: EventBridge deliveries are not signed.
    pub headers: DeliveryHeaders,
    pub payload: EventBridgePayload,
    /// The envelope's `source`, e.g. `aws.partner/shopify.com/<app-id>/<source-name>`.
    pub source: Option<String>,
}

impl EventBridgeDelivery {
    /// Whether the event claims a Shopify partner event source. Only AWS can emit `aws.*`
    /// sources (`PutEvents` refuses them), so this is what authenticates an EventBridge delivery
    /// when the rule that routed it does not already match on `source`.
    pub fn from_shopify_partner_source(&self) -> bool {
        self.source
            .as_deref()
            .is_some_and(|s| s.starts_with(SHOPIFY_PARTNER_SOURCE))
    }
}

/// What `detail.payload` carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventBridgePayload {
    /// The whole payload, re-encoded as JSON bytes for [`super::parse_order`] or the compliance
    /// parsers. These are not the bytes Shopify sent (nothing to verify here anyway).
    Full(Vec<u8>),
    /// `{"id": …}` and nothing else: the payload was over EventBridge's size limit (1,000,000
    /// bytes since 2026-11-17), so Shopify sent only the order id. Re-fetch the order through
    /// GraphQL; it must not be applied as an order with no line items.
    IdOnly(u64),
}

/// Reads an EventBridge event (the whole envelope, as the Lambda receives it or as the body of
/// the SQS message between them).
///
/// Requires `detail.metadata` with a usable topic and shop ([`PayloadError::Headers`]) and an
/// object in `detail.payload`. The envelope's other fields (`detail-type`, `time`, …) are not
/// checked: the EventBridge rule selects the events, and Shopify may add fields.
pub fn parse_eventbridge(event: &Value) -> Result<EventBridgeDelivery, PayloadError> {
    let envelope = Obj::root(event)?;
    let detail = envelope
        .object("detail")?
        .ok_or_else(|| PayloadError::missing("detail"))?;
    let metadata = detail
        .object("metadata")?
        .ok_or_else(|| PayloadError::missing("detail.metadata"))?;
    let entries = metadata.map();
    // Case-insensitive, like HTTP headers. Should two keys differ only in case, the first in the
    // map's order wins; a non-string value counts as absent.
    let headers = read_headers(|name: &str| {
        entries
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| value.as_str())
    })?;

    let payload_path = detail.path("payload");
    let payload = match detail.get("payload") {
        None => return Err(PayloadError::missing(payload_path)),
        Some(Value::Object(map)) if map.len() == 1 && map.contains_key("id") => {
            let id = map
                .get("id")
                .and_then(|v| id_from_value(v, "Order"))
                .ok_or_else(|| {
                    PayloadError::invalid(format!("{payload_path}.id"), "a Shopify id")
                })?;
            EventBridgePayload::IdOnly(id)
        }
        Some(full @ Value::Object(_)) => EventBridgePayload::Full(
            serde_json::to_vec(full)
                .map_err(|_| PayloadError::invalid(payload_path, "serialisable JSON"))?,
        ),
        Some(_) => return Err(PayloadError::invalid(payload_path, "a JSON object")),
    };

    Ok(EventBridgeDelivery {
        headers,
        payload,
        source: envelope.str("source")?.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::{HeaderError, Topic};
    use serde_json::json;

    fn event(payload: Value) -> Value {
        json!({
            "version": "0", "id": "6f1c", "detail-type": "shopifyWebhook",
            "source": "aws.partner/shopify.com/1234/dropsync",
            "detail": {
                "metadata": {
                    "x-shopify-topic": "orders/updated",
                    "X-SHOPIFY-SHOP-DOMAIN": "a.myshopify.com"
                },
                "payload": payload
            }
        })
    }

    #[test]
    fn metadata_keys_are_read_case_insensitively() {
        let d = parse_eventbridge(&event(json!({"id": 1, "name": "#1"}))).unwrap();
        assert_eq!(d.headers.topic, Topic::OrdersUpdated);
        assert_eq!(d.headers.shop.as_str(), "a.myshopify.com");
        assert!(d.from_shopify_partner_source());
        assert!(matches!(d.payload, EventBridgePayload::Full(_)));
    }

    #[test]
    fn an_id_only_payload_is_told_apart_and_its_id_kept_exactly() {
        let d = parse_eventbridge(&event(json!({"id": 820_982_911_946_154_508_u64}))).unwrap();
        assert_eq!(
            d.payload,
            EventBridgePayload::IdOnly(820_982_911_946_154_508)
        );
        assert!(parse_eventbridge(&event(json!({"id": "x"}))).is_err());
    }

    #[test]
    fn missing_parts_are_errors() {
        let mut e = event(json!({"id": 1}));
        e["detail"]["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("x-shopify-topic");
        assert_eq!(
            parse_eventbridge(&e),
            Err(PayloadError::Headers(HeaderError::MissingTopic))
        );
        let mut e = event(json!({"id": 1}));
        e["detail"].as_object_mut().unwrap().remove("payload");
        assert_eq!(
            parse_eventbridge(&e),
            Err(PayloadError::missing("detail.payload"))
        );
        assert!(parse_eventbridge(&event(json!([1]))).is_err());
        assert!(parse_eventbridge(&json!({"detail": {}})).is_err());
        assert!(parse_eventbridge(&json!("x")).is_err());
    }
}
