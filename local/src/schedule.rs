//! The poller's schedule, locally: the same fixed hours as the template's EventBridge rule
//! (`SYNC_SCHEDULE`, default `cron(0 2,14 * * ? *)`, UTC), or every N seconds with
//! `LOCAL_POLL_INTERVAL_SECONDS` (for demos). And the reconciler's: the template's
//! `ReconcileSchedule` (`RECONCILE_SCHEDULE`, default `rate(1 hour)`), or every N seconds with
//! `LOCAL_RECONCILE_INTERVAL_SECONDS`.

use crate::consumer::POLL_INVOCATION;
use dropsync_aliexpress::AliExpressApi;
use dropsync_aliexpress_poller::{Trigger, run};
use dropsync_app::queue::{SqsContinuation, TrackingQueue};
use dropsync_app::sync::{SyncService, deadline_within};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
#[error("schedule: {0}")]
pub struct ScheduleError(String);

/// When the poller runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Minutes and hours (UTC) of an EventBridge `cron(m h * * ? *)` expression.
    Cron {
        minutes: Vec<u32>,
        hours: Vec<u32>,
    },
    Every(Duration),
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Plan::Cron { minutes, hours } => {
                write!(f, "minutes {minutes:?} of hours {hours:?} UTC")
            }
            Plan::Every(d) => write!(f, "every {}s", d.as_secs()),
        }
    }
}

fn list(field: &str, max: u32) -> Result<Vec<u32>, ScheduleError> {
    if field == "*" {
        return Ok((0..max).collect());
    }
    field
        .split(',')
        .map(|v| {
            v.parse::<u32>()
                .ok()
                .filter(|n| *n < max)
                .ok_or_else(|| ScheduleError(format!("unsupported field {field:?}")))
        })
        .collect()
}

impl Plan {
    /// Parses the daily subset of EventBridge cron the template uses: `cron(M H * * ? *)` with
    /// numbers, comma lists or `*` for minutes and hours.
    pub fn parse_cron(expr: &str) -> Result<Self, ScheduleError> {
        let inner = expr
            .trim()
            .strip_prefix("cron(")
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| ScheduleError(format!("{expr:?} is not cron(...)")))?;
        let f: Vec<&str> = inner.split_whitespace().collect();
        match f.as_slice() {
            [m, h, "*", "*", "?", "*"] => Ok(Plan::Cron {
                minutes: list(m, 60)?,
                hours: list(h, 24)?,
            }),
            _ => Err(ScheduleError(format!(
                "{expr:?}: six fields, daily, expected"
            ))),
        }
    }

    /// An EventBridge `rate(N unit)` expression as a fixed interval.
    pub fn parse_rate(expr: &str) -> Result<Self, ScheduleError> {
        let bad = || ScheduleError(format!("{expr:?} is not rate(N unit)"));
        let inner = expr
            .trim()
            .strip_prefix("rate(")
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(bad)?;
        let (n, unit) = inner.split_once(' ').ok_or_else(bad)?;
        let n: u64 = n.parse().map_err(|_| bad())?;
        let secs = match unit {
            "minute" | "minutes" => 60,
            "hour" | "hours" => 3600,
            "day" | "days" => 86_400,
            _ => return Err(bad()),
        };
        Ok(Plan::Every(Duration::from_secs((n * secs).max(1))))
    }

    /// The reconciler's schedule: `LOCAL_RECONCILE_INTERVAL_SECONDS`, else `RECONCILE_SCHEDULE`
    /// (cron or rate, as the template's `ReconcileSchedule`; default hourly).
    pub fn reconcile_from_env() -> Result<Self, ScheduleError> {
        if let Some(secs) = std::env::var("LOCAL_RECONCILE_INTERVAL_SECONDS")
            .ok()
            .filter(|s| !s.is_empty())
        {
            let secs: u64 = secs
                .parse()
                .map_err(|_| ScheduleError("LOCAL_RECONCILE_INTERVAL_SECONDS".into()))?;
            return Ok(Plan::Every(Duration::from_secs(secs.max(1))));
        }
        let expr = std::env::var("RECONCILE_SCHEDULE").unwrap_or_else(|_| "rate(1 hour)".into());
        if expr.trim().starts_with("rate(") {
            Self::parse_rate(&expr)
        } else {
            Self::parse_cron(&expr)
        }
    }

    pub fn from_env() -> Result<Self, ScheduleError> {
        if let Some(secs) = std::env::var("LOCAL_POLL_INTERVAL_SECONDS")
            .ok()
            .filter(|s| !s.is_empty())
        {
            let secs: u64 = secs
                .parse()
                .map_err(|_| ScheduleError("LOCAL_POLL_INTERVAL_SECONDS".into()))?;
            return Ok(Plan::Every(Duration::from_secs(secs.max(1))));
        }
        Self::parse_cron(
            &std::env::var("SYNC_SCHEDULE").unwrap_or_else(|_| "cron(0 2,14 * * ? *)".into()),
        )
    }

    /// Time until the next run after `now_secs` (UTC epoch seconds).
    pub fn next_in(&self, now_secs: u64) -> Duration {
        match self {
            Plan::Every(d) => *d,
            Plan::Cron { minutes, hours } => {
                let day = now_secs - now_secs % 86_400;
                let mut best: Option<u64> = None;
                for d in 0..2u64 {
                    for h in hours {
                        for m in minutes {
                            let t = day + d * 86_400 + u64::from(*h) * 3600 + u64::from(*m) * 60;
                            if t > now_secs && best.is_none_or(|b| t < b) {
                                best = Some(t);
                            }
                        }
                    }
                }
                Duration::from_secs(best.map_or(86_400, |b| b - now_secs))
            }
        }
    }
}

pub async fn run_schedule<A: AliExpressApi + 'static, Q: TrackingQueue + 'static>(
    plan: Plan,
    sync: Arc<SyncService<A, Q>>,
    sqs: aws_sdk_sqs::Client,
    continuation_url: Option<String>,
) {
    let cont = SqsContinuation::new(sqs, continuation_url);
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        tokio::time::sleep(plan.next_in(now)).await;
        info!("scheduled poll");
        if let Err(e) = run(
            &sync,
            &cont,
            vec![Trigger::Schedule],
            deadline_within(POLL_INVOCATION, Duration::from_secs(30)),
        )
        .await
        {
            warn!(error = %e, "scheduled poll failed");
        }
    }
}

/// The scheduled reconciliation, as the reconciler function runs it on AWS: every active shop
/// reconciled, then its webhook subscriptions repaired, within the function's 15 minutes.
pub async fn run_reconcile_schedule<A, R>(
    plan: Plan,
    svc: Arc<dropsync_app::reconcile::ReconcileService<A>>,
    repair: R,
) where
    A: dropsync_shopify::admin::ShopifyAdmin + 'static,
    R: dropsync_app::reconcile::ShopRepair + 'static,
{
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        tokio::time::sleep(plan.next_in(now)).await;
        info!("scheduled reconciliation");
        if let Err(e) = svc
            .scheduled_run(
                &repair,
                deadline_within(Duration::from_secs(900), Duration::from_secs(20)),
            )
            .await
        {
            warn!(error = %e, "scheduled reconciliation failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_default_fires_at_two_and_fourteen_utc() {
        let plan = Plan::parse_cron("cron(0 2,14 * * ? *)").unwrap();
        // 2026-11-25T01:00:00Z -> one hour to 02:00.
        let t = 1_795_654_800 - (1_795_654_800 % 86_400) + 3600;
        assert_eq!(plan.next_in(t), Duration::from_secs(3600));
        // 15:00 -> 11 hours to 02:00 the next day.
        assert_eq!(plan.next_in(t + 14 * 3600), Duration::from_secs(11 * 3600));
        assert!(Plan::parse_cron("cron(0 2 * * *)").is_err());
        assert!(Plan::parse_cron("rate(5 minutes)").is_err());
    }

    #[test]
    fn the_reconcilers_template_default_runs_every_hour() {
        assert_eq!(
            Plan::parse_rate("rate(1 hour)").unwrap(),
            Plan::Every(Duration::from_secs(3600))
        );
        assert_eq!(
            Plan::parse_rate("rate(15 minutes)").unwrap(),
            Plan::Every(Duration::from_secs(900))
        );
        assert!(Plan::parse_rate("rate(1 fortnight)").is_err());
        assert!(Plan::parse_rate("cron(0 * * * ? *)").is_err());
    }
}
