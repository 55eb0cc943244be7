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
//! [`push_batch`] runs a batch of queue messages: sequentially within an order (two packages of
//! one order must not both plan against the same remaining quantities), concurrently across
//! orders; malformed messages are acknowledged; only retryable failures are reported.

use crate::credentials::Credentials;
use crate::now_ms;
use crate::queue::PushMessage;
use crate::tokens::ProviderError;
use dropsync_domain::ops::{mark_push_failed, mark_push_gave_up, mark_pushed};
use dropsync_domain::{Package, PushState, ShopDomain, ShopSettings};
use dropsync_shopify::admin::{
    AdminError, ExistingFulfillment, FulfillmentRequest, FulfillmentState, MutationOutcome,
    ShopifyAdmin, TrackingInfo,
};
use dropsync_store::{LeasedPackage, PushLease, Store, StoreError, StoredOrder};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

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

/// Shopify's exact names for carriers AliExpress parcels travel with (case-sensitive there).
const KNOWN_CARRIERS: &[&str] = &[
    "4PX",
    "China Post",
    "YunExpress",
    "Anjun Logistics",
    "SFC Fulfillment",
    "YiFan Express",
    "SF Express",
    "DHL eCommerce Asia",
    "USPS",
    "UPS",
    "FedEx",
    "DHL Express",
    "DHL eCommerce",
    "Canada Post",
    "Royal Mail",
    "Evri",
    "DPD",
    "GLS",
    "PostNL",
    "Australia Post",
    "Correos",
    "Deutsche Post",
    "La Poste Colissimo",
    "Poste Italiane",
];

/// The tracking info to send: Shopify's exact company name when the carrier is recognisable
/// (from the shop's mapping, or the name itself), else the carrier as free text; and always the
/// shop's tracking URL, since Shopify builds no URL for free text and the sandbox and several
/// integrations build none for known carriers either.
pub fn tracking_info(settings: &ShopSettings, package: &Package) -> TrackingInfo {
    let number = package.tracking_number.clone();
    let raw = package.carrier.as_deref().unwrap_or_default().trim();
    let mapped = settings
        .carrier_mapping
        .get(raw)
        .or_else(|| {
            settings
                .carrier_mapping
                .iter()
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(raw))
                .map(|(_, v)| v)
        })
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .or_else(|| {
            KNOWN_CARRIERS
                .iter()
                .find(|c| c.eq_ignore_ascii_case(raw))
                .map(|c| (*c).to_owned())
        });
    let url = tracking_url(&settings.tracking_url_template, &number);
    TrackingInfo {
        company: mapped.or_else(|| (!raw.is_empty()).then(|| raw.to_owned())),
        number,
        url: (!url.trim().is_empty()).then_some(url),
    }
}

/// The longest tracking number pushed (carriers' longest are about 35 characters).
pub const MAX_TRACKING_NUMBER: usize = 64;

/// Whether a tracking number looks like one: 1 to [`MAX_TRACKING_NUMBER`] ASCII letters, digits,
/// `-`, `_`, `.` and inner spaces. Anything else (an over-long string, markup, control or
/// non-ASCII characters) is not sent to Shopify: the package goes to the attention list instead
/// of a push that can never succeed.
pub fn tracking_number_ok(number: &str) -> bool {
    !number.is_empty()
        && number.len() <= MAX_TRACKING_NUMBER
        && number.trim() == number
        && number
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b' '))
}

/// The carrier page of a tracking number: the shop's template with `{number}` filled in,
/// percent-encoded so a number cannot change the URL's structure. The dashboard links the same URL.
pub fn tracking_url(template: &str, number: &str) -> String {
    template.replace("{number}", &dropsync_http::encode_component(number))
}

/// Request lines grouped per fulfillment order: (FO id, [(FO line item id, quantity)]).
pub type FoLines = Vec<(String, Vec<(String, u32)>)>;

/// Final fulfillment-order statuses: nothing left there will ever be fulfilled.
fn is_final(status: &str) -> bool {
    ["CLOSED", "CANCELLED", "INCOMPLETE"]
        .iter()
        .any(|s| status.eq_ignore_ascii_case(s))
}

/// Chooses the fulfillment-order line items for a package: only FOs that support
/// `CREATE_FULFILLMENT`, only remaining quantities, and one location (a fulfillment may only span
/// FOs at one location).
///
/// A package is pushed whole or not at all: when part of it is still open in Shopify but cannot
/// be fulfilled now (an ON_HOLD or SCHEDULED FO, a fulfillment service's FO, or another location),
/// the package is not forced or split — the reason comes back for the merchant. Quantities that
/// are nowhere left (fulfilled by someone else) are simply not asked for.
pub fn choose_lines(state: &FulfillmentState, package: &Package) -> Result<FoLines, ChooseError> {
    let wanted = |li: &dropsync_shopify::admin::FoLineItem| {
        li.remaining_quantity > 0
            && package
                .items
                .iter()
                .any(|it| it.line_item_id == li.line_item_id && it.quantity > 0)
    };
    // The location: the first fulfillable FO holding something of the package.
    let location = state
        .fulfillment_orders
        .iter()
        .find(|fo| fo.can_create_fulfillment() && fo.line_items.iter().any(wanted))
        .map(|fo| fo.location.clone());

    let mut by_fo: FoLines = Vec::new();
    let mut blocked: Option<String> = None;
    let mut dead: Option<String> = None;
    for item in &package.items {
        let mut want = item.quantity;
        if let Some(location) = &location {
            for fo in state
                .fulfillment_orders
                .iter()
                .filter(|fo| fo.can_create_fulfillment() && fo.location == *location)
            {
                for li in fo
                    .line_items
                    .iter()
                    .filter(|li| li.line_item_id == item.line_item_id && li.remaining_quantity > 0)
                {
                    let take = want.min(li.remaining_quantity);
                    if take == 0 {
                        continue;
                    }
                    want -= take;
                    match by_fo.iter_mut().find(|(id, _)| *id == fo.id) {
                        Some((_, lines)) => lines.push((li.id.clone(), take)),
                        None => by_fo.push((fo.id.clone(), vec![(li.id.clone(), take)])),
                    }
                }
            }
        }
        if want == 0 {
            continue;
        }
        // What is missing: open somewhere it cannot be fulfilled from now, or gone.
        for fo in &state.fulfillment_orders {
            let open_here = fo
                .line_items
                .iter()
                .any(|li| li.line_item_id == item.line_item_id && li.remaining_quantity > 0);
            if !open_here {
                continue;
            }
            if fo.can_create_fulfillment() {
                if location.as_ref() != Some(&fo.location) {
                    blocked.get_or_insert_with(|| {
                        "the package's items are at several locations".to_owned()
                    });
                }
            } else if is_final(&fo.status) {
                dead.get_or_insert_with(|| format!("fulfillment order is {}", fo.status));
            } else {
                blocked.get_or_insert_with(|| match &fo.request_status {
                    Some(r)
                        if fo.status.eq_ignore_ascii_case("OPEN")
                            && !r.eq_ignore_ascii_case("UNSUBMITTED") =>
                    {
                        format!("fulfillment order is {} ({r})", fo.status)
                    }
                    _ if fo.status.eq_ignore_ascii_case("OPEN") => {
                        "fulfillment order belongs to a fulfillment service".to_owned()
                    }
                    _ => format!("fulfillment order is {}", fo.status),
                });
            }
        }
    }
    if let Some(reason) = blocked {
        return Err(ChooseError::Blocked(reason));
    }
    if !by_fo.is_empty() {
        return Ok(by_fo);
    }
    if let Some(reason) = dead {
        return Err(ChooseError::Blocked(reason));
    }
    if state.fulfillment_orders.is_empty() {
        return Err(ChooseError::NoFulfillmentOrdersYet);
    }
    Err(ChooseError::NothingRemaining)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChooseError {
    /// ON_HOLD, SCHEDULED, a fulfillment service's FO, several locations: not forced; the
    /// merchant decides.
    #[error("not fulfillable: {0}")]
    Blocked(String),
    /// Shopify creates fulfillment orders shortly after the order: try again.
    #[error("no fulfillment orders yet")]
    NoFulfillmentOrdersYet,
    /// Everything in the package is already fulfilled (by someone else).
    #[error("nothing left to fulfil")]
    NothingRemaining,
}

/// Fulfillments that stand (not cancelled or failed).
fn live(state: &FulfillmentState) -> impl Iterator<Item = &ExistingFulfillment> {
    state.fulfillments.iter().filter(|f| {
        !["CANCELLED", "ERROR", "FAILURE"]
            .iter()
            .any(|s| f.status.trim().eq_ignore_ascii_case(s))
    })
}

/// The standing fulfillment that carries this tracking number, if any.
fn carrying<'a>(state: &'a FulfillmentState, number: &str) -> Option<&'a ExistingFulfillment> {
    let number = number.trim();
    live(state).find(|f| f.tracking_numbers.iter().any(|n| n.trim() == number))
}

/// The pusher's dependencies, built once.
#[derive(Debug)]
pub struct PushService<A> {
    pub store: Store,
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

impl<A: ShopifyAdmin> PushService<A> {
    /// Handles one message. `Ok` acknowledges it; `Err` brings it back for a retry.
    pub async fn handle(
        &self,
        msg: &PushMessage,
        order_id: u64,
        ae_order_id: u64,
    ) -> Result<PushOutcome, PushError> {
        let Some(stored) = self.store.get_order(&msg.shop, order_id).await? else {
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
        let record = self.store.get_shop_cached(t.shop).await?;
        if !record.active {
            return Ok(PushOutcome::Skipped("shop inactive"));
        }
        let tokens = crate::tokens::shared(
            &self.store,
            &self.credentials,
            self.admin.admin_base_override(),
        )
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
    async fn claim(&self, t: &Target<'_>) -> Result<Option<PushLease>, PushError> {
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
    async fn release(&self, t: &Target<'_>, lease: PushLease) {
        if let Err(e) = self.store.release_push_lease(lease).await {
            warn!(shop = %t.shop, order_id = t.order_id, tracking = t.tn,
                error = %e, "could not release the package's claim");
        }
    }
}

/// One queue message: its id (the SQS message id) and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMessage {
    pub id: String,
    pub body: String,
}

/// A queue message as delivered: how many times SQS has handed it out so far
/// (`ApproximateReceiveCount`, 1 on the first delivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub message: BatchMessage,
    pub receive_count: u32,
}

struct Parsed {
    id: String,
    msg: PushMessage,
    order_id: u64,
    ae: u64,
    receive_count: u32,
}

/// Runs a batch of push messages and returns the ids of the messages to retry (SQS batch-item
/// failures). Messages of one order run one after another, orders run concurrently. A malformed
/// message is logged and acknowledged: a poison message never blocks the batch.
pub async fn push_batch<A: ShopifyAdmin + 'static>(
    svc: Arc<PushService<A>>,
    messages: Vec<BatchMessage>,
) -> Vec<String> {
    let deliveries = messages
        .into_iter()
        .map(|message| Delivery {
            message,
            receive_count: 1,
        })
        .collect();
    push_deliveries(svc, deliveries, BatchLimits::default()).await
}

/// What bounds a batch: the queue's redrive policy and the invocation's time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchLimits {
    /// The queue's `maxReceiveCount`: a message failing on this delivery is dead-lettered next.
    pub max_receives: Option<u32>,
    /// When the invocation must have answered (the Lambda deadline less a reserve). A push still
    /// running then is abandoned like a crash — the package's lease and the read-back after an
    /// unknown outcome make that safe — and its message reported for a retry; messages not started
    /// are reported without being tried. Lambda would otherwise time out and return the whole
    /// batch, done messages included.
    pub deadline: Option<std::time::Instant>,
}

/// [`push_batch`] knowing each message's delivery count. With `max_receives` (the queue's
/// `maxReceiveCount`), a message that fails on its last delivery — the next stop is the
/// dead-letter queue — has its failure recorded on the package first, so the merchant sees it
/// (`GET /shops/{shop}/attention`) while the push stays due for a replay or the next run.
pub async fn push_deliveries<A: ShopifyAdmin + 'static>(
    svc: Arc<PushService<A>>,
    deliveries: Vec<Delivery>,
    limits: BatchLimits,
) -> Vec<String> {
    let BatchLimits {
        max_receives,
        deadline,
    } = limits;
    let mut groups: BTreeMap<(String, u64), Vec<Parsed>> = BTreeMap::new();
    for Delivery {
        message: BatchMessage { id, body },
        receive_count,
    } in deliveries
    {
        match PushMessage::parse(&body) {
            Ok((msg, order_id, ae)) => groups
                .entry((msg.shop.to_string(), order_id))
                .or_default()
                .push(Parsed {
                    id,
                    msg,
                    order_id,
                    ae,
                    receive_count,
                }),
            Err(e) => {
                warn!(message_id = id.as_str(), error = %e, "malformed message acknowledged");
            }
        }
    }
    let mut set = JoinSet::new();
    let mut ids_of_task = HashMap::new();
    for (_, msgs) in groups {
        let svc = svc.clone();
        let ids: Vec<String> = msgs.iter().map(|m| m.id.clone()).collect();
        let handle = set.spawn(async move {
            let mut failed = Vec::new();
            for Parsed {
                id,
                msg,
                order_id,
                ae,
                receive_count,
            } in msgs
            {
                let result = match deadline {
                    Some(d) if Instant::now() >= d => {
                        Err(PushError::Retry("no time left in this invocation".into()))
                    }
                    Some(d) => tokio::time::timeout_at(
                        tokio::time::Instant::from_std(d),
                        svc.handle(&msg, order_id, ae),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        Err(PushError::Retry(
                            "the invocation ran out of time mid-push".into(),
                        ))
                    }),
                    None => svc.handle(&msg, order_id, ae).await,
                };
                match result {
                    Ok(outcome) => {
                        info!(shop = %msg.shop, order_id, ae_order_id = ae,
                            tracking = msg.tracking_number.as_str(), ?outcome, "push handled");
                    }
                    Err(PushError::Retry(why))
                        if max_receives.is_some_and(|max| receive_count >= max) =>
                    {
                        error!(shop = %msg.shop, order_id, ae_order_id = ae,
                            tracking = msg.tracking_number.as_str(), why, receive_count,
                            "push failed on its last delivery; the message goes to the dead-letter queue");
                        svc.record_gave_up(&msg, order_id, ae, &why, receive_count)
                            .await;
                        failed.push(id);
                    }
                    Err(PushError::Retry(why)) => {
                        warn!(shop = %msg.shop, order_id, ae_order_id = ae,
                            tracking = msg.tracking_number.as_str(), why, "push will be retried");
                        failed.push(id);
                    }
                }
            }
            failed
        });
        ids_of_task.insert(handle.id(), ids);
    }
    let mut failed = Vec::new();
    while let Some(done) = set.join_next_with_id().await {
        match done {
            Ok((_, ids)) => failed.extend(ids),
            // A task that died cannot say which of its messages were done: retry them all (the
            // pusher is idempotent, so the done ones are skipped next time).
            Err(e) => {
                warn!(error = %e, "push task failed");
                failed.extend(ids_of_task.remove(&e.id()).unwrap_or_default());
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use dropsync_shopify::admin::{FoLineItem, FulfillmentOrder};
    use serde_json::json;

    /// Built from JSON, so new fields with defaults do not break these tests.
    fn package(carrier: Option<&str>, items: &[(u64, u32)]) -> Package {
        serde_json::from_value(json!({
            "tracking_number": "YT2601234567890123",
            "carrier": carrier,
            "items": items.iter().map(|(id, q)| json!({"line_item_id": id, "quantity": q})).collect::<Vec<_>>(),
            "push": {"state": "pending"},
            "found_at_ms": 0,
        }))
        .unwrap()
    }

    fn fo(id: &str, status: &str, location: &str, lines: &[(u64, u32)]) -> FulfillmentOrder {
        let actions: &[&str] = match status {
            "OPEN" | "IN_PROGRESS" => &["CREATE_FULFILLMENT", "HOLD"],
            "ON_HOLD" => &["RELEASE_HOLD", "HOLD", "MOVE"],
            "SCHEDULED" => &["MARK_AS_OPEN"],
            _ => &[],
        };
        FulfillmentOrder {
            id: format!("gid://shopify/FulfillmentOrder/{id}"),
            status: status.to_owned(),
            request_status: Some("UNSUBMITTED".to_owned()),
            supported_actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            location: Some(location.to_owned()),
            line_items: lines
                .iter()
                .map(|(line, remaining)| FoLineItem {
                    id: format!("gid://shopify/FulfillmentOrderLineItem/{id}{line}"),
                    line_item_id: *line,
                    remaining_quantity: *remaining,
                    total_quantity: 3,
                })
                .collect(),
        }
    }

    fn state(fos: Vec<FulfillmentOrder>) -> FulfillmentState {
        FulfillmentState {
            fulfillment_orders: fos,
            ..FulfillmentState::default()
        }
    }

    #[test]
    fn a_package_takes_its_quantities_from_open_fulfillment_orders_at_one_location() {
        let s = state(vec![fo("1", "OPEN", "Main", &[(10, 2), (11, 1), (12, 1)])]);
        let lines = choose_lines(&s, &package(None, &[(10, 1), (11, 1)])).unwrap();
        assert_eq!(
            lines,
            vec![(
                "gid://shopify/FulfillmentOrder/1".to_owned(),
                vec![
                    ("gid://shopify/FulfillmentOrderLineItem/110".to_owned(), 1),
                    ("gid://shopify/FulfillmentOrderLineItem/111".to_owned(), 1)
                ]
            )]
        );
    }

    #[test]
    fn an_item_on_hold_blocks_the_whole_package_instead_of_a_partial_fulfillment() {
        let s = state(vec![
            fo("1", "ON_HOLD", "Main", &[(10, 1)]),
            fo("2", "OPEN", "Main", &[(11, 1)]),
        ]);
        assert_eq!(
            choose_lines(&s, &package(None, &[(10, 1), (11, 1)])),
            Err(ChooseError::Blocked("fulfillment order is ON_HOLD".into()))
        );
        let s = state(vec![fo("1", "SCHEDULED", "Main", &[(10, 1)])]);
        assert_eq!(
            choose_lines(&s, &package(None, &[(10, 1)])),
            Err(ChooseError::Blocked(
                "fulfillment order is SCHEDULED".into()
            ))
        );
    }

    #[test]
    fn a_fulfillment_service_order_and_a_second_location_are_not_forced() {
        let mut service = fo("1", "OPEN", "Warehouse", &[(10, 1)]);
        service.supported_actions = vec!["REQUEST_FULFILLMENT".into(), "HOLD".into()];
        assert_eq!(
            choose_lines(&state(vec![service]), &package(None, &[(10, 1)])),
            Err(ChooseError::Blocked(
                "fulfillment order belongs to a fulfillment service".into()
            ))
        );
        let s = state(vec![
            fo("1", "OPEN", "Main", &[(10, 1)]),
            fo("2", "OPEN", "Shenzhen", &[(11, 1)]),
        ]);
        assert!(matches!(
            choose_lines(&s, &package(None, &[(10, 1), (11, 1)])),
            Err(ChooseError::Blocked(r)) if r.contains("several locations")
        ));
    }

    #[test]
    fn what_someone_else_fulfilled_is_left_out_and_nothing_left_is_said_so() {
        let s = state(vec![fo("1", "IN_PROGRESS", "Main", &[(10, 0), (11, 1)])]);
        let lines = choose_lines(&s, &package(None, &[(10, 1), (11, 1)])).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].1.len(), 1);
        let closed = state(vec![fo("1", "CLOSED", "Main", &[(10, 0)])]);
        assert_eq!(
            choose_lines(&closed, &package(None, &[(10, 1)])),
            Err(ChooseError::NothingRemaining)
        );
        assert_eq!(
            choose_lines(&state(vec![]), &package(None, &[(10, 1)])),
            Err(ChooseError::NoFulfillmentOrdersYet)
        );
        // A canceled order: its FOs still hold the quantities, and that is the merchant's to see.
        let cancelled = state(vec![fo("1", "CANCELLED", "Main", &[(10, 1)])]);
        assert_eq!(
            choose_lines(&cancelled, &package(None, &[(10, 1)])),
            Err(ChooseError::Blocked(
                "fulfillment order is CANCELLED".into()
            ))
        );
    }

    #[test]
    fn a_package_asks_for_no_more_than_remains() {
        let s = state(vec![fo("1", "OPEN", "Main", &[(10, 1)])]);
        let lines = choose_lines(&s, &package(None, &[(10, 3)])).unwrap();
        assert_eq!(lines[0].1[0].1, 1);
    }

    #[test]
    fn tracking_numbers_are_checked_and_url_encoded() {
        for ok in [
            "1Z999AA10123456784",
            "LP00123456789012",
            "CAINIAO-123_4.5",
            "9400 1000 00",
        ] {
            assert!(tracking_number_ok(ok), "{ok}");
        }
        let long = "A".repeat(MAX_TRACKING_NUMBER + 1);
        for bad in [
            "",
            " LP1",
            "LP1 ",
            "LP1&x=1",
            "<b>LP1</b>",
            "LP1\n",
            "LP\u{e9}1",
            long.as_str(),
        ] {
            assert!(!tracking_number_ok(bad), "{bad}");
        }
        assert_eq!(
            tracking_url("https://t.example/?n={number}", "LP 1&x=/é"),
            "https://t.example/?n=LP%201%26x%3D%2F%C3%A9"
        );
        let settings = ShopSettings::default();
        let mut p = package(None, &[(1, 1)]);
        p.tracking_number = "AB 12&c".into();
        assert_eq!(
            tracking_info(&settings, &p).url.as_deref(),
            Some("https://global.cainiao.com/detail.htm?mailNoList=AB%2012%26c")
        );
    }

    #[test]
    fn known_carriers_get_shopifys_exact_name_and_others_go_as_free_text_always_with_a_url() {
        let settings = ShopSettings::default();
        let t = tracking_info(&settings, &package(Some(" yunexpress "), &[(1, 1)]));
        assert_eq!(t.company.as_deref(), Some("YunExpress"));
        assert_eq!(t.number, "YT2601234567890123");
        assert_eq!(
            t.url.as_deref(),
            Some("https://global.cainiao.com/detail.htm?mailNoList=YT2601234567890123")
        );
        let t = tracking_info(
            &settings,
            &package(Some("Cainiao Super Economy"), &[(1, 1)]),
        );
        assert_eq!(t.company.as_deref(), Some("Cainiao Super Economy"));
        assert!(t.url.is_some());
        let t = tracking_info(&settings, &package(None, &[(1, 1)]));
        assert_eq!(t.company, None);
        assert!(t.url.is_some());

        let mut mapped = ShopSettings::default();
        mapped
            .carrier_mapping
            .insert("AliExpress Selection Standard".into(), "China Post".into());
        mapped.tracking_url_template = "https://t.17track.net/en#nums={number}".into();
        let t = tracking_info(
            &mapped,
            &package(Some("aliexpress selection standard"), &[(1, 1)]),
        );
        assert_eq!(t.company.as_deref(), Some("China Post"));
        assert_eq!(
            t.url.as_deref(),
            Some("https://t.17track.net/en#nums=YT2601234567890123")
        );
    }
}
