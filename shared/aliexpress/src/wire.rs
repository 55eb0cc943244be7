//! Parsing AliExpress responses: the envelopes and every shape quirk of the answers.
//!
//! AliExpress is inconsistent about shapes, so nothing here trusts one:
//! - lists come wrapped (`child_order_list.aeop_child_order_info[…]`, with `simplify=false`) or as
//!   bare arrays (`simplify=true`), and a single element may arrive as a bare object instead of a
//!   one-element array ([`OneOrMany`] handles all of that);
//! - numbers come as strings and strings as numbers, booleans as `"true"` ([`LenientString`],
//!   [`LenientU64`], [`LenientI64`], [`LenientBool`]);
//! - ids near 2^53 stay exact: JSON integers are read as `u64`, never through `f64`;
//! - unknown keys, at any level, are ignored.
//!
//! No function here panics on any input (a property test feeds them arbitrary bytes and JSON).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{AeError, GatewayError};
use crate::{
    AeChild, AeOrder, AeParcelItem, AeTrackingLine, METHOD_ORDER_GET, METHOD_TRACKING_GET,
};

// ------------------------------------------------------------------------------------------------
// One or many, wrapped or not
// ------------------------------------------------------------------------------------------------

/// Names the wrapper key a list may come in (with `simplify=false`), e.g.
/// `aeop_child_order_info` for `child_order_list`.
pub trait ListWrapper {
    /// The key inside the list's object, e.g. `"tracking_detail"`.
    const NAME: &'static str;
}

/// A list field as AliExpress may send it, in any of these shapes (`W::NAME` = `item`):
///
/// | shape | example |
/// |---|---|
/// | wrapped array | `{"item": [{…}, {…}]}` |
/// | wrapped single object | `{"item": {…}}` |
/// | bare array | `[{…}, {…}]` |
/// | bare single object | `{…}` |
/// | absent, `null`, `{}`, `""`, or `{"item": null}` | no elements |
///
/// An element that is not what `T` expects fails the whole parse: a half-read list could make a
/// partial cancel look like a full one.
pub struct OneOrMany<T, W> {
    /// The elements, in the order sent.
    pub items: Vec<T>,
    _wrapper: PhantomData<fn() -> W>,
}

impl<T, W> OneOrMany<T, W> {
    /// The elements.
    pub fn into_vec(self) -> Vec<T> {
        self.items
    }
}

impl<T, W> Default for OneOrMany<T, W> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            _wrapper: PhantomData,
        }
    }
}

impl<T: fmt::Debug, W> fmt::Debug for OneOrMany<T, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.items.fmt(f)
    }
}

impl<'de, T: DeserializeOwned, W: ListWrapper> Deserialize<'de> for OneOrMany<T, W> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Buffered as a `Value` because telling "wrapper object" from "bare single element" needs
        // a look at the keys first. serde_json keeps integers as u64/i64 in a `Value`, so ids stay
        // exact.
        let value = Value::deserialize(deserializer)?;
        let items = one_or_many(value, W::NAME).map_err(de::Error::custom)?;
        Ok(Self {
            items,
            _wrapper: PhantomData,
        })
    }
}

/// The elements of a list `value` in any of the shapes [`OneOrMany`] accepts; `wrapper` is the
/// wrapper key (`""` when the list never comes wrapped).
pub fn one_or_many<T: DeserializeOwned>(
    value: Value,
    wrapper: &str,
) -> Result<Vec<T>, serde_json::Error> {
    let inner = match value {
        Value::Object(mut map) if !wrapper.is_empty() => match map.remove(wrapper) {
            Some(inner) => inner,
            None => Value::Object(map),
        },
        other => other,
    };
    match inner {
        Value::Array(items) => items.into_iter().map(serde_json::from_value).collect(),
        Value::Object(map) if map.is_empty() => Ok(Vec::new()),
        single @ Value::Object(_) => Ok(vec![serde_json::from_value(single)?]),
        // null, and the "" or 0 some gateways put where an empty list belongs.
        _ => Ok(Vec::new()),
    }
}

// ------------------------------------------------------------------------------------------------
// Lenient scalars
// ------------------------------------------------------------------------------------------------

/// Below this, an integral `f64` is an exact integer.
const F64_EXACT: f64 = 9_007_199_254_740_992.0;

/// A text field that may arrive as a string, a number or a boolean. Numbers become their decimal
/// text (integers exactly, ids included); the text is trimmed; empty text, `null`, objects and
/// arrays become `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LenientString(pub Option<String>);

/// A non-negative integer that may arrive as a number or as decimal text (`2`, `"2"`, `2.0`).
/// Anything else (negative, fractional, text that is not a number, objects) becomes `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LenientU64(pub Option<u64>);

/// A signed integer (epoch-ms time stamps) that may arrive as a number or as decimal text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LenientI64(pub Option<i64>);

/// A boolean that may arrive as `true`, `"true"`/`"TRUE"`, `"1"` or `1`. Anything unrecognised
/// becomes `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LenientBool(pub Option<bool>);

fn clean(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

fn f64_to_u64(f: f64) -> Option<u64> {
    (f.is_finite() && f.fract() == 0.0 && (0.0..F64_EXACT).contains(&f)).then_some(f as u64)
}

fn f64_to_i64(f: f64) -> Option<i64> {
    (f.is_finite() && f.fract() == 0.0 && f.abs() < F64_EXACT).then_some(f as i64)
}

fn text_to_u64(s: &str) -> Option<u64> {
    let t = s.trim();
    t.parse::<u64>()
        .ok()
        .or_else(|| t.parse::<f64>().ok().and_then(f64_to_u64))
}

fn text_to_i64(s: &str) -> Option<i64> {
    let t = s.trim();
    t.parse::<i64>()
        .ok()
        .or_else(|| t.parse::<f64>().ok().and_then(f64_to_i64))
}

fn text_to_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// One visitor for the four lenient scalars: it maps every JSON shape to the target's `Option`.
trait Scalar: Sized {
    const EXPECTING: &'static str;
    fn from_str(s: &str) -> Option<Self>;
    fn from_u64(n: u64) -> Option<Self>;
    fn from_i64(n: i64) -> Option<Self>;
    fn from_f64(f: f64) -> Option<Self>;
    fn from_bool(b: bool) -> Option<Self>;
}

impl Scalar for String {
    const EXPECTING: &'static str = "a string, number or boolean";
    fn from_str(s: &str) -> Option<Self> {
        clean(s)
    }
    fn from_u64(n: u64) -> Option<Self> {
        Some(n.to_string())
    }
    fn from_i64(n: i64) -> Option<Self> {
        Some(n.to_string())
    }
    fn from_f64(f: f64) -> Option<Self> {
        f64_to_i64(f)
            .map(|n| n.to_string())
            .or_else(|| f.is_finite().then(|| f.to_string()))
    }
    fn from_bool(b: bool) -> Option<Self> {
        Some(b.to_string())
    }
}

impl Scalar for u64 {
    const EXPECTING: &'static str = "a non-negative integer or its text";
    fn from_str(s: &str) -> Option<Self> {
        text_to_u64(s)
    }
    fn from_u64(n: u64) -> Option<Self> {
        Some(n)
    }
    fn from_i64(n: i64) -> Option<Self> {
        u64::try_from(n).ok()
    }
    fn from_f64(f: f64) -> Option<Self> {
        f64_to_u64(f)
    }
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
}

impl Scalar for i64 {
    const EXPECTING: &'static str = "an integer or its text";
    fn from_str(s: &str) -> Option<Self> {
        text_to_i64(s)
    }
    fn from_u64(n: u64) -> Option<Self> {
        i64::try_from(n).ok()
    }
    fn from_i64(n: i64) -> Option<Self> {
        Some(n)
    }
    fn from_f64(f: f64) -> Option<Self> {
        f64_to_i64(f)
    }
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
}

impl Scalar for bool {
    const EXPECTING: &'static str = "a boolean or its text";
    fn from_str(s: &str) -> Option<Self> {
        text_to_bool(s)
    }
    fn from_u64(n: u64) -> Option<Self> {
        match n {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    fn from_i64(n: i64) -> Option<Self> {
        u64::try_from(n).ok().and_then(Self::from_u64)
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    fn from_bool(b: bool) -> Option<Self> {
        Some(b)
    }
}

struct ScalarVisitor<S>(PhantomData<S>);

impl<'de, S: Scalar> Visitor<'de> for ScalarVisitor<S> {
    type Value = Option<S>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(S::EXPECTING)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(S::from_bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(S::from_i64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(S::from_u64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(S::from_f64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(S::from_str(v))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    // A list or an object where a scalar belongs carries nothing usable; skipping it keeps the
    // rest of the record readable.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

macro_rules! lenient_deserialize {
    ($ty:ident, $inner:ty) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(ScalarVisitor::<$inner>(PhantomData))
                    .map($ty)
            }
        }
    };
}
lenient_deserialize!(LenientString, String);
lenient_deserialize!(LenientU64, u64);
lenient_deserialize!(LenientI64, i64);
lenient_deserialize!(LenientBool, bool);

// ------------------------------------------------------------------------------------------------
// Envelopes
// ------------------------------------------------------------------------------------------------

fn bad_response(what: &str) -> AeError {
    AeError::Permanent(format!("unexpected AliExpress response: {what}"))
}

/// A scalar field of a JSON object as text (strings trimmed, numbers and booleans written out).
fn field_text(map: &Map<String, Value>, key: &str) -> Option<String> {
    match map.get(key)? {
        Value::String(s) => clean(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn gateway_error_of(map: &Map<String, Value>) -> GatewayError {
    gateway_error(map)
}

fn gateway_error(map: &Map<String, Value>) -> GatewayError {
    GatewayError {
        code: field_text(map, "code"),
        kind: field_text(map, "type"),
        // `/sync` says `msg`, `/rest` (as on the sibling Lazada gateway) `message`: accept both.
        msg: field_text(map, "msg").or_else(|| field_text(map, "message")),
        sub_code: field_text(map, "sub_code"),
        sub_msg: field_text(map, "sub_msg"),
        request_id: field_text(map, "request_id"),
    }
}

/// The top-level JSON object of a body, unwrapping the Java SDK's
/// `{"gopResponseBody": "<JSON string>", …}` once.
pub(crate) fn top_object(body: &[u8]) -> Result<Map<String, Value>, AeError> {
    let top: Value = serde_json::from_slice(body)
        .map_err(|_| bad_response(&format!("not JSON ({} bytes)", body.len())))?;
    let Value::Object(mut map) = top else {
        return Err(bad_response("not a JSON object"));
    };
    if let Some(Value::String(inner)) = map.get("gopResponseBody") {
        match serde_json::from_str::<Value>(inner) {
            Ok(Value::Object(inner)) => map = inner,
            _ => return Err(bad_response("gopResponseBody is not a JSON object")),
        }
    }
    Ok(map)
}

/// The `result` of a `/sync` call of `method` (e.g. `aliexpress.trade.ds.order.get`), or the
/// classified gateway error.
///
/// Accepts `{"<method_with_underscores>_response": {"result": …, "request_id": …}}` with any
/// other top-level keys ignored; a response object without `result` is returned whole (the older
/// methods put their fields right under it). `{"error_response": {…}}` and a flat
/// `{"code": "<not 0>", …}` become the [`AeError`] their code calls for.
pub fn sync_result(body: &[u8], method: &str) -> Result<Value, AeError> {
    let mut top = top_object(body)?;
    if let Some(err) = top.get("error_response") {
        return Err(match err {
            Value::Object(err) => gateway_error(err).classify(),
            _ => bad_response("error_response is not an object"),
        });
    }
    let key = format!("{}_response", method.replace('.', "_"));
    match top.remove(&key) {
        Some(Value::Object(mut response)) => Ok(match response.remove("result") {
            Some(result) => result,
            None => Value::Object(response),
        }),
        Some(_) => Err(bad_response(&format!("{key} is not an object"))),
        None => match field_text(&top, "code").as_deref() {
            Some("0") | None => Err(bad_response(&format!("no {key}"))),
            Some(_) => Err(gateway_error(&top).classify()),
        },
    }
}

/// The flat body of a `/rest` call (token create/refresh), or the classified error:
/// `{"code": "0", …}` is success; `{"code": "IllegalRefreshToken", "message": …}` (or an
/// `error_response` object) is an error.
pub fn rest_result(body: &[u8]) -> Result<Map<String, Value>, AeError> {
    let top = top_object(body)?;
    if let Some(err) = top.get("error_response") {
        return Err(match err {
            Value::Object(err) => gateway_error(err).classify(),
            _ => bad_response("error_response is not an object"),
        });
    }
    match field_text(&top, "code").as_deref() {
        Some("0") => Ok(top),
        // Some gateways leave `code` out on success; a token in the body is success enough.
        None if top.contains_key("access_token") => Ok(top),
        _ => Err(gateway_error(&top).classify()),
    }
}

// ------------------------------------------------------------------------------------------------
// aliexpress.trade.ds.order.get
// ------------------------------------------------------------------------------------------------

enum AeopChildOrderInfo {}
impl ListWrapper for AeopChildOrderInfo {
    const NAME: &'static str = "aeop_child_order_info";
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OrderWire {
    order_status: LenientString,
    logistics_status: LenientString,
    gmt_create: LenientString,
    child_order_list: OneOrMany<ChildWire, AeopChildOrderInfo>,
    // Business errors inside `result` (the shapes other DS methods use; undocumented here).
    is_success: LenientBool,
    success: LenientBool,
    error_code: LenientString,
    error_msg: LenientString,
    code: LenientString,
    msg: LenientString,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChildWire {
    product_id: LenientString,
    sku_id: LenientString,
    end_reason: LenientString,
}

/// A business error reported inside `result` with HTTP 200. The gateway has no code table for
/// these, so nothing says a retry would help: permanent.
fn business_error(code: Option<String>, msg: Option<String>) -> AeError {
    AeError::Permanent(format!(
        "AliExpress business error {}: {}",
        code.as_deref().unwrap_or("?"),
        msg.as_deref().unwrap_or("")
    ))
}

/// The order from an `order.get` `result` object (see [`sync_result`]).
pub fn order_from_result(result: Value) -> Result<AeOrder, AeError> {
    let wire: OrderWire = serde_json::from_value(result)
        .map_err(|e| bad_response(&format!("order.get result: {e}")))?;
    let Some(order_status) = wire.order_status.0 else {
        if wire.is_success.0 == Some(false)
            || wire.success.0 == Some(false)
            || wire.error_code.0.is_some()
        {
            return Err(business_error(
                wire.error_code.0.or(wire.code.0),
                wire.error_msg.0.or(wire.msg.0),
            ));
        }
        return Err(bad_response("order.get result has no order_status"));
    };
    let children = wire
        .child_order_list
        .into_vec()
        .into_iter()
        .map(|c| AeChild {
            product_id: c.product_id.0,
            sku_id: c.sku_id.0,
            end_reason: c.end_reason.0,
        })
        .collect();
    Ok(AeOrder {
        order_status,
        logistics_status: wire.logistics_status.0,
        children,
        gmt_create: wire.gmt_create.0,
    })
}

/// Parses a whole `aliexpress.trade.ds.order.get` response body.
pub fn parse_order_get(body: &[u8]) -> Result<AeOrder, AeError> {
    order_from_result(sync_result(body, METHOD_ORDER_GET)?)
}

// ------------------------------------------------------------------------------------------------
// aliexpress.ds.order.tracking.get
// ------------------------------------------------------------------------------------------------

/// The `code` of "TRACKING DATA NOT FOUND": the order has not shipped yet.
pub const TRACKING_NOT_FOUND: &str = "1001";

enum TrackingDetailW {}
impl ListWrapper for TrackingDetailW {
    const NAME: &'static str = "tracking_detail";
}
enum DetailNodeW {}
impl ListWrapper for DetailNodeW {
    const NAME: &'static str = "detail_node";
}
enum PackageItemW {}
impl ListWrapper for PackageItemW {
    const NAME: &'static str = "package_item";
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TrackingWire {
    ret: LenientBool,
    code: LenientString,
    msg: LenientString,
    data: Value,
    // Tolerated one level up too, should `data` ever be flattened away.
    tracking_detail_line_list: OneOrMany<LineWire, TrackingDetailW>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TrackingDataWire {
    tracking_detail_line_list: OneOrMany<LineWire, TrackingDetailW>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LineWire {
    mail_no: LenientString,
    carrier_name: LenientString,
    eta_time_stamps: LenientI64,
    detail_node_list: OneOrMany<NodeWire, DetailNodeW>,
    package_item_list: OneOrMany<ItemWire, PackageItemW>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NodeWire {
    time_stamp: LenientI64,
    tracking_name: LenientString,
    tracking_detail_desc: LenientString,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ItemWire {
    item_id: LenientString,
    product_id: LenientString,
    sku_id: LenientString,
    quantity: LenientU64,
}

/// One event of a package's journey (`detail_node_list`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TrackingNode {
    /// Epoch ms; `None` when missing or unreadable.
    pub time_stamp_ms: Option<i64>,
    /// Free text ("Shipping update") or a code (`IN_TRANSIT`); there is no official enum.
    pub tracking_name: Option<String>,
    /// Free text ("Departed from sorting center").
    pub tracking_detail_desc: Option<String>,
}

/// One tracking line (one package) with everything `tracking.get` says about it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrackingDetail {
    /// The package as the domain sees it.
    pub line: AeTrackingLine,
    /// `eta_time_stamps`, epoch ms.
    pub eta_ms: Option<i64>,
    /// The events, **oldest first** (AliExpress sends them newest first; not relied upon). Nodes
    /// without a time stamp come first, in the order sent.
    pub nodes: Vec<TrackingNode>,
}

/// The packages from a `tracking.get` `result` object (see [`sync_result`]); `Ok(None)` for
/// 1001 "TRACKING DATA NOT FOUND" (not shipped yet).
///
/// Lines without a `mail_no` are dropped (nothing can be pushed without a number). A package
/// item without a readable `quantity` counts as 1: it is in the parcel, and 1 never over-fulfils.
/// Any other `ret: false` is a permanent business error.
pub fn tracking_from_result(result: Value) -> Result<Option<Vec<TrackingDetail>>, AeError> {
    let wire: TrackingWire = serde_json::from_value(result)
        .map_err(|e| bad_response(&format!("tracking.get result: {e}")))?;
    let not_found = wire.code.0.as_deref() == Some(TRACKING_NOT_FOUND);
    if wire.ret.0 == Some(false) {
        return if not_found {
            Ok(None)
        } else {
            Err(business_error(wire.code.0, wire.msg.0))
        };
    }
    let mut lines = match wire.data {
        data @ Value::Object(_) => serde_json::from_value::<TrackingDataWire>(data)
            .map_err(|e| bad_response(&format!("tracking.get data: {e}")))?
            .tracking_detail_line_list
            .into_vec(),
        _ => Vec::new(),
    };
    lines.extend(wire.tracking_detail_line_list.into_vec());
    if lines.is_empty() && not_found {
        return Ok(None);
    }
    let details = lines
        .into_iter()
        .filter_map(|line| {
            let Some(mail_no) = line.mail_no.0 else {
                tracing::debug!("tracking line without mail_no ignored");
                return None;
            };
            let items = line
                .package_item_list
                .into_vec()
                .into_iter()
                .map(|it| AeParcelItem {
                    product_id: it.item_id.0.or(it.product_id.0),
                    sku_id: it.sku_id.0,
                    quantity: it
                        .quantity
                        .0
                        .map_or(1, |q| u32::try_from(q).unwrap_or(u32::MAX)),
                })
                .collect();
            let mut nodes: Vec<TrackingNode> = line
                .detail_node_list
                .into_vec()
                .into_iter()
                .map(|n| TrackingNode {
                    time_stamp_ms: n.time_stamp.0,
                    tracking_name: n.tracking_name.0,
                    tracking_detail_desc: n.tracking_detail_desc.0,
                })
                .collect();
            // Stable: equal stamps keep AliExpress' order.
            nodes.sort_by_key(|n| n.time_stamp_ms);
            Some(TrackingDetail {
                line: AeTrackingLine {
                    mail_no,
                    carrier_name: line.carrier_name.0,
                    items,
                },
                eta_ms: line.eta_time_stamps.0,
                nodes,
            })
        })
        .collect();
    Ok(Some(details))
}

/// Parses a whole `aliexpress.ds.order.tracking.get` response body, with nodes and ETA.
pub fn parse_tracking_details(body: &[u8]) -> Result<Option<Vec<TrackingDetail>>, AeError> {
    tracking_from_result(sync_result(body, METHOD_TRACKING_GET)?)
}

/// Parses a whole `aliexpress.ds.order.tracking.get` response body into the domain's lines;
/// `Ok(None)` when not shipped yet (1001).
pub fn parse_tracking_get(body: &[u8]) -> Result<Option<Vec<AeTrackingLine>>, AeError> {
    Ok(parse_tracking_details(body)?.map(|d| d.into_iter().map(|d| d.line).collect()))
}

// ------------------------------------------------------------------------------------------------
// /rest/auth/token/create and /refresh
// ------------------------------------------------------------------------------------------------

/// What a token create/refresh answered. `Debug` does not print the tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// The new access token.
    pub access_token: String,
    /// `None` if the body had none (then the caller keeps the refresh token it has).
    pub refresh_token: Option<String>,
    /// `expire_time`: when the access token expires, epoch ms.
    pub expire_time_ms: Option<i64>,
    /// `expires_in`: the access token's lifetime in seconds (used when `expire_time` is missing).
    pub expires_in_s: Option<i64>,
    /// `refresh_token_valid_time`: when the refresh token expires (re-authorization needed), ms.
    pub refresh_token_valid_time_ms: Option<i64>,
}

impl fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGrant")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("expire_time_ms", &self.expire_time_ms)
            .field("expires_in_s", &self.expires_in_s)
            .field(
                "refresh_token_valid_time_ms",
                &self.refresh_token_valid_time_ms,
            )
            .finish()
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TokenWire {
    access_token: LenientString,
    refresh_token: LenientString,
    expire_time: LenientI64,
    expires_in: LenientI64,
    refresh_token_valid_time: LenientI64,
}

/// Parses a `/rest/auth/token/create` or `/refresh` body (flat; numbers may be strings).
pub fn parse_token_response(body: &[u8]) -> Result<TokenGrant, AeError> {
    let map = rest_result(body)?;
    let wire: TokenWire = serde_json::from_value(Value::Object(map))
        .map_err(|e| bad_response(&format!("token response: {e}")))?;
    let Some(access_token) = wire.access_token.0 else {
        return Err(bad_response("token response without access_token"));
    };
    Ok(TokenGrant {
        access_token,
        refresh_token: wire.refresh_token.0,
        expire_time_ms: wire.expire_time.0,
        expires_in_s: wire.expires_in.0,
        refresh_token_valid_time_ms: wire.refresh_token_valid_time.0,
    })
}

#[cfg(test)]
mod tests;
