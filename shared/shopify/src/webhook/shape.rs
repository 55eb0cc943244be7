//! Topic ↔ body binding. Shopify's HMAC covers the body only: `X-Shopify-Topic`,
//! `X-Shopify-Shop-Domain` and `X-Shopify-Webhook-Id` are not signed, so a captured body can be
//! replayed under any other topic or shop header. Every topic therefore checks that the body has
//! that topic's shape, and that the shop the body names (when it names one) is the header's.
//! The checks look at keys, never quote values.

use super::error::PayloadError;
use super::json::{Obj, parse_body};
use super::order::{ParsedOrder, parse_order_value};
use dropsync_domain::ShopDomain;

/// Keys only the compliance bodies carry.
const COMPLIANCE_KEYS: [&str; 5] = [
    "shop_domain",
    "orders_to_redact",
    "orders_requested",
    "data_request",
    "customer",
];

/// The body of `app/uninstalled`: the shop resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppUninstalled {
    /// `myshopify_domain`.
    pub shop_domain: ShopDomain,
    /// `id`, the shop's id.
    pub shop_id: u64,
}

/// Parses an order topic's body (as [`super::parse_order`]) after checking it is an order: a
/// root-level order with `line_items`, no shop or compliance fields, an order GID when it has
/// one, and an `order_status_url` on the header's shop when that URL names a `myshopify.com`
/// host.
pub fn parse_order_delivery(body: &[u8], shop: &ShopDomain) -> Result<ParsedOrder, PayloadError> {
    let root = parse_body(body)?;
    let doc = Obj::root(&root)?;
    if doc.get("line_items").is_none() {
        return Err(PayloadError::missing("line_items"));
    }
    refuse_keys(&doc, &["myshopify_domain"])?;
    refuse_keys(&doc, &COMPLIANCE_KEYS[..4])?;
    if let Some(gid) = doc.str("admin_graphql_api_id")?
        && !gid.starts_with("gid://shopify/Order/")
    {
        return Err(PayloadError::invalid(
            "admin_graphql_api_id",
            "an order GID",
        ));
    }
    if let Some(url) = doc.str("order_status_url")?
        && let Some(host) = myshopify_host(url)
        && !host.eq_ignore_ascii_case(shop.as_str())
    {
        return Err(PayloadError::invalid(
            "order_status_url",
            "on the shop named by X-Shopify-Shop-Domain",
        ));
    }
    parse_order_value(&root)
}

/// Parses an `app/uninstalled` body: the shop resource, with its `id` and `myshopify_domain`, and
/// nothing of an order or a compliance request.
pub fn parse_app_uninstalled(body: &[u8]) -> Result<AppUninstalled, PayloadError> {
    let root = parse_body(body)?;
    let doc = Obj::root(&root)?;
    refuse_keys(&doc, &["line_items", "financial_status", "order_number"])?;
    refuse_keys(&doc, &COMPLIANCE_KEYS)?;
    let raw = doc
        .str("myshopify_domain")?
        .ok_or_else(|| PayloadError::missing("myshopify_domain"))?;
    let shop_domain = ShopDomain::parse(raw)
        .map_err(|_| PayloadError::invalid("myshopify_domain", "a *.myshopify.com domain"))?;
    let shop_id = doc
        .id("id", "Shop")?
        .ok_or_else(|| PayloadError::missing("id"))?;
    Ok(AppUninstalled {
        shop_domain,
        shop_id,
    })
}

/// Fails unless every key in `keys` is present (null counts: the key is the shape).
pub(crate) fn require_keys(doc: &Obj<'_>, keys: &[&str]) -> Result<(), PayloadError> {
    for key in keys {
        if !doc.map().contains_key(*key) {
            return Err(PayloadError::missing(*key));
        }
    }
    Ok(())
}

/// Fails when any key in `keys` is present: a field of another topic's body.
pub(crate) fn refuse_keys(doc: &Obj<'_>, keys: &[&str]) -> Result<(), PayloadError> {
    for key in keys {
        if doc.map().contains_key(*key) {
            return Err(PayloadError::invalid(*key, "absent for this topic"));
        }
    }
    Ok(())
}

/// The host of an `https://{shop}.myshopify.com/...` URL; `None` for any other host (custom
/// domains say nothing about which shop sent the body).
/// Whether an order body names `shop` itself: an `order_status_url` on its `myshopify.com` host.
/// Most orders' status URL is on the shop's own domain instead, and then the body names no shop.
pub fn order_names_shop(body: &[u8], shop: &ShopDomain) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("order_status_url")
                .and_then(serde_json::Value::as_str)
                .and_then(myshopify_host)
                .map(|h| h.eq_ignore_ascii_case(shop.as_str()))
        })
        .unwrap_or(false)
}

fn myshopify_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let host = rest.split(['/', '?', '#', ':']).next()?;
    host.to_ascii_lowercase()
        .ends_with(".myshopify.com")
        .then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop(s: &str) -> ShopDomain {
        ShopDomain::parse(s).unwrap()
    }

    const ORDER: &str = r#"{"id": 5, "admin_graphql_api_id": "gid://shopify/Order/5",
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        "financial_status": "paid", "line_items": []}"#;
    const SHOP_BODY: &str = r#"{"id": 548380009, "name": "Example", "domain": "example.com",
        "myshopify_domain": "a.myshopify.com", "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z"}"#;

    #[test]
    fn an_order_body_is_an_order_and_nothing_else_is() {
        assert_eq!(
            parse_order_delivery(ORDER.as_bytes(), &shop("a.myshopify.com"))
                .unwrap()
                .id,
            5
        );
        for body in [
            SHOP_BODY,
            r#"{"shop_id": 1, "shop_domain": "a.myshopify.com"}"#,
            r#"{"shop_id": 1, "shop_domain": "a.myshopify.com", "customer": {"id": 1}, "orders_to_redact": [5]}"#,
            r#"{"id": 5, "admin_graphql_api_id": "gid://shopify/Shop/5", "created_at": "2026-01-01T00:00:00Z", "line_items": []}"#,
        ] {
            assert!(
                parse_order_delivery(body.as_bytes(), &shop("a.myshopify.com")).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn an_order_whose_status_url_names_another_myshopify_shop_is_refused() {
        let with = |url: &str| {
            let mut v: serde_json::Value = serde_json::from_str(ORDER).unwrap();
            v["order_status_url"] = url.into();
            v.to_string().into_bytes()
        };
        let a = shop("a.myshopify.com");
        assert!(
            parse_order_delivery(
                &with("https://a.myshopify.com/1/orders/x/authenticate?key=k"),
                &a
            )
            .is_ok()
        );
        assert!(parse_order_delivery(&with("https://shop.example.com/1/orders/x"), &a).is_ok());
        assert!(parse_order_delivery(&with("https://b.myshopify.com/1/orders/x"), &a).is_err());
    }

    #[test]
    fn an_uninstall_body_is_the_shop_resource_only() {
        let ok = parse_app_uninstalled(SHOP_BODY.as_bytes()).unwrap();
        assert_eq!(ok.shop_domain, shop("a.myshopify.com"));
        assert_eq!(ok.shop_id, 548_380_009);
        for body in [
            "{}",
            ORDER,
            r#"{"id": 1, "domain": "a.myshopify.com"}"#,
            r#"{"shop_id": 1, "shop_domain": "a.myshopify.com"}"#,
        ] {
            assert!(parse_app_uninstalled(body.as_bytes()).is_err(), "{body}");
        }
    }
}
