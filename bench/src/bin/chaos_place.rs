//! `make chaos` (after the lifecycle run): the placement chaos run — ORDERS (1000) paid, mapped
//! orders over SHOPS (4) shops placed on the sandbox AliExpress through the place routes and the
//! order placer's handler, with lost answers, duplicate clicks, throttling and placers killed
//! between the create and the write (see `dropsync_tests::chaos_place`). Prints the report and a
//! `BENCH` line; exits 1 on any violation.
//!
//! The run itself happens in a child process of this binary with the production logging
//! (`dropsync_app::init_logging`, JSON) at `RUST_LOG=debug`; this process reads everything the
//! child wrote and counts the lines carrying any seeded name, street, city or phone.
//!
//! BAN_SECONDS (1) sets the length of an AliExpress ban; SEED (15) the plan.
//!
//! Run: `.venv/bin/python tests/tools/services.py -- cargo run --release -p dropsync-bench --bin chaos_place`
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use dropsync_bench::{Metric, report};
use dropsync_tests::chaos_place::{
    PlaceChaosConfig, PlaceChaosReport, PlaceChaosRun, REQUIRED_FAULTS, run_with, scan_logs,
};
use serde_json::json;
use std::process::Command;

/// Where the child writes its run (set only in the child).
const CHILD: &str = "DROPSYNC_CHAOS_PLACE_OUT";

fn env_n(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config() -> PlaceChaosConfig {
    let mut cfg = PlaceChaosConfig::new(
        env_n("ORDERS", 1000) as usize,
        env_n("SHOPS", 4) as usize,
        env_n("SEED", 15),
    );
    if let Some(b) = std::env::var("BAN_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.ban_seconds = b;
    }
    cfg
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines
        .get(lines.len().saturating_sub(n)..)
        .unwrap_or_default()
        .join("\n")
}

#[tokio::main]
async fn main() {
    if let Ok(out) = std::env::var(CHILD) {
        dropsync_app::init_logging();
        let run = run_with(config()).await;
        std::fs::write(out, serde_json::to_vec(&run).unwrap()).unwrap();
        return;
    }

    let cfg = config();
    println!(
        "placement chaos: {} orders over {} shops, run in a child process whose logs (production format, RUST_LOG=debug) are scanned for addresses",
        cfg.orders, cfg.shops
    );
    let dir = std::env::temp_dir().join(format!("dropsync-chaos-place-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out_path = dir.join("run.json");
    let output = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, &out_path)
        .env("RUST_LOG", "debug")
        .env_remove("AWS_LAMBDA_LOG_LEVEL")
        .output()
        .unwrap();
    let logs = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        println!(
            "placement chaos: the run failed ({}):\n{}",
            output.status,
            tail(&logs, 60)
        );
        std::process::exit(1);
    }
    let run: PlaceChaosRun = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let mut r: PlaceChaosReport = run.report;
    let (hits, first) = scan_logs(&logs, &run.personal_stems, &run.phones);
    r.addresses_in_logs = hits;
    r.log_lines = logs.lines().count() as u64;
    for line in first {
        r.violations
            .push(format!("personal data in the logs: {line}"));
    }
    // Silence cannot pass: the logs must show the placements they are checked for.
    let recorded = logs.matches("placement recorded").count() as u64;
    if recorded == 0 || r.log_lines == 0 {
        r.violations.push(format!(
            "the logs show {recorded} recorded placements in {} lines: nothing was checked",
            r.log_lines
        ));
    }
    println!("{}", r.summary());
    let missing: Vec<&str> = REQUIRED_FAULTS
        .iter()
        .copied()
        .filter(|k| r.fault(k) == 0)
        .collect();
    let mut metrics = vec![
        Metric::new("orders", r.orders as f64, "orders"),
        Metric::new("shops", r.shops as f64, "shops"),
        Metric::new("order.create calls", r.creates_sent as f64, "calls"),
        Metric::new(
            "AliExpress orders created",
            r.ae_orders_created as f64,
            "orders",
        ),
        Metric::new(
            "duplicate AliExpress orders",
            r.duplicate_ae_orders as f64,
            "orders",
        )
        .goal("= 0"),
        Metric::new(
            "AliExpress orders neither linked nor flagged",
            r.unaccounted_ae_orders as f64,
            "orders",
        )
        .goal("= 0"),
        Metric::new(
            "orders stuck without an attention item",
            r.orders_stuck as f64,
            "orders",
        )
        .goal("= 0"),
        Metric::new("addresses in logs", r.addresses_in_logs as f64, "lines").goal("= 0"),
        Metric::new("log lines scanned", r.log_lines as f64, "lines"),
        Metric::new("violations", r.violations.len() as f64, "violations").goal("= 0"),
        Metric::new("fault kinds not injected", missing.len() as f64, "kinds").goal("= 0"),
        Metric::new("wall time", r.wall_secs, "s"),
    ];
    for (k, v) in &r.outcomes {
        metrics.push(Metric::new(&format!("ended: {k}"), *v as f64, "orders"));
    }
    for (k, v) in &r.faults {
        metrics.push(Metric::new(&format!("fault: {k}"), *v as f64, "events"));
    }
    report(
        "chaos_place",
        &format!(
            "{} paid, mapped orders over {} shops placed on the sandbox AliExpress through the place routes (single and bulk, over HTTP) and the order placer's handler, with lost answers, duplicate clicks, ApiCallLimit bans, ISP errors, business errors, unplaceable addresses and placers killed between the create and the write; then one more bulk round with faults off; checked against the sandbox's record of every order.create and the attention lists; logs scanned for the seeded addresses",
            r.orders, r.shops
        ),
        &metrics,
        json!({"report": r, "missing_faults": missing}),
    );
    if !r.violations.is_empty() || !missing.is_empty() {
        std::process::exit(1);
    }
}
