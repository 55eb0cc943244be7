//! The store against the DynamoDB emulator: conditional writes enforce the status machine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use dropsync_domain::ops::{
    AeObservation, AeParcelItem, AeTrackingLine, apply_ae_observation, link_supplier_order,
};
use dropsync_domain::{ItemLink, Order, OrderStatus, SupplierStatus, UserAction, history_is_valid};
use dropsync_store::{ShopifyApplied, StoreError, WriteKind};
use dropsync_tests::{facts, fresh_store, shop};
use std::collections::HashSet;
use std::sync::Arc;

#[tokio::test]
async fn a_transition_the_table_forbids_is_rejected_by_dynamodb_and_the_item_is_unchanged() {
    let store = fresh_store().await;
    let s = shop("forbid");
    store
        .save_shopify_facts(&s, 1, facts("paid", 10, &[(1, 1)]), "orders/create", 1)
        .await
        .unwrap();
    let stored = store.get_order(&s, 1).await.unwrap().unwrap();

    // Move it to fulfilled (allowed: forward).
    let mut fulfilled = stored.order.clone();
    fulfilled.status = OrderStatus::Fulfilled;
    let after = store
        .put_order(&fulfilled, Some(stored.version), WriteKind::Automatic)
        .await
        .unwrap();

    // With the current version but a forbidden move, only DynamoDB's condition stands in the way:
    // the store does not check transitions in Rust.
    let mut back = after.order.clone();
    back.status = OrderStatus::AwaitingPayment;
    let err = store
        .put_order(&back, Some(after.version), WriteKind::Automatic)
        .await
        .unwrap_err();
    let StoreError::Conflict(now) = err else {
        panic!("expected a conflict, got {err:?}")
    };
    assert_eq!(
        now.as_ref().as_ref().map(|n| n.order.status),
        Some(OrderStatus::Fulfilled)
    );

    // A writer with a stale in-memory view (the version it read before) is refused as well.
    let mut stale = stored.order.clone();
    stale.status = OrderStatus::AwaitingPayment;
    let err = store
        .put_order(&stale, Some(stored.version), WriteKind::Automatic)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));

    let now = store.get_order(&s, 1).await.unwrap().unwrap();
    assert_eq!(now.order.status, OrderStatus::Fulfilled);
    assert_eq!(now.version, after.version);
}

#[tokio::test]
async fn a_merchant_action_may_move_back_only_through_its_own_table() {
    let store = fresh_store().await;
    let s = shop("user");
    store
        .save_shopify_facts(&s, 1, facts("paid", 10, &[(1, 1)]), "orders/create", 1)
        .await
        .unwrap();
    let stored = store.get_order(&s, 1).await.unwrap().unwrap();
    let mut fulfilled = stored.order.clone();
    fulfilled.status = OrderStatus::Fulfilled;
    fulfilled.history.push(dropsync_domain::HistoryEntry {
        status: OrderStatus::Fulfilled,
        at_ms: 3,
        cause: "fulfilled by hand".into(),
        user_action: None,
    });
    let after = store
        .put_order(&fulfilled, Some(stored.version), WriteKind::Automatic)
        .await
        .unwrap();
    // Roll back: allowed from fulfilled by the user table.
    let mut rolled = after.order.clone();
    assert!(rolled.apply_user_action(UserAction::RollBack, "user: roll back", 5));
    let rolled = store
        .put_order(
            &rolled,
            Some(after.version),
            WriteKind::User(UserAction::RollBack),
        )
        .await
        .unwrap();
    // A re-order claimed from awaiting_order to awaiting_payment is in the user table too, but
    // "re-order" to pending is not anything's target: writing pending as a user action fails.
    let mut bad = rolled.order.clone();
    bad.status = OrderStatus::Pending;
    let err = store
        .put_order(
            &bad,
            Some(rolled.version),
            WriteKind::User(UserAction::ReOrder),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let now = store.get_order(&s, 1).await.unwrap().unwrap();
    assert_eq!(now.order.status, OrderStatus::AwaitingOrder);
    assert!(
        history_is_valid(&now.order.history),
        "{:?}",
        now.order.history
    );
}

#[tokio::test]
async fn duplicate_and_out_of_order_shopify_upserts_leave_the_newer_data_in_place() {
    let store = fresh_store().await;
    let s = shop("dupes");
    let created = store
        .save_shopify_facts(&s, 42, facts("pending", 100, &[(1, 2)]), "orders/create", 1)
        .await
        .unwrap();
    assert_eq!(created, ShopifyApplied::Created(OrderStatus::Pending));

    // The same updated_at twice: the second is a no-op.
    let again = store
        .save_shopify_facts(&s, 42, facts("pending", 100, &[(1, 2)]), "orders/create", 2)
        .await
        .unwrap();
    assert_eq!(again, ShopifyApplied::Stale);
    let v1 = store.get_order(&s, 42).await.unwrap().unwrap().version;

    let paid = store
        .save_shopify_facts(&s, 42, facts("paid", 300, &[(1, 2)]), "orders/paid", 3)
        .await
        .unwrap();
    assert_eq!(paid, ShopifyApplied::Updated(OrderStatus::AwaitingOrder));

    // An older event after a newer one changes nothing.
    let stale = store
        .save_shopify_facts(
            &s,
            42,
            facts("pending", 200, &[(1, 5)]),
            "orders/updated",
            4,
        )
        .await
        .unwrap();
    assert_eq!(stale, ShopifyApplied::Stale);

    let now = store.get_order(&s, 42).await.unwrap().unwrap();
    assert_eq!(now.order.status, OrderStatus::AwaitingOrder);
    assert_eq!(now.order.shopify.updated_at_ms, 300);
    assert_eq!(now.order.shopify.line_items[0].quantity, 2);
    assert_eq!(now.version, v1 + 1, "only the newer event wrote");
    assert!(history_is_valid(&now.order.history));
    assert_eq!(
        now.order
            .history
            .iter()
            .map(|h| h.status)
            .collect::<Vec<_>>(),
        vec![OrderStatus::Pending, OrderStatus::AwaitingOrder]
    );
}

#[tokio::test]
async fn a_shopify_event_for_an_order_with_supplier_orders_merges_without_losing_them() {
    let store = fresh_store().await;
    let s = shop("merge");
    store
        .save_shopify_facts(&s, 7, facts("paid", 100, &[(1, 1)]), "orders/create", 1)
        .await
        .unwrap();
    store
        .update_order(&s, 7, |o| {
            link_supplier_order(o, 9001, &[1], vec![], 2).unwrap_or(false)
        })
        .await
        .unwrap();
    let mut newer = facts("paid", 200, &[(1, 1)]);
    newer.name = "#renamed".into();
    let out = store
        .save_shopify_facts(&s, 7, newer, "orders/updated", 3)
        .await
        .unwrap();
    assert_eq!(out, ShopifyApplied::Updated(OrderStatus::AwaitingPayment));
    let now = store.get_order(&s, 7).await.unwrap().unwrap().order;
    assert_eq!(now.shopify.name, "#renamed");
    assert_eq!(now.supplier_orders.len(), 1);
    assert_eq!(now.status, OrderStatus::AwaitingPayment);

    // A cancel in Shopify cancels the order and keeps the supplier order for the by-hand cancel.
    let mut cancel = facts("paid", 300, &[(1, 1)]);
    cancel.cancelled = true;
    store
        .save_shopify_facts(&s, 7, cancel, "orders/cancelled", 4)
        .await
        .unwrap();
    let now = store.get_order(&s, 7).await.unwrap().unwrap().order;
    assert_eq!(now.status, OrderStatus::Canceled);
    assert_eq!(now.supplier_orders.len(), 1);
    assert!(!now.attention().is_empty());
}

#[tokio::test]
async fn fifty_racing_supplier_updates_end_in_the_furthest_state_with_nothing_lost_or_doubled() {
    let store = Arc::new(fresh_store().await);
    let s = shop("race");
    let lines: Vec<(u64, u32)> = (1..=50).map(|i| (i, 1)).collect();
    store
        .save_shopify_facts(&s, 5, facts("paid", 100, &lines), "orders/create", 1)
        .await
        .unwrap();
    let ids: Vec<u64> = (1..=50).collect();
    let items: Vec<ItemLink> = ids
        .iter()
        .map(|i| ItemLink {
            line_item_id: *i,
            product_id: None,
            sku_id: Some(format!("SKU-{i}")),
        })
        .collect();
    let linked = store
        .update_order(&s, 5, |o| {
            link_supplier_order(o, 777, &ids, items.clone(), 2).unwrap()
        })
        .await
        .unwrap()
        .unwrap();

    // Each update reports a status and one new parcel (its own line), as successive polls would.
    let mut order: Vec<usize> = (0..50).collect();
    fastrand::shuffle(&mut order);
    let mut tasks = Vec::new();
    for i in order {
        let store = store.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let status = match i {
                0..20 => "WAIT_SELLER_SEND_GOODS",
                20..49 => "SELLER_PART_SEND_GOODS",
                _ => "WAIT_BUYER_ACCEPT_GOODS",
            };
            let obs = AeObservation {
                order_status: status.into(),
                logistics_status: None,
                children: vec![],
                tracking: Some(vec![AeTrackingLine {
                    mail_no: format!("TN{i:03}"),
                    carrier_name: Some("YunExpress".into()),
                    items: vec![AeParcelItem {
                        product_id: None,
                        sku_id: Some(format!("SKU-{}", i + 1)),
                        quantity: 1,
                    }],
                }]),
            };
            store
                .update_order(&s, 5, |o: &mut Order| {
                    apply_ae_observation(o, 777, &obs, 10 + i as i64).is_some_and(|c| !c.is_empty())
                })
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let now = store.get_order(&s, 5).await.unwrap().unwrap();
    let so = now.order.supplier_order(777).unwrap();
    assert_eq!(so.status, SupplierStatus::Shipped);
    let numbers: HashSet<&str> = so
        .packages
        .iter()
        .map(|p| p.tracking_number.as_str())
        .collect();
    assert_eq!(so.packages.len(), 50, "every update's parcel recorded once");
    assert_eq!(numbers.len(), 50);
    assert_eq!(
        now.version,
        linked.version + 50,
        "exactly one successful write per update"
    );
    assert_eq!(now.order.status, OrderStatus::AwaitingFulfillment);
    assert!(
        history_is_valid(&now.order.history),
        "{:?}",
        now.order.history
    );
}

#[tokio::test]
async fn the_open_supplier_order_index_yields_each_of_a_thousand_exactly_once_across_pages() {
    let store = Arc::new(fresh_store().await);
    let shops = [shop("open-a"), shop("open-b"), shop("open-c")];
    let mut handles = Vec::new();
    for chunk in 0..8u64 {
        let store = store.clone();
        let shops = shops.clone();
        handles.push(tokio::spawn(async move {
            for i in (chunk * 125)..((chunk + 1) * 125) {
                let s = &shops[(i % 3) as usize];
                let mut o = Order::from_shopify(
                    s.clone(),
                    10_000 + i,
                    facts("paid", 1, &[(1, 1)]),
                    "seed",
                    0,
                );
                link_supplier_order(&mut o, 500_000 + i, &[1], vec![], 1).unwrap();
                store
                    .put_order(&o, None, WriteKind::Automatic)
                    .await
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    // A closed one (no open supplier order) must not be yielded.
    let closed = Order::from_shopify(shops[0].clone(), 1, facts("paid", 1, &[(1, 1)]), "seed", 0);
    store
        .put_order(&closed, None, WriteKind::Automatic)
        .await
        .unwrap();

    let mut seen = HashSet::new();
    let mut per_shard = Vec::new();
    for shard in 0..store.open_shards() {
        let mut cursor: Option<String> = None;
        let mut n = 0;
        loop {
            let page = store
                .open_orders_page(shard, cursor.as_deref(), 37)
                .await
                .unwrap();
            for key in page.items {
                assert!(seen.insert(key.clone()), "{key:?} yielded twice");
                n += 1;
            }
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        per_shard.push(n);
    }
    assert_eq!(seen.len(), 1000);
    assert!(
        per_shard.iter().all(|n| *n > 20),
        "spread over the shards: {per_shard:?}"
    );
}

#[tokio::test]
async fn tabs_list_newest_first_and_a_foreign_cursor_is_refused() {
    let store = fresh_store().await;
    let s = shop("tabs");
    for i in 0..7u64 {
        let mut f = facts("paid", 10, &[(1, 1)]);
        f.created_at_ms = 1_000 + i as i64;
        store
            .save_shopify_facts(&s, 100 + i, f, "orders/create", 1)
            .await
            .unwrap();
    }
    let first = store
        .list_by_status(&s, OrderStatus::AwaitingOrder, None, 3)
        .await
        .unwrap();
    let ids: Vec<u64> = first.items.iter().map(|o| o.order.id).collect();
    assert_eq!(ids, vec![106, 105, 104]);
    let cursor = first.next.unwrap();
    let second = store
        .list_by_status(&s, OrderStatus::AwaitingOrder, Some(&cursor), 10)
        .await
        .unwrap();
    assert_eq!(second.items.len(), 4);
    let err = store
        .list_by_status(
            &shop("other"),
            OrderStatus::AwaitingOrder,
            Some(&cursor),
            10,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidCursor));
    let counts = store.count_by_status(&s).await.unwrap();
    assert!(counts.contains(&(OrderStatus::AwaitingOrder, 7)));
    assert!(counts.contains(&(OrderStatus::Pending, 0)));
}

#[tokio::test]
async fn settings_dedupe_and_shop_redaction_work_per_shop() {
    let store = fresh_store().await;
    let a = shop("shop-a");
    let b = shop("shop-b");
    let rec = store.get_shop(&a).await.unwrap();
    assert!(rec.active);
    assert!(rec.settings.notify_customer);
    let mut settings = rec.settings.clone();
    settings.notify_customer = false;
    store.put_settings(&a, &settings).await.unwrap();
    store.set_active(&a, false).await.unwrap();
    let rec = store.get_shop(&a).await.unwrap();
    assert!(!rec.settings.notify_customer && !rec.active);
    assert!(store.get_shop(&b).await.unwrap().settings.notify_customer);

    assert!(store.record_delivery(&a, "wh-1", 0, 86_400).await.unwrap());
    assert!(!store.record_delivery(&a, "wh-1", 0, 86_400).await.unwrap());
    assert!(store.record_delivery(&b, "wh-1", 0, 86_400).await.unwrap());

    for id in 1..=3 {
        store
            .save_shopify_facts(&a, id, facts("paid", 1, &[(1, 1)]), "c", 0)
            .await
            .unwrap();
    }
    store
        .save_shopify_facts(&b, 1, facts("paid", 1, &[(1, 1)]), "c", 0)
        .await
        .unwrap();
    assert_eq!(store.delete_shop_data(&a).await.unwrap(), 3);
    assert!(store.get_order(&a, 1).await.unwrap().is_none());
    assert!(store.get_order(&b, 1).await.unwrap().is_some());
}

#[tokio::test]
async fn a_link_begun_before_a_payment_that_was_written_first_still_reads_as_a_valid_path() {
    // The race the 1,000-order chaos run found: a merchant's link stamps its history entry with
    // the time its request began (200); orders/paid, begun later (300), is written first; the
    // link loses its conditional write, re-reads and lands after it.
    let store = fresh_store().await;
    let s = shop("race-history");
    store
        .save_shopify_facts(&s, 1, facts("pending", 10, &[(1, 1)]), "orders/create", 100)
        .await
        .unwrap();
    store
        .save_shopify_facts(&s, 1, facts("paid", 20, &[(1, 1)]), "orders/paid", 300)
        .await
        .unwrap();
    store
        .update_order(&s, 1, |o| {
            matches!(link_supplier_order(o, 77, &[1], vec![], 200), Ok(true))
        })
        .await
        .unwrap();
    let o = store.get_order(&s, 1).await.unwrap().unwrap().order;
    let path: Vec<OrderStatus> = o.history.iter().map(|h| h.status).collect();
    assert_eq!(
        path,
        [
            OrderStatus::Pending,
            OrderStatus::AwaitingOrder,
            OrderStatus::AwaitingPayment
        ]
    );
    assert!(history_is_valid(&o.history));
    let times: Vec<i64> = o.history.iter().map(|h| h.at_ms).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}
