#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! The poll against the emulator and the AliExpress sandbox, with the real `IopClient` and the
//! real SQS tracking queue: statuses move forward, packages get the right line items, each new
//! package is queued exactly once, and faults lose or regress nothing.

use crate::poller_support;

use dropsync_aliexpress::Tokens;
use dropsync_app::sync::RESEND_GRACE;
use dropsync_domain::ops::mark_pushed;
use dropsync_domain::{OrderStatus, PackageItem, PushState, SupplierStatus, history_is_valid};
use dropsync_tests::{fresh_store, shop};
use poller_support::*;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn items(o: &dropsync_store::StoredOrder, tracking: &str) -> Vec<PackageItem> {
    o.order.supplier_orders[0]
        .package(tracking)
        .unwrap_or_else(|| panic!("no package {tracking}: {:?}", o.order.supplier_orders))
        .items
        .clone()
}

fn tracking_numbers(msgs: &[dropsync_app::queue::PushMessage]) -> Vec<String> {
    let mut v: Vec<String> = msgs.iter().map(|m| m.tracking_number.clone()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_poll_moves_an_order_from_payment_to_shipment_to_shipped_with_one_push_per_new_package() {
    let app = AeApp::new(json!({})).await;
    let store = fresh_store().await;
    let (queue, sqs) = fresh_queue().await;
    let svc = service(&store, app.client(|_| {}), Arc::new(queue.clone()));
    let s = shop("lifecycle");
    let ae = app
        .order(
            "PLACE_ORDER_SUCCESS",
            json!([ae_item(P1, S1, 2), ae_item(P2, S2, 1)]),
        )
        .await;
    // The link says which AliExpress item is which line item.
    seed_order(
        &store,
        &s,
        1,
        &[(101, 2, None), (102, 1, None)],
        ae,
        vec![link(101, P1, S1), link(102, P2, S2)],
    )
    .await;

    // Placed, not paid: nothing changes, nothing is written.
    let before = get(&store, &s, 1).await;
    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!(
        (r.orders, r.changed, r.pushes_queued, r.errors),
        (1, 0, 0, 0)
    );
    assert_eq!(get(&store, &s, 1).await.version, before.version);

    // Paid: awaiting shipment.
    app.update(ae, json!({"status": "WAIT_SELLER_SEND_GOODS"}))
        .await;
    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!((r.changed, r.pushes_queued), (1, 0));
    let o = get(&store, &s, 1).await;
    assert_eq!(so_status(&o), SupplierStatus::AwaitingShipment);
    assert_eq!(o.order.status, OrderStatus::AwaitingShipment);

    // The first parcel (both units of line 101) ships.
    app.package(
        ae,
        json!({"mail_no": "YT2600000000000101", "carrier_name": "AliExpress Selection Standard",
               "items": [{"product_id": P1, "sku_id": S1, "quantity": 2}]}),
    )
    .await;
    app.update(
        ae,
        json!({"status": "SELLER_PART_SEND_GOODS", "logistics_status": "SELLER_SEND_PART_GOODS"}),
    )
    .await;
    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!((r.changed, r.pushes_queued), (1, 1));
    let o = get(&store, &s, 1).await;
    assert_eq!(so_status(&o), SupplierStatus::PartiallyShipped);
    assert_eq!(o.order.status, OrderStatus::AwaitingFulfillment);
    assert_eq!(
        items(&o, "YT2600000000000101"),
        vec![PackageItem {
            line_item_id: 101,
            quantity: 2
        }]
    );
    assert_eq!(
        o.order.supplier_orders[0].packages[0].carrier.as_deref(),
        Some("AliExpress Selection Standard")
    );
    let msgs = drain_pushes(&queue, &sqs).await;
    assert_eq!(tracking_numbers(&msgs), vec!["YT2600000000000101"]);
    assert_eq!(msgs[0].order_id, "1");
    assert_eq!(msgs[0].aliexpress_order_id, ae.to_string());

    // A rerun queues nothing and writes nothing.
    let version = o.version;
    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!((r.changed, r.pushes_queued), (0, 0));
    assert!(drain_pushes(&queue, &sqs).await.is_empty());
    assert_eq!(get(&store, &s, 1).await.version, version);

    // The second parcel ships: shipped, and only the new package is queued.
    app.package(
        ae,
        json!({"mail_no": "YT2600000000000102",
               "items": [{"product_id": P2, "sku_id": S2, "quantity": 1}]}),
    )
    .await;
    app.update(
        ae,
        json!({"status": "WAIT_BUYER_ACCEPT_GOODS", "logistics_status": "SELLER_SEND_GOODS"}),
    )
    .await;
    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!((r.changed, r.pushes_queued), (1, 1));
    let o = get(&store, &s, 1).await;
    assert_eq!(so_status(&o), SupplierStatus::Shipped);
    assert_eq!(o.order.status, OrderStatus::AwaitingFulfillment);
    assert_eq!(o.order.supplier_orders[0].packages.len(), 2);
    assert_eq!(
        items(&o, "YT2600000000000102"),
        vec![PackageItem {
            line_item_id: 102,
            quantity: 1
        }]
    );
    assert_eq!(
        tracking_numbers(&drain_pushes(&queue, &sqs).await),
        vec!["YT2600000000000102"]
    );
    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!(r.pushes_queued, 0);
    assert!(drain_pushes(&queue, &sqs).await.is_empty());

    let o = get(&store, &s, 1).await;
    assert!(history_is_valid(&o.order.history), "{:?}", o.order.history);
    let path: Vec<OrderStatus> = o.order.history.iter().map(|h| h.status).collect();
    assert_eq!(
        path,
        vec![
            OrderStatus::AwaitingOrder,
            OrderStatus::AwaitingPayment,
            OrderStatus::AwaitingShipment,
            OrderStatus::AwaitingFulfillment
        ]
    );
}

#[tokio::test]
async fn two_packages_map_to_their_line_items_through_the_line_item_skus_when_the_link_names_no_items()
 {
    let app = AeApp::new(json!({})).await;
    let store = fresh_store().await;
    let (queue, sqs) = fresh_queue().await;
    let svc = service(&store, app.client(|_| {}), Arc::new(queue.clone()));
    let s = shop("skus");
    let ae = app
        .order(
            "WAIT_SELLER_SEND_GOODS",
            json!([ae_item(P1, S1, 1), ae_item(P2, S2, 3)]),
        )
        .await;
    // Shopify's SKUs are the AliExpress SKU ids; the link lists only the lines.
    seed_order(
        &store,
        &s,
        7,
        &[(701, 1, Some(S1)), (702, 3, Some(S2))],
        ae,
        vec![],
    )
    .await;
    app.package(
        ae,
        json!({"mail_no": "LP1", "items": [{"product_id": P2, "sku_id": S2, "quantity": 3}]}),
    )
    .await;
    app.package(
        ae,
        json!({"mail_no": "LP2", "items": [{"product_id": P1, "sku_id": S1, "quantity": 1}]}),
    )
    .await;
    app.update(
        ae,
        json!({"status": "WAIT_BUYER_ACCEPT_GOODS", "logistics_status": "SELLER_SEND_GOODS"}),
    )
    .await;

    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!((r.changed, r.pushes_queued, r.errors), (1, 2, 0));
    let o = get(&store, &s, 7).await;
    assert_eq!(so_status(&o), SupplierStatus::Shipped);
    assert_eq!(
        items(&o, "LP1"),
        vec![PackageItem {
            line_item_id: 702,
            quantity: 3
        }]
    );
    assert_eq!(
        items(&o, "LP2"),
        vec![PackageItem {
            line_item_id: 701,
            quantity: 1
        }]
    );
    assert_eq!(
        tracking_numbers(&drain_pushes(&queue, &sqs).await),
        vec!["LP1", "LP2"]
    );
    svc.poll(None, no_deadline()).await.unwrap();
    assert!(drain_pushes(&queue, &sqs).await.is_empty());
}

#[tokio::test]
async fn tracking_that_appears_after_the_status_makes_no_package_until_it_is_visible() {
    let app = AeApp::new(json!({})).await;
    let store = fresh_store().await;
    let (queue, sqs) = fresh_queue().await;
    let svc = service(&store, app.client(|_| {}), Arc::new(queue.clone()));
    let s = shop("later");
    let ae = app
        .order("WAIT_SELLER_SEND_GOODS", json!([ae_item(P1, S1, 1)]))
        .await;
    seed_order(&store, &s, 3, &[(301, 1, None)], ae, vec![]).await;
    app.package(ae, json!({"mail_no": "YT900", "visible": false}))
        .await;
    app.update(
        ae,
        json!({"status": "WAIT_BUYER_ACCEPT_GOODS", "logistics_status": "SELLER_SEND_GOODS"}),
    )
    .await;

    // Shipped by status, but tracking.get answers 1001: no package yet, nothing to push.
    let (o, report) = svc.sync_order(&s, 3).await.unwrap();
    assert_eq!(so_status(&o), SupplierStatus::Shipped);
    assert!(o.order.supplier_orders[0].packages.is_empty());
    assert_eq!(o.order.status, OrderStatus::AwaitingShipment);
    assert_eq!(report.pushes_queued, 0);
    let stats = app.stats().await;
    assert_eq!(
        stats["accepted_calls_by_method"]["aliexpress.ds.order.tracking.get"],
        json!(1),
        "{stats}"
    );
    assert!(drain_pushes(&queue, &sqs).await.is_empty());

    // Still in the open index: the next run asks again.
    assert!(open_keys(&store).await.contains(&(s.clone(), 3)));
    svc.poll(None, no_deadline()).await.unwrap();
    assert!(
        get(&store, &s, 3).await.order.supplier_orders[0]
            .packages
            .is_empty()
    );

    app.update_package(ae, "YT900", json!({"visible": true}))
        .await;
    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!(r.pushes_queued, 1);
    let o = get(&store, &s, 3).await;
    assert_eq!(
        items(&o, "YT900"),
        vec![PackageItem {
            line_item_id: 301,
            quantity: 1
        }]
    );
    assert_eq!(o.order.status, OrderStatus::AwaitingFulfillment);
    assert_eq!(
        tracking_numbers(&drain_pushes(&queue, &sqs).await),
        vec!["YT900"]
    );
}

#[tokio::test]
async fn a_corrected_tracking_number_on_a_pushed_package_becomes_an_update_queued_once() {
    let app = AeApp::new(json!({})).await;
    let store = fresh_store().await;
    let (queue, sqs) = fresh_queue().await;
    let svc = service(&store, app.client(|_| {}), Arc::new(queue.clone()));
    let s = shop("corrected");
    let ae = app
        .order("WAIT_SELLER_SEND_GOODS", json!([ae_item(P1, S1, 1)]))
        .await;
    seed_order(&store, &s, 4, &[(401, 1, None)], ae, vec![]).await;
    app.post(
        &format!("/_admin/orders/{ae}/ship"),
        json!({"mail_no": "YT0001"}),
    )
    .await;
    svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!(
        tracking_numbers(&drain_pushes(&queue, &sqs).await),
        vec!["YT0001"]
    );
    // The pusher created the fulfillment.
    store
        .update_order(&s, 4, |o| {
            mark_pushed(
                o,
                ae,
                "YT0001",
                Some("gid://shopify/Fulfillment/9".into()),
                1,
            )
        })
        .await
        .unwrap();
    assert_eq!(
        get(&store, &s, 4).await.order.status,
        OrderStatus::Fulfilled
    );

    app.update_package(
        ae,
        "YT0001",
        json!({"new_mail_no": "9400111899223197428490"}),
    )
    .await;
    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!((r.changed, r.pushes_queued), (1, 1));
    let o = get(&store, &s, 4).await;
    let p = &o.order.supplier_orders[0].packages;
    assert_eq!(p.len(), 1, "a correction, not a second parcel: {p:?}");
    assert_eq!(p[0].tracking_number, "9400111899223197428490");
    assert_eq!(p[0].previous_tracking.as_deref(), Some("YT0001"));
    assert_eq!(
        p[0].push,
        PushState::UpdatePending {
            fulfillment_id: "gid://shopify/Fulfillment/9".into()
        }
    );
    assert_eq!(
        tracking_numbers(&drain_pushes(&queue, &sqs).await),
        vec!["9400111899223197428490"]
    );
    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!(r.pushes_queued, 0);
    assert!(drain_pushes(&queue, &sqs).await.is_empty());
}

/// What the test knows of an order after each poll: status, supplier status, packages.
#[derive(Debug, Clone)]
struct Seen {
    status: OrderStatus,
    so: SupplierStatus,
    packages: HashSet<String>,
}

#[tokio::test]
async fn api_call_limit_bans_and_isp_errors_neither_lose_nor_regress_anything() {
    let app = AeApp::new(json!({
        "ban_seconds": 0.2,
        "seed": 7,
        "faults": {"api_call_limit": 0.12, "isp_error": 0.12, "server_error": 0.04}
    }))
    .await;
    let store = fresh_store().await;
    let (queue, sqs) = fresh_queue().await;
    // Two attempts per call: some orders fail for a whole poll and must wait for the next.
    let svc = service(
        &store,
        app.client(|c| c.max_attempts = 2),
        Arc::new(queue.clone()),
    );
    let s = shop("faults");
    let mut orders = Vec::new();
    for i in 0..24u64 {
        let ae = app
            .order("PLACE_ORDER_SUCCESS", json!([ae_item(P1, S1, 1)]))
            .await;
        seed_order(&store, &s, 1000 + i, &[(1, 1, None)], ae, vec![]).await;
        orders.push((1000 + i, ae));
    }
    // A third paid, a third shipped in one package, a third shipped in two (one per unit is not
    // possible with one unit: the second parcel carries the whole order again, as a reship).
    for (n, (_, ae)) in orders.iter().enumerate() {
        match n % 3 {
            0 => {
                app.update(*ae, json!({"status": "WAIT_SELLER_SEND_GOODS"}))
                    .await
            }
            1 => {
                app.post(
                    &format!("/_admin/orders/{ae}/ship"),
                    json!({"mail_no": format!("YA{ae}")}),
                )
                .await;
            }
            _ => {
                app.post(
                    &format!("/_admin/orders/{ae}/ship"),
                    json!({"mail_no": format!("YB{ae}")}),
                )
                .await;
                app.package(*ae, json!({"mail_no": format!("YC{ae}")}))
                    .await;
            }
        }
    }

    let mut seen: HashMap<u64, Seen> = HashMap::new();
    let mut pushes: HashMap<String, u32> = HashMap::new();
    let mut polls = 0;
    let mut errors_seen = 0;
    loop {
        polls += 1;
        let r = svc.poll(None, no_deadline()).await.unwrap();
        errors_seen += r.errors;
        for m in drain_pushes(&queue, &sqs).await {
            *pushes.entry(m.tracking_number).or_default() += 1;
        }
        let mut all_done = true;
        for (id, _) in &orders {
            let o = get(&store, &s, *id).await;
            assert!(history_is_valid(&o.order.history));
            let now = Seen {
                status: o.order.status,
                so: so_status(&o),
                packages: o.order.supplier_orders[0]
                    .packages
                    .iter()
                    .map(|p| p.tracking_number.clone())
                    .collect(),
            };
            if let Some(before) = seen.get(id) {
                assert!(
                    dropsync_domain::is_automatic_transition(before.status, now.status),
                    "order {id} moved back: {before:?} -> {now:?}"
                );
                assert!(before.so.can_move_to(now.so), "{before:?} -> {now:?}");
                assert!(
                    before.packages.is_subset(&now.packages),
                    "{before:?} -> {now:?}"
                );
            }
            let want = match (id - 1000) % 3 {
                0 => SupplierStatus::AwaitingShipment,
                _ => SupplierStatus::Shipped,
            };
            all_done &= now.so == want;
            seen.insert(*id, now);
        }
        if all_done {
            break;
        }
        assert!(polls < 12, "still not synced after {polls} polls: {seen:?}");
    }
    // Everything arrived, each package was queued exactly once.
    for (n, (id, ae)) in orders.iter().enumerate() {
        let o = get(&store, &s, *id).await;
        let mut got: Vec<String> = o.order.supplier_orders[0]
            .packages
            .iter()
            .map(|p| p.tracking_number.clone())
            .collect();
        got.sort();
        let want: Vec<String> = match n % 3 {
            0 => vec![],
            1 => vec![format!("YA{ae}")],
            _ => vec![format!("YB{ae}"), format!("YC{ae}")],
        };
        assert_eq!(got, want, "order {id}");
        for t in &want {
            assert_eq!(pushes.get(t), Some(&1), "pushes of {t}: {pushes:?}");
        }
    }
    assert_eq!(pushes.len(), 24);
    let stats = app.stats().await;
    assert!(
        stats["api_call_limit_responses"].as_u64().unwrap() > 0
            && stats["isp_errors"].as_u64().unwrap() > 0,
        "the faults must actually have happened: {stats}"
    );
    eprintln!("faults: {polls} polls, {errors_seen} order errors, stats {stats}");
}

#[tokio::test]
async fn an_order_aliexpress_will_not_show_is_left_unchanged_for_the_next_run() {
    let app = AeApp::new(json!({})).await;
    let store = fresh_store().await;
    let (queue, sqs) = fresh_queue().await;
    let svc = service(
        &store,
        app.client(|c| c.max_attempts = 2),
        Arc::new(queue.clone()),
    );
    let s = shop("unreachable");
    // Another buyer's order: isv.invalid-authorization.
    let foreign = app
        .order_with(
            json!({"account": "someone-else", "status": "WAIT_BUYER_ACCEPT_GOODS",
                           "items": [ae_item(P1, S1, 1)]}),
        )
        .await;
    // An order the platform keeps failing on: isp.service-unavailable on every call.
    let flaky = app
        .order_with(
            json!({"status": "WAIT_SELLER_SEND_GOODS", "unavailable_for_ms": 600_000,
                           "items": [ae_item(P1, S1, 1)]}),
        )
        .await;
    let fine = app
        .order("WAIT_SELLER_SEND_GOODS", json!([ae_item(P1, S1, 1)]))
        .await;
    let a = seed_order(&store, &s, 1, &[(1, 1, None)], foreign, vec![]).await;
    let b = seed_order(&store, &s, 2, &[(1, 1, None)], flaky, vec![]).await;
    seed_order(&store, &s, 3, &[(1, 1, None)], fine, vec![]).await;

    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!(r.orders, 3);
    assert_eq!(
        r.retried, 1,
        "the flaky one is tried once more at the end: {r:?}"
    );
    assert_eq!(r.changed, 1);
    assert!(r.errors >= 2, "{r:?}");
    assert!(r.aborted.is_none());
    assert_eq!(get(&store, &s, 1).await, a);
    assert_eq!(get(&store, &s, 2).await, b);
    assert_eq!(
        so_status(&get(&store, &s, 3).await),
        SupplierStatus::AwaitingShipment
    );
    let open = open_keys(&store).await;
    assert!(open.contains(&(s.clone(), 1)) && open.contains(&(s.clone(), 2)));
    assert!(drain_pushes(&queue, &sqs).await.is_empty());

    // The platform recovers: the next run picks the order up.
    app.update(flaky, json!({"unavailable_for_ms": 0})).await;
    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!(r.changed, 1);
    assert_eq!(
        so_status(&get(&store, &s, 2).await),
        SupplierStatus::AwaitingShipment
    );
    assert_eq!(get(&store, &s, 1).await, a);
}

#[tokio::test]
async fn a_refused_authorization_stops_the_run_flags_the_shop_and_changes_no_order() {
    let app = AeApp::new(json!({})).await;
    let store = fresh_store().await;
    let (queue, sqs) = fresh_queue().await;
    let s = shop("reauth");
    let mut seeded = Vec::new();
    for i in 0..5u64 {
        let ae = app
            .order("WAIT_SELLER_SEND_GOODS", json!([ae_item(P1, S1, 1)]))
            .await;
        seeded.push(seed_order(&store, &s, 10 + i, &[(1, 1, None)], ae, vec![]).await);
    }
    let mut dead = app.clone();
    dead.tokens = Tokens {
        access_token: "revoked-access".into(),
        refresh_token: "revoked-refresh".into(),
        expire_time_ms: None,
    };
    let svc = service(&store, dead.client(|_| {}), Arc::new(queue.clone()));
    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert!(r.aborted.is_some(), "{r:?}");
    assert!(r.continue_from.is_none());
    assert!(r.changed == 0 && r.errors >= 1, "{r:?}");
    assert!(store.get_shop(&s).await.unwrap().aliexpress_reauth_needed);
    for o in &seeded {
        assert_eq!(&get(&store, &s, o.order.id).await, o);
    }
    // The merchant re-authorizes: the next run syncs everything and clears the flag.
    let svc = service(&store, app.client(|_| {}), Arc::new(queue.clone()));
    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!((r.orders, r.changed, r.errors), (5, 5, 0));
    assert!(!store.get_shop(&s).await.unwrap().aliexpress_reauth_needed);
    assert!(drain_pushes(&queue, &sqs).await.is_empty());
}

#[tokio::test]
async fn a_push_whose_message_was_lost_is_re_sent_once_after_the_grace_even_for_a_delivered_order()
{
    let app = AeApp::new(json!({})).await;
    let store = fresh_store().await;
    let (queue, sqs) = fresh_queue().await;
    let flaky = Arc::new(FlakyQueue {
        inner: queue.clone(),
        failing: AtomicBool::new(true),
    });
    let svc = service(&store, app.client(|_| {}), flaky.clone());
    let s = shop("lost");
    let shipped = app
        .order("WAIT_SELLER_SEND_GOODS", json!([ae_item(P1, S1, 1)]))
        .await;
    app.post(
        &format!("/_admin/orders/{shipped}/ship"),
        json!({"mail_no": "LOST1"}),
    )
    .await;
    // Delivered in the same poll that finds its tracking: no supplier order stays open.
    let delivered = app
        .order_with(
            json!({"status": "FINISH", "logistics_status": "BUYER_ACCEPT_GOODS",
                           "items": [ae_item(P1, S1, 1)]}),
        )
        .await;
    app.package(delivered, json!({"mail_no": "LOST2"})).await;
    seed_order(&store, &s, 1, &[(1, 1, None)], shipped, vec![]).await;
    seed_order(&store, &s, 2, &[(1, 1, None)], delivered, vec![]).await;

    // The writes happen, the sends fail.
    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!((r.changed, r.pushes_queued), (2, 0));
    let o2 = get(&store, &s, 2).await;
    assert_eq!(so_status(&o2), SupplierStatus::Delivered);
    assert_eq!(
        o2.order.supplier_orders[0].packages[0].push,
        PushState::Pending
    );
    // The due push keeps the delivered order where the next run finds it.
    let open = open_keys(&store).await;
    assert!(open.contains(&(s.clone(), 1)) && open.contains(&(s.clone(), 2)));

    // SQS is back, but within the grace a rerun sends nothing (the message may be on its way).
    flaky.failing.store(false, Ordering::SeqCst);
    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!(r.pushes_queued, 0);
    assert!(drain_pushes(&queue, &sqs).await.is_empty());

    // Past the grace, the next run re-sends each once.
    let long_ago = now_ms() - i64::try_from(RESEND_GRACE.as_millis()).unwrap() - 1_000;
    for id in [1, 2] {
        store
            .update_order(&s, id, |o| {
                for p in &mut o.supplier_orders[0].packages {
                    p.due_since_ms = long_ago;
                }
                true
            })
            .await
            .unwrap();
    }
    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!(r.pushes_queued, 2);
    assert_eq!(
        tracking_numbers(&drain_pushes(&queue, &sqs).await),
        vec!["LOST1", "LOST2"]
    );
    let r = svc.poll(None, no_deadline()).await.unwrap();
    assert_eq!(r.pushes_queued, 0);
    assert!(drain_pushes(&queue, &sqs).await.is_empty());

    // Once pushed, the delivered order leaves the open index.
    store
        .update_order(&s, 2, |o| mark_pushed(o, delivered, "LOST2", None, 1))
        .await
        .unwrap();
    assert!(!open_keys(&store).await.contains(&(s.clone(), 2)));
}
