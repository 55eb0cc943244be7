//! dropsync → Shopify: one package becomes one Shopify fulfillment, exactly once.
//!
//! Exactly once rests on four things:
//! - the table records a package as pushed with a conditional write, and a package recorded as
//!   pushed is never pushed again;
//! - a short **lease** per package (a sibling item of the order, claimed with a conditional write)
//!   keeps two workers from pushing the same package at the same time — SQS may deliver one
//!   message twice at once, and a manual sync may queue a package that is already in flight;
//! - before creating anything the pusher reads the order's fulfillments and treats one with this
//!   tracking number as proof of an earlier success (a crash between Shopify's answer and our
//!   write, or the merchant fulfilling by hand);
//! - a mutation whose outcome is unknown (timeout, 5xx) is never retried blind: the pusher reads
//!   once more at once, and if that does not settle it the message comes back (after the queue's
//!   visibility timeout) and the read decides then.
//!
//! The parts: [`plan`] decides which fulfillment-order lines a package asks for, [`tracking`] what
//! it tells Shopify about the parcel, [`batch`] runs a queue batch; this module is the service.
//!
//! [`push_batch`] runs a batch of queue messages: sequentially within an order (two packages of
//! one order must not both plan against the same remaining quantities), concurrently across
//! orders; malformed messages are acknowledged; only retryable failures are reported.

pub mod batch;
pub mod plan;
#[cfg(test)]
mod service_tests;
pub mod tracking;

pub use batch::{BatchLimits, BatchMessage, Delivery, push_batch, push_deliveries};
pub use plan::{ChooseError, FoLines, choose_lines};
pub use tracking::{MAX_TRACKING_NUMBER, tracking_info, tracking_number_ok, tracking_url};

use crate::credentials::Credentials;
use crate::now_ms;
use crate::ports::PushStore;
use crate::queue::PushMessage;
use crate::tokens::ProviderError;
use dropsync_domain::ops::{mark_push_failed, mark_push_gave_up, mark_pushed};
use dropsync_domain::{Package, PushState, ShopDomain, ShopSettings};
use dropsync_shopify::admin::{AdminError, FulfillmentRequest, MutationOutcome, ShopifyAdmin};
use dropsync_store::{LeasedPackage, Store, StoreError, StoredOrder};
use plan::carrying;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// A fulfillment was created (or its tracking updated) now.
    Pushed,
    /// It was already in Shopify (earlier success, or fulfilled by hand): recorded as pushed.
    AlreadyInShopify,
    /// Nothing to do (already pushed or flagged, unknown order or package, inactive shop).
    Skipped(&'static str),
    /// Shopify refused it, or it cannot be fulfilled as things stand: recorded on the package for
    /// the merchant.
    Flagged(String),
}

/// A failure that should bring the message back (SQS redelivers after the visibility timeout).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("retry later: {0}")]
    Retry(String),
}

impl From<StoreError> for PushError {
    fn from(e: StoreError) -> Self {
        PushError::Retry(e.to_string())
    }
}

/// How long a claim on a package keeps other workers off it. Far longer than one push takes (a
/// few seconds, a Lambda timeout at most), and shorter than the tracking queue's visibility
/// timeout (180 s), so a message whose worker died finds the claim expired when it comes back.
pub const PUSH_LEASE: Duration = Duration::from_secs(120);

/// The pusher's dependencies, built once. The store is any [`PushStore`]: DynamoDB in the
/// functions, `memory::MemoryStore` in tests.
#[derive(Debug)]
pub struct PushService<A, S = Store> {
    pub store: S,
    pub admin: Arc<A>,
    pub credentials: Arc<Credentials>,
}

/// Ids of one package, for logs and writes.
struct Target<'a> {
    shop: &'a ShopDomain,
    order_id: u64,
    ae: u64,
    tn: &'a str,
    /// A 401 may still be answered by renewing the token once.
    retry_on_401: std::sync::atomic::AtomicBool,
    /// Shopify answered 401 to the token this push used.
    refused_token: std::sync::atomic::AtomicBool,
    /// The order as this message read it: recording the outcome writes against its version
    /// instead of reading the order again (a change since makes the write re-decide).
    read: &'a StoredOrder,
}

impl Target<'_> {
    fn leased(&self) -> LeasedPackage<'_> {
        LeasedPackage {
            shop: self.shop,
            order_id: self.order_id,
            ae_order_id: self.ae,
            tracking_number: self.tn,
        }
    }
}

impl<A: ShopifyAdmin, S: PushStore> PushService<A, S> {
    /// Handles one message. `Ok` acknowledges it; `Err` brings it back for a retry.
    pub async fn handle(
        &self,
        msg: &PushMessage,
        order_id: u64,
        ae_order_id: u64,
    ) -> Result<PushOutcome, PushError> {
        let Some(stored) = self.store.order(&msg.shop, order_id).await? else {
            return Ok(PushOutcome::Skipped("no such order"));
        };
        let t = Target {
            shop: &msg.shop,
            order_id,
            ae: ae_order_id,
            tn: msg.tracking_number.as_str(),
            retry_on_401: std::sync::atomic::AtomicBool::new(true),
            refused_token: std::sync::atomic::AtomicBool::new(false),
            read: &stored,
        };
        let Some(package) = stored
            .order
            .supplier_order(ae_order_id)
            .and_then(|so| so.package(t.tn))
            .cloned()
        else {
            // A stale message: the number was corrected since, and the new number has its own.
            return Ok(PushOutcome::Skipped("no such package"));
        };
        if !package.push.is_due() {
            return Ok(PushOutcome::Skipped(match package.push {
                PushState::Failed { .. } => "flagged for the merchant",
                _ => "already pushed",
            }));
        }
        if !tracking_number_ok(t.tn) {
            // Not logged at INFO (or at all): an odd "number" may be anything AliExpress let a
            // seller type, including a customer's details.
            warn!(shop = %t.shop, order_id = t.order_id, ae_order_id = t.ae, length = t.tn.len(),
                "tracking number unusable; flagged for the merchant");
            self.store
                .update_order(t.shop, t.order_id, |o| {
                    mark_push_failed(
                        o,
                        t.ae,
                        t.tn,
                        "the tracking number is too long or has characters carriers do not use: \
                         correct it on AliExpress, or fulfil in Shopify by hand",
                    )
                })
                .await?;
            return Ok(PushOutcome::Flagged("unusable tracking number".to_owned()));
        }
        let record = self.store.shop(t.shop).await?;
        if !record.active {
            return Ok(PushOutcome::Skipped("shop inactive"));
        }
        let tokens = self
            .store
            .shop_tokens(&self.credentials, self.admin.admin_base_override())
            .map_err(|e| PushError::Retry(e.to_string()))?;
        let token = match tokens.token(t.shop).await {
            Ok(token) => token,
            Err(ProviderError::NotConnected) => {
                return self.flag(&t, "no access token for this shop").await;
            }
            // The push stays due on the package: acknowledged now, re-sent once the merchant
            // reconnects (the reconnect re-queues the shop's due pushes), never dead-lettered.
            Err(ProviderError::ReconnectRequired(_)) => {
                info!(shop = %t.shop, order_id, ae_order_id, "shop must reconnect to Shopify; push left pending");
                return Ok(PushOutcome::Skipped("shop must reconnect to Shopify"));
            }
            Err(ProviderError::Unavailable(e)) => return Err(PushError::Retry(e)),
        };
        // A legacy token cannot be renewed: a 401 is flagged as before.
        t.retry_on_401.store(
            !tokens.is_legacy(t.shop),
            std::sync::atomic::Ordering::Relaxed,
        );
        let Some(lease) = self.claim(&t).await? else {
            return Err(PushError::Retry(
                "another worker is pushing this package".to_owned(),
            ));
        };
        let mut result = self.push(&t, &token, &package, &record.settings).await;
        if t.refused_token.load(std::sync::atomic::Ordering::Relaxed) {
            // Once after a 401: renew (single-flight) and push again with the new token.
            t.refused_token
                .store(false, std::sync::atomic::Ordering::Relaxed);
            t.retry_on_401
                .store(false, std::sync::atomic::Ordering::Relaxed);
            result = match tokens.after_unauthorized(t.shop, &token).await {
                Ok(fresh) => self.push(&t, &fresh, &package, &record.settings).await,
                Err(ProviderError::ReconnectRequired(_)) => {
                    Ok(PushOutcome::Skipped("shop must reconnect to Shopify"))
                }
                Err(e) => Err(PushError::Retry(e.to_string())),
            };
        }
        self.release(&t, lease).await;
        result
    }

    /// The push proper, under the package's lease.
    async fn push(
        &self,
        t: &Target<'_>,
        token: &str,
        package: &Package,
        settings: &ShopSettings,
    ) -> Result<PushOutcome, PushError> {
        let state = match self
            .admin
            .fulfillment_state(t.shop, token, t.order_id)
            .await
        {
            Ok(Some(s)) => s,
            Ok(None) => return self.flag(t, "order not found in Shopify").await,
            Err(e) => return self.admin_error(t, e).await,
        };

        if let Some(f) = carrying(&state, t.tn) {
            self.record_pushed(t, Some(f.id.clone())).await?;
            info!(shop = %t.shop, order_id = t.order_id, ae_order_id = t.ae, tracking = t.tn,
                fulfillment_id = f.id.as_str(), "already in Shopify; recorded");
            return Ok(PushOutcome::AlreadyInShopify);
        }

        // A corrected number: update the fulfillment that carries the old one. For a package
        // corrected before its push was recorded (a crash after Shopify's success), the old
        // number's fulfillment is found by its number.
        let to_update = match &package.push {
            PushState::UpdatePending { fulfillment_id } => Some(fulfillment_id.clone()),
            _ => package
                .previous_tracking
                .as_deref()
                .and_then(|prev| carrying(&state, prev))
                .map(|f| f.id.clone()),
        };
        if let Some(fulfillment_id) = to_update {
            let info = tracking_info(settings, package);
            return match self
                .admin
                .update_tracking(
                    t.shop,
                    token,
                    &fulfillment_id,
                    &info,
                    settings.notify_customer,
                )
                .await
            {
                Ok(MutationOutcome::Done { .. }) => {
                    self.record_pushed(t, Some(fulfillment_id.clone())).await?;
                    info!(shop = %t.shop, order_id = t.order_id, ae_order_id = t.ae, tracking = t.tn,
                        fulfillment_id = fulfillment_id.as_str(), "tracking updated in Shopify");
                    Ok(PushOutcome::Pushed)
                }
                Ok(MutationOutcome::UserErrors(errs)) => self.flag(t, &errs.join("; ")).await,
                // Replacing tracking is idempotent: a retry after an unknown outcome is harmless.
                Err(e) => self.admin_error(t, e).await,
            };
        }

        let lines = match choose_lines(&state, package) {
            Ok(lines) => lines,
            Err(ChooseError::NoFulfillmentOrdersYet) => {
                info!(shop = %t.shop, order_id = t.order_id, "no fulfillment orders yet; message will come back");
                return Err(PushError::Retry("no fulfillment orders yet".into()));
            }
            Err(ChooseError::NothingRemaining) => {
                // Fulfilled by someone else under another number: nothing to create, and
                // nothing left to wait for.
                self.record_pushed(t, None).await?;
                info!(shop = %t.shop, order_id = t.order_id, ae_order_id = t.ae, tracking = t.tn,
                    "already fulfilled in Shopify under another number; recorded");
                return Ok(PushOutcome::AlreadyInShopify);
            }
            Err(e @ ChooseError::Blocked(_)) => return self.flag(t, &e.to_string()).await,
        };
        let req = FulfillmentRequest {
            order_id: t.order_id,
            line_items_by_fo: lines,
            tracking: tracking_info(settings, package),
            notify_customer: settings.notify_customer,
        };
        match self.admin.create_fulfillment(t.shop, token, &req).await {
            Ok(MutationOutcome::Done { fulfillment_id }) => {
                self.record_pushed(t, fulfillment_id.clone()).await?;
                info!(shop = %t.shop, order_id = t.order_id, ae_order_id = t.ae, tracking = t.tn,
                    fulfillment_id = fulfillment_id.as_deref().unwrap_or_default(),
                    notify_customer = settings.notify_customer, "fulfillment created");
                Ok(PushOutcome::Pushed)
            }
            Ok(MutationOutcome::UserErrors(errs)) => self.flag(t, &errs.join("; ")).await,
            Err(e @ AdminError::Retryable(_)) => self.settle_unknown(t, token, e).await,
            Err(e) => self.admin_error(t, e).await,
        }
    }

    /// `fulfillmentCreate` may or may not have happened: read once more. Found → recorded;
    /// otherwise the message comes back later and the read decides then (never a blind retry:
    /// Shopify may still be working on the first attempt).
    async fn settle_unknown(
        &self,
        t: &Target<'_>,
        token: &str,
        e: AdminError,
    ) -> Result<PushOutcome, PushError> {
        warn!(shop = %t.shop, order_id = t.order_id, ae_order_id = t.ae, tracking = t.tn, error = %e,
            "fulfillment outcome unknown; reading it back");
        if let Ok(Some(state)) = self
            .admin
            .fulfillment_state(t.shop, token, t.order_id)
            .await
            && let Some(f) = carrying(&state, t.tn)
        {
            self.record_pushed(t, Some(f.id.clone())).await?;
            info!(shop = %t.shop, order_id = t.order_id, ae_order_id = t.ae, tracking = t.tn,
                fulfillment_id = f.id.as_str(), "fulfillment created (confirmed by reading it back)");
            return Ok(PushOutcome::Pushed);
        }
        Err(PushError::Retry(e.to_string()))
    }

    async fn record_pushed(
        &self,
        t: &Target<'_>,
        fulfillment_id: Option<String>,
    ) -> Result<(), PushError> {
        let now = now_ms();
        self.store
            .update_order_from(t.shop, t.order_id, Some(t.read.clone()), |o| {
                mark_pushed(o, t.ae, t.tn, fulfillment_id.clone(), now)
            })
            .await?;
        Ok(())
    }

    async fn flag(&self, t: &Target<'_>, reason: &str) -> Result<PushOutcome, PushError> {
        warn!(shop = %t.shop, order_id = t.order_id, ae_order_id = t.ae, tracking = t.tn, reason,
            "push flagged for the merchant");
        self.store
            .update_order(t.shop, t.order_id, |o| {
                mark_push_failed(o, t.ae, t.tn, reason)
            })
            .await?;
        Ok(PushOutcome::Flagged(reason.to_owned()))
    }

    /// Records on the package that its push gave up (best effort: if the table is what fails,
    /// the DLQ and its alarm still hold the message).
    async fn record_gave_up(
        &self,
        msg: &PushMessage,
        order_id: u64,
        ae: u64,
        why: &str,
        attempts: u32,
    ) {
        let now = now_ms();
        let tn = msg.tracking_number.as_str();
        if let Err(e) = self
            .store
            .update_order(&msg.shop, order_id, |o| {
                mark_push_gave_up(o, ae, tn, why, attempts, now)
            })
            .await
        {
            warn!(shop = %msg.shop, order_id, ae_order_id = ae, tracking = tn, error = %e,
                "could not record the dead-lettered push on the order");
        }
    }

    async fn admin_error(&self, t: &Target<'_>, e: AdminError) -> Result<PushOutcome, PushError> {
        if matches!(e, AdminError::Unauthorized)
            && t.retry_on_401.load(std::sync::atomic::Ordering::Relaxed)
        {
            t.refused_token
                .store(true, std::sync::atomic::Ordering::Relaxed);
            return Err(PushError::Retry("Shopify refused the access token".into()));
        }
        if e.is_retryable() {
            warn!(shop = %t.shop, order_id = t.order_id, tracking = t.tn, error = %e,
                "Shopify unavailable; message will come back");
            return Err(PushError::Retry(e.to_string()));
        }
        self.flag(t, &e.to_string()).await
    }

    /// Claims the package for [`PUSH_LEASE`]: `None` when another worker holds it.
    async fn claim(&self, t: &Target<'_>) -> Result<Option<S::Lease>, PushError> {
        match self
            .store
            .claim_push_lease(t.leased(), PUSH_LEASE, now_ms())
            .await
        {
            Ok(Some(lease)) => Ok(Some(lease)),
            Ok(None) => {
                info!(shop = %t.shop, order_id = t.order_id, ae_order_id = t.ae, tracking = t.tn,
                    "package is being pushed by another worker");
                Ok(None)
            }
            Err(e) => Err(PushError::Retry(format!("cannot claim the package: {e}"))),
        }
    }

    /// Gives the claim up (only if it is still ours). A failure only delays the next push of the
    /// package until the lease runs out.
    async fn release(&self, t: &Target<'_>, lease: S::Lease) {
        if let Err(e) = self.store.release_push_lease(lease).await {
            warn!(shop = %t.shop, order_id = t.order_id, tracking = t.tn,
                error = %e, "could not release the package's claim");
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use dropsync_domain::Package;
    use serde_json::json;

    /// Built from JSON, so new fields with defaults do not break these tests.
    pub(crate) fn package(carrier: Option<&str>, items: &[(u64, u32)]) -> Package {
        serde_json::from_value(json!({
            "tracking_number": "YT2601234567890123",
            "carrier": carrier,
            "items": items.iter().map(|(id, q)| json!({"line_item_id": id, "quantity": q})).collect::<Vec<_>>(),
            "push": {"state": "pending"},
            "found_at_ms": 0,
        }))
        .unwrap()
    }
}
