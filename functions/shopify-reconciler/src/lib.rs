//! The scheduled reconciliation (EventBridge, hourly by default): every active shop's orders
//! updated since its watermark are compared with what dropsync holds, and what webhooks lost is
//! applied (see `dropsync_app::reconcile`). After each shop, the run calls a [`ShopRepair`]: the
//! place where webhook subscriptions are listed and re-created.

use dropsync_app::reconcile::{ReconcileError, ReconcileService, ScheduledReport, ShopRepair};
use dropsync_shopify::admin::ShopifyAdmin;
use std::time::Instant;

/// One scheduled run, whatever the event says (a schedule carries nothing dropsync needs).
pub async fn run<A: ShopifyAdmin, R: ShopRepair>(
    svc: &ReconcileService<A>,
    repair: &R,
    deadline: Instant,
) -> Result<ScheduledReport, ReconcileError> {
    svc.scheduled_run(repair, deadline).await
}
