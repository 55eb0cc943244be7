//! The merchant's tab counts, kept in one item per shop so the orders page reads them with one
//! GetItem instead of counting the tabs' index partitions.
//!
//! Item: `pk = SHOP#{shop}`, `sk = TABS`, one number `c_{status}` per status, `counted_at` (ms
//! epoch of the last recount from the index), `gen` (bumped by every change, the recount's
//! guard) and `stale` (set when a change could not be applied).
//!
//! Every write that moves an order between tabs (a new order, a status change) is followed by
//! one `UpdateItem` that `ADD`s -1 to the old tab and +1 to the new one. The order write and the
//! counter write are two requests, so the counter can drift (a crash between them, a failed
//! `ADD`). It is recounted from gsi4 (the tabs' keys-only index) when the item is missing, marked
//! stale, holds a negative count, or was last recounted more than a day ago.
//!
//! A recount reads the item's `gen`, counts, and writes the counts only if `gen` is unchanged:
//! a change that landed during the count leaves the item as it was, to be recounted on a later
//! read (the page still shows the fresh recount). What a recount cannot see is bounded: an order
//! written just before the count whose `ADD` arrives after the recount's write is counted twice,
//! and one the index had not yet caught up with is missed. Both need a write in the instant
//! before a recount, and the next recount corrects them.

use crate::Store;
use crate::codec::{Item, n, s, shop_pk, tab_pk};
use crate::error::{self, StoreError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use dropsync_domain::{OrderStatus, ShopDomain};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

const TABS_SK: &str = "TABS";
/// How long a counter is trusted without a recount: drift the `ADD`s missed lasts at most this.
const RECOUNT_AFTER_MS: i64 = 24 * 3600 * 1000;

fn tabs_key(shop: &ShopDomain) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(shop_pk(shop))),
        ("sk".to_owned(), s(TABS_SK)),
    ])
}

fn count_attr(status: OrderStatus) -> String {
    format!("c_{}", status.as_str())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn num(item: &Item, k: &str) -> Option<i64> {
    match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

/// What a read of the counter item found.
#[derive(Debug, PartialEq, Eq)]
enum Counter {
    /// Trustworthy counts, in `OrderStatus::ALL` order.
    Fresh(Vec<(OrderStatus, u64)>),
    /// To be recounted; the recount's write is conditional on this `gen` (`None`: no item, or
    /// an item without `gen`).
    Recount {
        exists: bool,
        generation: Option<i64>,
    },
}

fn read_counter(item: Option<&Item>, now_ms: i64) -> Counter {
    let Some(item) = item else {
        return Counter::Recount {
            exists: false,
            generation: None,
        };
    };
    let generation = num(item, "gen");
    let recount = Counter::Recount {
        exists: true,
        generation,
    };
    let stale = matches!(item.get("stale"), Some(AttributeValue::Bool(true)));
    let Some(counted_at) = num(item, "counted_at") else {
        // Created by an `ADD` before any recount: partial counts.
        return recount;
    };
    if stale || now_ms.saturating_sub(counted_at) > RECOUNT_AFTER_MS {
        return recount;
    }
    let mut out = Vec::with_capacity(OrderStatus::ALL.len());
    for status in OrderStatus::ALL {
        let c = num(item, &count_attr(status)).unwrap_or(0);
        // Below zero can only be drift (a decrement whose increment was never counted).
        let Ok(c) = u64::try_from(c) else {
            return recount;
        };
        out.push((status, c));
    }
    Counter::Fresh(out)
}

impl Store {
    /// How many orders each tab holds: one GetItem in the steady state, a recount from the
    /// tabs' index when the counter is missing, stale or a day old (see the module's notes).
    pub async fn count_by_status(
        &self,
        shop: &ShopDomain,
    ) -> Result<Vec<(OrderStatus, u64)>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(tabs_key(shop)))
            .consistent_read(true)
            .send()
            .await
            .map_err(error::sdk)?;
        match read_counter(out.item(), now_ms()) {
            Counter::Fresh(counts) => Ok(counts),
            Counter::Recount { exists, generation } => {
                let counts = self.recount_by_status(shop).await?;
                self.store_recount(shop, &counts, exists, generation)
                    .await?;
                Ok(counts)
            }
        }
    }

    /// Counts every tab from the index (what the counter item should hold). The eight tabs are
    /// counted at once, on the keys-only gsi4, so this waits for the keys of the largest tab only.
    pub async fn recount_by_status(
        &self,
        shop: &ShopDomain,
    ) -> Result<Vec<(OrderStatus, u64)>, StoreError> {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, status) in OrderStatus::ALL.into_iter().enumerate() {
            let store = self.clone();
            let pk = tab_pk(shop, status);
            tasks.spawn(async move { (i, status, store.count_tab(pk).await) });
        }
        let mut out: Vec<(usize, OrderStatus, u64)> = Vec::with_capacity(OrderStatus::ALL.len());
        while let Some(joined) = tasks.join_next().await {
            let (i, status, n) =
                joined.map_err(|e| StoreError::Other(format!("count task: {e}")))?;
            out.push((i, status, n?));
        }
        out.sort_by_key(|(i, _, _)| *i);
        Ok(out.into_iter().map(|(_, s, n)| (s, n)).collect())
    }

    /// Counts one tab on gsi4 (gsi2's keys, projected keys-only).
    async fn count_tab(&self, pk: String) -> Result<u64, StoreError> {
        let mut total = 0u64;
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi4")
                .key_condition_expression("gsi2pk = :p")
                .expression_attribute_values(":p", s(pk.clone()))
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(error::sdk)?;
            total += u64::try_from(page.count()).unwrap_or(0);
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(total);
            }
        }
    }

    /// Writes a recount, only if no change reached the counter since it was read. Losing that
    /// race is not an error: the item keeps its state and a later read recounts.
    async fn store_recount(
        &self,
        shop: &ShopDomain,
        counts: &[(OrderStatus, u64)],
        exists: bool,
        generation: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut item = tabs_key(shop);
        for (status, c) in counts {
            item.insert(count_attr(*status), n(*c));
        }
        item.insert("counted_at".into(), n(now_ms()));
        item.insert("gen".into(), n(generation.unwrap_or(0)));
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        req = match (exists, generation) {
            (false, _) => req.condition_expression("attribute_not_exists(pk)"),
            (true, None) => {
                req.condition_expression("attribute_exists(pk) AND attribute_not_exists(gen)")
            }
            (true, Some(g)) => req
                .condition_expression("gen = :g")
                .expression_attribute_values(":g", n(g)),
        };
        match req.send().await {
            Ok(_) => Ok(()),
            Err(aws_sdk_dynamodb::error::SdkError::ServiceError(se))
                if matches!(se.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                tracing::debug!(shop = %shop, "tab counts changed during a recount; not stored");
                Ok(())
            }
            Err(e) => Err(error::sdk(e)),
        }
    }

    /// Moves one order between tabs in the counter (`from: None`: a new order; `to: None`: a
    /// deleted one). Called after the order's write succeeded, so it never fails the caller: a
    /// counter that cannot be updated is marked stale, and one that cannot even be marked is
    /// corrected by the daily recount.
    pub(crate) async fn move_tab(
        &self,
        shop: &ShopDomain,
        from: Option<OrderStatus>,
        to: Option<OrderStatus>,
    ) {
        if from == to {
            return;
        }
        let mut adds = vec!["gen :one".to_owned()];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(tabs_key(shop)))
            .expression_attribute_values(":one", n(1));
        if let Some(from) = from {
            adds.push("#f :minus".into());
            req = req
                .expression_attribute_names("#f", count_attr(from))
                .expression_attribute_values(":minus", n(-1));
        }
        if let Some(to) = to {
            adds.push("#t :one".into());
            req = req.expression_attribute_names("#t", count_attr(to));
        }
        // Unconditional: on a missing item this creates a partial one (no `counted_at`), which
        // reads as "recount" and, through `gen`, makes a recount running now discard its result.
        let res = req
            .update_expression(format!("ADD {}", adds.join(", ")))
            .send()
            .await;
        if let Err(e) = res {
            tracing::warn!(shop = %shop, error = %error::sdk(e), "tab counter not updated; marking it stale");
            let marked = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(tabs_key(shop)))
                .update_expression("SET stale = :t ADD gen :one")
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .expression_attribute_values(":one", n(1))
                .send()
                .await;
            if let Err(e) = marked {
                tracing::warn!(shop = %shop, error = %error::sdk(e), "tab counter not marked stale; the daily recount corrects it");
            }
        }
    }

    /// Drops a shop's counter (its orders are being deleted).
    pub(crate) async fn delete_tabs(&self, shop: &ShopDomain) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(tabs_key(shop)))
            .send()
            .await
            .map(|_| ())
            .map_err(error::sdk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter_item(counted_at: Option<i64>, stale: bool, pending: i64) -> Item {
        let mut item = HashMap::from([("gen".to_owned(), n(7))]);
        for status in OrderStatus::ALL {
            item.insert(count_attr(status), n(2));
        }
        item.insert(count_attr(OrderStatus::Pending), n(pending));
        if let Some(at) = counted_at {
            item.insert("counted_at".into(), n(at));
        }
        if stale {
            item.insert("stale".into(), AttributeValue::Bool(true));
        }
        item
    }

    #[test]
    fn a_recently_counted_item_is_served_as_it_is() {
        let item = counter_item(Some(1_000), false, 5);
        let Counter::Fresh(counts) = read_counter(Some(&item), 1_000 + RECOUNT_AFTER_MS) else {
            panic!("expected fresh counts");
        };
        assert_eq!(counts.len(), OrderStatus::ALL.len());
        assert_eq!(counts.first(), Some(&(OrderStatus::Pending, 5)));
        assert!(counts.iter().skip(1).all(|(_, c)| *c == 2));
    }

    #[test]
    fn a_missing_item_is_recounted_and_created_only_if_still_missing() {
        assert_eq!(
            read_counter(None, 0),
            Counter::Recount {
                exists: false,
                generation: None
            }
        );
    }

    #[test]
    fn a_counter_a_day_old_is_recounted_under_its_generation() {
        let item = counter_item(Some(1_000), false, 5);
        assert_eq!(
            read_counter(Some(&item), 1_001 + RECOUNT_AFTER_MS),
            Counter::Recount {
                exists: true,
                generation: Some(7)
            }
        );
    }

    #[test]
    fn stale_partial_or_negative_counters_are_recounted() {
        for item in [
            counter_item(Some(1_000), true, 5),
            counter_item(None, false, 5),
            counter_item(Some(1_000), false, -1),
        ] {
            assert!(matches!(
                read_counter(Some(&item), 2_000),
                Counter::Recount { exists: true, .. }
            ));
        }
    }
}
