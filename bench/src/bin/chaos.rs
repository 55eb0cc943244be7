//! `make chaos`: the chaos run — ORDERS (1000) orders over SHOPS (5) shops through the
//! whole lifecycle with faults injected, then checked against the sandboxes' own records (see
//! `dropsync_tests::chaos`). Prints the report and a `BENCH` line; exits 1 on any violation.
//!
//! BAN_SECONDS (1) sets the length of an AliExpress ban (each one stops every call for that long).
//!
//! Webhooks: 30% of the first wave's deliveries are lost, a fifth of it falls in an outage that
//! outlasts Shopify's retries, and two subscriptions are deleted part-way; the reconciler's
//! scheduled runs (with subscription repair) must leave 0 orders lost and 0 duplicated. Then
//! REPLAYS (1000) captured signed deliveries are replayed under swapped topic, shop and
//! webhook-id headers, over every topic dropsync handles: the table must not change at all.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo run --release -p dropsync-bench --bin chaos`
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use dropsync_bench::{Metric, report};
use dropsync_tests::chaos::{ChaosConfig, REQUIRED_FAULTS, run_with};
use serde_json::json;

fn env_n(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let orders = env_n("ORDERS", 1000) as usize;
    let shops = env_n("SHOPS", 5) as usize;
    let seed = env_n("SEED", 9);
    let mut cfg = ChaosConfig::new(orders, shops, seed);
    cfg.replays = env_n("REPLAYS", 1000) as usize;
    if let Some(b) = std::env::var("BAN_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.ban_seconds = b;
    }
    let r = run_with(cfg).await;
    println!("{}", r.summary());
    let missing: Vec<&str> = REQUIRED_FAULTS
        .iter()
        .copied()
        .filter(|k| r.fault(k) == 0)
        .collect();
    let mut metrics = vec![
        Metric::new("orders", r.orders as f64, "orders"),
        Metric::new("shops", r.shops as f64, "shops"),
        Metric::new("packages shipped", r.packages_expected as f64, "packages"),
        Metric::new(
            "fulfillments created",
            r.fulfillments as f64,
            "fulfillments",
        )
        .goal("= packages shipped"),
        Metric::new("violations", r.violations.len() as f64, "violations").goal("= 0"),
        Metric::new("fault kinds not injected", missing.len() as f64, "kinds").goal("= 0"),
        Metric::new(
            "webhook deliveries lost",
            r.webhooks_lost as f64,
            "deliveries",
        ),
        Metric::new("reconciliation runs", r.reconcile.runs as f64, "runs"),
        Metric::new(
            "orders recovered by reconciliation",
            r.reconcile.changed as f64,
            "orders",
        ),
        Metric::new(
            "orders dropsync never received (gap metric)",
            r.reconcile.missed as f64,
            "orders",
        ),
        Metric::new(
            "subscriptions deleted",
            r.reconcile.subscriptions_deleted as f64,
            "subscriptions",
        ),
        Metric::new(
            "subscriptions repaired",
            r.reconcile.subscriptions_repaired as f64,
            "subscriptions",
        )
        .goal("= subscriptions deleted"),
        Metric::new("orders lost", r.orders_lost as f64, "orders").goal("= 0"),
        Metric::new("orders duplicated", r.orders_duplicated as f64, "orders").goal("= 0"),
        Metric::new(
            "replays under swapped headers",
            r.replays as f64,
            "deliveries",
        ),
        Metric::new("replay topics", r.replay_topics as f64, "topics").goal("= 10"),
        Metric::new(
            "state changes from replays",
            r.replay_state_changes as f64,
            "items",
        )
        .goal("= 0"),
        Metric::new("wall time", r.wall_secs, "s"),
    ];
    for (status, n) in &r.replay_statuses {
        metrics.push(Metric::new(
            &format!("replays answered {status}"),
            *n as f64,
            "deliveries",
        ));
    }
    for (k, v) in &r.faults {
        metrics.push(Metric::new(&format!("fault: {k}"), *v as f64, "events"));
    }
    report(
        "chaos",
        &format!(
            "{} orders over {} shops through webhooks (30% lost, a 4-hour outage, deleted subscriptions; recovered by the reconciler), links, AliExpress polls and manual syncs, and the pusher, with faults injected on every side; then one clean round; checked against the sandboxes' records; then {} captured signed deliveries replayed under swapped topic, shop and webhook-id headers",
            r.orders, r.shops, r.replays
        ),
        &metrics,
        json!({"report": r, "missing_faults": missing}),
    );
    if !r.violations.is_empty() || !missing.is_empty() {
        std::process::exit(1);
    }
}
