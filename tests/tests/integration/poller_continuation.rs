#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! A poll that runs out of time stops cleanly and hands a cursor to the next invocation; across
//! all of them every open order is synced exactly once and none is skipped — driven directly
//! through `SyncService::poll`, and through the poller function's `trigger()` and `run()` with
//! the continuation on a real SQS queue.

use crate::poller_support;

use dropsync_aliexpress::IopClient;
use dropsync_aliexpress_poller::{Trigger, run, trigger};
use dropsync_app::queue::{SqsContinuation, SqsQueue};
use dropsync_app::sync::{PollCursor, SyncService};
use dropsync_domain::{ShopDomain, SupplierStatus};
use dropsync_store::{Store, shard_of};
use dropsync_tests::{fresh_store, shop};
use poller_support::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ACTIVE: u64 = 300;
const INACTIVE: u64 = 20;

struct Seeded {
    app: AeApp,
    store: Store,
    /// `(shop, order id, AliExpress order id, active)`.
    orders: Vec<(ShopDomain, u64, u64, bool)>,
}

/// 300 open orders over three active shops, and 20 of a shop that uninstalled the app; every
/// AliExpress order has been paid since the last run (so each sync writes once).
async fn seed() -> Seeded {
    let app = AeApp::new(json!({})).await;
    let store = fresh_store().await;
    let shops = [shop("cont-a"), shop("cont-b"), shop("cont-c")];
    let gone = shop("cont-gone");
    store.set_active(&gone, false).await.unwrap();
    // The active orders crowd into three shards, 100 each: two full pages per shard, so runs
    // stop (and continue) in the middle of a shard as well as between shards.
    let mut plan = Vec::new();
    let mut per_shard: HashMap<u32, u64> = HashMap::new();
    let mut id = 5_000;
    while (plan.len() as u64) < ACTIVE {
        id += 1;
        let s = &shops[(id % 3) as usize];
        let shard = shard_of(s, id);
        if [2, 7, 11].contains(&shard) && per_shard.get(&shard).copied().unwrap_or(0) < 100 {
            *per_shard.entry(shard).or_default() += 1;
            plan.push((s.clone(), id, true));
        }
    }
    for i in 0..INACTIVE {
        plan.push((gone.clone(), 9_000 + i, false));
    }
    let mut set = tokio::task::JoinSet::new();
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    for (s, id, active) in plan {
        let app = app.clone();
        let store = store.clone();
        let permit = sem.clone().acquire_owned().await.unwrap();
        set.spawn(async move {
            let _permit = permit;
            let ae = app
                .order("WAIT_SELLER_SEND_GOODS", json!([ae_item(P1, S1, 1)]))
                .await;
            seed_order(&store, &s, id, &[(1, 1, None)], ae, vec![]).await;
            (s, id, ae, active)
        });
    }
    let mut orders = Vec::new();
    while let Some(r) = set.join_next().await {
        orders.push(r.unwrap());
    }
    Seeded { app, store, orders }
}

/// Every active order was asked for exactly once and moved on; the inactive shop's were not
/// touched.
async fn assert_exactly_once(seeded: &Seeded, gets: &HashMap<u64, u64>) {
    for (s, id, ae, active) in &seeded.orders {
        let o = get(&seeded.store, s, *id).await;
        if *active {
            assert_eq!(gets.get(ae), Some(&1), "order.get of {ae} (order {id})");
            assert_eq!(
                so_status(&o),
                SupplierStatus::AwaitingShipment,
                "order {id}"
            );
        } else {
            assert_eq!(gets.get(ae), None, "inactive shop's {ae} was polled");
            assert_eq!(so_status(&o), SupplierStatus::AwaitingPayment);
        }
    }
    assert_eq!(gets.values().sum::<u64>(), ACTIVE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_stopped_by_its_deadline_again_and_again_syncs_every_order_exactly_once() {
    let seeded = seed().await;
    let counting = Arc::new(Counting::new(seeded.app.client(|_| {})));
    let (queue, _) = fresh_queue().await;
    let svc = service(&seeded.store, counting.clone(), Arc::new(queue));

    let mut cursor: Option<PollCursor> = None;
    let mut invocations = 0;
    let (mut orders, mut skipped, mut changed) = (0, 0, 0);
    let mut mid_shard = false;
    loop {
        invocations += 1;
        assert!(invocations < 500, "the poll makes no progress");
        // A deadline so short that each invocation gets through about one page.
        let r = svc
            .poll(cursor.clone(), Instant::now() + Duration::from_millis(20))
            .await
            .unwrap();
        orders += r.orders;
        skipped += r.skipped_inactive;
        changed += r.changed;
        assert_eq!(r.errors, 0);
        match r.continue_from {
            Some(next) => {
                mid_shard |= next.page.is_some();
                // The run's totals travel with the cursor.
                let run = next.run.clone().unwrap();
                assert_eq!(run.invocations, invocations);
                assert_eq!(run.orders, orders);
                cursor = Some(next);
            }
            None => break,
        }
    }
    assert!(
        invocations >= 4,
        "only {invocations} invocations: not a test of continuation"
    );
    assert!(mid_shard, "no run stopped in the middle of a shard");
    assert_eq!((orders, changed, skipped), (ACTIVE, ACTIVE, INACTIVE));
    assert_exactly_once(&seeded, &counting.gets()).await;
    eprintln!("{invocations} invocations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_shop_sync_cut_by_its_deadline_resumes_from_its_cursor_and_syncs_that_shop_once() {
    let seeded = seed().await;
    let counting = Arc::new(Counting::new(seeded.app.client(|_| {})));
    let (queue, _) = fresh_queue().await;
    let svc = service(&seeded.store, counting.clone(), Arc::new(queue));
    let target = shop("cont-a");
    let mine: Vec<u64> = seeded
        .orders
        .iter()
        .filter(|(s, ..)| *s == target)
        .map(|(_, _, ae, _)| *ae)
        .collect();
    assert!(mine.len() >= 90, "{}", mine.len());

    let mut cursor: Option<PollCursor> = None;
    let (mut calls, mut orders) = (0, 0);
    loop {
        calls += 1;
        assert!(calls < 100, "the shop sync makes no progress");
        // An already-passed deadline: each call still gets through one page.
        let r = svc
            .sync_shop(&target, cursor.clone(), Instant::now())
            .await
            .unwrap();
        orders += r.orders;
        match r.continue_from {
            Some(next) => {
                assert_eq!(next.shop.as_ref(), Some(&target));
                cursor = Some(next);
            }
            None => break,
        }
    }
    assert!(calls >= 3, "only {calls} calls: not a test of resuming");
    assert_eq!(orders, mine.len() as u64);
    let gets = counting.gets();
    for ae in &mine {
        assert_eq!(gets.get(ae), Some(&1), "order.get of {ae}");
    }
    assert_eq!(gets.len(), mine.len(), "another shop's order was synced");

    // Shop A's cursor on shop B's sync is refused, not handed to DynamoDB.
    let shard = shard_of(
        &target,
        seeded.orders.iter().find(|o| o.0 == target).unwrap().1,
    );
    let page = seeded
        .store
        .open_orders_page_for_shop(shard, &target, None, 1)
        .await
        .unwrap()
        .next
        .expect("more than one order of shop A in its shard");
    let crafted = PollCursor {
        shard,
        page: Some(page),
        run: None,
        shop: None,
    };
    let err = svc
        .sync_shop(&shop("cont-b"), Some(crafted), Instant::now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid cursor"), "{err}");
}

/// The event Lambda's SQS event source delivers for these bodies.
fn sqs_event(bodies: &[String]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({
                "messageId": format!("0000000{i}-1c2d-4e5f-8a9b-0c1d2e3f4a5b"),
                "receiptHandle": "AQEB-test",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795600000000",
                    "SenderId": "AROAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1795600000001"
                },
                "messageAttributes": {},
                "md5OfBody": "00000000000000000000000000000000",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:dropsync-PollerContinuationQueue",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_function_continues_through_its_sqs_queue_until_every_order_is_synced_once() {
    let seeded = seed().await;
    let counting: Arc<Counting<IopClient>> = Arc::new(Counting::new(seeded.app.client(|_| {})));
    let (queue, sqs) = fresh_queue().await;
    let svc: Arc<SyncService<Counting<IopClient>, SqsQueue>> =
        service(&seeded.store, counting.clone(), Arc::new(queue));
    // The poller's continuation, as `main.rs` wires it.
    let continuation_url = create_queue(&sqs, "continuation").await;
    let cont = SqsContinuation::new(sqs.clone(), Some(continuation_url.clone()));

    // The schedule fires (the sample event of events/).
    let raw = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/scheduled-poller.json"
    ))
    .unwrap();
    let event: Value = serde_json::from_str(&raw).unwrap();
    let triggers = trigger(&event).unwrap();
    assert_eq!(triggers, vec![Trigger::Schedule]);
    let mut invocations = 1;
    let reports = run(
        &svc,
        &cont,
        triggers,
        Instant::now() + Duration::from_millis(20),
    )
    .await
    .unwrap();
    let mut orders: u64 = reports.iter().map(|r| r.orders).sum();
    let mut mid_shard = false;

    // Each continuation message invokes the function again, as the SQS event source would.
    loop {
        let bodies = drain_bodies(&sqs, &continuation_url).await;
        if bodies.is_empty() {
            break;
        }
        assert_eq!(bodies.len(), 1, "one continuation per invocation");
        invocations += 1;
        assert!(invocations < 500, "the poll makes no progress");
        let triggers = trigger(&sqs_event(&bodies)).unwrap();
        let [Trigger::Continue(c)] = triggers.as_slice() else {
            panic!("expected one continuation: {triggers:?}")
        };
        mid_shard |= c.page.is_some();
        let reports = run(
            &svc,
            &cont,
            triggers,
            Instant::now() + Duration::from_millis(20),
        )
        .await
        .unwrap();
        orders += reports.iter().map(|r| r.orders).sum::<u64>();
    }
    assert!(
        invocations >= 4,
        "only {invocations} invocations: not a test of continuation"
    );
    assert!(mid_shard, "no run stopped in the middle of a shard");
    assert_eq!(orders, ACTIVE);
    assert_exactly_once(&seeded, &counting.gets()).await;
    eprintln!("{invocations} invocations");
}
