//! Per-shop items (settings, active flag, AliExpress link state), webhook delivery dedupe for
//! topics without an `updated_at`, and the AliExpress tokens dropsync refreshes itself.

use crate::Store;
use crate::codec::{Item, SHARDS, get_n, n, s, shop_pk, tab_pk};
use crate::error::{self, StoreError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use dropsync_domain::{OrderStatus, ShopDomain, ShopSettings};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

const SHOP_SK: &str = "SHOP";

/// What dropsync keeps about a shop.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShopRecord {
    /// False after `app/uninstalled`: the shop's orders are no longer polled or pushed.
    pub active: bool,
    pub settings: ShopSettings,
    /// AliExpress said the shop's token is no longer valid: the merchant must re-authorize.
    pub aliexpress_reauth_needed: bool,
    /// When a confirmed `app/uninstalled` deactivated the shop (ms epoch). `shop/redact` acts
    /// only 48 h after it, as Shopify itself sends it.
    pub uninstalled_at_ms: Option<i64>,
}

/// The AliExpress tokens of one app key, as dropsync last refreshed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AeTokenRecord {
    pub access_token: String,
    pub refresh_token: String,
    /// ms epoch.
    pub expire_time_ms: i64,
    pub refresh_expire_time_ms: Option<i64>,
}

fn shop_key(shop: &ShopDomain) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(shop_pk(shop))),
        ("sk".to_owned(), s(SHOP_SK)),
    ])
}

/// Shop records by shop, each with when it was read.
#[derive(Debug, Clone)]
pub(crate) struct ShopCache {
    ttl: Duration,
    records: Arc<Mutex<HashMap<ShopDomain, (Instant, ShopRecord)>>>,
}

impl ShopCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            records: Arc::default(),
        }
    }

    fn get(&self, shop: &ShopDomain) -> Option<ShopRecord> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records
            .get(shop)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, r)| r.clone())
    }

    fn forget(&self, shop: &ShopDomain) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records.remove(shop);
    }

    fn put(&self, shop: &ShopDomain, record: &ShopRecord) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records.retain(|_, (at, _)| at.elapsed() < self.ttl);
        records.insert(shop.clone(), (Instant::now(), record.clone()));
    }
}

impl Store {
    /// The shop's record, from this instance's cache when it was read less than the cache's
    /// time-to-live ago (see [`Store::caching_shops`]); without a cache, [`Store::get_shop`].
    pub async fn get_shop_cached(&self, shop: &ShopDomain) -> Result<ShopRecord, StoreError> {
        let Some(cache) = &self.shops else {
            return self.get_shop(shop).await;
        };
        if let Some(record) = cache.get(shop) {
            return Ok(record);
        }
        let record = self.get_shop(shop).await?;
        cache.put(shop, &record);
        Ok(record)
    }

    /// The shop's record; a shop never seen is active with default settings.
    pub async fn get_shop(&self, shop: &ShopDomain) -> Result<ShopRecord, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(shop_key(shop)))
            .consistent_read(true)
            .send()
            .await
            .map_err(error::sdk)?;
        let Some(item) = out.item() else {
            return Ok(ShopRecord {
                active: true,
                ..ShopRecord::default()
            });
        };
        let settings = match item.get("settings") {
            Some(AttributeValue::S(raw)) => serde_json::from_str(raw)
                .map_err(|e| StoreError::Corrupt(format!("settings: {e}")))?,
            _ => ShopSettings::default(),
        };
        Ok(ShopRecord {
            active: !matches!(item.get("active"), Some(AttributeValue::Bool(false))),
            settings,
            aliexpress_reauth_needed: matches!(
                item.get("ae_reauth"),
                Some(AttributeValue::Bool(true))
            ),
            uninstalled_at_ms: get_n(item, "uninstalled_at").ok(),
        })
    }

    async fn set_shop_attr(
        &self,
        shop: &ShopDomain,
        attr: &str,
        v: AttributeValue,
    ) -> Result<(), StoreError> {
        if let Some(cache) = &self.shops {
            cache.forget(shop);
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(shop_key(shop)))
            .update_expression("SET #a = :v, shop = :shop")
            .expression_attribute_names("#a", attr)
            .expression_attribute_values(":v", v)
            .expression_attribute_values(":shop", s(shop.as_str()))
            .send()
            .await
            .map(|_| ())
            .map_err(error::sdk)
    }

    pub async fn put_settings(
        &self,
        shop: &ShopDomain,
        settings: &ShopSettings,
    ) -> Result<(), StoreError> {
        let raw = serde_json::to_string(settings).map_err(|e| StoreError::Other(e.to_string()))?;
        self.set_shop_attr(shop, "settings", s(raw)).await
    }

    /// Sets the active flag. Reactivating (a reconnect) also forgets when the shop was
    /// uninstalled, so a late `shop/redact` can no longer delete a shop that came back.
    pub async fn set_active(&self, shop: &ShopDomain, active: bool) -> Result<(), StoreError> {
        if !active {
            return self
                .set_shop_attr(shop, "active", AttributeValue::Bool(false))
                .await;
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(shop_key(shop)))
            .update_expression("SET active = :t, shop = :shop REMOVE uninstalled_at")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":shop", s(shop.as_str()))
            .send()
            .await
            .map(|_| ())
            .map_err(error::sdk)
    }

    /// A confirmed uninstall: inactive from now, and the time kept for `shop/redact`'s 48 h.
    /// A repeated uninstall keeps the first time.
    pub async fn mark_uninstalled(&self, shop: &ShopDomain, now_ms: i64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(shop_key(shop)))
            .update_expression(
                "SET active = :f, shop = :shop, uninstalled_at = if_not_exists(uninstalled_at, :at)",
            )
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .expression_attribute_values(":shop", s(shop.as_str()))
            .expression_attribute_values(":at", n(now_ms))
            .send()
            .await
            .map(|_| ())
            .map_err(error::sdk)
    }

    pub async fn set_aliexpress_reauth(
        &self,
        shop: &ShopDomain,
        needed: bool,
    ) -> Result<(), StoreError> {
        self.set_shop_attr(shop, "ae_reauth", AttributeValue::Bool(needed))
            .await
    }

    /// Records a delivery id (for topics with no `updated_at` to order by). Returns false when
    /// it was seen before. The item expires after `ttl_secs` (longer than Shopify's 4 h retries).
    pub async fn record_delivery(
        &self,
        shop: &ShopDomain,
        webhook_id: &str,
        now_ms: i64,
        ttl_secs: i64,
    ) -> Result<bool, StoreError> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("{}#WEBHOOK#{webhook_id}", shop_pk(shop))))
            .item("sk", s("WEBHOOK"))
            .item("expires_at", n(now_ms / 1000 + ttl_secs))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(aws_sdk_dynamodb::error::SdkError::ServiceError(se))
                if matches!(se.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(e) => Err(error::sdk(e)),
        }
    }

    /// Deletes everything dropsync holds about a shop (`shop/redact`): its orders, in every
    /// tab, the ownership of the AliExpress order ids they hold, its product mappings, and its
    /// record. Returns how many orders were deleted.
    pub async fn delete_shop_data(&self, shop: &ShopDomain) -> Result<u64, StoreError> {
        let mut deleted = 0u64;
        for status in OrderStatus::ALL {
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name("gsi2")
                    .key_condition_expression("gsi2pk = :p")
                    .expression_attribute_values(":p", s(tab_pk(shop, status)))
                    .limit(25)
                    .send()
                    .await
                    .map_err(error::sdk)?;
                if page.items().is_empty() {
                    break;
                }
                let mut requests = Vec::new();
                // The AliExpress order ids these orders own live under keys of their own.
                let owned: Vec<(u64, u64)> = page
                    .items()
                    .iter()
                    .flat_map(crate::placing::owned_ids)
                    .collect();
                for item in page.items() {
                    let key: Item = item
                        .iter()
                        .filter(|(k, _)| k.as_str() == "pk" || k.as_str() == "sk")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    let del = DeleteRequest::builder()
                        .set_key(Some(key))
                        .build()
                        .map_err(|e| StoreError::Other(e.to_string()))?;
                    requests.push(WriteRequest::builder().delete_request(del).build());
                }
                deleted += requests.len() as u64;
                let mut pending = Some(HashMap::from([(self.table.clone(), requests)]));
                while let Some(req) = pending.take().filter(|r| !r.is_empty()) {
                    let out = self
                        .client
                        .batch_write_item()
                        .set_request_items(Some(req))
                        .send()
                        .await
                        .map_err(error::sdk)?;
                    pending = out.unprocessed_items().cloned();
                }
                for (order_id, ae_order_id) in owned {
                    self.release_aliexpress_order(shop, order_id, ae_order_id)
                        .await?;
                }
            }
        }
        self.delete_mappings(shop).await?;
        self.delete_tabs(shop).await?;
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(shop_key(shop)))
            .send()
            .await
            .map_err(error::sdk)?;
        Ok(deleted)
    }

    /// The AliExpress tokens dropsync stored for an app key, if it ever refreshed them.
    pub async fn get_ae_tokens(&self, app_key: &str) -> Result<Option<AeTokenRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("AE#{app_key}")))
            .key("sk", s("TOKEN"))
            .consistent_read(true)
            .send()
            .await
            .map_err(error::sdk)?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let get = |k: &str| match item.get(k) {
            Some(AttributeValue::S(v)) => Ok(v.clone()),
            _ => Err(StoreError::Corrupt(format!("token {k}"))),
        };
        Ok(Some(AeTokenRecord {
            access_token: get("access_token")?,
            refresh_token: get("refresh_token")?,
            expire_time_ms: get_n(item, "expire_time")?,
            refresh_expire_time_ms: get_n(item, "refresh_expire_time").ok(),
        }))
    }

    /// Stores refreshed tokens, both at once, unless another invocation already replaced the
    /// refresh token this refresh started from (then its tokens win and are returned as a
    /// conflict-free `false`). A record without `refresh_expire_time_ms` keeps the stored
    /// deadline: refreshing never extends an AliExpress authorization, so a refresh that does not
    /// restate its end must not erase it.
    pub async fn put_ae_tokens(
        &self,
        app_key: &str,
        previous_refresh_token: Option<&str>,
        tokens: &AeTokenRecord,
    ) -> Result<bool, StoreError> {
        let mut update = "SET access_token = :a, refresh_token = :r, expire_time = :e".to_owned();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("AE#{app_key}")))
            .key("sk", s("TOKEN"))
            .expression_attribute_values(":a", s(tokens.access_token.clone()))
            .expression_attribute_values(":r", s(tokens.refresh_token.clone()))
            .expression_attribute_values(":e", n(tokens.expire_time_ms));
        if let Some(r) = tokens.refresh_expire_time_ms {
            update.push_str(", refresh_expire_time = :re");
            req = req.expression_attribute_values(":re", n(r));
        }
        req = req.update_expression(update);
        req = match previous_refresh_token {
            Some(prev) => req
                .condition_expression("attribute_not_exists(pk) OR refresh_token = :prev")
                .expression_attribute_values(":prev", s(prev)),
            None => req.condition_expression("attribute_not_exists(pk)"),
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(aws_sdk_dynamodb::error::SdkError::ServiceError(se))
                if matches!(
                    se.err(),
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(error::sdk(e)),
        }
    }

    /// Number of shards of the open index (for pollers that split the work).
    pub fn open_shards(&self) -> u32 {
        SHARDS
    }
}

/// The reconciliation watermark of a shop: every Shopify order updated before it is applied.
impl Store {
    fn watermark_key(shop: &ShopDomain) -> Item {
        HashMap::from([
            ("pk".to_owned(), s(shop_pk(shop))),
            ("sk".to_owned(), s("RECONCILE")),
        ])
    }

    /// The shop's reconciliation watermark (ms epoch), `None` before its first run.
    pub async fn reconcile_watermark(&self, shop: &ShopDomain) -> Result<Option<i64>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::watermark_key(shop)))
            .consistent_read(true)
            .send()
            .await
            .map_err(error::sdk)?;
        Ok(out.item().and_then(|i| get_n(i, "watermark_ms").ok()))
    }

    /// Moves the watermark forward to `watermark_ms`; never back (two concurrent runs, or a
    /// late one, cannot undo another's progress). Returns whether it moved.
    pub async fn advance_reconcile_watermark(
        &self,
        shop: &ShopDomain,
        watermark_ms: i64,
    ) -> Result<bool, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::watermark_key(shop)))
            .update_expression("SET watermark_ms = :w, shop = :shop")
            .condition_expression("attribute_not_exists(watermark_ms) OR watermark_ms < :w")
            .expression_attribute_values(":w", n(watermark_ms))
            .expression_attribute_values(":shop", s(shop.as_str()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(aws_sdk_dynamodb::error::SdkError::ServiceError(se))
                if matches!(
                    se.err(),
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(error::sdk(e)),
        }
    }
}

/// Manual shop syncs: at most one in flight per shop, across every concurrent Lambda, and at most
/// one started per `min_interval_ms`.
impl Store {
    fn sync_gate_key(shop: &ShopDomain) -> Item {
        HashMap::from([
            ("pk".to_owned(), s(shop_pk(shop))),
            ("sk".to_owned(), s("SYNCGATE")),
        ])
    }

    /// Starts a manual sync of `shop` as `holder`, held until `now_ms + hold_ms` at most (a crashed
    /// holder's gate opens by itself). `Ok(None)`: started; `Ok(Some(ms))`: refused, try again in
    /// `ms` (one is in flight, or the last started less than `min_interval_ms` ago).
    pub async fn start_manual_sync(
        &self,
        shop: &ShopDomain,
        holder: &str,
        now_ms: i64,
        hold_ms: i64,
        min_interval_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::sync_gate_key(shop)))
            .update_expression(
                "SET holder = :h, busy_until = :until, started_at = :now, shop = :shop",
            )
            .condition_expression(
                "(attribute_not_exists(busy_until) OR busy_until <= :now) \
                 AND (attribute_not_exists(started_at) OR started_at <= :since)",
            )
            .expression_attribute_values(":h", s(holder))
            .expression_attribute_values(":until", n(now_ms.saturating_add(hold_ms)))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":since", n(now_ms.saturating_sub(min_interval_ms)))
            .expression_attribute_values(":shop", s(shop.as_str()))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match res {
            Ok(_) => Ok(None),
            Err(aws_sdk_dynamodb::error::SdkError::ServiceError(se)) => match se.into_err() {
                aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => {
                    let old = c.item.unwrap_or_default();
                    let busy: i64 = get_n(&old, "busy_until").unwrap_or(now_ms);
                    let started: i64 = get_n(&old, "started_at").unwrap_or(now_ms);
                    let wait = busy
                        .saturating_sub(now_ms)
                        .max(started.saturating_add(min_interval_ms).saturating_sub(now_ms))
                        .max(1);
                    Ok(Some(wait))
                }
                other => Err(StoreError::Other(other.to_string())),
            },
            Err(e) => Err(error::sdk(e)),
        }
    }

    /// Ends `holder`'s manual sync of `shop` (the rate interval still runs from its start).
    pub async fn end_manual_sync(&self, shop: &ShopDomain, holder: &str) -> Result<(), StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::sync_gate_key(shop)))
            .update_expression("SET busy_until = :zero")
            .condition_expression("holder = :h")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":h", s(holder))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            // Taken over after our hold expired: nothing of ours to end.
            Err(aws_sdk_dynamodb::error::SdkError::ServiceError(se))
                if matches!(
                    se.err(),
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(error::sdk(e)),
        }
    }
}
