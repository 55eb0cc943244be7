//! The store's read-saving paths against the DynamoDB emulator: a write decided on an order the
//! caller already holds, and the pusher's short-lived cache of shop records.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use dropsync_domain::{ShopDomain, ShopSettings};
use dropsync_store::Store;
use dropsync_tests::{facts, fresh_store, shop};
use std::time::Duration;

#[tokio::test]
async fn an_update_decided_on_a_stale_read_redecides_on_what_is_stored_now() {
    let store = fresh_store().await;
    let s = shop("stale-read");
    store
        .save_shopify_facts(&s, 1, facts("paid", 10, &[(1, 1)]), "orders/create", 1)
        .await
        .unwrap();
    let stale = store.get_order(&s, 1).await.unwrap().unwrap();
    // Someone else writes after our read.
    let other = store
        .update_order(&s, 1, |o| {
            o.failed = Some("written by another worker".to_owned());
            true
        })
        .await
        .unwrap()
        .unwrap();
    assert!(other.version > stale.version);

    let mut decided_on = Vec::new();
    let written = store
        .update_order_from(&s, 1, Some(stale.clone()), |o| {
            decided_on.push(o.failed.clone());
            o.needs_refetch = true;
            true
        })
        .await
        .unwrap()
        .unwrap();
    // First decided on the stale copy, refused, then decided again on the other's write: both
    // changes are kept.
    assert_eq!(
        decided_on,
        vec![None, Some("written by another worker".to_owned())]
    );
    let now = store.get_order(&s, 1).await.unwrap().unwrap();
    assert_eq!(now, written);
    assert_eq!(
        now.order.failed.as_deref(),
        Some("written by another worker")
    );
    assert!(now.order.needs_refetch);
}

/// Whether `store` answers that the shop asks Shopify to notify its customers.
async fn notifies(store: &Store, s: &ShopDomain) -> bool {
    store
        .get_shop_cached(s)
        .await
        .unwrap()
        .settings
        .notify_customer
}

fn notify_customer(on: bool) -> ShopSettings {
    ShopSettings {
        notify_customer: on,
        ..ShopSettings::default()
    }
}

#[tokio::test]
async fn a_cached_shop_record_is_served_until_this_instance_changes_it() {
    let plain = fresh_store().await;
    let cached = plain.clone().caching_shops(Duration::from_secs(3600));
    let s = shop("cached-settings");
    plain
        .put_settings(&s, &notify_customer(true))
        .await
        .unwrap();
    assert!(notifies(&cached, &s).await);

    // Changed elsewhere: the cache still answers what it read (within its time-to-live)...
    plain
        .put_settings(&s, &notify_customer(false))
        .await
        .unwrap();
    assert!(notifies(&cached, &s).await);
    // ...while an uncached read sees the change at once.
    assert!(!notifies(&plain, &s).await);

    // A change made through the caching store itself is never served stale.
    cached.set_active(&s, false).await.unwrap();
    assert!(!cached.get_shop_cached(&s).await.unwrap().active);
}
