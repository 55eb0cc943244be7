#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Two polls and a manual sync racing on the same orders end where one poll ends, with exactly
//! one push message per package: every write is conditional and a loser re-decides, and
//! only the sync whose write recorded a package sends its message.

use crate::poller_support;

use dropsync_domain::{Order, history_is_valid};
use dropsync_store::Store;
use dropsync_tests::{fresh_store, shop};
use poller_support::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// An order without its timestamps (the racing syncs run at other times than the control).
fn normalized(o: &Order) -> Value {
    let mut v = serde_json::to_value(o).unwrap();
    for h in v["history"].as_array_mut().unwrap() {
        h.as_object_mut().unwrap().remove("at_ms");
    }
    for so in v["supplier_orders"].as_array_mut().unwrap() {
        so.as_object_mut().unwrap().remove("last_checked_ms");
        for p in so["packages"].as_array_mut().into_iter().flatten() {
            let p = p.as_object_mut().unwrap();
            p.remove("found_at_ms");
            p.remove("due_since_ms");
        }
    }
    v
}

async fn seed_all(store: &Store, s: &dropsync_domain::ShopDomain, aes: &[u64]) {
    for (i, ae) in aes.iter().enumerate() {
        seed_order(
            store,
            s,
            100 + i as u64,
            &[(1, 2, Some(S1)), (2, 1, Some(S2))],
            *ae,
            vec![],
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_polls_and_a_manual_sync_racing_end_as_one_poll_with_one_push_per_package() {
    // Some latency so the three really interleave on every order.
    let app = AeApp::new(json!({"latency_ms": 15})).await;
    let items = json!([ae_item(P1, S1, 2), ae_item(P2, S2, 1)]);
    let mut aes = Vec::new();
    let mut packages = 0;
    for i in 0..18u64 {
        let ae = app.order("PLACE_ORDER_SUCCESS", items.clone()).await;
        match i % 6 {
            0 => {}
            1 => {
                app.update(ae, json!({"status": "WAIT_SELLER_SEND_GOODS"}))
                    .await
            }
            2 => {
                app.post(
                    &format!("/_admin/orders/{ae}/ship"),
                    json!({"mail_no": format!("RA{ae}")}),
                )
                .await;
                packages += 1;
            }
            3 | 4 => {
                app.package(
                    ae,
                    json!({"mail_no": format!("RB{ae}"),
                           "items": [{"product_id": P1, "sku_id": S1, "quantity": 2}]}),
                )
                .await;
                app.package(
                    ae,
                    json!({"mail_no": format!("RC{ae}"),
                           "items": [{"product_id": P2, "sku_id": S2, "quantity": 1}]}),
                )
                .await;
                app.update(
                    ae,
                    json!({"status": "WAIT_BUYER_ACCEPT_GOODS", "logistics_status": "SELLER_SEND_GOODS"}),
                )
                .await;
                packages += 2;
            }
            _ => {
                app.package(
                    ae,
                    json!({"mail_no": format!("RD{ae}"),
                           "items": [{"product_id": P1, "sku_id": S1, "quantity": 1}]}),
                )
                .await;
                app.update(
                    ae,
                    json!({"status": "SELLER_PART_SEND_GOODS", "logistics_status": "SELLER_SEND_PART_GOODS"}),
                )
                .await;
                packages += 1;
            }
        }
        aes.push(ae);
    }
    let s = shop("race");

    // The control: one poll on a table of its own.
    let control = fresh_store().await;
    seed_all(&control, &s, &aes).await;
    let (cq, csqs) = fresh_queue().await;
    let one = service(&control, app.client(|_| {}), Arc::new(cq.clone()));
    let r = one.poll(None, no_deadline()).await.unwrap();
    assert_eq!(r.errors, 0);
    assert_eq!(drain_pushes(&cq, &csqs).await.len(), packages);

    // The race: two pollers (two invocations, two clients) and the merchant's manual syncs.
    let store = fresh_store().await;
    seed_all(&store, &s, &aes).await;
    let (queue, sqs) = fresh_queue().await;
    let queue_arc = Arc::new(queue.clone());
    let a = service(&store, app.client(|_| {}), queue_arc.clone());
    let b = service(&store, app.client(|_| {}), queue_arc.clone());
    let m = service(&store, app.client(|_| {}), queue_arc.clone());
    let manual = {
        let m = m.clone();
        let s = s.clone();
        tokio::spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..18u64 {
                let m = m.clone();
                let s = s.clone();
                set.spawn(async move { m.sync_order(&s, 100 + i).await.map(|_| ()) });
            }
            let mut errors = 0;
            while let Some(r) = set.join_next().await {
                if r.unwrap().is_err() {
                    errors += 1;
                }
            }
            errors
        })
    };
    let pa = tokio::spawn({
        let a = a.clone();
        async move { a.poll(None, no_deadline()).await }
    });
    let pb = tokio::spawn({
        let b = b.clone();
        async move { b.poll(None, no_deadline()).await }
    });
    let (ra, rb, rm) = (
        pa.await.unwrap().unwrap(),
        pb.await.unwrap().unwrap(),
        manual.await.unwrap(),
    );
    assert_eq!((ra.errors, rb.errors, rm), (0, 0, 0), "{ra:?} {rb:?}");

    // Exactly one message per package, whoever recorded it.
    let msgs = drain_pushes(&queue, &sqs).await;
    let mut per_package: HashMap<String, u32> = HashMap::new();
    for msg in &msgs {
        *per_package.entry(msg.tracking_number.clone()).or_default() += 1;
    }
    assert_eq!(per_package.len(), packages, "{per_package:?}");
    assert!(per_package.values().all(|n| *n == 1), "{per_package:?}");
    assert!(ra.pushes_queued + rb.pushes_queued <= msgs.len() as u64);

    // The same state as the single poll, order by order.
    for i in 0..18u64 {
        let raced = get(&store, &s, 100 + i).await.order;
        let single = get(&control, &s, 100 + i).await.order;
        assert!(history_is_valid(&raced.history), "{:?}", raced.history);
        assert_eq!(
            normalized(&raced),
            normalized(&single),
            "order {} differs",
            100 + i
        );
    }
}
