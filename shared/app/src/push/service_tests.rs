//! The pusher against the in-memory store and Shopify: exactly once, retries and flags.

use super::test_support::package;
use super::*;
use crate::memory::{AdminCall, FakeShopify, MemoryStore, Scripted, paid_facts};
use crate::ports::PushStore as _;
use dropsync_domain::{Order, SupplierOrder, SupplierStatus};
use dropsync_shopify::admin::FulfillmentState;
use dropsync_store::ShopRecord;

const ORDER: u64 = 5001;
const AE: u64 = 9001;
const LINE: u64 = 101;
/// The number `test_support::package` gives a package.
const TN: &str = "YT2601234567890123";

fn shop() -> ShopDomain {
    ShopDomain::parse("legacy.myshopify.com").unwrap()
}

fn credentials() -> Arc<Credentials> {
    Arc::new(
        Credentials::parse(br#"{"admin_token":"0123456789abcdef-admin","shops":{"legacy.myshopify.com":{"access_token":"shpat_legacy","webhook_secrets":["w"]}}}"#)
            .unwrap(),
    )
}

/// A paid order of two of one line, shipped by AliExpress in one package whose push is due.
fn shipped_order() -> Order {
    let facts = paid_facts(&[(LINE, 2)]);
    let mut order = Order::from_shopify(shop(), ORDER, facts, "orders/create", 0);
    let mut so = SupplierOrder::new(AE, vec![LINE], Vec::new());
    so.status = SupplierStatus::Shipped;
    so.packages.push(package(Some("YunExpress"), &[(LINE, 2)]));
    order.supplier_orders.push(so);
    order.status = order.derive_status();
    order
}

struct World {
    store: MemoryStore,
    shopify: Arc<FakeShopify>,
    svc: Arc<PushService<FakeShopify, MemoryStore>>,
}

fn world() -> World {
    let store = MemoryStore::new();
    store.insert_order(shipped_order());
    let shopify = Arc::new(FakeShopify::new());
    shopify.add_order(&shop(), ORDER, &[(LINE, 2)]);
    let svc = Arc::new(PushService {
        store: store.clone(),
        admin: shopify.clone(),
        credentials: credentials(),
    });
    World {
        store,
        shopify,
        svc,
    }
}

impl World {
    async fn push(&self) -> Result<PushOutcome, PushError> {
        self.svc
            .handle(&PushMessage::new(&shop(), ORDER, AE, TN), ORDER, AE)
            .await
    }

    fn push_state(&self) -> PushState {
        let stored = self.store.stored_order(&shop(), ORDER).unwrap();
        let so = stored.order.supplier_order(AE).unwrap();
        so.package(TN).unwrap().push.clone()
    }

    fn fulfillments(&self) -> usize {
        self.shopify.fulfillments(&shop(), ORDER).len()
    }
}

#[tokio::test]
async fn a_due_package_becomes_one_fulfillment_with_its_tracking_and_is_recorded_as_pushed() {
    let w = world();
    assert_eq!(w.push().await.unwrap(), PushOutcome::Pushed);

    let created = w.shopify.created();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].tracking.number, TN);
    let fulfillments = w.shopify.fulfillments(&shop(), ORDER);
    assert_eq!(fulfillments[0].line_items, vec![(LINE, 2)]);
    assert_eq!(
        w.push_state(),
        PushState::Pushed {
            fulfillment_id: Some(fulfillments[0].id.clone())
        }
    );
    let stored = w.store.stored_order(&shop(), ORDER).unwrap();
    assert_eq!(stored.order.status, dropsync_domain::OrderStatus::Fulfilled);
}

#[tokio::test]
async fn a_package_pushed_twice_is_fulfilled_once() {
    let w = world();
    assert_eq!(w.push().await.unwrap(), PushOutcome::Pushed);
    assert_eq!(
        w.push().await.unwrap(),
        PushOutcome::Skipped("already pushed")
    );
    assert_eq!(w.shopify.calls(AdminCall::CreateFulfillment), 1);
    assert_eq!(w.fulfillments(), 1);
}

#[tokio::test]
async fn two_deliveries_of_one_message_at_once_ask_shopify_to_fulfil_once() {
    let w = world();
    let (a, b) = tokio::join!(w.push(), w.push());

    // One pushes; the other finds the package claimed and comes back later.
    let pushed = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Ok(PushOutcome::Pushed)))
        .count();
    let retried = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Err(PushError::Retry(_))))
        .count();
    assert_eq!((pushed, retried), (1, 1), "{a:?} {b:?}");
    assert_eq!(w.shopify.calls(AdminCall::CreateFulfillment), 1);
    assert_eq!(w.fulfillments(), 1);
    // The one that came back finds it done.
    assert_eq!(
        w.push().await.unwrap(),
        PushOutcome::Skipped("already pushed")
    );
}

#[tokio::test]
async fn a_package_another_worker_holds_is_retried_without_asking_shopify() {
    let w = world();
    let shop = shop();
    let held = w
        .store
        .claim_push_lease(
            LeasedPackage {
                shop: &shop,
                order_id: ORDER,
                ae_order_id: AE,
                tracking_number: TN,
            },
            PUSH_LEASE,
            now_ms(),
        )
        .await
        .unwrap()
        .unwrap();

    assert!(matches!(w.push().await, Err(PushError::Retry(_))));
    assert_eq!(w.shopify.calls(AdminCall::FulfillmentState), 0);
    assert_eq!(w.push_state(), PushState::Pending);

    w.store.release_push_lease(held).await.unwrap();
    assert_eq!(w.push().await.unwrap(), PushOutcome::Pushed);
}

#[tokio::test]
async fn a_write_that_lands_during_the_push_is_kept_and_the_push_is_still_recorded() {
    let w = world();
    // The poller records a check of the supplier order while the pusher waits for Shopify: the
    // pusher's write then names a stale version, is refused, and re-decides on the new order.
    let store = w.store.clone();
    w.shopify.on_create(move || {
        store.change_order(&shop(), ORDER, |o| {
            if let Some(so) = o.supplier_orders.first_mut() {
                so.last_checked_ms = Some(42);
            }
        });
    });

    assert_eq!(w.push().await.unwrap(), PushOutcome::Pushed);
    assert!(matches!(w.push_state(), PushState::Pushed { .. }));
    let stored = w.store.stored_order(&shop(), ORDER).unwrap();
    assert_eq!(stored.order.supplier_orders[0].last_checked_ms, Some(42));
    assert_eq!(w.fulfillments(), 1);
}

#[tokio::test]
async fn a_record_lost_after_shopify_succeeded_is_settled_by_reading_back_not_by_a_second_fulfillment()
 {
    let w = world();
    w.store.fail_next_order_writes(1);
    assert!(matches!(w.push().await, Err(PushError::Retry(_))));
    assert_eq!(w.push_state(), PushState::Pending);

    assert_eq!(w.push().await.unwrap(), PushOutcome::AlreadyInShopify);
    // Found by its tracking number: the record names the fulfillment made the first time.
    let made = w.shopify.fulfillments(&shop(), ORDER);
    assert_eq!(
        w.push_state(),
        PushState::Pushed {
            fulfillment_id: Some(made[0].id.clone())
        }
    );
    assert_eq!(w.shopify.calls(AdminCall::CreateFulfillment), 1);
    assert_eq!(w.fulfillments(), 1);
}

#[tokio::test]
async fn an_unknown_outcome_that_did_happen_is_confirmed_by_reading_it_back() {
    let w = world();
    w.shopify.script(
        AdminCall::CreateFulfillment,
        Scripted::LostAnswer(AdminError::Retryable("timed out".into())),
    );
    assert_eq!(w.push().await.unwrap(), PushOutcome::Pushed);
    assert!(matches!(w.push_state(), PushState::Pushed { .. }));
    assert_eq!(w.shopify.calls(AdminCall::CreateFulfillment), 1);
    assert_eq!(w.fulfillments(), 1);
}

#[tokio::test]
async fn an_unknown_outcome_that_did_not_happen_comes_back_and_is_fulfilled_once_later() {
    let w = world();
    w.shopify.script(
        AdminCall::CreateFulfillment,
        Scripted::Fail(AdminError::Retryable("502".into())),
    );
    // Never a blind second create in the same attempt: the message comes back instead.
    assert!(matches!(w.push().await, Err(PushError::Retry(_))));
    assert_eq!(w.shopify.calls(AdminCall::CreateFulfillment), 1);
    assert_eq!(w.push_state(), PushState::Pending);

    assert_eq!(w.push().await.unwrap(), PushOutcome::Pushed);
    assert_eq!(w.fulfillments(), 1);
}

#[tokio::test]
async fn a_throttled_shopify_leaves_the_push_due_for_a_retry_and_flags_nothing() {
    let w = world();
    w.shopify.script(
        AdminCall::FulfillmentState,
        Scripted::Fail(AdminError::Throttled {
            retry_after: Duration::from_secs(1),
        }),
    );
    assert!(matches!(w.push().await, Err(PushError::Retry(_))));
    assert_eq!(w.push_state(), PushState::Pending);
    assert_eq!(w.shopify.calls(AdminCall::CreateFulfillment), 0);

    assert_eq!(w.push().await.unwrap(), PushOutcome::Pushed);
}

#[tokio::test]
async fn a_permanent_shopify_error_is_flagged_for_the_merchant_and_not_retried() {
    let w = world();
    w.shopify.script(
        AdminCall::CreateFulfillment,
        Scripted::Fail(AdminError::Permanent("ACCESS_DENIED".into())),
    );
    assert!(matches!(w.push().await, Ok(PushOutcome::Flagged(_))));
    assert!(matches!(w.push_state(), PushState::Failed { .. }));
    let stored = w.store.stored_order(&shop(), ORDER).unwrap();
    assert!(!stored.order.attention().is_empty());

    // A redelivery does not try again: the merchant decides.
    assert_eq!(
        w.push().await.unwrap(),
        PushOutcome::Skipped("flagged for the merchant")
    );
    assert_eq!(w.shopify.calls(AdminCall::CreateFulfillment), 1);
    assert_eq!(w.fulfillments(), 0);
}

#[tokio::test]
async fn shopify_user_errors_are_flagged_with_their_text() {
    let w = world();
    w.shopify.script(
        AdminCall::CreateFulfillment,
        Scripted::UserErrors(vec!["trackingInfo.number: is invalid".into()]),
    );
    assert_eq!(
        w.push().await.unwrap(),
        PushOutcome::Flagged("trackingInfo.number: is invalid".into())
    );
    assert_eq!(
        w.push_state(),
        PushState::Failed {
            reason: "trackingInfo.number: is invalid".into()
        }
    );
}

#[tokio::test]
async fn a_package_on_hold_in_shopify_is_flagged_without_a_create() {
    let w = world();
    let mut state = w
        .shopify
        .fulfillment_state(&shop(), "t", ORDER)
        .await
        .unwrap()
        .unwrap();
    state.fulfillment_orders[0].status = "ON_HOLD".into();
    state.fulfillment_orders[0].supported_actions = vec!["RELEASE_HOLD".into()];
    w.shopify.set_state(&shop(), ORDER, state);

    assert!(matches!(w.push().await, Ok(PushOutcome::Flagged(_))));
    assert_eq!(w.shopify.calls(AdminCall::CreateFulfillment), 0);
}

#[tokio::test]
async fn an_order_shopify_has_not_routed_yet_comes_back_later() {
    let w = world();
    w.shopify
        .set_state(&shop(), ORDER, FulfillmentState::default());
    assert!(matches!(w.push().await, Err(PushError::Retry(_))));
    assert_eq!(w.push_state(), PushState::Pending);
}

#[tokio::test]
async fn an_inactive_shop_pushes_nothing() {
    let w = world();
    w.store.set_shop(&shop(), ShopRecord::default());
    assert_eq!(
        w.push().await.unwrap(),
        PushOutcome::Skipped("shop inactive")
    );
    assert_eq!(w.shopify.calls(AdminCall::FulfillmentState), 0);
}

#[tokio::test]
async fn a_batch_returns_only_the_messages_to_retry_and_records_a_last_failure_for_the_merchant() {
    let w = world();
    // A second order, pushed in the same batch.
    let mut other = shipped_order();
    other.id = ORDER + 1;
    w.store.insert_order(other);
    w.shopify.add_order(&shop(), ORDER + 1, &[(LINE, 2)]);
    let batch = |id: &str, order_id: u64| Delivery {
        message: BatchMessage {
            id: id.to_owned(),
            body: PushMessage::new(&shop(), order_id, AE, TN).to_body(),
        },
        receive_count: 3,
    };
    // One read of Shopify fails: whichever order asks first is the one to retry.
    w.shopify.script(
        AdminCall::FulfillmentState,
        Scripted::Fail(AdminError::Retryable("503".into())),
    );
    let failed = push_deliveries(
        w.svc.clone(),
        vec![batch("good", ORDER), batch("bad", ORDER + 1)],
        BatchLimits {
            max_receives: Some(3),
            deadline: None,
        },
    )
    .await;

    assert_eq!(failed.len(), 1);
    let (failed_order, ok_order) = if failed[0] == "good" {
        (ORDER, ORDER + 1)
    } else {
        (ORDER + 1, ORDER)
    };
    let package_of = |id: u64| {
        let stored = w.store.stored_order(&shop(), id).unwrap();
        stored
            .order
            .supplier_order(AE)
            .unwrap()
            .package(TN)
            .cloned()
            .unwrap()
    };
    assert!(matches!(
        package_of(ok_order).push,
        PushState::Pushed { .. }
    ));
    let gave_up = package_of(failed_order);
    assert_eq!(gave_up.push, PushState::Pending);
    assert_eq!(gave_up.gave_up.map(|g| g.attempts), Some(3));
}
