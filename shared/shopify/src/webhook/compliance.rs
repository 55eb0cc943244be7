//! The mandatory compliance payloads. Only ids are kept: the customer's email and
//! phone, which these payloads carry, are never read.

use super::error::PayloadError;
use super::json::{Obj, parse_body};
use super::shape::{refuse_keys, require_keys};

/// Fields of an order or a shop resource: never in a compliance body.
const RESOURCE_KEYS: [&str; 3] = ["line_items", "myshopify_domain", "financial_status"];
use dropsync_domain::ShopDomain;

/// `customers/redact`: delete what is stored about this customer's orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomersRedact {
    pub shop_domain: ShopDomain,
    pub shop_id: Option<u64>,
    pub customer_id: Option<u64>,
    /// The orders whose data must be redacted; may be empty.
    pub orders_to_redact: Vec<u64>,
}

/// `shop/redact`: 48 h after an uninstall, delete all of the shop's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopRedact {
    pub shop_domain: ShopDomain,
    pub shop_id: Option<u64>,
}

/// `customers/data_request`: report what is stored about this customer's orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRequest {
    pub shop_domain: ShopDomain,
    pub shop_id: Option<u64>,
    pub customer_id: Option<u64>,
    pub orders_requested: Vec<u64>,
    /// `data_request.id`, to quote when answering the merchant.
    pub data_request_id: Option<u64>,
}

/// Parses a `customers/redact` body: `shop_domain` (required), `shop_id`, `customer.id`,
/// `orders_to_redact[]`. The caller should check `shop_domain` against the (HMAC-verified)
/// `X-Shopify-Shop-Domain` before deleting anything.
///
/// The body must have this topic's shape: `orders_to_redact` present, and no field of a data
/// request (`orders_requested`, `data_request`), an order or a shop.
pub fn parse_customers_redact(body: &[u8]) -> Result<CustomersRedact, PayloadError> {
    let root = parse_body(body)?;
    let doc = Obj::root(&root)?;
    require_keys(&doc, &["orders_to_redact"])?;
    refuse_keys(&doc, &["orders_requested", "data_request"])?;
    refuse_keys(&doc, &RESOURCE_KEYS)?;
    Ok(CustomersRedact {
        shop_domain: shop_domain(&doc)?,
        shop_id: doc.id("shop_id", "Shop")?,
        customer_id: customer_id(&doc)?,
        orders_to_redact: doc.ids("orders_to_redact", "Order")?,
    })
}

/// Parses a `shop/redact` body: `shop_domain` (required), `shop_id`.
/// Nothing of a customer request (`customer`, `orders_to_redact`, `orders_requested`,
/// `data_request`), an order or a shop may be present: a customer's redact replayed under this
/// topic must not delete a shop.
pub fn parse_shop_redact(body: &[u8]) -> Result<ShopRedact, PayloadError> {
    let root = parse_body(body)?;
    let doc = Obj::root(&root)?;
    refuse_keys(
        &doc,
        &[
            "customer",
            "orders_to_redact",
            "orders_requested",
            "data_request",
        ],
    )?;
    refuse_keys(&doc, &RESOURCE_KEYS)?;
    Ok(ShopRedact {
        shop_domain: shop_domain(&doc)?,
        shop_id: doc.id("shop_id", "Shop")?,
    })
}

/// Parses a `customers/data_request` body: `shop_domain` (required), `shop_id`, `customer.id`,
/// `orders_requested[]`, `data_request.id`.
/// `orders_requested` must be present, `orders_to_redact` absent.
pub fn parse_data_request(body: &[u8]) -> Result<DataRequest, PayloadError> {
    let root = parse_body(body)?;
    let doc = Obj::root(&root)?;
    require_keys(&doc, &["orders_requested"])?;
    refuse_keys(&doc, &["orders_to_redact"])?;
    refuse_keys(&doc, &RESOURCE_KEYS)?;
    let data_request_id = match doc.object("data_request")? {
        Some(request) => request.id("id", "DataRequest")?,
        None => None,
    };
    Ok(DataRequest {
        shop_domain: shop_domain(&doc)?,
        shop_id: doc.id("shop_id", "Shop")?,
        customer_id: customer_id(&doc)?,
        orders_requested: doc.ids("orders_requested", "Order")?,
        data_request_id,
    })
}

fn shop_domain(doc: &Obj<'_>) -> Result<ShopDomain, PayloadError> {
    let raw = doc
        .str("shop_domain")?
        .ok_or_else(|| PayloadError::missing("shop_domain"))?;
    ShopDomain::parse(raw)
        .map_err(|_| PayloadError::invalid("shop_domain", "a *.myshopify.com domain"))
}

fn customer_id(doc: &Obj<'_>) -> Result<Option<u64>, PayloadError> {
    match doc.object("customer")? {
        Some(customer) => customer.id("id", "Customer"),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_compliance_body_is_refused_under_the_other_two_topics() {
        let data = br#"{"shop_id":1,"shop_domain":"a.myshopify.com","orders_requested":[1],"customer":{"id":2},"data_request":{"id":3}}"#;
        let redact = br#"{"shop_id":1,"shop_domain":"a.myshopify.com","customer":{"id":2},"orders_to_redact":[1]}"#;
        let shop = br#"{"shop_id":1,"shop_domain":"a.myshopify.com"}"#;
        assert!(parse_data_request(data).is_ok());
        assert!(parse_customers_redact(redact).is_ok());
        assert!(parse_shop_redact(shop).is_ok());
        assert!(parse_customers_redact(data).is_err() && parse_shop_redact(data).is_err());
        assert!(parse_data_request(redact).is_err() && parse_shop_redact(redact).is_err());
        assert!(parse_data_request(shop).is_err() && parse_customers_redact(shop).is_err());
    }

    #[test]
    fn a_shop_redact_needs_a_valid_shop_domain() {
        let ok = parse_shop_redact(br#"{"shop_id":954889,"shop_domain":"a.myshopify.com"}"#);
        assert_eq!(ok.unwrap().shop_id, Some(954_889));
        assert_eq!(
            parse_shop_redact(br#"{"shop_id":954889}"#),
            Err(PayloadError::missing("shop_domain"))
        );
        assert!(matches!(
            parse_shop_redact(br#"{"shop_domain":"evil.com"}"#),
            Err(PayloadError::Invalid { .. })
        ));
    }

    #[test]
    fn a_customers_redact_without_customer_or_orders_is_accepted() {
        let r = parse_customers_redact(
            br#"{"shop_domain":"a.myshopify.com","customer":null,"orders_to_redact":[]}"#,
        )
        .unwrap();
        assert_eq!(r.customer_id, None);
        assert!(r.orders_to_redact.is_empty());
    }
}
