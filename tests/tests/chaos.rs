//! The chaos run, 100 orders over 5 shops (issue #9 item 1; the 1,000-order run is `make chaos`):
//! every fault kind must actually have been injected, and nothing may be lost, duplicated, in
//! the wrong tab, emailed against the shop's setting, stuck, or stored with an invalid history.
//! The scenario lives in `dropsync_tests::chaos`.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::panic)]

use dropsync_tests::chaos::{ChaosConfig, REQUIRED_FAULTS, run_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_orders_under_chaos_end_exactly_where_they_must() {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(9);
    // Bans of 0.4 s instead of 1 s keep this under ~3 minutes on two cores (every ban stops every
    // call for its length); `make chaos` runs with 1 s bans.
    let report = run_with(ChaosConfig {
        ban_seconds: 0.4,
        ..ChaosConfig::new(100, 5, seed)
    })
    .await;
    println!("{}", report.summary());
    let missing: Vec<&str> = REQUIRED_FAULTS
        .iter()
        .copied()
        .filter(|k| report.fault(k) == 0)
        .collect();
    assert!(
        missing.is_empty(),
        "faults never injected (the run proves nothing about them): {missing:?}"
    );
    assert!(report.fulfillments > 0 && report.packages_expected > 0);
    assert!(
        report.violations.is_empty(),
        "{} violations:\n{}",
        report.violations.len(),
        report.violations.join("\n")
    );
}
