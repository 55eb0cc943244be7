//! Order items <-> domain orders.
//!
//! Item layout (one item per order, `pk = SHOP#{shop}#ORDER#{id}`, `sk = ORDER`): Shopify-owned
//! facts as top-level attributes (the webhook replaces them with one `UpdateItem` and no read),
//! supplier orders with their packages as one compact JSON attribute (rewritten with the item by
//! versioned writes), the status with its version, and the index keys:
//! - `gsi1pk`/`gsi1sk` (`OPEN#{shard}` / `{shop}#{order id}`): present while the order has open
//!   supplier orders or a push still due — the sparse, sharded index the poller pages through;
//! - `gsi2pk`/`gsi2sk` (`{shop}#{status}` / `{created ms}#{order id}`): the merchant's tabs;
//! - `gsi3pk`/`gsi3sk` (`ATTN#{shop}` / `{created ms}#{order id}`): present while the order has
//!   something for the merchant to look at (a flagged or dead-lettered push, a supplier-side
//!   problem, a cancel to make by hand) — the sparse index behind `GET /shops/{shop}/attention`.
//!
//! History: each automatic status entry is its own attribute `h_{status}`, written with
//! `if_not_exists` (so the webhook's single write can record it without knowing whether the
//! status changed); statuses only move forward between merchant actions, so each appears once per
//! segment. A merchant action closes the segment into `history_archive`.

use crate::error::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use dropsync_domain::{
    FinancialStatus, HistoryEntry, LineItem, Order, OrderStatus, ShopDomain, ShopifyFacts,
    SupplierOrder, UserAction,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub const ORDER_SK: &str = "ORDER";
pub const SHARDS: u32 = 16;

pub fn order_pk(shop: &ShopDomain, id: u64) -> String {
    format!("SHOP#{shop}#ORDER#{id}")
}

pub fn shop_pk(shop: &ShopDomain) -> String {
    format!("SHOP#{shop}")
}

/// Stable shard of an order in the open index (FNV-1a: fixed across processes and versions,
/// unlike std's hasher).
pub fn shard_of(shop: &ShopDomain, id: u64) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in shop.as_str().bytes().chain(id.to_le_bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % SHARDS
}

pub fn open_pk(shard: u32) -> String {
    format!("OPEN#{shard:02}")
}

pub fn open_sk(shop: &ShopDomain, id: u64) -> String {
    format!("{shop}#{id}")
}

pub fn tab_pk(shop: &ShopDomain, status: OrderStatus) -> String {
    format!("{shop}#{status}")
}

pub fn tab_sk(created_at_ms: i64, id: u64) -> String {
    format!("{:015}#{id:020}", created_at_ms.max(0))
}

pub fn attention_pk(shop: &ShopDomain) -> String {
    format!("ATTN#{shop}")
}

pub fn history_attr(status: OrderStatus) -> String {
    format!("h_{status}")
}

/// A history entry as stored in an `h_*` attribute.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredHistory {
    pub at: i64,
    pub cause: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserAction>,
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn json<T: Serialize>(v: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(v)
        .map(AttributeValue::S)
        .map_err(|e| StoreError::Other(format!("encode: {e}")))
}

pub(crate) fn history_value(
    at_ms: i64,
    cause: &str,
    user: Option<UserAction>,
) -> Result<AttributeValue, StoreError> {
    json(&StoredHistory {
        at: at_ms,
        cause: cause.to_owned(),
        user,
    })
}

/// Bytes of an order item its Shopify facts may take: DynamoDB refuses items over 400 KB, and the
/// rest of the item (supplier orders, history, keys) needs room too.
pub const FACTS_BUDGET: usize = 300 * 1024;

/// Makes Shopify facts fit in an item: texts clipped, and for an order still too big its titles
/// dropped; `TooLarge` when even that is not enough (thousands of line items).
pub(crate) fn fit_facts(mut facts: ShopifyFacts) -> Result<ShopifyFacts, StoreError> {
    facts.clip_texts();
    // JSON escapes at most sextuple a text (`\u00XX`); only an order that might be too big is
    // measured exactly, so the usual webhook pays nothing for this.
    let bound: usize = facts
        .line_items
        .iter()
        .map(|l| {
            200 + 6
                * (l.sku.as_ref().map_or(0, String::len) + l.title.as_ref().map_or(0, String::len))
        })
        .chain(facts.fulfillment_tracking.iter().map(|t| 3 + 6 * t.len()))
        .sum();
    if bound <= FACTS_BUDGET {
        return Ok(facts);
    }
    let size = |f: &ShopifyFacts| -> Result<usize, StoreError> {
        let lines = serde_json::to_vec(&f.line_items)
            .map_err(|e| StoreError::Other(format!("encode: {e}")))?;
        let tracking = serde_json::to_vec(&f.fulfillment_tracking)
            .map_err(|e| StoreError::Other(format!("encode: {e}")))?;
        Ok(lines.len() + tracking.len())
    };
    if size(&facts)? > FACTS_BUDGET {
        facts.drop_titles();
        let n = size(&facts)?;
        if n > FACTS_BUDGET {
            return Err(StoreError::TooLarge(n));
        }
    }
    Ok(facts)
}

/// The Shopify-owned attributes, as the webhook's `UpdateItem` sets them.
pub(crate) fn shopify_attrs(
    facts: &ShopifyFacts,
) -> Result<Vec<(&'static str, AttributeValue)>, StoreError> {
    let mut v = vec![
        ("name", s(facts.name.clone())),
        ("created_at", n(facts.created_at_ms)),
        ("updated_at", n(facts.updated_at_ms)),
        ("fin", s(facts.financial_status.as_str())),
        ("cancelled", AttributeValue::Bool(facts.cancelled)),
        ("test", AttributeValue::Bool(facts.test)),
        ("line_items", json(&facts.line_items)?),
        ("ftrack", json(&facts.fulfillment_tracking)?),
    ];
    v.push((
        "ful_status",
        match &facts.fulfillment_status {
            Some(f) => s(f.clone()),
            None => AttributeValue::Null(true),
        },
    ));
    Ok(v)
}

/// The whole item for a versioned `PutItem`.
pub(crate) fn encode_order(order: &Order, version: u64) -> Result<Item, StoreError> {
    let mut item: Item = HashMap::new();
    item.insert("pk".into(), s(order_pk(&order.shop, order.id)));
    item.insert("sk".into(), s(ORDER_SK));
    item.insert("shop".into(), s(order.shop.as_str()));
    item.insert("order_id".into(), n(order.id));
    for (k, v) in shopify_attrs(&order.shopify)? {
        item.insert(k.into(), v);
    }
    item.insert(
        "needs_refetch".into(),
        AttributeValue::Bool(order.needs_refetch),
    );
    if let Some(f) = &order.failed {
        item.insert("failed".into(), s(f.clone()));
    }
    item.insert("supplier_orders".into(), json(&order.supplier_orders)?);
    if !order.placements.is_empty() {
        item.insert("placements".into(), json(&order.placements)?);
    }
    if let Some(f) = &order.placement_failure {
        item.insert("placement_failure".into(), json(f)?);
    }
    item.insert("so_count".into(), n(order.supplier_orders.len()));
    item.insert("status".into(), s(order.status.as_str()));
    item.insert("version".into(), n(version));
    item.insert("gsi2pk".into(), s(tab_pk(&order.shop, order.status)));
    item.insert(
        "gsi2sk".into(),
        s(tab_sk(order.shopify.created_at_ms, order.id)),
    );
    // A push still due keeps the order in the index even when every supplier order is closed
    // (delivered in the same poll that found its tracking): the next run must be able to find
    // and re-send it, or a lost message would leave the order stuck silently.
    if order.has_open_supplier_orders() || !order.due_pushes().is_empty() {
        item.insert("gsi1pk".into(), s(open_pk(shard_of(&order.shop, order.id))));
        item.insert("gsi1sk".into(), s(open_sk(&order.shop, order.id)));
    }
    if !order.attention().is_empty() {
        item.insert("gsi3pk".into(), s(attention_pk(&order.shop)));
        item.insert(
            "gsi3sk".into(),
            s(tab_sk(order.shopify.created_at_ms, order.id)),
        );
    }
    // The current segment (since the last merchant action) lives in h_* attributes.
    let split = order
        .history
        .iter()
        .rposition(|h| h.user_action.is_some())
        .unwrap_or(0);
    let (archive, current) = order.history.split_at(split);
    if !archive.is_empty() {
        item.insert("history_archive".into(), json(&archive)?);
    }
    for h in current {
        item.insert(
            history_attr(h.status),
            history_value(h.at_ms, &h.cause, h.user_action)?,
        );
    }
    Ok(item)
}

fn get_s<'a>(item: &'a Item, k: &str) -> Result<&'a str, StoreError> {
    match item.get(k) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::Corrupt(format!("missing {k}"))),
    }
}

fn get_opt_s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    match item.get(k) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

pub(crate) fn get_n<T: std::str::FromStr>(item: &Item, k: &str) -> Result<T, StoreError> {
    match item.get(k) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("bad number {k}"))),
        _ => Err(StoreError::Corrupt(format!("missing {k}"))),
    }
}

fn get_bool(item: &Item, k: &str) -> bool {
    matches!(item.get(k), Some(AttributeValue::Bool(true)))
}

fn get_json<T: for<'de> Deserialize<'de>>(item: &Item, k: &str) -> Result<T, StoreError> {
    serde_json::from_str(get_s(item, k)?).map_err(|e| StoreError::Corrupt(format!("{k}: {e}")))
}

/// Decodes an order item.
pub(crate) fn decode_order(item: &Item) -> Result<(Order, u64), StoreError> {
    let shop =
        ShopDomain::parse(get_s(item, "shop")?).map_err(|_| StoreError::Corrupt("shop".into()))?;
    let id: u64 = get_n(item, "order_id")?;
    let status: OrderStatus = get_s(item, "status")?
        .parse()
        .map_err(|_| StoreError::Corrupt("status".into()))?;
    let version: u64 = get_n(item, "version")?;
    let line_items: Vec<LineItem> = get_json(item, "line_items")?;
    let fulfillment_tracking: Vec<String> = get_json(item, "ftrack").unwrap_or_default();
    let supplier_orders: Vec<SupplierOrder> = match item.get("supplier_orders") {
        Some(_) => get_json(item, "supplier_orders")?,
        None => Vec::new(),
    };
    let facts = ShopifyFacts {
        name: get_opt_s(item, "name").unwrap_or_default().to_owned(),
        created_at_ms: get_n(item, "created_at").unwrap_or(0),
        updated_at_ms: get_n(item, "updated_at").unwrap_or(0),
        financial_status: FinancialStatus::parse(get_opt_s(item, "fin").unwrap_or_default()),
        cancelled: get_bool(item, "cancelled"),
        test: get_bool(item, "test"),
        fulfillment_status: get_opt_s(item, "ful_status").map(str::to_owned),
        line_items,
        fulfillment_tracking,
    };
    let mut history: Vec<HistoryEntry> = match item.get("history_archive") {
        Some(_) => get_json(item, "history_archive")?,
        None => Vec::new(),
    };
    let mut current: Vec<HistoryEntry> = Vec::new();
    for st in OrderStatus::ALL {
        if let Some(AttributeValue::S(raw)) = item.get(&history_attr(st)) {
            let h: StoredHistory = serde_json::from_str(raw)
                .map_err(|e| StoreError::Corrupt(format!("history: {e}")))?;
            current.push(HistoryEntry {
                status: st,
                at_ms: h.at,
                cause: h.cause,
                user_action: h.user,
            });
        }
    }
    // Within a segment statuses only move forward (exits last), so rank alone gives the path
    // order. Time would not: a writer stamps an entry with the time its request began, and one
    // that lost a race and re-decided may land after an entry stamped later (a link begun before
    // an `orders/paid` that was written first). Times are then shown non-decreasing.
    current.sort_by_key(|h| (h.user_action.is_none(), h.status.rank().unwrap_or(u8::MAX)));
    let mut last = history.last().map_or(i64::MIN, |h| h.at_ms);
    for h in &mut current {
        h.at_ms = h.at_ms.max(last);
        last = h.at_ms;
    }
    history.extend(current);
    let order = Order {
        shop,
        id,
        shopify: facts,
        supplier_orders,
        failed: get_opt_s(item, "failed").map(str::to_owned),
        status,
        needs_refetch: get_bool(item, "needs_refetch"),
        history,
        placements: match item.get("placements") {
            Some(_) => get_json(item, "placements")?,
            None => Vec::new(),
        },
        placement_failure: match item.get("placement_failure") {
            Some(_) => Some(get_json(item, "placement_failure")?),
            None => None,
        },
    };
    Ok((order, version))
}
