//! The AliExpress poller: fired by the EventBridge schedule (twice a day at fixed hours), or by a
//! continuation message on its own queue when the previous invocation ran out of time.
//!
//! Continuation through a queue rather than the Lambda API: the SQS send is a permission and a
//! client the stack has anyway, the message survives a crash of the next invocation (redrive),
//! and no function may invoke itself in a loop by accident.

use aws_lambda_events::event::sqs::SqsEvent;
use dropsync_aliexpress::AliExpressApi;
pub use dropsync_app::queue::Continuation;
use dropsync_app::queue::{QueueError, TrackingQueue};
use dropsync_app::sync::{PollCursor, PollReport, SyncError, SyncService};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use tracing::{info, warn};

/// What started this invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The schedule (or a hand-made invocation with `{}`): start from the beginning.
    Schedule,
    /// A continuation: go on from here.
    Continue(PollCursor),
}

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("unrecognised event: {0}")]
    Unrecognised(String),
}

/// Why an invocation failed; its trigger runs again (the schedule's retry, or the continuation
/// message coming back), so nothing is dropped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Poll(#[from] SyncError),
    #[error("the continuation was not sent: {0}")]
    Continuation(#[source] QueueError),
}

/// Reads the event: an EventBridge scheduled event (`"detail-type": "Scheduled Event"`), an SQS
/// batch of continuation cursors, `{}` (a manual run from the start), or a bare cursor
/// (`{"shard": 3}`: a manual run from there).
pub fn trigger(event: &Value) -> Result<Vec<Trigger>, TriggerError> {
    if event.get("Records").is_some() {
        let sqs: SqsEvent = serde_json::from_value(event.clone())
            .map_err(|e| TriggerError::Unrecognised(e.to_string()))?;
        let mut out = Vec::new();
        for rec in sqs.records {
            let body = rec.body.unwrap_or_default();
            match serde_json::from_str::<PollCursor>(&body) {
                Ok(c) => out.push(Trigger::Continue(c)),
                Err(e) => warn!(error = %e, "malformed continuation dropped"),
            }
        }
        return Ok(out);
    }
    if event.get("shard").is_some() {
        return serde_json::from_value::<PollCursor>(event.clone())
            .map(|c| vec![Trigger::Continue(c)])
            .map_err(|e| TriggerError::Unrecognised(format!("cursor: {e}")));
    }
    match event.get("detail-type").and_then(Value::as_str) {
        Some("Scheduled Event") => Ok(vec![Trigger::Schedule]),
        Some(other) => Err(TriggerError::Unrecognised(format!("detail-type {other}"))),
        None if event.as_object().is_some_and(|o| o.is_empty()) => Ok(vec![Trigger::Schedule]),
        None => Err(TriggerError::Unrecognised(
            "not a schedule or continuation".into(),
        )),
    }
}

/// Runs the poll for each trigger until `deadline`, handing what is left to a continuation.
pub async fn run<A, Q, C>(
    svc: &Arc<SyncService<A, Q>>,
    continuation: &C,
    triggers: Vec<Trigger>,
    deadline: Instant,
) -> Result<Vec<PollReport>, RunError>
where
    A: AliExpressApi + 'static,
    Q: TrackingQueue + 'static,
    C: Continuation,
{
    let mut reports = Vec::new();
    for t in triggers {
        let from = match t {
            Trigger::Schedule => None,
            Trigger::Continue(c) => Some(c),
        };
        let report = svc.poll(from, deadline).await?;
        if let Some(c) = &report.continue_from {
            // A failed send fails the invocation: its trigger (the schedule's retry, or the
            // continuation message coming back) runs again, so the rest is never dropped.
            continuation
                .continue_from(c)
                .await
                .map_err(RunError::Continuation)?;
            info!(shard = c.shard, "continuation sent");
        }
        reports.push(report);
    }
    Ok(reports)
}
