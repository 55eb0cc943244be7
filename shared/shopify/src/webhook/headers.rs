//! Delivery headers and topics.

use super::error::HeaderError;
use dropsync_domain::ShopDomain;
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The API version dropsync subscribes with. Shopify silently falls forward when a version is no
/// longer supported and reports the version it used in `X-Shopify-API-Version`: compare, log and
/// alert.
pub const PINNED_API_VERSION: &str = "2026-10";

/// A webhook topic, as in `X-Shopify-Topic`. Open: a topic dropsync does not handle is kept as
/// [`Topic::Other`] with its original spelling, so the caller can acknowledge and ignore it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    OrdersCreate,
    OrdersUpdated,
    OrdersPaid,
    OrdersCancelled,
    OrdersFulfilled,
    OrdersPartiallyFulfilled,
    AppUninstalled,
    CustomersDataRequest,
    CustomersRedact,
    ShopRedact,
    Other(String),
}

impl Topic {
    /// Parses a header topic (`orders/create`). Case and surrounding whitespace are ignored; an
    /// unknown topic becomes [`Topic::Other`] holding the raw value.
    pub fn parse(raw: &str) -> Self {
        match raw.trim().to_ascii_lowercase().as_str() {
            "orders/create" => Self::OrdersCreate,
            "orders/updated" => Self::OrdersUpdated,
            "orders/paid" => Self::OrdersPaid,
            "orders/cancelled" => Self::OrdersCancelled,
            "orders/fulfilled" => Self::OrdersFulfilled,
            "orders/partially_fulfilled" => Self::OrdersPartiallyFulfilled,
            "app/uninstalled" => Self::AppUninstalled,
            "customers/data_request" => Self::CustomersDataRequest,
            "customers/redact" => Self::CustomersRedact,
            "shop/redact" => Self::ShopRedact,
            _ => Self::Other(raw.to_owned()),
        }
    }

    /// The header spelling (`orders/create`); [`Topic::Other`] gives back its raw value.
    pub fn as_str(&self) -> &str {
        match self {
            Self::OrdersCreate => "orders/create",
            Self::OrdersUpdated => "orders/updated",
            Self::OrdersPaid => "orders/paid",
            Self::OrdersCancelled => "orders/cancelled",
            Self::OrdersFulfilled => "orders/fulfilled",
            Self::OrdersPartiallyFulfilled => "orders/partially_fulfilled",
            Self::AppUninstalled => "app/uninstalled",
            Self::CustomersDataRequest => "customers/data_request",
            Self::CustomersRedact => "customers/redact",
            Self::ShopRedact => "shop/redact",
            Self::Other(raw) => raw,
        }
    }

    /// An order topic: the body is a REST order, for [`super::parse_order`].
    pub fn is_order(&self) -> bool {
        matches!(
            self,
            Self::OrdersCreate
                | Self::OrdersUpdated
                | Self::OrdersPaid
                | Self::OrdersCancelled
                | Self::OrdersFulfilled
                | Self::OrdersPartiallyFulfilled
        )
    }

    /// A mandatory compliance topic. These carry no `updated_at`: dedupe them on
    /// `(shop, webhook id)`.
    pub fn is_compliance(&self) -> bool {
        matches!(
            self,
            Self::CustomersDataRequest | Self::CustomersRedact | Self::ShopRedact
        )
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `X-Shopify-*` headers of one delivery.
///
/// Only the topic and the shop are required: Shopify's header set varies slightly by topic, and
/// EventBridge deliveries are not signed. Blank values count as absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryHeaders {
    /// `X-Shopify-Topic`.
    pub topic: Topic,
    /// `X-Shopify-Shop-Domain`, checked and lower-cased. Not authenticated until the HMAC is.
    pub shop: ShopDomain,
    /// `X-Shopify-Hmac-Sha256`, for [`super::verify_hmac`]. An HTTPS delivery without one gets 401.
    pub hmac: Option<String>,
    /// `X-Shopify-Webhook-Id`: unique per delivery, the dedupe key with the shop.
    pub webhook_id: Option<String>,
    /// `X-Shopify-Event-Id`: shared by the deliveries one merchant action causes.
    pub event_id: Option<String>,
    /// `X-Shopify-Triggered-At`, as sent (ISO-8601 with nanoseconds); see
    /// [`DeliveryHeaders::triggered_at_ms`].
    pub triggered_at: Option<String>,
    /// `X-Shopify-API-Version`: the version the payload was serialised with.
    pub api_version: Option<String>,
}

impl DeliveryHeaders {
    /// `X-Shopify-Triggered-At` in milliseconds since the epoch, when present and RFC 3339.
    pub fn triggered_at_ms(&self) -> Option<i64> {
        self.triggered_at.as_deref().and_then(rfc3339_ms)
    }

    /// Whether the payload was serialised with [`PINNED_API_VERSION`]. `false` when the header is
    /// absent too: either way the shape is not the one dropsync was tested against.
    pub fn is_pinned_api_version(&self) -> bool {
        self.api_version.as_deref().map(str::trim) == Some(PINNED_API_VERSION)
    }
}

/// Reads the delivery headers through `get`, a **case-insensitive** lookup supplied by the
/// caller (`get("X-Shopify-Topic")` must find `x-shopify-topic`: over HTTP/2 names arrive
/// lower-cased). When a header is repeated, `get` should return the first value; this crate does
/// not see the duplicates.
///
/// Errors: [`HeaderError::MissingTopic`], [`HeaderError::MissingShop`],
/// [`HeaderError::InvalidShop`], [`HeaderError::InvalidWebhookId`]. Verify the HMAC before
/// trusting anything read here.
pub fn read_headers<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
) -> Result<DeliveryHeaders, HeaderError> {
    let value = |name: &str| {
        get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let topic = get("X-Shopify-Topic")
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(Topic::parse)
        .ok_or(HeaderError::MissingTopic)?;
    let shop_raw = get("X-Shopify-Shop-Domain")
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(HeaderError::MissingShop)?;
    let shop = ShopDomain::parse(shop_raw).map_err(|_| HeaderError::InvalidShop)?;
    let webhook_id = value("X-Shopify-Webhook-Id");
    if webhook_id
        .as_deref()
        .is_some_and(|id| id.len() > MAX_WEBHOOK_ID)
    {
        return Err(HeaderError::InvalidWebhookId);
    }
    Ok(DeliveryHeaders {
        topic,
        shop,
        hmac: value("X-Shopify-Hmac-Sha256"),
        webhook_id,
        event_id: value("X-Shopify-Event-Id"),
        triggered_at: value("X-Shopify-Triggered-At"),
        api_version: value("X-Shopify-API-Version"),
    })
}

/// The longest `X-Shopify-Webhook-Id` accepted, in bytes. Shopify's are UUIDs (36); the id is
/// part of the dedupe record's key, and DynamoDB refuses partition keys over 2,048 bytes.
pub const MAX_WEBHOOK_ID: usize = 255;

/// RFC 3339 (offset required, fractional seconds optional, up to nanoseconds) to milliseconds
/// since the epoch, rounded down.
pub(crate) fn rfc3339_ms(raw: &str) -> Option<i64> {
    let at = OffsetDateTime::parse(raw.trim(), &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        }
    }

    #[test]
    fn lower_cased_headers_are_read() {
        let pairs = [
            ("x-shopify-topic", "orders/create"),
            ("x-shopify-shop-domain", "Example.myshopify.com"),
            ("x-shopify-hmac-sha256", "abc="),
            ("x-shopify-webhook-id", "b54557e4"),
            ("x-shopify-event-id", "98880550"),
            ("x-shopify-triggered-at", "2026-05-11T15:06:59.110521905Z"),
            ("x-shopify-api-version", "2026-10"),
        ];
        let h = read_headers(lookup(&pairs)).unwrap();
        assert_eq!(h.topic, Topic::OrdersCreate);
        assert_eq!(h.shop.as_str(), "example.myshopify.com");
        assert_eq!(h.hmac.as_deref(), Some("abc="));
        assert_eq!(h.webhook_id.as_deref(), Some("b54557e4"));
        assert_eq!(h.event_id.as_deref(), Some("98880550"));
        assert_eq!(h.triggered_at_ms(), Some(1_778_512_019_110));
        assert!(h.is_pinned_api_version());
    }

    #[test]
    fn missing_topic_missing_shop_and_invalid_shop_are_told_apart() {
        let shop = ("X-Shopify-Shop-Domain", "a.myshopify.com");
        let topic = ("X-Shopify-Topic", "orders/paid");
        assert_eq!(
            read_headers(lookup(&[shop])),
            Err(HeaderError::MissingTopic)
        );
        assert_eq!(
            read_headers(lookup(&[shop, ("X-Shopify-Topic", "  ")])),
            Err(HeaderError::MissingTopic)
        );
        assert_eq!(
            read_headers(lookup(&[topic])),
            Err(HeaderError::MissingShop)
        );
        for bad in [
            "example.com",
            "a/b.myshopify.com",
            "evil.com#.myshopify.com",
        ] {
            assert_eq!(
                read_headers(lookup(&[topic, ("X-Shopify-Shop-Domain", bad)])),
                Err(HeaderError::InvalidShop),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_over_long_webhook_id_is_refused_before_anything_is_done() {
        let long = "w".repeat(MAX_WEBHOOK_ID + 1);
        let ok = "w".repeat(MAX_WEBHOOK_ID);
        for (id, want) in [
            (&long, Err(HeaderError::InvalidWebhookId)),
            (&ok, Ok(ok.clone())),
        ] {
            let pairs = [
                ("X-Shopify-Topic", "shop/redact"),
                ("X-Shopify-Shop-Domain", "a.myshopify.com"),
                ("X-Shopify-Webhook-Id", id.as_str()),
            ];
            let got = read_headers(lookup(&pairs)).map(|h| h.webhook_id.unwrap_or_default());
            assert_eq!(got, want);
        }
    }

    #[test]
    fn optional_headers_may_be_absent_or_blank() {
        let pairs = [
            ("X-Shopify-Topic", "shop/redact"),
            ("X-Shopify-Shop-Domain", "a.myshopify.com"),
            ("X-Shopify-Webhook-Id", ""),
        ];
        let h = read_headers(lookup(&pairs)).unwrap();
        assert_eq!(h.topic, Topic::ShopRedact);
        assert_eq!(h.hmac, None);
        assert_eq!(h.webhook_id, None);
        assert_eq!(h.triggered_at_ms(), None);
        assert!(!h.is_pinned_api_version());
    }

    #[test]
    fn topics_round_trip_and_unknown_ones_are_kept() {
        for t in [
            Topic::OrdersCreate,
            Topic::OrdersUpdated,
            Topic::OrdersPaid,
            Topic::OrdersCancelled,
            Topic::OrdersFulfilled,
            Topic::OrdersPartiallyFulfilled,
            Topic::AppUninstalled,
            Topic::CustomersDataRequest,
            Topic::CustomersRedact,
            Topic::ShopRedact,
        ] {
            assert_eq!(Topic::parse(t.as_str()), t);
            assert_eq!(Topic::parse(&t.as_str().to_ascii_uppercase()), t);
        }
        assert_eq!(
            Topic::parse("fulfillments/create"),
            Topic::Other("fulfillments/create".into())
        );
        assert_eq!(Topic::parse("Orders/Edited").as_str(), "Orders/Edited");
        assert!(Topic::OrdersPaid.is_order() && !Topic::OrdersPaid.is_compliance());
        assert!(Topic::ShopRedact.is_compliance() && !Topic::AppUninstalled.is_order());
    }

    #[test]
    fn rfc3339_times_with_and_without_fractions_and_offsets_convert_to_ms() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:01Z"), Some(1_000));
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00.0019Z"), Some(1));
        assert_eq!(rfc3339_ms("1969-12-31T23:59:59.999500Z"), Some(-1));
        assert_eq!(
            rfc3339_ms("2026-10-31T19:00:00-05:00"),
            rfc3339_ms("2026-11-01T00:00:00Z")
        );
        assert_eq!(rfc3339_ms("2026-10-31T19:00:00"), None);
        assert_eq!(rfc3339_ms("yesterday"), None);
    }
}
