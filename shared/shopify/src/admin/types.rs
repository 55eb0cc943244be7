//! The port: what dropsync asks of the Shopify Admin API, in plain types.
//!
//! Ids the caller matches against its own records (orders, line items) are `u64`; ids it only
//! hands back to Shopify (fulfillment orders, their line items, fulfillments) stay GID strings.
//! Shopify enums are open strings: an unknown value is data, never an error.

use super::AdminError;
use dropsync_domain::{ShopDomain, ShopifyFacts};
use std::future::Future;

/// What dropsync asks of Shopify. The tracking pusher is generic over it, so tests can use a fake.
pub trait ShopifyAdmin: Send + Sync {
    /// The order's fulfillment orders and existing fulfillments, complete (pages beyond the
    /// first are fetched). `None` when the order does not exist or is not visible to the app.
    /// Right after `orders/create` the fulfillment orders may still be empty (Shopify routes them
    /// in the background): retry later.
    fn fulfillment_state(
        &self,
        shop: &ShopDomain,
        token: &str,
        order_id: u64,
    ) -> impl Future<Output = Result<Option<FulfillmentState>, AdminError>> + Send;

    /// Creates one fulfillment (`fulfillmentCreate`). Not idempotent: on a retryable error the
    /// outcome is unknown, so re-read [`ShopifyAdmin::fulfillment_state`] and look for the
    /// tracking number before trying again.
    fn create_fulfillment(
        &self,
        shop: &ShopDomain,
        token: &str,
        req: &FulfillmentRequest,
    ) -> impl Future<Output = Result<MutationOutcome, AdminError>> + Send;

    /// Replaces a fulfillment's tracking (`fulfillmentTrackingInfoUpdate`); `notify_customer`
    /// emails the customer now and on later updates.
    fn update_tracking(
        &self,
        shop: &ShopDomain,
        token: &str,
        fulfillment_id: &str,
        tracking: &TrackingInfo,
        notify_customer: bool,
    ) -> impl Future<Output = Result<MutationOutcome, AdminError>> + Send;

    /// Re-fetches an order as dropsync's facts (for id-only EventBridge events). Returns the
    /// order id with them; `None` when the order does not exist or is not visible.
    fn fetch_order(
        &self,
        shop: &ShopDomain,
        token: &str,
        order_id: u64,
    ) -> impl Future<Output = Result<Option<(u64, ShopifyFacts)>, AdminError>> + Send;

    /// `SHOPIFY_ADMIN_URL` when set (the token endpoint then lives there too); `None` means
    /// `https://{shop}`.
    fn admin_base_override(&self) -> Option<String> {
        None
    }
    /// Whether Shopify now refuses `token` for `shop` (HTTP 401/403): what confirms an
    /// `app/uninstalled` delivery, since Shopify revokes an app's tokens when it is uninstalled.
    /// `Ok(false)` when the token works; an error when Shopify could not say (retry later).
    fn token_refused(
        &self,
        shop: &ShopDomain,
        token: &str,
    ) -> impl Future<Output = Result<bool, AdminError>> + Send;

    /// One page of the shop's orders updated at or after `since_ms`, oldest update first
    /// (`orders(query: "updated_at:>='…'", sortKey: UPDATED_AT)`), from the cursor `after`.
    fn orders_updated_since(
        &self,
        shop: &ShopDomain,
        token: &str,
        since_ms: i64,
        after: Option<&str>,
    ) -> impl Future<Output = Result<OrderStampPage, AdminError>> + Send;
}

/// An order's id and last update, as reconciliation lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderStamp {
    pub id: u64,
    /// `updatedAt`, ms epoch.
    pub updated_at_ms: i64,
}

/// One page of [`ShopifyAdmin::orders_updated_since`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrderStampPage {
    pub orders: Vec<OrderStamp>,
    /// The cursor of the next page; `None` on the last.
    pub next: Option<String>,
}

/// An order's fulfillment picture.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FulfillmentState {
    /// `Order.displayFulfillmentStatus` (`UNFULFILLED`, `PARTIALLY_FULFILLED`, `FULFILLED`,
    /// `ON_HOLD`, …), kept open.
    pub display_fulfillment_status: String,
    pub fulfillment_orders: Vec<FulfillmentOrder>,
    pub fulfillments: Vec<ExistingFulfillment>,
}

/// One fulfillment order (a location's share of the order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FulfillmentOrder {
    /// GID, `gid://shopify/FulfillmentOrder/…`.
    pub id: String,
    /// `OPEN`, `IN_PROGRESS`, `SCHEDULED`, `ON_HOLD`, `INCOMPLETE`, `CANCELLED`, `CLOSED`, …
    pub status: String,
    /// `UNSUBMITTED`, `SUBMITTED`, `ACCEPTED`, …
    pub request_status: Option<String>,
    /// `CREATE_FULFILLMENT`, `RELEASE_HOLD`, `HOLD`, `MOVE`, … Fulfil only FOs that list
    /// `CREATE_FULFILLMENT` and have something remaining.
    pub supported_actions: Vec<String>,
    /// The assigned location's name.
    pub location: Option<String>,
    pub line_items: Vec<FoLineItem>,
}

impl FulfillmentOrder {
    /// Whether Shopify will accept `fulfillmentCreate` on this FO now.
    pub fn can_create_fulfillment(&self) -> bool {
        self.supported_actions
            .iter()
            .any(|a| a == "CREATE_FULFILLMENT")
    }
}

/// A fulfillment order's line item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FoLineItem {
    /// GID, `gid://shopify/FulfillmentOrderLineItem/…`: what `fulfillmentCreate` takes.
    pub id: String,
    /// The order's line item (the webhook's `line_items[].id`).
    pub line_item_id: u64,
    pub remaining_quantity: u32,
    pub total_quantity: u32,
}

/// A fulfillment that exists on the order (made by dropsync, the merchant or another app).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExistingFulfillment {
    /// GID, `gid://shopify/Fulfillment/…`.
    pub id: String,
    /// `SUCCESS`, `CANCELLED`, `ERROR`, `FAILURE` (legacy `OPEN`, `PENDING`), kept open.
    pub status: String,
    /// Every tracking number on it, in Shopify's order.
    pub tracking_numbers: Vec<String>,
    /// `(line item id, quantity)` it covers.
    pub line_items: Vec<(u64, u32)>,
}

/// One package to fulfil: items of fulfillment orders that share the order and location.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FulfillmentRequest {
    /// The order, for logs.
    pub order_id: u64,
    /// `(FO GID, [(FO line item GID, quantity)])`. An empty item list fulfils everything left in
    /// that FO (Shopify's rule).
    pub line_items_by_fo: Vec<(String, Vec<(String, u32)>)>,
    pub tracking: TrackingInfo,
    /// Shopify's shipping-confirmation email (the shop's setting).
    pub notify_customer: bool,
}

/// Tracking as sent to Shopify: one `number` (never `numbers`), `url` only with a number, and
/// `company` only when given (it must match Shopify's carrier list exactly to be recognised;
/// other names are free text, which is why a `url` should go with them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrackingInfo {
    pub company: Option<String>,
    pub number: String,
    pub url: Option<String>,
}

/// How a mutation ended when Shopify answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MutationOutcome {
    /// Done; the fulfillment's GID when Shopify returned it.
    Done { fulfillment_id: Option<String> },
    /// Shopify refused (HTTP 200, nothing changed): `"field.path: message"` per error. The
    /// texts are for people; decide from the FO state, not from them.
    UserErrors(Vec<String>),
}
