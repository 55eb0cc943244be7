//! Product mappings and AliExpress order ownership.
//!
//! - Mappings: one item per Shopify variant, `pk = SHOP#{shop}#MAPPINGS`, `sk = VARIANT#{20-digit
//!   id}`, the rows as one JSON attribute; listed in variant order with an opaque cursor.
//! - Ownership: `pk = AEORDER#{aliexpress order id}`, `sk = OWNER`, holding the shop and Shopify
//!   order the AliExpress order belongs to. This key deliberately does not start with a shop: an
//!   AliExpress order id must be owned by one order of one shop across the whole table, and only
//!   a key of its own can make that a single conditional write.

use crate::codec::{Item, n, s, shop_pk};
use crate::error::{self, StoreError};
use crate::{Page, Store, decode_cursor, encode_cursor};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use dropsync_domain::ShopDomain;
use dropsync_domain::mapping::VariantMapping;
use std::collections::{BTreeMap, HashMap};

const VARIANT_PREFIX: &str = "VARIANT#";

fn mappings_pk(shop: &ShopDomain) -> String {
    format!("{}#MAPPINGS", shop_pk(shop))
}

fn variant_sk(variant_id: u64) -> String {
    format!("{VARIANT_PREFIX}{variant_id:020}")
}

fn mapping_key(shop: &ShopDomain, variant_id: u64) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(mappings_pk(shop))),
        ("sk".to_owned(), s(variant_sk(variant_id))),
    ])
}

fn decode_mapping(item: &Item) -> Result<VariantMapping, StoreError> {
    match item.get("rows") {
        Some(AttributeValue::S(raw)) => {
            serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("mapping: {e}")))
        }
        _ => Err(StoreError::Corrupt("mapping without rows".into())),
    }
}

/// Who an AliExpress order id belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Now owned by the order that asked (it was unowned).
    Claimed,
    /// Already owned by the order that asked.
    AlreadyOurs,
    /// Owned by another order (of this or another shop): nothing was written.
    Elsewhere { shop: String, order_id: u64 },
}

impl Store {
    /// Stores (or replaces) a variant's mapping.
    pub async fn put_mapping(
        &self,
        shop: &ShopDomain,
        mapping: &VariantMapping,
    ) -> Result<(), StoreError> {
        let raw = serde_json::to_string(mapping).map_err(|e| StoreError::Other(e.to_string()))?;
        let mut item = mapping_key(shop, mapping.variant_id);
        item.insert("shop".into(), s(shop.as_str()));
        item.insert("rows".into(), s(raw));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(error::sdk)
    }

    /// One variant's mapping.
    pub async fn get_mapping(
        &self,
        shop: &ShopDomain,
        variant_id: u64,
    ) -> Result<Option<VariantMapping>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(mapping_key(shop, variant_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(error::sdk)?;
        out.item().map(decode_mapping).transpose()
    }

    /// Deletes a variant's mapping; returns whether there was one.
    pub async fn delete_mapping(
        &self,
        shop: &ShopDomain,
        variant_id: u64,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(mapping_key(shop, variant_id)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(error::sdk)?;
        Ok(out.attributes().is_some())
    }

    /// The mappings of these variants (those that have one).
    pub async fn mappings_for(
        &self,
        shop: &ShopDomain,
        variant_ids: &[u64],
    ) -> Result<BTreeMap<u64, VariantMapping>, StoreError> {
        let mut out = BTreeMap::new();
        let mut ids: Vec<u64> = variant_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            if let Some(m) = self.get_mapping(shop, id).await? {
                out.insert(id, m);
            }
        }
        Ok(out)
    }

    /// One page of a shop's mappings, in variant order.
    pub async fn list_mappings(
        &self,
        shop: &ShopDomain,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<Page<VariantMapping>, StoreError> {
        let pk = mappings_pk(shop);
        let start = cursor.map(decode_cursor).transpose()?;
        if let Some(key) = &start {
            let ok = key.len() == 2
                && matches!(key.get("pk"), Some(AttributeValue::S(p)) if *p == pk)
                && matches!(key.get("sk"), Some(AttributeValue::S(k)) if k.starts_with(VARIANT_PREFIX));
            if !ok {
                return Err(StoreError::InvalidCursor);
            }
        }
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            .set_exclusive_start_key(start)
            .limit(limit)
            .send()
            .await
            .map_err(error::sdk)?;
        let items = out
            .items()
            .iter()
            .map(decode_mapping)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match out.last_evaluated_key() {
            Some(k) => Some(encode_cursor(k)?),
            None => None,
        };
        Ok(Page { items, next })
    }

    /// Makes `(shop, order_id)` the owner of an AliExpress order id with one conditional put:
    /// it succeeds when the id is unowned or already owned by that very order, and otherwise
    /// writes nothing and says who owns it.
    pub async fn claim_aliexpress_order(
        &self,
        shop: &ShopDomain,
        order_id: u64,
        ae_order_id: u64,
    ) -> Result<Ownership, StoreError> {
        let item: Item = HashMap::from([
            ("pk".to_owned(), s(format!("AEORDER#{ae_order_id}"))),
            ("sk".to_owned(), s("OWNER")),
            ("shop".to_owned(), s(shop.as_str())),
            ("order_id".to_owned(), n(order_id)),
        ]);
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR (shop = :shop AND order_id = :id)")
            .expression_attribute_values(":shop", s(shop.as_str()))
            .expression_attribute_values(":id", n(order_id))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            Ok(out) if out.attributes().is_some_and(|a| !a.is_empty()) => {
                Ok(Ownership::AlreadyOurs)
            }
            Ok(_) => Ok(Ownership::Claimed),
            Err(aws_sdk_dynamodb::error::SdkError::ServiceError(se))
                if matches!(se.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                let old = match se.into_err() {
                    PutItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                }
                .unwrap_or_default();
                let shop = match old.get("shop") {
                    Some(AttributeValue::S(v)) => v.clone(),
                    _ => String::new(),
                };
                let order_id = match old.get("order_id") {
                    Some(AttributeValue::N(v)) => v.parse().unwrap_or(0),
                    _ => 0,
                };
                Ok(Ownership::Elsewhere { shop, order_id })
            }
            Err(e) => Err(error::sdk(e)),
        }
    }

    /// Gives up ownership of an AliExpress order id, only if `(shop, order_id)` owns it (a link
    /// that claimed it and then could not be made).
    pub async fn release_aliexpress_order(
        &self,
        shop: &ShopDomain,
        order_id: u64,
        ae_order_id: u64,
    ) -> Result<(), StoreError> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("AEORDER#{ae_order_id}")))
            .key("sk", s("OWNER"))
            .condition_expression("shop = :shop AND order_id = :id")
            .expression_attribute_values(":shop", s(shop.as_str()))
            .expression_attribute_values(":id", n(order_id))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(aws_sdk_dynamodb::error::SdkError::ServiceError(se))
                if se.err().is_conditional_check_failed_exception() =>
            {
                Ok(())
            }
            Err(e) => Err(error::sdk(e)),
        }
    }

    /// Deletes every mapping of a shop (`shop/redact`); returns how many.
    pub async fn delete_mappings(&self, shop: &ShopDomain) -> Result<u64, StoreError> {
        let mut deleted = 0;
        loop {
            let page = self.list_mappings(shop, None, 100).await?;
            if page.items.is_empty() {
                return Ok(deleted);
            }
            for m in &page.items {
                self.delete_mapping(shop, m.variant_id).await?;
                deleted += 1;
            }
        }
    }
}

/// `(order id, AliExpress order id)` for every AliExpress order an order item may own: its
/// supplier orders and its placed placements. An item that does not decode owns nothing here
/// (its ids, if any, stay owned: refusing a second link is the safe side).
pub(crate) fn owned_ids(item: &Item) -> Vec<(u64, u64)> {
    let Ok((order, _)) = crate::codec::decode_order(item) else {
        return Vec::new();
    };
    let mut ids: Vec<u64> = order
        .supplier_orders
        .iter()
        .map(|so| so.ae_order_id)
        .collect();
    for p in &order.placements {
        if let dropsync_domain::placement::PlacementState::Placed {
            aliexpress_order_ids,
            ..
        } = &p.state
        {
            ids.extend(aliexpress_order_ids.iter().copied());
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter().map(|ae| (order.id, ae)).collect()
}
