//! Never lose an order: reconciliation reads the shop's orders updated since a stored watermark
//! and applies whatever dropsync does not hold, through the same path as a webhook.
//!
//! Shopify gives up on a delivery after 8 tries in 4 hours and deletes subscriptions that keep
//! failing, so an outage, a throttle or a bad deploy can lose orders silently. Each run:
//!
//! - lists the shop's orders with `updated_at >= watermark`, oldest update first, 50 a page
//!   (ids and `updatedAt` only: about one cost point per order);
//! - re-fetches in full only the orders dropsync holds an older version of, or none, and applies
//!   them with [`Store::save_shopify_facts`], the webhook's conditional write (so a webhook arriving at
//!   the same time, or a second run, cannot duplicate or regress anything);
//! - moves the watermark to the `updatedAt` of the last order handled, in list order: never past
//!   one that was not applied. The next run lists from there again (`>=`: orders sharing that
//!   second are looked at twice, which costs a listing and writes nothing);
//! - stops at its deadline or on a Shopify error, keeping the progress made: runs are bounded and
//!   resume where they stopped;
//! - counts the orders Shopify has that dropsync did not (a webhook was lost), logs them and emits
//!   an EMF metric line, since each one means the webhook path failed.
//!
//! Shopify's cost budget is respected by the Admin client's per-shop limiter.

use crate::connect::ConnectError;
use crate::credentials::Credentials;
use crate::now_ms;
use dropsync_domain::ShopDomain;
use dropsync_shopify::admin::{AdminError, ShopifyAdmin};
use dropsync_store::{ShopifyApplied, Store, StoreError};
use std::sync::Arc;
use std::time::Instant;
use tracing::{info, warn};

/// Where a shop's first run starts: Shopify retries a delivery for 4 hours, so a day covers any
/// delivery lost before dropsync was reconciling, with margin.
pub const DEFAULT_LOOKBACK_MS: i64 = 24 * 3600 * 1000;

/// The history label of orders applied by reconciliation.
pub const SOURCE: &str = "reconciliation";

/// What one run did for one shop.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReconcileReport {
    /// Orders Shopify listed and dropsync compared.
    pub checked: u64,
    /// Orders whose stored state changed (created or updated).
    pub changed: u64,
    /// Orders Shopify has and dropsync did not hold at all: lost webhooks.
    pub missed: u64,
    /// Every order updated before this (ms epoch) is applied.
    pub watermark_ms: i64,
    /// Whether the listing was read to its end (false: stopped at the deadline or an error).
    pub complete: bool,
}

/// Why a run could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("unknown shop")]
    UnknownShop,
    /// Shopify throttled, unreachable, or the table unavailable: try again later. The progress
    /// made before it is kept.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// Shopify refused the token or the request.
    #[error("Shopify refused: {0}")]
    Refused(String),
    #[error("internal error")]
    Internal,
}

impl ReconcileError {
    pub fn status(&self) -> u16 {
        match self {
            Self::UnknownShop => 404,
            Self::Unavailable(_) => 503,
            Self::Refused(_) => 502,
            Self::Internal => 500,
        }
    }
}

impl From<StoreError> for ReconcileError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            Self::Unavailable("the table".into())
        } else {
            warn!(error = %e, "store error during reconciliation");
            Self::Internal
        }
    }
}

fn admin_error(e: AdminError) -> ReconcileError {
    if e.is_retryable() {
        ReconcileError::Unavailable(e.to_string())
    } else {
        ReconcileError::Refused(e.to_string())
    }
}

/// The hook the scheduled run calls for each shop after reconciling it: where webhook
/// subscriptions are repaired (listed, re-created when missing or pointing elsewhere) by the
/// connect service, when the deployment has a `PUBLIC_URL` to point them at.
pub trait ShopRepair: Send + Sync {
    fn repair(&self, shop: &ShopDomain) -> impl Future<Output = Result<(), ConnectError>> + Send;
}

/// No repair step.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRepair;

impl ShopRepair for NoRepair {
    async fn repair(&self, _shop: &ShopDomain) -> Result<(), ConnectError> {
        Ok(())
    }
}

/// The connect service repairs a shop's webhook subscriptions (listed, re-created when missing,
/// repointed when they point elsewhere).
impl ShopRepair for crate::connect::ConnectService {
    async fn repair(&self, shop: &ShopDomain) -> Result<(), ConnectError> {
        let topics = self.reconcile_webhooks(shop).await?;
        let missing: Vec<&str> = topics
            .iter()
            .filter(|t| !t.subscribed)
            .map(|t| t.topic.as_str())
            .collect();
        if !missing.is_empty() {
            warn!(shop = %shop, ?missing, "webhook topics that cannot be subscribed");
        }
        Ok(())
    }
}

/// Without a repair service (no `PUBLIC_URL` to point subscriptions at), nothing is done.
impl<T: ShopRepair> ShopRepair for Option<T> {
    async fn repair(&self, shop: &ShopDomain) -> Result<(), ConnectError> {
        match self {
            Some(r) => r.repair(shop).await,
            None => Ok(()),
        }
    }
}

impl<T: ShopRepair> ShopRepair for Arc<T> {
    fn repair(&self, shop: &ShopDomain) -> impl Future<Output = Result<(), ConnectError>> + Send {
        T::repair(self, shop)
    }
}

/// Reconciliation's dependencies, built once at cold start.
#[derive(Debug, Clone)]
pub struct ReconcileService<A> {
    pub store: Store,
    pub credentials: Arc<Credentials>,
    pub admin: Arc<A>,
    /// Where a shop's first run starts, back from now.
    pub lookback_ms: i64,
}

impl<A: ShopifyAdmin> ReconcileService<A> {
    /// Reconciles one shop until the listing ends or `deadline` passes.
    pub async fn reconcile_shop(
        &self,
        shop: &ShopDomain,
        deadline: Instant,
    ) -> Result<ReconcileReport, ReconcileError> {
        let tokens = crate::tokens::shared(
            &self.store,
            &self.credentials,
            self.admin.admin_base_override(),
        )
        .map_err(|e| ReconcileError::Unavailable(e.to_string()))?;
        let token = match tokens.token(shop).await {
            Ok(token) => token,
            Err(crate::tokens::ProviderError::NotConnected) => {
                return Err(ReconcileError::UnknownShop);
            }
            Err(e @ crate::tokens::ProviderError::ReconnectRequired(_)) => {
                return Err(ReconcileError::Refused(e.to_string()));
            }
            Err(e @ crate::tokens::ProviderError::Unavailable(_)) => {
                return Err(ReconcileError::Unavailable(e.to_string()));
            }
        };
        let since = match self.store.reconcile_watermark(shop).await? {
            Some(w) => w,
            None => now_ms().saturating_sub(self.lookback_ms),
        };
        let mut report = ReconcileReport {
            checked: 0,
            changed: 0,
            missed: 0,
            watermark_ms: since,
            complete: false,
        };
        let outcome = self.walk(shop, &token, since, deadline, &mut report).await;
        // Whatever happened, keep the progress made: only past orders that were applied.
        if report.watermark_ms > since {
            self.store
                .advance_reconcile_watermark(shop, report.watermark_ms)
                .await?;
        }
        if report.missed > 0 {
            warn!(shop = %shop, missed = report.missed,
                "reconciliation found orders dropsync never received: the webhook path lost them");
        }
        info!(shop = %shop, checked = report.checked, changed = report.changed,
            missed = report.missed, watermark_ms = report.watermark_ms, complete = report.complete,
            "reconciliation run");
        // EMF is read from the function's stdout, not through the tracing JSON envelope.
        #[allow(clippy::print_stdout)]
        {
            println!("{}", emf_line(shop, &report, now_ms()));
        }
        outcome.map(|()| report)
    }

    async fn walk(
        &self,
        shop: &ShopDomain,
        token: &str,
        since: i64,
        deadline: Instant,
        report: &mut ReconcileReport,
    ) -> Result<(), ReconcileError> {
        let mut after: Option<String> = None;
        loop {
            if Instant::now() >= deadline {
                return Ok(());
            }
            let page = self
                .admin
                .orders_updated_since(shop, token, since, after.as_deref())
                .await
                .map_err(admin_error)?;
            for stamp in page.orders {
                if Instant::now() >= deadline {
                    return Ok(());
                }
                let stored = self.store.get_order(shop, stamp.id).await?;
                let held = stored.as_ref().map(|s| s.order.shopify.updated_at_ms);
                if held.is_none_or(|at| at < stamp.updated_at_ms) {
                    // `None`: deleted, or no longer visible to the app, since it was listed.
                    if let Some((id, facts)) = self
                        .admin
                        .fetch_order(shop, token, stamp.id)
                        .await
                        .map_err(admin_error)?
                    {
                        let applied = self
                            .store
                            .save_shopify_facts(shop, id, facts, SOURCE, now_ms())
                            .await?;
                        if applied != ShopifyApplied::Stale {
                            report.changed += 1;
                            if held.is_none() {
                                report.missed += 1;
                            }
                            info!(shop = %shop, order_id = id, outcome = ?applied,
                                "order applied by reconciliation");
                        }
                    }
                }
                report.checked += 1;
                report.watermark_ms = report.watermark_ms.max(stamp.updated_at_ms);
            }
            match page.next {
                Some(cursor) => after = Some(cursor),
                None => {
                    report.complete = true;
                    return Ok(());
                }
            }
        }
    }

    /// The scheduled run: every configured shop that is active, one after another, each
    /// reconciled then repaired, until `deadline`. A shop that fails is logged and the next one
    /// is done; the failures are counted in the answer.
    pub async fn scheduled_run<R: ShopRepair>(
        &self,
        repair: &R,
        deadline: Instant,
    ) -> Result<ScheduledReport, ReconcileError> {
        let mut out = ScheduledReport::default();
        // Shops of the credentials document and every shop connected by OAuth or client
        // credentials (those live in the table only).
        let mut shops: Vec<ShopDomain> = self.credentials.shops.keys().cloned().collect();
        {
            use dropsync_store::ConnectionStore;
            shops.extend(
                self.store
                    .list_connections()
                    .await?
                    .into_iter()
                    .map(|c| c.shop),
            );
        }
        shops.sort();
        shops.dedup();
        for shop in &shops {
            if Instant::now() >= deadline {
                out.unfinished += 1;
                continue;
            }
            if !self.store.get_shop(shop).await?.active {
                continue;
            }
            match self.reconcile_shop(shop, deadline).await {
                Ok(r) => {
                    out.shops += 1;
                    out.checked += r.checked;
                    out.changed += r.changed;
                    out.missed += r.missed;
                    if !r.complete {
                        out.unfinished += 1;
                    }
                }
                Err(e) => {
                    warn!(shop = %shop, error = %e, "reconciliation failed; the next run resumes");
                    out.failed += 1;
                }
            }
            if let Err(e) = repair.repair(shop).await {
                warn!(shop = %shop, error = %e, "webhook subscription repair failed");
            }
        }
        info!(?out, "scheduled reconciliation");
        Ok(out)
    }
}

/// What a scheduled run did over every shop.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScheduledReport {
    pub shops: u64,
    pub checked: u64,
    pub changed: u64,
    pub missed: u64,
    /// Shops whose run stopped at the deadline (they resume next time).
    pub unfinished: u64,
    pub failed: u64,
}

/// A CloudWatch embedded-metric-format line (printed to stdout, where Lambda's log group turns
/// it into metrics): `ReconcileMissedOrders` (lost webhooks; alarmed) and
/// `ReconcileChangedOrders`, by shop and over all shops.
pub fn emf_line(shop: &ShopDomain, report: &ReconcileReport, now_ms: i64) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": "dropsync",
                // By shop, and over all shops (what the alarm watches).
                "Dimensions": [["shop"], []],
                "Metrics": [
                    {"Name": "ReconcileMissedOrders", "Unit": "Count"},
                    {"Name": "ReconcileChangedOrders", "Unit": "Count"},
                    {"Name": "ReconcileCheckedOrders", "Unit": "Count"}
                ]
            }]
        },
        "shop": shop.as_str(),
        "ReconcileMissedOrders": report.missed,
        "ReconcileChangedOrders": report.changed,
        "ReconcileCheckedOrders": report.checked,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metric_line_is_embedded_metric_format_with_the_counts() {
        let shop = ShopDomain::parse("a.myshopify.com").unwrap();
        let report = ReconcileReport {
            checked: 7,
            changed: 3,
            missed: 2,
            watermark_ms: 1,
            complete: true,
        };
        let v: serde_json::Value = serde_json::from_str(&emf_line(&shop, &report, 5)).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 5);
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "dropsync");
        assert_eq!(v["shop"], "a.myshopify.com");
        assert_eq!(v["ReconcileMissedOrders"], 2);
        assert_eq!(v["ReconcileChangedOrders"], 3);
        assert_eq!(v["ReconcileCheckedOrders"], 7);
    }
}
