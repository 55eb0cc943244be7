//! dropsync → Shopify: one package becomes one Shopify fulfillment, exactly once.
//!
//! Exactly once rests on three things: the table records a package as pushed with a conditional
//! write; before creating anything the pusher reads the order's fulfillments and treats one with
//! this tracking number as proof of an earlier success (a crash between Shopify's answer and our
//! write, or the merchant fulfilling by hand); and a mutation whose outcome is unknown (timeout,
//! 5xx) is never retried blind — the message comes back and the read decides.

use crate::credentials::Credentials;
use crate::now_ms;
use crate::queue::PushMessage;
use dropsync_domain::ops::{mark_push_failed, mark_pushed};
use dropsync_domain::{Package, PushState, ShopDomain, ShopSettings};
use dropsync_shopify::admin::{
    AdminError, FulfillmentRequest, FulfillmentState, MutationOutcome, ShopifyAdmin, TrackingInfo,
};
use dropsync_store::{Store, StoreError};
use std::sync::Arc;
use tracing::{info, warn};

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// A fulfillment was created (or its tracking updated) now.
    Pushed,
    /// It was already in Shopify (earlier success, or fulfilled by hand): recorded as pushed.
    AlreadyInShopify,
    /// Nothing to do (already recorded as pushed, unknown package, inactive shop).
    Skipped(&'static str),
    /// Shopify refused it: recorded on the package for the merchant.
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

/// The tracking info to send: a known Shopify carrier name when the carrier is recognisable
/// (from the shop's mapping, or the name itself), else the carrier as free text plus a URL.
pub fn tracking_info(settings: &ShopSettings, package: &Package) -> TrackingInfo {
    let number = package.tracking_number.clone();
    let raw = package.carrier.clone().unwrap_or_default();
    let mapped = settings.carrier_mapping.get(&raw).cloned().or_else(|| {
        KNOWN_CARRIERS
            .iter()
            .find(|c| c.eq_ignore_ascii_case(raw.trim()))
            .map(|c| (*c).to_owned())
    });
    let url = settings.tracking_url_template.replace("{number}", &number);
    match mapped {
        Some(company) => TrackingInfo {
            company: Some(company),
            number,
            url: Some(url),
        },
        None => TrackingInfo {
            company: (!raw.trim().is_empty()).then(|| raw.trim().to_owned()),
            number,
            url: Some(url),
        },
    }
}

/// Request lines grouped per fulfillment order: (FO id, [(FO line item id, quantity)]).
pub type FoLines = Vec<(String, Vec<(String, u32)>)>;

/// Chooses fulfillment-order line items for a package: only FOs that support
/// `CREATE_FULFILLMENT`, only remaining quantities. Returns the request lines, grouped per FO,
/// and why nothing could be chosen when that is so.
pub fn choose_lines(state: &FulfillmentState, package: &Package) -> Result<FoLines, ChooseError> {
    let mut by_fo: FoLines = Vec::new();
    let mut blocked: Vec<String> = Vec::new();
    let mut location: Option<Option<String>> = None;
    for item in &package.items {
        let mut want = item.quantity;
        for fo in &state.fulfillment_orders {
            if want == 0 {
                break;
            }
            let has_line = fo
                .line_items
                .iter()
                .any(|li| li.line_item_id == item.line_item_id && li.remaining_quantity > 0);
            if !has_line {
                continue;
            }
            if !fo
                .supported_actions
                .iter()
                .any(|a| a == "CREATE_FULFILLMENT")
            {
                blocked.push(format!("fulfillment order is {}", fo.status));
                continue;
            }
            // One fulfillment may only span fulfillment orders at one location.
            match &location {
                None => location = Some(fo.location.clone()),
                Some(l) if *l != fo.location => continue,
                Some(_) => {}
            }
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
    if !by_fo.is_empty() {
        return Ok(by_fo);
    }
    if let Some(reason) = blocked.into_iter().next() {
        return Err(ChooseError::Blocked(reason));
    }
    if state.fulfillment_orders.is_empty() {
        return Err(ChooseError::NoFulfillmentOrdersYet);
    }
    Err(ChooseError::NothingRemaining)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChooseError {
    /// ON_HOLD, SCHEDULED, a fulfillment service's FO: not forced; the merchant decides.
    #[error("not fulfillable: {0}")]
    Blocked(String),
    /// Shopify creates fulfillment orders shortly after the order: try again.
    #[error("no fulfillment orders yet")]
    NoFulfillmentOrdersYet,
    /// Everything in the package is already fulfilled (by someone else).
    #[error("nothing left to fulfil")]
    NothingRemaining,
}

/// The pusher's dependencies, built once.
#[derive(Debug)]
pub struct PushService<A> {
    pub store: Store,
    pub admin: Arc<A>,
    pub credentials: Arc<Credentials>,
}

impl<A: ShopifyAdmin> PushService<A> {
    /// Handles one message. `Ok` acknowledges it; `Err` brings it back for a retry.
    pub async fn handle(
        &self,
        msg: &PushMessage,
        order_id: u64,
        ae_order_id: u64,
    ) -> Result<PushOutcome, PushError> {
        let shop = &msg.shop;
        let tn = msg.tracking_number.as_str();
        let Some(stored) = self.store.get_order(shop, order_id).await? else {
            return Ok(PushOutcome::Skipped("no such order"));
        };
        let Some(package) = stored
            .order
            .supplier_order(ae_order_id)
            .and_then(|so| so.package(tn))
            .cloned()
        else {
            return Ok(PushOutcome::Skipped("no such package"));
        };
        if !package.push.is_due() {
            return Ok(PushOutcome::Skipped("already pushed"));
        }
        let record = self.store.get_shop(shop).await?;
        if !record.active {
            return Ok(PushOutcome::Skipped("shop inactive"));
        }
        let Some(token) = self.credentials.shop(shop).map(|c| c.access_token.clone()) else {
            return self
                .flag(
                    shop,
                    order_id,
                    ae_order_id,
                    tn,
                    "no access token for this shop",
                )
                .await;
        };

        let state = match self.admin.fulfillment_state(shop, &token, order_id).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return self
                    .flag(
                        shop,
                        order_id,
                        ae_order_id,
                        tn,
                        "order not found in Shopify",
                    )
                    .await;
            }
            Err(e) => return self.admin_error(shop, order_id, ae_order_id, tn, e).await,
        };

        let existing = state.fulfillments.iter().find(|f| {
            !f.status.eq_ignore_ascii_case("cancelled")
                && !f.status.eq_ignore_ascii_case("error")
                && !f.status.eq_ignore_ascii_case("failure")
                && f.tracking_numbers.iter().any(|n| n == tn)
        });
        if let Some(f) = existing {
            let id = f.id.clone();
            self.record_pushed(shop, order_id, ae_order_id, tn, Some(id))
                .await?;
            info!(shop = %shop, order_id, tracking = tn, "already in Shopify; recorded");
            return Ok(PushOutcome::AlreadyInShopify);
        }

        if let PushState::UpdatePending { fulfillment_id } = &package.push {
            let info = tracking_info(&record.settings, &package);
            return match self
                .admin
                .update_tracking(
                    shop,
                    &token,
                    fulfillment_id,
                    &info,
                    record.settings.notify_customer,
                )
                .await
            {
                Ok(MutationOutcome::Done { .. }) => {
                    self.record_pushed(
                        shop,
                        order_id,
                        ae_order_id,
                        tn,
                        Some(fulfillment_id.clone()),
                    )
                    .await?;
                    info!(shop = %shop, order_id, tracking = tn, "tracking updated in Shopify");
                    Ok(PushOutcome::Pushed)
                }
                Ok(MutationOutcome::UserErrors(errs)) => {
                    self.flag(shop, order_id, ae_order_id, tn, &errs.join("; "))
                        .await
                }
                Err(e) => self.admin_error(shop, order_id, ae_order_id, tn, e).await,
            };
        }

        let lines = match choose_lines(&state, &package) {
            Ok(lines) => lines,
            Err(ChooseError::NoFulfillmentOrdersYet) => {
                return Err(PushError::Retry("no fulfillment orders yet".into()));
            }
            Err(ChooseError::NothingRemaining) => {
                // Fulfilled by someone else under another number: nothing to create, and nothing
                // left to wait for.
                self.record_pushed(shop, order_id, ae_order_id, tn, None)
                    .await?;
                return Ok(PushOutcome::AlreadyInShopify);
            }
            Err(e @ ChooseError::Blocked(_)) => {
                return self
                    .flag(shop, order_id, ae_order_id, tn, &e.to_string())
                    .await;
            }
        };
        let req = FulfillmentRequest {
            order_id,
            line_items_by_fo: lines,
            tracking: tracking_info(&record.settings, &package),
            notify_customer: record.settings.notify_customer,
        };
        match self.admin.create_fulfillment(shop, &token, &req).await {
            Ok(MutationOutcome::Done { fulfillment_id }) => {
                self.record_pushed(shop, order_id, ae_order_id, tn, fulfillment_id)
                    .await?;
                info!(shop = %shop, order_id, ae_order_id, tracking = tn, "fulfillment created");
                Ok(PushOutcome::Pushed)
            }
            Ok(MutationOutcome::UserErrors(errs)) => {
                self.flag(shop, order_id, ae_order_id, tn, &errs.join("; "))
                    .await
            }
            Err(e) => self.admin_error(shop, order_id, ae_order_id, tn, e).await,
        }
    }

    async fn record_pushed(
        &self,
        shop: &ShopDomain,
        order_id: u64,
        ae: u64,
        tn: &str,
        fulfillment_id: Option<String>,
    ) -> Result<(), PushError> {
        let now = now_ms();
        self.store
            .update_order(shop, order_id, |o| {
                mark_pushed(o, ae, tn, fulfillment_id.clone(), now)
            })
            .await?;
        Ok(())
    }

    async fn flag(
        &self,
        shop: &ShopDomain,
        order_id: u64,
        ae: u64,
        tn: &str,
        reason: &str,
    ) -> Result<PushOutcome, PushError> {
        warn!(shop = %shop, order_id, ae_order_id = ae, tracking = tn, reason, "push flagged for the merchant");
        self.store
            .update_order(shop, order_id, |o| mark_push_failed(o, ae, tn, reason))
            .await?;
        Ok(PushOutcome::Flagged(reason.to_owned()))
    }

    async fn admin_error(
        &self,
        shop: &ShopDomain,
        order_id: u64,
        ae: u64,
        tn: &str,
        e: AdminError,
    ) -> Result<PushOutcome, PushError> {
        if e.is_retryable() {
            warn!(shop = %shop, order_id, tracking = tn, error = %e, "Shopify unavailable; message will come back");
            return Err(PushError::Retry(e.to_string()));
        }
        self.flag(shop, order_id, ae, tn, &e.to_string()).await
    }
}
