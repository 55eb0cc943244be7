//! The per-shop tab counter against the emulator: every write that moves an order between tabs
//! keeps it equal to a recount from the index, and a missing, stale or old counter is recounted.

use aws_sdk_dynamodb::types::AttributeValue;
use dropsync_domain::ops::{link_supplier_order, mark_failed};
use dropsync_domain::{Order, OrderStatus, ShopDomain, UserAction};
use dropsync_store::{Store, WriteKind};
use dropsync_tests::{facts, fresh_store, shop};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

fn tabs_key(s: &ShopDomain) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("SHOP#{s}"))),
        ("sk".to_owned(), AttributeValue::S("TABS".into())),
    ])
}

/// The counter item as stored, or `None` when there is none.
async fn raw_counter(store: &Store, s: &ShopDomain) -> Option<HashMap<String, AttributeValue>> {
    store
        .client()
        .get_item()
        .table_name(store.table())
        .set_key(Some(tabs_key(s)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item()
        .cloned()
}

/// The counts the item holds, read without the store's recount logic.
async fn stored_counts(store: &Store, s: &ShopDomain) -> Vec<(OrderStatus, u64)> {
    let item = raw_counter(store, s).await.expect("a counter item");
    assert!(item.contains_key("counted_at"), "{item:?}");
    OrderStatus::ALL
        .into_iter()
        .map(|st| {
            let n = match item.get(&format!("c_{}", st.as_str())) {
                Some(AttributeValue::N(v)) => v.parse::<u64>().unwrap(),
                _ => 0,
            };
            (st, n)
        })
        .collect()
}

async fn set_counter_attrs(
    store: &Store,
    s: &ShopDomain,
    update: &str,
    values: &[(&str, AttributeValue)],
) {
    let mut req = store
        .client()
        .update_item()
        .table_name(store.table())
        .set_key(Some(tabs_key(s)))
        .update_expression(update);
    for (k, v) in values {
        req = req.expression_attribute_values(*k, v.clone());
    }
    req.send().await.unwrap();
}

/// One random step of an order's life: a Shopify webhook (paid, pending, cancelled or
/// fulfilled), a placement (a linked supplier order), a failed placement, or a merchant's
/// re-order / roll-back.
async fn random_step(
    store: &Store,
    s: &ShopDomain,
    id: u64,
    rng: &mut fastrand::Rng,
    clock: &AtomicI64,
    ae: &AtomicU64,
) {
    let now = clock.fetch_add(1, Ordering::SeqCst);
    match rng.u8(0..6) {
        0..=2 => {
            let fin = ["paid", "pending", "paid", "refunded"][rng.usize(0..4)];
            let mut f = facts(fin, now, &[(1, 1), (2, 1)]);
            f.cancelled = rng.u8(0..10) == 0;
            if rng.u8(0..8) == 0 {
                f.fulfillment_status = Some("fulfilled".into());
            }
            store
                .save_shopify_facts(s, id, f, "orders/updated", now)
                .await
                .unwrap();
        }
        3 => {
            let ae_id = ae.fetch_add(1, Ordering::SeqCst);
            let line = rng.u64(1..=2);
            store
                .update_order(s, id, |o| {
                    link_supplier_order(o, ae_id, &[line], vec![], now).unwrap_or(false)
                })
                .await
                .unwrap();
        }
        4 => {
            store
                .update_order(s, id, |o| mark_failed(o, "sold out", now))
                .await
                .unwrap();
        }
        _ => {
            let action = if rng.bool() {
                UserAction::ReOrder
            } else {
                UserAction::RollBack
            };
            store
                .update_order(s, id, |o| o.apply_user_action(action, "merchant", now))
                .await
                .unwrap();
        }
    }
}

/// `writers` tasks at once, each taking `steps` random steps on orders `1..=orders` of the shop,
/// its randomness seeded from `seed` and its index; returns when all are done.
async fn race(
    store: &Arc<Store>,
    s: &ShopDomain,
    writers: u64,
    steps: usize,
    orders: u64,
    seed: u64,
) {
    let clock = Arc::new(AtomicI64::new(10));
    let ae = Arc::new(AtomicU64::new(9_000_000));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, s, clock, ae) = (store.clone(), s.clone(), clock.clone(), ae.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed + w);
            for _ in 0..steps {
                let id = rng.u64(1..=orders);
                random_step(&store, &s, id, &mut rng, &clock, &ae).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn tab_counts_equal_a_recount_after_a_random_mix_of_webhooks_placements_and_merchant_actions()
{
    let store = Arc::new(fresh_store().await);
    let s = shop("tabs-mix");
    // The shop's first page: an empty shop, counted from the index.
    assert!(
        store
            .count_by_status(&s)
            .await
            .unwrap()
            .iter()
            .all(|(_, n)| *n == 0)
    );
    // Orders created by webhooks and by a direct insert (the poller's and the benches' path).
    for id in 1..=20u64 {
        store
            .save_shopify_facts(
                &s,
                id,
                facts(
                    if id % 3 == 0 { "pending" } else { "paid" },
                    5,
                    &[(1, 1), (2, 1)],
                ),
                "orders/create",
                5,
            )
            .await
            .unwrap();
    }
    for id in 21..=25u64 {
        let o = Order::from_shopify(
            s.clone(),
            id,
            facts("paid", 5, &[(1, 1), (2, 1)]),
            "seed",
            5,
        );
        store
            .put_order(&o, None, WriteKind::Automatic)
            .await
            .unwrap();
    }
    // Four writers at once over the same 25 orders: races on one order go through the store's
    // conditional writes and their retries.
    race(&store, &s, 4, 40, 25, 0x7ab5).await;
    let recount = store.recount_by_status(&s).await.unwrap();
    assert_eq!(recount.iter().map(|(_, n)| n).sum::<u64>(), 25);
    assert!(
        recount.iter().filter(|(_, n)| *n > 0).count() >= 3,
        "a mix of tabs: {recount:?}"
    );
    assert_eq!(stored_counts(&store, &s).await, recount);
    assert_eq!(store.count_by_status(&s).await.unwrap(), recount);
}

#[tokio::test]
async fn concurrent_writers_on_the_same_orders_keep_the_counter_exact() {
    let store = Arc::new(fresh_store().await);
    let s = shop("tabs-race");
    store.count_by_status(&s).await.unwrap();
    for id in 1..=4u64 {
        store
            .save_shopify_facts(
                &s,
                id,
                facts("pending", 1, &[(1, 1), (2, 1)]),
                "orders/create",
                1,
            )
            .await
            .unwrap();
    }
    // Sixteen writers on four orders: webhooks flipping paid and pending (the blind write and its
    // merge), placements and merchant actions, all racing.
    race(&store, &s, 16, 12, 4, 0xc0ffee).await;
    let recount = store.recount_by_status(&s).await.unwrap();
    assert_eq!(recount.iter().map(|(_, n)| n).sum::<u64>(), 4);
    assert_eq!(stored_counts(&store, &s).await, recount);
}

#[tokio::test]
async fn a_missing_counter_is_recounted_from_the_index_and_stored() {
    let store = fresh_store().await;
    let s = shop("tabs-missing");
    for id in 1..=6u64 {
        store
            .save_shopify_facts(
                &s,
                id,
                facts(if id <= 2 { "pending" } else { "paid" }, 1, &[(1, 1)]),
                "orders/create",
                1,
            )
            .await
            .unwrap();
    }
    // Orders written before any page was read leave a partial counter (no recount yet).
    assert!(
        !raw_counter(&store, &s)
            .await
            .unwrap()
            .contains_key("counted_at")
    );
    let counts = store.count_by_status(&s).await.unwrap();
    assert!(counts.contains(&(OrderStatus::Pending, 2)));
    assert!(counts.contains(&(OrderStatus::AwaitingOrder, 4)));
    assert_eq!(stored_counts(&store, &s).await, counts);

    // No item at all (deleted, or a table from before counters): recounted the same.
    store
        .client()
        .delete_item()
        .table_name(store.table())
        .set_key(Some(tabs_key(&s)))
        .send()
        .await
        .unwrap();
    assert_eq!(store.count_by_status(&s).await.unwrap(), counts);
    assert_eq!(stored_counts(&store, &s).await, counts);

    // Redacting the shop takes its counter with its orders.
    store.delete_shop_data(&s).await.unwrap();
    assert!(raw_counter(&store, &s).await.is_none());
    assert!(
        store
            .count_by_status(&s)
            .await
            .unwrap()
            .iter()
            .all(|(_, n)| *n == 0)
    );
}

#[tokio::test]
async fn a_stale_a_day_old_or_negative_counter_is_recounted() {
    let store = fresh_store().await;
    let s = shop("tabs-drift");
    store.count_by_status(&s).await.unwrap();
    for id in 1..=3u64 {
        store
            .save_shopify_facts(&s, id, facts("paid", 1, &[(1, 1)]), "orders/create", 1)
            .await
            .unwrap();
    }
    let truth = store.recount_by_status(&s).await.unwrap();
    let wrong = |v: &str| AttributeValue::N(v.into());
    // Drift the counter, then mark it the three ways a read must not trust it.
    set_counter_attrs(
        &store,
        &s,
        "SET c_awaiting_order = :w, stale = :t",
        &[(":w", wrong("40")), (":t", AttributeValue::Bool(true))],
    )
    .await;
    assert_eq!(store.count_by_status(&s).await.unwrap(), truth);
    assert!(!raw_counter(&store, &s).await.unwrap().contains_key("stale"));

    set_counter_attrs(
        &store,
        &s,
        "SET c_awaiting_order = :w, counted_at = :old",
        &[(":w", wrong("40")), (":old", wrong("1000"))],
    )
    .await;
    assert_eq!(store.count_by_status(&s).await.unwrap(), truth);

    set_counter_attrs(&store, &s, "SET c_pending = :w", &[(":w", wrong("-1"))]).await;
    assert_eq!(store.count_by_status(&s).await.unwrap(), truth);
    assert_eq!(stored_counts(&store, &s).await, truth);

    // A counter recounted recently is trusted as it is: one read, no recount.
    set_counter_attrs(
        &store,
        &s,
        "SET c_awaiting_order = :w",
        &[(":w", wrong("40"))],
    )
    .await;
    assert!(
        store
            .count_by_status(&s)
            .await
            .unwrap()
            .contains(&(OrderStatus::AwaitingOrder, 40))
    );
}
