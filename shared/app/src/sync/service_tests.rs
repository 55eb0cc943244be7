//! The sync against the in-memory store, AliExpress and queue: what a poll records and sends.

use super::*;
use crate::memory::{AeCall, FakeAliExpress, MemoryQueue, MemoryStore, paid_facts};
use dropsync_aliexpress::AeTrackingLine;
use dropsync_domain::{Order, PushState, SupplierOrder};
use dropsync_store::AeTokenRecord;

const ORDER: u64 = 7001;
const AE: u64 = 8_100_000_001;
const LINE: u64 = 301;
const TN: &str = "LP00123456789012";
const APP_KEY: &str = "500001";

fn shop() -> ShopDomain {
    ShopDomain::parse("sync.myshopify.com").unwrap()
}

/// A paid order of two of one line, bought on AliExpress as `ae` and awaiting shipment.
fn placed_order(shop: &ShopDomain, id: u64, ae: u64) -> Order {
    let facts = paid_facts(&[(LINE, 2)]);
    let mut order = Order::from_shopify(shop.clone(), id, facts, "orders/paid", 0);
    let mut so = SupplierOrder::new(ae, vec![LINE], Vec::new());
    so.status = SupplierStatus::AwaitingShipment;
    order.supplier_orders.push(so);
    order.status = order.derive_status();
    order
}

struct World {
    store: MemoryStore,
    ae: Arc<FakeAliExpress>,
    queue: Arc<MemoryQueue>,
    svc: Arc<SyncService<FakeAliExpress, MemoryQueue, MemoryStore>>,
}

fn world() -> World {
    let store = MemoryStore::new();
    store.insert_order(placed_order(&shop(), ORDER, AE));
    let ae = Arc::new(FakeAliExpress::with_app_key(APP_KEY));
    ae.set_order(AE, "WAIT_SELLER_SEND_GOODS", None);
    let queue = Arc::new(MemoryQueue::new());
    let svc = Arc::new(SyncService {
        store: store.clone(),
        ae: ae.clone(),
        queue: queue.clone(),
        concurrency: 4,
    });
    World {
        store,
        ae,
        queue,
        svc,
    }
}

/// AliExpress ships `ae` in one parcel numbered `TN`.
fn ship(ae: &FakeAliExpress, ae_order_id: u64) {
    ae.set_order(
        ae_order_id,
        "WAIT_BUYER_ACCEPT_GOODS",
        Some("SELLER_SEND_GOODS"),
    );
    ae.set_tracking(
        ae_order_id,
        vec![AeTrackingLine {
            mail_no: TN.into(),
            carrier_name: Some("Cainiao".into()),
            items: Vec::new(),
        }],
    );
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

impl World {
    fn package_push(&self, id: u64, ae: u64) -> Option<PushState> {
        let stored = self.store.stored_order(&shop(), id)?;
        let so = stored.order.supplier_order(ae)?;
        Some(so.package(TN)?.push.clone())
    }
}

#[tokio::test]
async fn a_shipped_supplier_order_records_its_package_as_due_and_queues_one_push() {
    let w = world();
    ship(&w.ae, AE);
    let (changes, _) = w.svc.sync_supplier_order(&shop(), ORDER, AE).await.unwrap();

    assert_eq!(changes.new_packages, vec![TN.to_owned()]);
    assert_eq!(w.package_push(ORDER, AE), Some(PushState::Pending));
    let sent = w.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0], PushMessage::new(&shop(), ORDER, AE, TN));
}

#[tokio::test]
async fn a_sync_that_finds_nothing_new_writes_nothing_and_queues_nothing() {
    let w = world();
    ship(&w.ae, AE);
    w.svc.sync_supplier_order(&shop(), ORDER, AE).await.unwrap();
    let writes = w.store.order_writes();

    let (changes, stored) = w.svc.sync_supplier_order(&shop(), ORDER, AE).await.unwrap();
    assert!(changes.is_empty());
    assert!(stored.is_none());
    assert_eq!(w.store.order_writes(), writes);
    assert_eq!(w.queue.sent().len(), 1);
}

#[tokio::test]
async fn two_syncs_of_one_order_at_once_record_the_package_once_and_send_it_once() {
    let w = world();
    ship(&w.ae, AE);
    let shop = shop();
    let (a, b) = tokio::join!(
        w.svc.sync_supplier_order(&shop, ORDER, AE),
        w.svc.sync_supplier_order(&shop, ORDER, AE)
    );
    let found = a.unwrap().0.new_packages.len() + b.unwrap().0.new_packages.len();

    assert_eq!(found, 1, "only the sync whose write recorded it reports it");
    let stored = w.store.stored_order(&shop, ORDER).unwrap();
    assert_eq!(stored.order.supplier_orders[0].packages.len(), 1);
    assert_eq!(w.queue.sent().len(), 1);
}

#[tokio::test]
async fn a_push_whose_message_was_lost_is_sent_again_only_after_the_grace() {
    let w = world();
    ship(&w.ae, AE);
    w.queue.set_failing(true);
    w.svc.sync_supplier_order(&shop(), ORDER, AE).await.unwrap();
    assert_eq!(w.package_push(ORDER, AE), Some(PushState::Pending));
    assert!(w.queue.sent().is_empty());

    // The queue is back, but the message may still be on its way: not yet.
    w.queue.set_failing(false);
    w.svc.sync_order(&shop(), ORDER).await.unwrap();
    assert!(w.queue.sent().is_empty());

    // Past the grace: sent once, however many syncs follow.
    let grace = i64::try_from(RESEND_GRACE.as_millis()).unwrap();
    w.store.change_order(&shop(), ORDER, |o| {
        for p in &mut o.supplier_orders[0].packages {
            p.due_since_ms -= grace + 1;
        }
    });
    w.svc.sync_order(&shop(), ORDER).await.unwrap();
    w.svc.sync_order(&shop(), ORDER).await.unwrap();
    assert_eq!(
        w.queue.sent(),
        vec![PushMessage::new(&shop(), ORDER, AE, TN)]
    );
}

#[tokio::test]
async fn the_poll_syncs_every_open_order_across_pages_and_skips_inactive_shops() {
    let w = world();
    ship(&w.ae, AE);
    // More orders than one page of the open index holds.
    let more = u64::try_from(POLL_PAGE).unwrap() + 5;
    for i in 1..=more {
        w.store
            .insert_order(placed_order(&shop(), ORDER + i, AE + i));
        ship(&w.ae, AE + i);
    }
    let gone = ShopDomain::parse("gone.myshopify.com").unwrap();
    w.store.insert_order(placed_order(&gone, 1, 1));
    w.store.set_shop(&gone, ShopRecord::default());

    let report = w.svc.poll(None, far()).await.unwrap();

    assert_eq!(report.orders, more + 1);
    assert_eq!(report.skipped_inactive, 1);
    assert_eq!(report.errors, 0);
    assert_eq!(report.continue_from, None);
    assert_eq!(
        w.ae.calls(AeCall::OrderGet),
        usize::try_from(more + 1).unwrap()
    );
    assert_eq!(w.queue.sent().len(), usize::try_from(more + 1).unwrap());
    for i in 0..=more {
        assert_eq!(w.package_push(ORDER + i, AE + i), Some(PushState::Pending));
    }
}

#[tokio::test]
async fn a_transient_aliexpress_error_is_tried_again_at_the_end_of_the_run() {
    let w = world();
    ship(&w.ae, AE);
    w.ae.fail_next(AeCall::OrderGet, AeError::Retryable("ISP timeout".into()));

    let report = w.svc.poll(None, far()).await.unwrap();

    assert_eq!(report.retried, 1);
    assert_eq!(w.package_push(ORDER, AE), Some(PushState::Pending));
    assert_eq!(w.queue.sent().len(), 1);
}

#[tokio::test]
async fn a_refused_aliexpress_token_stops_the_run_and_flags_the_shop_until_aliexpress_answers_again()
 {
    let w = world();
    w.ae.fail_next(AeCall::OrderGet, AeError::InvalidToken);

    let report = w.svc.poll(None, far()).await.unwrap();
    assert!(report.aborted.is_some());
    let record = SyncStore::shop(&w.store, &shop()).await.unwrap();
    assert!(record.aliexpress_reauth_needed);

    w.svc.poll(None, far()).await.unwrap();
    let record = SyncStore::shop(&w.store, &shop()).await.unwrap();
    assert!(!record.aliexpress_reauth_needed);
}

#[tokio::test]
async fn an_ended_aliexpress_authorization_refuses_a_manual_sync_before_any_call() {
    let w = world();
    w.store.set_ae_tokens(
        APP_KEY,
        AeTokenRecord {
            access_token: "a".into(),
            refresh_token: "r".into(),
            expire_time_ms: 0,
            refresh_expire_time_ms: Some(now_ms() - 1),
        },
    );
    let err = w.svc.sync_order(&shop(), ORDER).await.unwrap_err();
    assert!(matches!(err, SyncError::AuthorizationEnded(_)));
    let report = w.svc.poll(None, far()).await.unwrap();
    assert!(report.aborted.is_some());
    assert_eq!(w.ae.calls(AeCall::OrderGet), 0);
}
