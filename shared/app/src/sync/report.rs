//! What a poll reports and carries across invocations: the cursor, the run's running totals, the
//! counts of one invocation, and the invocation's time budget.

use dropsync_domain::ShopDomain;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracing::info;

/// Where a poll stopped, to be continued by the next invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollCursor {
    pub shard: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// What the run did in the invocations before this one (for progress logs and the summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunSoFar>,
    /// Set for a run over one shop's open orders only (a manual sync of the shop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop: Option<ShopDomain>,
}

/// A run across invocations: when it started and its running totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSoFar {
    /// ms epoch.
    pub started_ms: i64,
    pub invocations: u32,
    pub orders: u64,
    pub changed: u64,
    pub pushes_queued: u64,
    pub errors: u64,
}

/// Counts of a poll or a shop sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollReport {
    /// Orders synced (an order tried again at the end of the run counts once).
    pub orders: u64,
    /// Supplier orders asked about (every try).
    pub supplier_orders: u64,
    /// Supplier orders whose sync changed the order.
    pub changed: u64,
    pub pushes_queued: u64,
    /// Supplier orders (or orders) that could not be synced; each is left unchanged.
    pub errors: u64,
    pub skipped_inactive: u64,
    /// Orders that failed with a retryable error and were tried once more at the end.
    #[serde(default)]
    pub retried: u64,
    /// Set when the run stopped early; continue from here.
    pub continue_from: Option<PollCursor>,
    /// Set when the run stopped because no further AliExpress call could succeed (the app must be
    /// re-authorized, or a ban longer than an invocation): what is left waits for the next run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) orders: AtomicU64,
    pub(super) supplier_orders: AtomicU64,
    pub(super) changed: AtomicU64,
    pub(super) pushes_queued: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) skipped_inactive: AtomicU64,
    pub(super) retried: AtomicU64,
}

pub(super) fn bump(c: &AtomicU64, by: u64) {
    c.fetch_add(by, Ordering::Relaxed);
}

impl Counters {
    pub(super) fn report(
        &self,
        continue_from: Option<PollCursor>,
        aborted: Option<String>,
    ) -> PollReport {
        PollReport {
            orders: self.orders.load(Ordering::Relaxed),
            supplier_orders: self.supplier_orders.load(Ordering::Relaxed),
            changed: self.changed.load(Ordering::Relaxed),
            pushes_queued: self.pushes_queued.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            skipped_inactive: self.skipped_inactive.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            continue_from,
            aborted,
        }
    }
}

/// Progress: done, an estimate of the total (orders spread evenly over the shards), and the rate.
pub(super) fn log_progress(
    counters: &Counters,
    run: &RunSoFar,
    shard: u32,
    shards: u32,
    started: Instant,
) {
    let done = counters.orders.load(Ordering::Relaxed);
    let run_done = run.orders + done;
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let total_estimate = (shard > 0).then(|| run_done * u64::from(shards) / u64::from(shard));
    info!(
        done = run_done,
        total_estimate,
        shard,
        shards,
        rate = done as f64 / secs,
        errors = counters.errors.load(Ordering::Relaxed),
        "poll progress"
    );
}

/// Time left before a Lambda invocation's deadline (`Context::deadline`, ms epoch); `fallback`
/// when the deadline is unreadable or already past.
pub fn time_left(deadline_ms: u64, fallback: Duration) -> Duration {
    std::time::SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_millis(deadline_ms))
        .and_then(|d| d.duration_since(std::time::SystemTime::now()).ok())
        .unwrap_or(fallback)
}

/// A deadline `reserve` before the end of the time left.
pub fn deadline_within(remaining: Duration, reserve: Duration) -> Instant {
    Instant::now() + remaining.saturating_sub(reserve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_carries_the_counts_and_where_to_continue() {
        let c = Counters::default();
        bump(&c.orders, 3);
        bump(&c.orders, 2);
        bump(&c.errors, 1);
        let cursor = PollCursor {
            shard: 4,
            page: Some("p".into()),
            run: None,
            shop: None,
        };
        let r = c.report(Some(cursor.clone()), Some("banned".into()));
        assert_eq!(r.orders, 5);
        assert_eq!(r.errors, 1);
        assert_eq!(r.changed, 0);
        assert_eq!(r.continue_from, Some(cursor));
        assert_eq!(r.aborted.as_deref(), Some("banned"));
    }

    #[test]
    fn a_cursor_round_trips_and_leaves_out_what_it_does_not_have() {
        let cursor = PollCursor {
            shard: 7,
            page: None,
            run: Some(RunSoFar {
                started_ms: 1,
                invocations: 2,
                ..RunSoFar::default()
            }),
            shop: None,
        };
        let body = serde_json::to_string(&cursor).unwrap();
        assert!(!body.contains("page") && !body.contains("shop"), "{body}");
        assert_eq!(serde_json::from_str::<PollCursor>(&body).unwrap(), cursor);
    }

    #[test]
    fn a_deadline_already_past_falls_back_and_the_reserve_never_underflows() {
        assert_eq!(
            time_left(0, Duration::from_secs(60)),
            Duration::from_secs(60)
        );
        let before = Instant::now();
        let d = deadline_within(Duration::from_secs(10), Duration::from_secs(30));
        assert!(d >= before && d <= Instant::now());
    }
}
