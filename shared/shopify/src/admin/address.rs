//! The shipping address of one order, read at placement time. It is handed to the caller and
//! never stored, logged or put in an error text.

use super::AdminError;
use super::client::AdminClient;
use super::documents::OP_ORDER_SHIPPING_ADDRESS;
use dropsync_domain::placement::ShippingAddress;
use dropsync_domain::{ShopDomain, gid};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Root {
    order: Option<AddressOrder>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddressOrder {
    shipping_address: Option<Mailing>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mailing {
    first_name: Option<String>,
    last_name: Option<String>,
    name: Option<String>,
    address1: Option<String>,
    address2: Option<String>,
    city: Option<String>,
    province: Option<String>,
    province_code: Option<String>,
    country_code_v2: Option<String>,
    zip: Option<String>,
    phone: Option<String>,
    company: Option<String>,
}

/// Reads `data` of an `OrderShippingAddress` answer: `None` when the order does not exist,
/// `Some(None)` when it has no shipping address.
pub(crate) fn shipping_address_from(
    data: serde_json::Value,
) -> Result<Option<Option<ShippingAddress>>, AdminError> {
    // The serde error text could quote a value: it is not passed on.
    let root: Root = serde_json::from_value(data)
        .map_err(|_| AdminError::Permanent("unexpected OrderShippingAddress answer".to_owned()))?;
    Ok(root.order.map(|o| {
        o.shipping_address.map(|m| ShippingAddress {
            first_name: m.first_name,
            last_name: m.last_name,
            name: m.name,
            address1: m.address1,
            address2: m.address2,
            city: m.city,
            province: m.province,
            province_code: m.province_code,
            country_code: m.country_code_v2,
            zip: m.zip,
            phone: m.phone,
            company: m.company,
        })
    }))
}

impl AdminClient {
    /// The order's shipping address (GraphQL `order(id:) { shippingAddress }`): `Ok(None)` when
    /// the order does not exist, `Ok(Some(None))` when it has no shipping address.
    pub async fn order_shipping_address(
        &self,
        shop: &ShopDomain,
        token: &str,
        order_id: u64,
    ) -> Result<Option<Option<ShippingAddress>>, AdminError> {
        let data = self
            .run(
                shop,
                token,
                &OP_ORDER_SHIPPING_ADDRESS,
                json!({"id": gid("Order", order_id)}),
                Some(order_id),
            )
            .await?;
        shipping_address_from(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_becomes_a_shipping_address_and_absences_are_told_apart() {
        let data = json!({"order": {"id": "gid://shopify/Order/1", "shippingAddress": {
            "firstName": "Jane", "lastName": "Doe", "name": "Jane Doe", "address1": "1 Main St",
            "address2": null, "city": "Vineland", "province": "New Jersey", "provinceCode": "NJ",
            "countryCodeV2": "US", "zip": "08360", "phone": "+15553600000", "company": null}}});
        let a = shipping_address_from(data).unwrap().unwrap().unwrap();
        assert_eq!(a.country_code.as_deref(), Some("US"));
        assert_eq!(a.city.as_deref(), Some("Vineland"));
        assert_eq!(
            shipping_address_from(json!({"order": {"id": "x", "shippingAddress": null}})).unwrap(),
            Some(None)
        );
        assert_eq!(shipping_address_from(json!({"order": null})).unwrap(), None);
        let err = shipping_address_from(json!({"order": {"shippingAddress": {"city": 5}}}))
            .unwrap_err()
            .to_string();
        assert!(!err.contains('5'), "{err}");
    }
}
