//! The mandatory compliance payloads (spec §3.8). Only ids are kept: the customer's email and
//! phone, which these payloads carry, are never read.

use super::error::PayloadError;
use super::json::{Obj, parse_body};
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
pub fn parse_customers_redact(body: &[u8]) -> Result<CustomersRedact, PayloadError> {
    let root = parse_body(body)?;
    let doc = Obj::root(&root)?;
    Ok(CustomersRedact {
        shop_domain: shop_domain(&doc)?,
        shop_id: doc.id("shop_id", "Shop")?,
        customer_id: customer_id(&doc)?,
        orders_to_redact: doc.ids("orders_to_redact", "Order")?,
    })
}

/// Parses a `shop/redact` body: `shop_domain` (required), `shop_id`.
pub fn parse_shop_redact(body: &[u8]) -> Result<ShopRedact, PayloadError> {
    let root = parse_body(body)?;
    let doc = Obj::root(&root)?;
    Ok(ShopRedact {
        shop_domain: shop_domain(&doc)?,
        shop_id: doc.id("shop_id", "Shop")?,
    })
}

/// Parses a `customers/data_request` body: `shop_domain` (required), `shop_id`, `customer.id`,
/// `orders_requested[]`, `data_request.id`.
pub fn parse_data_request(body: &[u8]) -> Result<DataRequest, PayloadError> {
    let root = parse_body(body)?;
    let doc = Obj::root(&root)?;
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
        let r = parse_customers_redact(br#"{"shop_domain":"a.myshopify.com","customer":null}"#)
            .unwrap();
        assert_eq!(r.customer_id, None);
        assert!(r.orders_to_redact.is_empty());
    }
}
