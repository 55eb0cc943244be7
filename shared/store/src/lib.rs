//! dropsync's DynamoDB store: one table, conditional writes that enforce the status machine.
//!
//! Every status change is one conditional write whose `ConditionExpression` names the allowed
//! predecessor statuses (from the domain's transition table) and, for read-modify-write changes,
//! the item's version. A write that loses comes back as [`StoreError::Conflict`] with what is
//! stored now; [`Store::update_order`] re-decides from that and tries again.

mod codec;
pub mod connections;
mod error;
mod pace;
mod placing;
mod push_lease;
mod sessions;
mod shops;
mod tabs;

pub use codec::{SHARDS, order_pk, shard_of};
pub use connections::{
    ConnectMethod, ConnectionStatus, ConnectionStore, MemoryConnections, NonceBinding,
    ShopConnection, TopicState,
};
pub use error::StoreError;
pub use placing::Ownership;
pub use push_lease::{LeasedPackage, PushLease};
pub use sessions::SessionRecord;
pub use shops::{AeTokenRecord, ShopRecord};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use codec::{
    Item, ORDER_SK, attention_pk, decode_order, encode_order, fit_facts, history_attr,
    history_value, n, open_pk, order_pk as pk_of, s, shopify_attrs, tab_pk, tab_sk,
};
use dropsync_domain::{Order, OrderStatus, ShopDomain, ShopifyFacts, UserAction};
use std::collections::HashMap;
use std::time::Duration;

/// An order as stored, with the version its next write must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    pub order: Order,
    pub version: u64,
}

/// What applying a Shopify order event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShopifyApplied {
    /// A new order was recorded.
    Created(OrderStatus),
    /// Newer facts were applied; the status is now this.
    Updated(OrderStatus),
    /// Not newer than what is stored (a duplicate or a stale retry): nothing was written.
    Stale,
}

/// Which transition table a versioned write is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Automatic,
    User(UserAction),
}

impl WriteKind {
    /// The kind of the change from `before` to `after`: a merchant's action when the history
    /// entries it added name one, automatic otherwise.
    pub fn of_change(before: &Order, after: &Order) -> Self {
        match after.history.get(before.history.len()..) {
            Some(added) => added
                .iter()
                .rev()
                .find_map(|h| h.user_action)
                .map_or(WriteKind::Automatic, WriteKind::User),
            None => WriteKind::Automatic,
        }
    }

    /// The stored statuses a write of this kind may replace with `to`: the domain's transition
    /// table, which the conditional writes enforce.
    pub fn allowed_from(self, to: OrderStatus) -> Vec<OrderStatus> {
        match self {
            WriteKind::Automatic => to.automatic_predecessors(),
            // A merchant action may only land on its own target; anything else is checked
            // against the automatic table.
            WriteKind::User(action) if to == action.target() => {
                let mut p = action.predecessors().to_vec();
                p.push(action.target());
                p
            }
            WriteKind::User(_) => to.automatic_predecessors(),
        }
    }
}

/// A page of keys from an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque; pass it back to get the next page. `None` on the last page.
    pub next: Option<String>,
}

/// How many times a read-modify-write re-decides after losing a race before giving up.
const MAX_ATTEMPTS: u32 = 64;

/// The loop of a read-modify-write, whatever holds the order: lets `decide` change `current`
/// (returning whether it changed anything) and hands the result to `write` with the version it
/// was decided on and the kind of change. A [`StoreError::Conflict`] from `write` carries what is
/// stored now (`None`: the order is gone), and `decide` runs again on that, a bounded number of
/// times. Returns the order as written, or as given when `decide` changed nothing.
pub async fn decide_and_write<F, W, Fut>(
    current: Option<StoredOrder>,
    mut decide: F,
    mut write: W,
) -> Result<Option<StoredOrder>, StoreError>
where
    F: FnMut(&mut Order) -> bool,
    W: FnMut(Order, u64, WriteKind, u32) -> Fut,
    Fut: std::future::Future<Output = Result<StoredOrder, StoreError>>,
{
    let mut current = current;
    for attempt in 0..MAX_ATTEMPTS {
        let Some(stored) = current else {
            return Ok(None);
        };
        let mut next = stored.order.clone();
        if !decide(&mut next) {
            return Ok(Some(stored));
        }
        let kind = WriteKind::of_change(&stored.order, &next);
        match write(next, stored.version, kind, attempt).await {
            Ok(written) => return Ok(Some(written)),
            Err(StoreError::Conflict(now)) => current = *now,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Unavailable(
        "too much contention on one order".to_owned(),
    ))
}

/// The DynamoDB store.
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
    table: String,
    /// Shop records kept briefly for [`Store::get_shop_cached`]; shared by the clones.
    shops: Option<shops::ShopCache>,
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            shops: None,
        }
    }

    /// Keeps shop records read through [`Store::get_shop_cached`] for `ttl` (per process), so
    /// a busy pusher reads each shop's settings once per `ttl`, not once per message. A change
    /// of settings or an uninstall is then seen up to `ttl` late by this instance.
    #[must_use]
    pub fn caching_shops(mut self, ttl: Duration) -> Self {
        self.shops = Some(shops::ShopCache::new(ttl));
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn key(shop: &ShopDomain, id: u64) -> Item {
        HashMap::from([
            ("pk".to_owned(), s(pk_of(shop, id))),
            ("sk".to_owned(), s(ORDER_SK)),
        ])
    }

    /// Whether the table answers (one small read).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("pk", s("HEALTH"))
            .key("sk", s("HEALTH"))
            .send()
            .await
            .map(|_| ())
            .map_err(error::sdk)
    }

    /// Reads one order (strongly consistent).
    pub async fn get_order(
        &self,
        shop: &ShopDomain,
        id: u64,
    ) -> Result<Option<StoredOrder>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(shop, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(error::sdk)?;
        out.item()
            .map(|item| decode_order(item).map(|(order, version)| StoredOrder { order, version }))
            .transpose()
    }

    /// Applies a Shopify order event with one conditional write and no read: the write's
    /// condition drops it unless it is newer than what is stored. When the order already has
    /// supplier-side state (or a status the Shopify facts alone cannot decide), the failed
    /// condition returns the stored item and the event is merged into it with a versioned write.
    pub async fn save_shopify_facts(
        &self,
        shop: &ShopDomain,
        id: u64,
        facts: ShopifyFacts,
        cause: &str,
        now_ms: i64,
    ) -> Result<ShopifyApplied, StoreError> {
        let facts = fit_facts(facts)?;
        let fresh = Order::from_shopify(shop.clone(), id, facts.clone(), cause, now_ms);
        let status = fresh.status;
        let mut values: Item = HashMap::new();
        let mut names: HashMap<String, String> = HashMap::new();
        let mut sets: Vec<String> = Vec::new();
        for (i, (attr, v)) in shopify_attrs(&facts)?.into_iter().enumerate() {
            names.insert(format!("#a{i}"), attr.to_owned());
            values.insert(format!(":a{i}"), v);
            sets.push(format!("#a{i} = :a{i}"));
        }
        names.insert("#st".into(), "status".into());
        names.insert("#h".into(), history_attr(status));
        values.insert(":shop".into(), s(shop.as_str()));
        values.insert(":id".into(), n(id));
        values.insert(":st".into(), s(status.as_str()));
        values.insert(":tab".into(), s(tab_pk(shop, status)));
        values.insert(":tabsk".into(), s(tab_sk(facts.created_at_ms, id)));
        values.insert(":h".into(), history_value(now_ms, cause, None)?);
        values.insert(":zero".into(), n(0));
        values.insert(":one".into(), n(1));
        values.insert(":empty".into(), s("[]"));
        values.insert(":u".into(), n(facts.updated_at_ms));
        values.insert(":f".into(), AttributeValue::Bool(false));
        sets.extend(
            [
                "shop = :shop",
                "order_id = :id",
                "needs_refetch = :f",
                "#st = :st",
                "gsi2pk = :tab",
                "gsi2sk = :tabsk",
                "#h = if_not_exists(#h, :h)",
                "version = if_not_exists(version, :zero) + :one",
                "so_count = if_not_exists(so_count, :zero)",
                "supplier_orders = if_not_exists(supplier_orders, :empty)",
            ]
            .map(str::to_owned),
        );
        let preds = status.automatic_predecessors();
        let mut in_list = Vec::new();
        for (i, p) in preds.iter().enumerate() {
            values.insert(format!(":p{i}"), s(p.as_str()));
            in_list.push(format!(":p{i}"));
        }
        // Without supplier orders, placements or a failed placement, the Shopify facts alone decide the
        // status, so the write may set it blind — as long as the table allows the move. An item
        // without a version is not an order yet, only the marker `mark_needs_refetch` leaves for
        // an id-only event: the first full event makes it one.
        let condition = format!(
            "attribute_not_exists(pk) OR attribute_not_exists(version) OR (updated_at < :u AND so_count = :zero AND attribute_not_exists(failed) AND attribute_not_exists(placements) AND #st IN ({}))",
            in_list.join(", ")
        );
        let mut update = format!("SET {}", sets.join(", "));
        // This write only lands on an order without supplier orders, and clears needs_refetch:
        // nothing is left for the merchant's attention list.
        if status == OrderStatus::Canceled {
            update.push_str(" REMOVE gsi1pk, gsi1sk, gsi3pk, gsi3sk");
        } else {
            update.push_str(" REMOVE gsi3pk, gsi3sk");
        }
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(shop, id)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await;
        match res {
            Ok(out) => {
                // UPDATED_OLD returns the old values of the attributes set: an existing order has a version.
                let existed = out.attributes().is_some_and(|a| a.contains_key("version"));
                // Its old status moves it between tabs; an order item always has one, so a
                // missing `status` among the old values can only mean it did not change.
                let from = if existed {
                    Some(
                        out.attributes()
                            .and_then(|a| a.get("status"))
                            .and_then(|v| v.as_s().ok())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(status),
                    )
                } else {
                    None
                };
                self.move_tab(shop, from, Some(status)).await;
                Ok(if existed {
                    ShopifyApplied::Updated(status)
                } else {
                    ShopifyApplied::Created(status)
                })
            }
            Err(aws_sdk_dynamodb::error::SdkError::ServiceError(se))
                if matches!(
                    se.err(),
                    UpdateItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                let old = match se.into_err() {
                    UpdateItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                };
                let Some(old) = old else {
                    return Err(StoreError::Other("condition failed with no item".into()));
                };
                let (stored, _) = decode_order(&old)?;
                if stored.shopify.updated_at_ms > facts.updated_at_ms {
                    return Ok(ShopifyApplied::Stale);
                }
                // Same second: only worth a write if joining it moves something forward (a
                // duplicate delivery does not).
                if stored.shopify.updated_at_ms == facts.updated_at_ms
                    && !stored.shopify.clone().join_same_instant(&facts)
                {
                    return Ok(ShopifyApplied::Stale);
                }
                self.merge_shopify(shop, id, facts, cause, now_ms).await
            }
            Err(e) => Err(error::sdk(e)),
        }
    }

    async fn merge_shopify(
        &self,
        shop: &ShopDomain,
        id: u64,
        facts: ShopifyFacts,
        cause: &str,
        now_ms: i64,
    ) -> Result<ShopifyApplied, StoreError> {
        let mut applied = false;
        let out = self
            .update_order(shop, id, |order| {
                applied = order.merge_shopify_facts(facts.clone());
                if applied {
                    order.recompute_status(cause, now_ms);
                }
                applied
            })
            .await?;
        match out {
            Some(stored) if applied => Ok(ShopifyApplied::Updated(stored.order.status)),
            _ => Ok(ShopifyApplied::Stale),
        }
    }

    /// Writes a whole order, conditional on the version read (or on absence for a new order)
    /// and on the stored status being an allowed predecessor of the new one. The condition is
    /// DynamoDB's, not Rust's: a wrong caller cannot store an invalid transition.
    pub async fn put_order(
        &self,
        order: &Order,
        expected_version: Option<u64>,
        kind: WriteKind,
    ) -> Result<StoredOrder, StoreError> {
        let version = expected_version.map_or(1, |v| v + 1);
        let item = encode_order(order, version)?;
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // The item replaced, for the tab it leaves (returning it costs no extra capacity).
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match expected_version {
            None => {
                req = req.condition_expression("attribute_not_exists(pk)");
            }
            Some(v) => {
                let preds = kind.allowed_from(order.status);
                let mut in_list = Vec::new();
                for (i, p) in preds.iter().enumerate() {
                    req = req.expression_attribute_values(format!(":p{i}"), s(p.as_str()));
                    in_list.push(format!(":p{i}"));
                }
                req = req
                    .condition_expression(format!(
                        "version = :v AND #st IN ({})",
                        in_list.join(", ")
                    ))
                    .expression_attribute_names("#st", "status")
                    .expression_attribute_values(":v", n(v));
            }
        }
        match req.send().await {
            Ok(out) => {
                let from = out
                    .attributes()
                    .and_then(|a| a.get("status"))
                    .and_then(|v| v.as_s().ok())
                    .and_then(|v| v.parse().ok());
                self.move_tab(&order.shop, from, Some(order.status)).await;
                Ok(StoredOrder {
                    order: order.clone(),
                    version,
                })
            }
            Err(aws_sdk_dynamodb::error::SdkError::ServiceError(se))
                if matches!(se.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                let current = match se.into_err() {
                    PutItemError::ConditionalCheckFailedException(c) => c
                        .item
                        .map(|item| {
                            decode_order(&item)
                                .map(|(order, version)| StoredOrder { order, version })
                        })
                        .transpose()?,
                    _ => None,
                };
                Err(StoreError::Conflict(Box::new(current)))
            }
            Err(e) => Err(error::sdk(e)),
        }
    }

    /// Read-modify-write: reads the order, lets `decide` change it (returning whether it
    /// changed anything), and writes it back conditionally. On a lost race it re-decides from
    /// what is stored now, so no update is lost or applied twice. Returns the stored order
    /// (after the write, or as read when `decide` changed nothing); `None` if there is no order.
    pub async fn update_order<F>(
        &self,
        shop: &ShopDomain,
        id: u64,
        decide: F,
    ) -> Result<Option<StoredOrder>, StoreError>
    where
        F: FnMut(&mut Order) -> bool,
    {
        let current = self.get_order(shop, id).await?;
        self.update_order_from(shop, id, current, decide).await
    }

    /// [`Store::update_order`] starting from an order the caller has just read, which saves the
    /// read: the write names the version it was decided on, so if the order changed since, the
    /// write fails, returns what is stored now, and `decide` runs again on that.
    pub async fn update_order_from<F>(
        &self,
        shop: &ShopDomain,
        id: u64,
        current: Option<StoredOrder>,
        decide: F,
    ) -> Result<Option<StoredOrder>, StoreError>
    where
        F: FnMut(&mut Order) -> bool,
    {
        decide_and_write(current, decide, |next, version, kind, attempt| async move {
            match self.put_order(&next, Some(version), kind).await {
                Err(StoreError::Conflict(now)) => {
                    let now = match *now {
                        Some(now) => Some(now),
                        None => self.get_order(shop, id).await?,
                    };
                    if attempt > 2 {
                        // Many writers on one order: spread the retries out a little.
                        let ms = fastrand::u64(1..=(u64::from(attempt).min(20) * 5));
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    Err(StoreError::Conflict(Box::new(now)))
                }
                written => written,
            }
        })
        .await
    }

    /// Records an order whose event arrived without a body (an oversized EventBridge event):
    /// it is kept as needing a re-fetch. Creates the item only if it does not exist.
    pub async fn mark_needs_refetch(&self, shop: &ShopDomain, id: u64) -> Result<(), StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(shop, id)))
            .update_expression("SET needs_refetch = :t, shop = :shop, order_id = :id")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":shop", s(shop.as_str()))
            .expression_attribute_values(":id", n(id))
            .send()
            .await;
        res.map(|_| ()).map_err(error::sdk)
    }

    /// Orders in one tab, newest first.
    pub async fn list_by_status(
        &self,
        shop: &ShopDomain,
        status: OrderStatus,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<Page<StoredOrder>, StoreError> {
        let start = cursor.map(decode_cursor).transpose()?;
        // A cursor from another tab or shop, or one that is not exactly the key of an order in
        // this tab, is refused, not handed to DynamoDB (which answers a crafted start key with
        // a ValidationException: a 500, not the 400 it is).
        if let Some(start) = &start
            && !is_tab_key(start, shop, status)
        {
            return Err(StoreError::InvalidCursor);
        }
        self.query_orders("gsi2", tab_pk(shop, status), start, limit)
            .await
    }

    /// One page of an order index with `ALL` projection, newest first.
    async fn query_orders(
        &self,
        index: &str,
        pk: String,
        start: Option<Item>,
        limit: i32,
    ) -> Result<Page<StoredOrder>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#pk = :p")
            .expression_attribute_names("#pk", format!("{index}pk"))
            .expression_attribute_values(":p", s(pk))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(error::sdk)?;
        let items = out
            .items()
            .iter()
            .map(|item| decode_order(item).map(|(order, version)| StoredOrder { order, version }))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            next: out.last_evaluated_key().map(encode_cursor).transpose()?,
        })
    }

    /// Orders with something for the merchant to look at (see [`Order::attention`]), newest
    /// first. An index entry whose order no longer needs attention (it changed between the index
    /// write and this read) is left out.
    pub async fn list_attention(
        &self,
        shop: &ShopDomain,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<Page<StoredOrder>, StoreError> {
        let start = cursor.map(decode_cursor).transpose()?;
        if let Some(start) = &start
            && !is_index_key(start, "gsi3pk", "gsi3sk", &attention_pk(shop), shop)
        {
            return Err(StoreError::InvalidCursor);
        }
        let mut page = self
            .query_orders("gsi3", attention_pk(shop), start, limit)
            .await?;
        page.items.retain(|o| !o.order.attention().is_empty());
        Ok(page)
    }

    /// One page of the open-supplier-order index for one shard: `(shop, order id)` keys.
    pub async fn open_orders_page(
        &self,
        shard: u32,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<Page<(ShopDomain, u64)>, StoreError> {
        self.open_page(shard, None, cursor, limit).await
    }

    /// Like [`Store::open_orders_page`], for one shop only (a manual sync of the shop).
    pub async fn open_orders_page_for_shop(
        &self,
        shard: u32,
        shop: &ShopDomain,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<Page<(ShopDomain, u64)>, StoreError> {
        self.open_page(shard, Some(shop), cursor, limit).await
    }

    async fn open_page(
        &self,
        shard: u32,
        shop: Option<&ShopDomain>,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<Page<(ShopDomain, u64)>, StoreError> {
        let start = cursor.map(decode_cursor).transpose()?;
        if let Some(start) = &start
            && !is_open_key(start, shard, shop)
        {
            return Err(StoreError::InvalidCursor);
        }
        let mut req = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .expression_attribute_values(":p", s(open_pk(shard)))
            .limit(limit)
            .set_exclusive_start_key(start);
        req = match shop {
            Some(shop) => req
                .key_condition_expression("gsi1pk = :p AND begins_with(gsi1sk, :shop)")
                .expression_attribute_values(":shop", s(format!("{shop}#"))),
            None => req.key_condition_expression("gsi1pk = :p"),
        };
        let out = req.send().await.map_err(error::sdk)?;
        let mut items = Vec::new();
        for item in out.items() {
            let shop = match item.get("shop") {
                Some(AttributeValue::S(v)) => ShopDomain::parse(v).ok(),
                _ => None,
            };
            let id: Option<u64> = codec::get_n(item, "order_id").ok();
            if let (Some(shop), Some(id)) = (shop, id) {
                items.push((shop, id));
            }
        }
        Ok(Page {
            items,
            next: out.last_evaluated_key().map(encode_cursor).transpose()?,
        })
    }
}

/// Cursors are the index's last key, as JSON of its string attributes, hex-encoded: opaque to
/// clients, and checked on the way back in.
fn encode_cursor(key: &Item) -> Result<String, StoreError> {
    let mut m = std::collections::BTreeMap::new();
    for (k, v) in key {
        match v {
            AttributeValue::S(x) => {
                m.insert(k.clone(), x.clone());
            }
            _ => return Err(StoreError::Other("non-string key".into())),
        }
    }
    let raw = serde_json::to_vec(&m).map_err(|e| StoreError::Other(e.to_string()))?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

fn decode_cursor(raw: &str) -> Result<Item, StoreError> {
    let bad = || StoreError::InvalidCursor;
    if !raw.len().is_multiple_of(2) || raw.len() > 4096 {
        return Err(bad());
    }
    let bytes = (0..raw.len())
        .step_by(2)
        .map(|i| {
            raw.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    let m: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&bytes).map_err(|_| bad())?;
    const ALLOWED: &[&str] = &[
        "pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk",
    ];
    if m.keys().any(|k| !ALLOWED.contains(&k.as_str())) {
        return Err(bad());
    }
    Ok(m.into_iter().map(|(k, v)| (k, s(v))).collect())
}

/// Whether `key` is exactly the index key of an order item in `shop`'s `status` tab: `gsi2pk`
/// the tab, `gsi2sk` `{created ms}#{20-digit id}`, and the table key of that very order.
fn is_tab_key(key: &Item, shop: &ShopDomain, status: OrderStatus) -> bool {
    is_index_key(key, "gsi2pk", "gsi2sk", &tab_pk(shop, status), shop)
}

/// Whether `key` is exactly the key of an order item of `shop` in an index whose hash key is
/// `want_pk` and whose range key is `{created ms}#{20-digit id}`.
fn is_index_key(
    key: &Item,
    pk_name: &str,
    sk_name: &str,
    want_pk: &str,
    shop: &ShopDomain,
) -> bool {
    let get = |k: &str| match key.get(k) {
        Some(AttributeValue::S(v)) => Some(v.as_str()),
        _ => None,
    };
    let (Some(pk), Some(sk), Some(gsi2pk), Some(gsi2sk)) =
        (get("pk"), get("sk"), get(pk_name), get(sk_name))
    else {
        return false;
    };
    let digits = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    let Some((created, id)) = gsi2sk.split_once('#') else {
        return false;
    };
    let Ok(id_num) = id.parse::<u64>() else {
        return false;
    };
    key.len() == 4
        && created.len() >= 15
        && digits(created)
        && id.len() == 20
        && digits(id)
        && gsi2pk == want_pk
        && sk == ORDER_SK
        && pk == pk_of(shop, id_num)
}

/// Whether `key` is exactly the open-index key of an order item in `shard` (and of `shop`, when
/// given): DynamoDB answers a start key outside the query's key condition with a
/// ValidationException, which must be a 400 for a crafted cursor, not a 500.
fn is_open_key(key: &Item, shard: u32, shop: Option<&ShopDomain>) -> bool {
    let get = |k: &str| match key.get(k) {
        Some(AttributeValue::S(v)) => Some(v.as_str()),
        _ => None,
    };
    let (Some(pk), Some(sk), Some(gpk), Some(gsk)) =
        (get("pk"), get("sk"), get("gsi1pk"), get("gsi1sk"))
    else {
        return false;
    };
    let Some((key_shop, id)) = gsk.rsplit_once('#') else {
        return false;
    };
    let (Ok(key_shop), Ok(id)) = (ShopDomain::parse(key_shop), id.parse::<u64>()) else {
        return false;
    };
    key.len() == 4
        && gpk == open_pk(shard)
        && sk == ORDER_SK
        && pk == pk_of(&key_shop, id)
        && gsk == codec::open_sk(&key_shop, id)
        && shop.is_none_or(|s| *s == key_shop)
}

/// Whether a client-supplied cursor is well formed (for a 400 before touching the table).
pub fn cursor_is_valid(raw: &str) -> bool {
    decode_cursor(raw).is_ok()
}
