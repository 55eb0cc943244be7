//! The placement calls: `aliexpress.ds.product.get` (a product's SKUs, seller and prices),
//! `aliexpress.ds.freight.query` (shipping options to a country) and `aliexpress.ds.order.create`
//! (one supplier order), with their request builders and tolerant parsers.
//!
//! Order creation is special: its outcome may be unknown (a timeout, a 5xx or an unreadable answer
//! after the request left). Those are never errors here, they are [`CreateOutcome::Unknown`], so no
//! caller can mistake them for "not created" and retry blindly.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::AeError;
use crate::wire::{
    LenientBool, LenientString, LenientU64, ListWrapper, OneOrMany, gateway_error_of, top_object,
};

/// Reads one product: SKUs, seller, title.
pub const METHOD_PRODUCT_GET: &str = "aliexpress.ds.product.get";
/// Shipping options for one SKU to one country.
pub const METHOD_FREIGHT_QUERY: &str = "aliexpress.ds.freight.query";
/// Places one order (AliExpress makes one order per seller of the items sent).
pub const METHOD_ORDER_CREATE: &str = "aliexpress.ds.order.create";
/// The business error of an `out_order_id` already used within 24 h.
pub const REPEATED_ORDER_ERROR: &str = "REPEATED_ORDER_ERROR";

// ------------------------------------------------------------------------------------------------
// Types
// ------------------------------------------------------------------------------------------------

/// One SKU property (`ae_sku_property_dtos`), e.g. `Color` = `Silver`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AeSkuProperty {
    /// `sku_property_name`, e.g. `Color`.
    pub name: String,
    /// The seller's custom name (`property_value_definition_name`) when set, else
    /// `sku_property_value`.
    pub value: String,
}

/// One SKU of a product.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AeSku {
    pub sku_id: String,
    /// `propId:valueId#name;…`, sent back as is in `order.create` (`""` for a single-SKU product).
    pub sku_attr: String,
    /// The price the buyer account pays (`offer_sale_price`, else `sku_price`), decimal text.
    pub price: Option<String>,
    pub currency: Option<String>,
    /// `sku_available_stock`; `None` when not given.
    pub stock: Option<u64>,
    pub properties: Vec<AeSkuProperty>,
}

/// A product as `ds.product.get` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AeProduct {
    pub product_id: u64,
    /// `ae_item_base_info_dto.subject`.
    pub title: Option<String>,
    /// The seller: `ae_store_info.store_id`. AliExpress makes one order per seller.
    pub store_id: Option<u64>,
    pub store_name: Option<String>,
    pub skus: Vec<AeSku>,
    /// `ae_item_base_info_dto.product_status_type`: `onSelling` while it can be bought; other
    /// values (`offline`, `auditing`, `editingRequired`) mean it cannot be ordered now.
    pub status: Option<String>,
}

impl AeProduct {
    /// The SKU with this id.
    pub fn sku(&self, sku_id: &str) -> Option<&AeSku> {
        self.skus.iter().find(|s| s.sku_id == sku_id)
    }

    /// Whether the product can be ordered: on sale, or of a status AliExpress did not say.
    pub fn on_sale(&self) -> bool {
        self.status
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case("onSelling"))
    }
}

/// What `ds.product.get` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductAnswer {
    Found(AeProduct),
    /// The product is unknown (`605`), not sold to that country (`602`), or otherwise refused.
    Refused {
        code: String,
        message: String,
    },
}

/// One shipping option of `ds.freight.query`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FreightOption {
    /// What to send as `logistics_service_name`, e.g. `CAINIAO_STANDARD`.
    pub code: String,
    pub company: Option<String>,
    /// `shipping_fee_cent`, which despite its name is in major units ("2.35").
    pub fee: Option<String>,
    pub currency: Option<String>,
    pub free_shipping: bool,
    /// `mayHavePFS`: free once the order reaches `free_shipping_threshold`.
    pub may_have_pfs: bool,
    pub free_shipping_threshold: Option<String>,
    pub min_delivery_days: Option<u64>,
    pub max_delivery_days: Option<u64>,
}

impl FreightOption {
    /// The fee in cents for the given order value (cents): 0 when shipping is free, by the rules
    /// AliExpress documents (free, or "may have PFS" with no threshold or a reached one).
    /// `None` when the fee cannot be read.
    pub fn fee_cents(&self, order_value_cents: u64) -> Option<u64> {
        if self.free_shipping {
            return Some(0);
        }
        if self.may_have_pfs {
            match self.free_shipping_threshold.as_deref().map(decimal_cents) {
                None | Some(Some(0)) => return Some(0),
                Some(Some(t)) if order_value_cents >= t => return Some(0),
                _ => {}
            }
        }
        self.fee.as_deref().and_then(decimal_cents)
    }
}

/// Decimal text in major units ("2.35", "2", "2.3") as cents; `None` when not a non-negative
/// number with at most two decimals.
pub fn decimal_cents(raw: &str) -> Option<u64> {
    let t = raw.trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 2 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac_cents: u64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<u64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    whole.checked_mul(100)?.checked_add(frac_cents)
}

/// The shipping address as `order.create` wants it (`logistics_address`). Never logged:
/// `Debug` prints only the country.
#[derive(Clone, PartialEq, Eq, Default, Serialize)]
pub struct LogisticsAddress {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address2: Option<String>,
    pub city: String,
    pub province: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
    pub contact_person: String,
    pub full_name: String,
    /// The national number, digits only.
    pub mobile_no: String,
    /// The calling code with its plus, e.g. `+1`.
    pub phone_country: String,
    /// Brazil's CPF, digits only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpf: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_number: Option<String>,
}

impl std::fmt::Debug for LogisticsAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogisticsAddress")
            .field("country", &self.country)
            .finish_non_exhaustive()
    }
}

/// One item of an order to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceItem {
    pub product_id: u64,
    pub count: u32,
    pub sku_attr: String,
    pub logistics_service_name: String,
}

/// One `order.create` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceOrderRequest {
    /// The idempotency key (valid 24 h on AliExpress' side).
    pub out_order_id: String,
    pub address: LogisticsAddress,
    pub items: Vec<PlaceItem>,
}

impl PlaceOrderRequest {
    /// The `param_place_order_request4_open_api_d_t_o` JSON string. Product ids are written as
    /// JSON integers built from `u64`, never through a float.
    pub fn to_param(&self) -> String {
        let items: Vec<Value> = self
            .items
            .iter()
            .map(|it| {
                json!({
                    "product_id": it.product_id,
                    "product_count": it.count,
                    "sku_attr": it.sku_attr,
                    "logistics_service_name": it.logistics_service_name,
                })
            })
            .collect();
        json!({
            "out_order_id": self.out_order_id,
            "logistics_address": self.address,
            "product_items": items,
        })
        .to_string()
    }
}

/// What became of an `order.create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// Created: the AliExpress order ids. `note` carries an `error_msg` that came with success
    /// (e.g. "OrderCreated, autoPay fail:APIPayFail": created, awaiting manual payment).
    Created {
        order_ids: Vec<u64>,
        note: Option<String>,
    },
    /// A business error: nothing was created.
    Rejected { code: String, message: String },
    /// `REPEATED_ORDER_ERROR`: this `out_order_id` was already handled successfully within
    /// 24 h. An order exists, and its ids are unknown.
    Repeated { message: String },
    /// The request may or may not have created an order: a timeout, a 5xx, an unreadable answer,
    /// or success without order ids. Never retry with a new `out_order_id`.
    Unknown { reason: String },
}

// ------------------------------------------------------------------------------------------------
// Request parameters
// ------------------------------------------------------------------------------------------------

/// The business parameters of `ds.product.get`.
pub fn product_get_params(product_id: u64, ship_to_country: &str) -> Vec<(String, String)> {
    vec![
        ("product_id".into(), product_id.to_string()),
        ("ship_to_country".into(), ship_to_country.to_owned()),
        ("target_currency".into(), "USD".into()),
        ("target_language".into(), "en".into()),
    ]
}

/// The business parameters of `ds.freight.query` (`queryDeliveryReq`, a JSON string).
pub fn freight_query_params(
    product_id: u64,
    sku_id: &str,
    quantity: u32,
    ship_to_country: &str,
) -> Vec<(String, String)> {
    let req = json!({
        "productId": product_id.to_string(),
        "selectedSkuId": sku_id,
        "quantity": quantity.to_string(),
        "shipToCountry": ship_to_country,
        "language": "en_US",
        "locale": "en_US",
        "currency": "USD",
    });
    vec![("queryDeliveryReq".into(), req.to_string())]
}

/// The business parameters of `ds.order.create`.
pub fn order_create_params(req: &PlaceOrderRequest) -> Vec<(String, String)> {
    vec![(
        "param_place_order_request4_open_api_d_t_o".into(),
        req.to_param(),
    )]
}

// ------------------------------------------------------------------------------------------------
// Parsers
// ------------------------------------------------------------------------------------------------

fn bad(what: &str) -> AeError {
    AeError::Permanent(format!("unexpected AliExpress response: {what}"))
}

/// The `<method>_response` object, or the classified gateway error.
fn response_object(body: &[u8], method: &str) -> Result<Map<String, Value>, AeError> {
    let mut top = top_object(body)?;
    if let Some(err) = top.get("error_response") {
        return Err(match err {
            Value::Object(err) => gateway_error_of(err).classify(),
            _ => bad("error_response is not an object"),
        });
    }
    let key = format!("{}_response", method.replace('.', "_"));
    match top.remove(&key) {
        Some(Value::Object(o)) => Ok(o),
        _ => Err(bad(&format!("no {key}"))),
    }
}

enum SkuW {}
impl ListWrapper for SkuW {
    const NAME: &'static str = "ae_item_sku_info_d_t_o";
}
enum PropW {}
impl ListWrapper for PropW {
    const NAME: &'static str = "ae_sku_property_d_t_o";
}
enum DeliveryW {}
impl ListWrapper for DeliveryW {
    const NAME: &'static str = "delivery_option_d_t_o";
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ProductWire {
    ae_item_sku_info_dtos: OneOrMany<SkuWire, SkuW>,
    ae_item_base_info_dto: BaseWire,
    ae_store_info: StoreWire,
    // Errors may sit in the result too.
    code: LenientString,
    msg: LenientString,
    rsp_code: LenientString,
    rsp_msg: LenientString,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BaseWire {
    subject: LenientString,
    product_id: LenientU64,
    product_status_type: LenientString,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StoreWire {
    store_id: LenientU64,
    store_name: LenientString,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SkuWire {
    sku_id: LenientString,
    id: LenientString,
    sku_attr: LenientString,
    sku_price: LenientString,
    offer_sale_price: LenientString,
    currency_code: LenientString,
    sku_available_stock: LenientU64,
    ae_sku_property_dtos: OneOrMany<PropWire, PropW>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PropWire {
    sku_property_name: LenientString,
    sku_property_value: LenientString,
    property_value_definition_name: LenientString,
}

/// Whether an `rsp_code`/`code` means success (absent, `0` or `200`).
fn ok_code(code: Option<&str>) -> bool {
    matches!(code, None | Some("0" | "200"))
}

/// Parses a whole `ds.product.get` response body for `product_id`.
pub fn parse_product_get(body: &[u8], product_id: u64) -> Result<ProductAnswer, AeError> {
    let mut resp = response_object(body, METHOD_PRODUCT_GET)?;
    let rsp_code = resp.get("rsp_code").and_then(scalar_text);
    let rsp_msg = resp.get("rsp_msg").and_then(scalar_text);
    let result = resp.remove("result");
    if !ok_code(rsp_code.as_deref()) {
        return Ok(ProductAnswer::Refused {
            code: rsp_code.unwrap_or_default(),
            message: rsp_msg.unwrap_or_default(),
        });
    }
    let Some(result @ Value::Object(_)) = result else {
        return Ok(ProductAnswer::Refused {
            code: "605".into(),
            message: "ITEM_ID_NOT_FOUND".into(),
        });
    };
    let wire: ProductWire =
        serde_json::from_value(result).map_err(|e| bad(&format!("product.get result: {e}")))?;
    let inner_code = wire.rsp_code.0.or(wire.code.0);
    if !ok_code(inner_code.as_deref()) {
        return Ok(ProductAnswer::Refused {
            code: inner_code.unwrap_or_default(),
            message: wire.rsp_msg.0.or(wire.msg.0).unwrap_or_default(),
        });
    }
    let skus = wire
        .ae_item_sku_info_dtos
        .into_vec()
        .into_iter()
        .filter_map(|s| {
            let sku_id = s.sku_id.0.or(s.id.0)?;
            Some(AeSku {
                sku_id,
                sku_attr: s.sku_attr.0.unwrap_or_default(),
                price: s.offer_sale_price.0.or(s.sku_price.0),
                currency: s.currency_code.0,
                stock: s.sku_available_stock.0,
                properties: s
                    .ae_sku_property_dtos
                    .into_vec()
                    .into_iter()
                    .filter_map(|p| {
                        Some(AeSkuProperty {
                            name: p.sku_property_name.0?,
                            value: p
                                .property_value_definition_name
                                .0
                                .or(p.sku_property_value.0)?,
                        })
                    })
                    .collect(),
            })
        })
        .collect::<Vec<_>>();
    if skus.is_empty() {
        return Err(bad("product.get result has no SKUs"));
    }
    Ok(ProductAnswer::Found(AeProduct {
        product_id: wire
            .ae_item_base_info_dto
            .product_id
            .0
            .unwrap_or(product_id),
        title: wire.ae_item_base_info_dto.subject.0,
        store_id: wire.ae_store_info.store_id.0,
        store_name: wire.ae_store_info.store_name.0,
        skus,
        status: wire.ae_item_base_info_dto.product_status_type.0,
    }))
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FreightWire {
    success: LenientBool,
    code: LenientString,
    msg: LenientString,
    delivery_options: OneOrMany<OptionWire, DeliveryW>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OptionWire {
    code: LenientString,
    company: LenientString,
    shipping_fee_cent: LenientString,
    shipping_fee_currency: LenientString,
    free_shipping: LenientBool,
    #[serde(rename = "mayHavePFS")]
    may_have_pfs: LenientBool,
    free_shipping_threshold: LenientString,
    min_delivery_days: LenientU64,
    max_delivery_days: LenientU64,
}

/// The freight code of "DELIVERY_NOT_AVAILABLE_TO_YOUR_ADDRESS".
pub const FREIGHT_NOT_AVAILABLE: &str = "505";

/// Parses a whole `ds.freight.query` response body. "Not available to your address" (505) is
/// no options, not an error.
pub fn parse_freight_query(body: &[u8]) -> Result<Vec<FreightOption>, AeError> {
    let mut resp = response_object(body, METHOD_FREIGHT_QUERY)?;
    let result = resp.remove("result").unwrap_or(Value::Object(resp));
    let wire: FreightWire =
        serde_json::from_value(result).map_err(|e| bad(&format!("freight.query result: {e}")))?;
    if wire.success.0 == Some(false) {
        if wire.code.0.as_deref() == Some(FREIGHT_NOT_AVAILABLE) {
            return Ok(Vec::new());
        }
        return Err(AeError::Permanent(format!(
            "AliExpress business error {}: {}",
            wire.code.0.as_deref().unwrap_or("?"),
            wire.msg.0.as_deref().unwrap_or("")
        )));
    }
    Ok(wire
        .delivery_options
        .into_vec()
        .into_iter()
        .filter_map(|o| {
            Some(FreightOption {
                code: o.code.0?,
                company: o.company.0,
                fee: o.shipping_fee_cent.0,
                currency: o.shipping_fee_currency.0,
                free_shipping: o.free_shipping.0.unwrap_or(false),
                may_have_pfs: o.may_have_pfs.0.unwrap_or(false),
                free_shipping_threshold: o.free_shipping_threshold.0,
                min_delivery_days: o.min_delivery_days.0,
                max_delivery_days: o.max_delivery_days.0,
            })
        })
        .collect())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CreateWire {
    is_success: LenientBool,
    error_code: LenientString,
    error_msg: LenientString,
    order_list: Value,
}

/// The ids of `order_list` in any shape: `{"number": [..]}`, `{"number": 1}`, `[..]`, a bare
/// number or its text.
fn order_ids(v: Value) -> Vec<u64> {
    let inner = match v {
        Value::Object(mut m) => m.remove("number").unwrap_or(Value::Null),
        other => other,
    };
    let one = |v: &Value| match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match &inner {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        other => one(other).into_iter().collect(),
    }
}

/// Parses a whole `ds.order.create` response body.
///
/// `Err` only for a gateway refusal (`error_response`: the request was not processed, e.g. a bad
/// signature, a refused token or a rate limit); a transient gateway error (`isp.*`) and anything
/// unreadable are [`CreateOutcome::Unknown`], because the order may exist.
pub fn parse_order_create(body: &[u8]) -> Result<CreateOutcome, AeError> {
    let unknown = |reason: String| Ok(CreateOutcome::Unknown { reason });
    let mut resp = match response_object(body, METHOD_ORDER_CREATE) {
        Ok(resp) => resp,
        Err(e @ (AeError::RateLimited { .. } | AeError::InvalidToken)) => return Err(e),
        Err(AeError::Retryable(reason)) => return unknown(reason),
        Err(AeError::Permanent(reason)) => {
            // A gateway `error_response` is a refusal; an unreadable body is not.
            return if reason.starts_with("unexpected AliExpress response") {
                unknown(reason)
            } else {
                Err(AeError::Permanent(reason))
            };
        }
    };
    let result = resp.remove("result").unwrap_or(Value::Object(resp));
    let Ok(wire) = serde_json::from_value::<CreateWire>(result) else {
        return unknown("unreadable order.create result".into());
    };
    let ids = order_ids(wire.order_list);
    let code = wire.error_code.0;
    let message = wire.error_msg.0;
    match wire.is_success.0 {
        Some(true) if !ids.is_empty() => Ok(CreateOutcome::Created {
            order_ids: ids,
            note: message,
        }),
        Some(true) => unknown("order.create succeeded without order ids".into()),
        _ if code.as_deref() == Some(REPEATED_ORDER_ERROR) => Ok(CreateOutcome::Repeated {
            message: message.unwrap_or_default(),
        }),
        _ if code.is_some() => Ok(CreateOutcome::Rejected {
            code: code.unwrap_or_default(),
            message: message.unwrap_or_default(),
        }),
        // Ids without a success flag: AliExpress made orders.
        None if !ids.is_empty() => Ok(CreateOutcome::Created {
            order_ids: ids,
            note: message,
        }),
        _ => unknown("order.create answered neither success nor an error code".into()),
    }
}

#[cfg(test)]
mod tests;
