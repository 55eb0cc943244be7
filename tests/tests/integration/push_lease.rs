//! The push lease against the DynamoDB emulator: one worker at a time per package, a lease that
//! ran out is claimable again, and only its owner can release a lease.

use dropsync_domain::ShopDomain;
use dropsync_store::LeasedPackage;
use dropsync_tests::{fresh_store, shop};
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(120);

fn package<'a>(shop: &'a ShopDomain, order_id: u64, tracking_number: &'a str) -> LeasedPackage<'a> {
    LeasedPackage {
        shop,
        order_id,
        ae_order_id: 70 + order_id,
        tracking_number,
    }
}

#[tokio::test]
async fn a_held_lease_keeps_a_second_worker_off_until_it_is_released() {
    let store = fresh_store().await;
    let s = shop("lease-held");
    let package = package(&s, 1, "LP1");
    let first = store.claim_push_lease(package, LEASE, 1_000).await.unwrap();
    assert!(first.is_some());
    assert_eq!(
        store.claim_push_lease(package, LEASE, 2_000).await.unwrap(),
        None
    );
    // Another package of the same order is a lease of its own.
    let other = LeasedPackage {
        tracking_number: "LP2",
        ..package
    };
    assert!(
        store
            .claim_push_lease(other, LEASE, 2_000)
            .await
            .unwrap()
            .is_some()
    );

    store.release_push_lease(first.unwrap()).await.unwrap();
    assert!(
        store
            .claim_push_lease(package, LEASE, 3_000)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_lease_that_ran_out_is_taken_over_and_the_late_owner_cannot_release_it() {
    let store = fresh_store().await;
    let s = shop("lease-expired");
    let package = package(&s, 2, "LP3");
    let late = store
        .claim_push_lease(package, LEASE, 1_000)
        .await
        .unwrap()
        .unwrap();
    let after = 1_000 + 120_001;
    let current = store
        .claim_push_lease(package, LEASE, after)
        .await
        .unwrap()
        .expect("an expired lease is claimable");
    // The late worker's release is not an error, and leaves the current lease in place.
    store.release_push_lease(late).await.unwrap();
    assert_eq!(
        store
            .claim_push_lease(package, LEASE, after + 1)
            .await
            .unwrap(),
        None
    );
    store.release_push_lease(current).await.unwrap();
    assert!(
        store
            .claim_push_lease(package, LEASE, after + 2)
            .await
            .unwrap()
            .is_some()
    );
}
