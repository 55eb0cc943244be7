//! The order model and the one pure function that derives an order's status from its parts.

use crate::aliexpress_map::SupplierAttention;
use crate::ids::ShopDomain;
use crate::placement::{Failure, Placement, PlacementState, UNCONFIRMED_ADVICE};
use crate::status::{OrderStatus, SupplierStatus, UserAction, is_automatic_transition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Shopify `financial_status`, kept open.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum FinancialStatus {
    Pending,
    Authorized,
    PartiallyPaid,
    Paid,
    PartiallyRefunded,
    Refunded,
    Voided,
    Expired,
    Other(String),
}

impl FinancialStatus {
    pub fn parse(raw: &str) -> Self {
        match raw.trim().to_ascii_lowercase().as_str() {
            "pending" => Self::Pending,
            "authorized" => Self::Authorized,
            "partially_paid" => Self::PartiallyPaid,
            "paid" => Self::Paid,
            "partially_refunded" => Self::PartiallyRefunded,
            "refunded" => Self::Refunded,
            "voided" => Self::Voided,
            "expired" => Self::Expired,
            _ => Self::Other(raw.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "pending",
            Self::Authorized => "authorized",
            Self::PartiallyPaid => "partially_paid",
            Self::Paid => "paid",
            Self::PartiallyRefunded => "partially_refunded",
            Self::Refunded => "refunded",
            Self::Voided => "voided",
            Self::Expired => "expired",
            Self::Other(s) => s,
        }
    }

    /// Payment captured: the order may be bought from the supplier.
    pub fn is_captured(&self) -> bool {
        matches!(self, Self::Paid | Self::PartiallyRefunded)
    }

    /// How far along the payment's life this is: a later stage never goes back to an earlier
    /// one. `None` for a value Shopify may add later (not ranked, never preferred).
    pub fn stage(&self) -> Option<u8> {
        match self {
            Self::Pending => Some(0),
            Self::Authorized => Some(1),
            Self::PartiallyPaid => Some(2),
            Self::Paid => Some(3),
            Self::PartiallyRefunded => Some(4),
            Self::Refunded | Self::Voided | Self::Expired => Some(5),
            Self::Other(_) => None,
        }
    }

    /// The money went back or never came: the order is canceled.
    pub fn is_void(&self) -> bool {
        matches!(self, Self::Refunded | Self::Voided | Self::Expired)
    }
}

impl From<String> for FinancialStatus {
    fn from(value: String) -> Self {
        Self::parse(&value)
    }
}

impl From<FinancialStatus> for String {
    fn from(value: FinancialStatus) -> Self {
        value.as_str().to_owned()
    }
}

/// A Shopify line item: only what the sync needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    pub id: u64,
    pub quantity: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Quantity Shopify reports fulfilled, by anyone (dropsync, the merchant by hand, other apps).
    #[serde(default)]
    pub fulfilled_quantity: u32,
}

impl LineItem {
    /// A line of `quantity` units, none fulfilled yet, with nothing else known of it (no SKU,
    /// product, variant or title); set those with struct update syntax.
    pub fn new(id: u64, quantity: u32) -> Self {
        Self {
            id,
            quantity,
            sku: None,
            product_id: None,
            variant_id: None,
            title: None,
            fulfilled_quantity: 0,
        }
    }
}

/// What a Shopify order event tells dropsync. Every field here is owned by Shopify: a webhook
/// replaces them all at once, and nothing else writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopifyFacts {
    pub name: String,
    pub created_at_ms: i64,
    /// The payload's `updated_at`: a delivery is applied only when this is newer than stored.
    pub updated_at_ms: i64,
    pub financial_status: FinancialStatus,
    pub cancelled: bool,
    pub test: bool,
    pub fulfillment_status: Option<String>,
    pub line_items: Vec<LineItem>,
    /// Tracking numbers of the order's successful Shopify fulfillments (made by anyone).
    pub fulfillment_tracking: Vec<String>,
}

/// Longest text kept from Shopify (titles, SKUs, the order name, tracking numbers): Shopify's
/// own limit for these fields is 255 characters, so anything longer is not worth storing.
pub const MAX_TEXT_CHARS: usize = 255;

fn clip(s: &mut String) {
    if let Some((at, _)) = s.char_indices().nth(MAX_TEXT_CHARS) {
        s.truncate(at);
    }
}

impl ShopifyFacts {
    /// Clips every text to [`MAX_TEXT_CHARS`] so a hostile or odd payload cannot blow up the
    /// stored item (DynamoDB refuses items over 400 KB).
    pub fn clip_texts(&mut self) {
        clip(&mut self.name);
        for li in &mut self.line_items {
            if let Some(t) = li.title.as_mut() {
                clip(t);
            }
            if let Some(t) = li.sku.as_mut() {
                clip(t);
            }
        }
        for t in &mut self.fulfillment_tracking {
            clip(t);
        }
    }

    /// Two events with the same `updated_at` (Shopify's timestamps have whole seconds, so an
    /// `orders/paid` can share its second with the `orders/create` before it): neither is newer,
    /// so they are joined on what only moves forward — payment stage, cancellation, fulfilled
    /// quantities and tracking numbers — whatever order they arrive in. Returns whether `self`
    /// changed.
    pub fn join_same_instant(&mut self, other: &ShopifyFacts) -> bool {
        let before = self.clone();
        if let (Some(a), Some(b)) = (
            self.financial_status.stage(),
            other.financial_status.stage(),
        ) && b > a
        {
            self.financial_status = other.financial_status.clone();
        }
        self.cancelled |= other.cancelled;
        let rank = |f: &Option<String>| match f.as_deref() {
            None => 0,
            Some("partial") => 1,
            Some(_) => 2,
        };
        if rank(&other.fulfillment_status) > rank(&self.fulfillment_status) {
            self.fulfillment_status = other.fulfillment_status.clone();
        }
        for li in &mut self.line_items {
            if let Some(o) = other.line_items.iter().find(|o| o.id == li.id) {
                li.fulfilled_quantity = li.fulfilled_quantity.max(o.fulfilled_quantity);
            }
        }
        for t in &other.fulfillment_tracking {
            if !self.fulfillment_tracking.contains(t) {
                self.fulfillment_tracking.push(t.clone());
            }
        }
        *self != before
    }

    /// Drops the line-item titles (display only; the sync never reads them): the last resort
    /// for an order too big to store with them.
    pub fn drop_titles(&mut self) {
        for li in &mut self.line_items {
            li.title = None;
        }
    }
}

/// One line of a package: a Shopify line item and how many of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageItem {
    pub line_item_id: u64,
    pub quantity: u32,
}

/// Where a package stands with Shopify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PushState {
    /// Tracking found; a push is due (a message is, or will be, on the tracking queue).
    Pending,
    /// The Shopify fulfillment exists.
    Pushed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fulfillment_id: Option<String>,
    },
    /// Pushed, and the tracking number changed since: the fulfillment's tracking must be updated.
    UpdatePending { fulfillment_id: String },
    /// Shopify refused it (userErrors, a hold, a permanent error): the merchant must look.
    Failed { reason: String },
}

impl PushState {
    pub fn is_pushed(&self) -> bool {
        matches!(self, Self::Pushed { .. } | Self::UpdatePending { .. })
    }

    pub fn is_due(&self) -> bool {
        matches!(self, Self::Pending | Self::UpdatePending { .. })
    }
}

/// A parcel shipped by the supplier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub tracking_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    pub items: Vec<PackageItem>,
    pub push: PushState,
    /// The number this package had before AliExpress corrected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_tracking: Option<String>,
    pub found_at_ms: i64,
    /// When the package last became due for a push (found, or its tracking number corrected);
    /// ms epoch, 0 for packages stored before this was recorded. The sync that makes a package
    /// due sends its message; any later sync re-sends it only once this is older than the resend
    /// grace (the message may still be on its way), so a rerun queues nothing new.
    #[serde(default)]
    pub due_since_ms: i64,
    /// Set when the pusher gave up retrying this package (its message went to the dead-letter
    /// queue). The push stays due — a scheduled run or a replay of the DLQ sends it again — and
    /// the merchant sees why meanwhile. Cleared when the push succeeds or is flagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gave_up: Option<PushGaveUp>,
}

impl Package {
    /// Whether a merchant's "try again" has something to do: Shopify refused the push, or it went
    /// to the dead-letter queue.
    pub fn needs_retry(&self) -> bool {
        matches!(self.push, PushState::Failed { .. })
            || (self.push.is_due() && self.gave_up.is_some())
    }
}

/// The last failure of a push that exhausted its retries (see [`Package::gave_up`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushGaveUp {
    pub reason: String,
    /// Deliveries of the message that all failed.
    pub attempts: u32,
    pub at_ms: i64,
}

/// Which AliExpress item is which Shopify line item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemLink {
    pub line_item_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku_id: Option<String>,
}

/// An AliExpress order covering some of the Shopify order's line items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplierOrder {
    pub ae_order_id: u64,
    pub status: SupplierStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_logistics_status: Option<String>,
    pub line_item_ids: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemLink>,
    /// Lines AliExpress canceled while the rest of the order goes on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canceled_line_item_ids: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<Package>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attention: Vec<SupplierAttention>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_ms: Option<i64>,
}

impl SupplierOrder {
    pub fn new(ae_order_id: u64, line_item_ids: Vec<u64>, items: Vec<ItemLink>) -> Self {
        Self {
            ae_order_id,
            status: SupplierStatus::AwaitingPayment,
            raw_status: None,
            raw_logistics_status: None,
            line_item_ids,
            items,
            canceled_line_item_ids: Vec::new(),
            packages: Vec::new(),
            attention: Vec::new(),
            last_checked_ms: None,
        }
    }

    pub fn package(&self, tracking_number: &str) -> Option<&Package> {
        self.packages
            .iter()
            .find(|p| p.tracking_number == tracking_number)
    }
}

/// One entry of an order's status history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub status: OrderStatus,
    pub at_ms: i64,
    pub cause: String,
    /// Set when a merchant action moved the order (the only way back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_action: Option<UserAction>,
}

/// A dropsync order: the Shopify order and everything bought and shipped for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub shop: ShopDomain,
    pub id: u64,
    pub shopify: ShopifyFacts,
    pub supplier_orders: Vec<SupplierOrder>,
    /// Why placing the supplier order failed, while the order is in `failed`.
    pub failed: Option<String>,
    /// The stored status: the derived status, except where the table forbids the move.
    pub status: OrderStatus,
    /// The order arrived without its body (oversized EventBridge event): re-fetch it.
    pub needs_refetch: bool,
    pub history: Vec<HistoryEntry>,
    /// Supplier-order placements made by dropsync, one per (seller, attempt).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placements: Vec<Placement>,
    /// A failure found before any seller was asked (address, mapping), while unresolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_failure: Option<Failure>,
}

/// An attention flag on an order, computed from its state when read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Attention {
    /// Canceled in Shopify while AliExpress orders exist: AliExpress has no cancel API.
    CancelOnAliexpressByHand {
        aliexpress_order_ids: Vec<String>,
    },
    Supplier {
        aliexpress_order_id: String,
        #[serde(flatten)]
        reason: SupplierAttention,
    },
    /// AliExpress canceled a supplier order or some of its lines: re-order or refund them.
    ItemsCanceledOnAliexpress {
        line_item_ids: Vec<String>,
    },
    PushFailed {
        tracking_number: String,
        reason: String,
    },
    /// The pusher gave up retrying (Shopify unreachable or throttling for its whole retry
    /// window): the message is in the dead-letter queue and the push is still due.
    PushDeadLettered {
        tracking_number: String,
        reason: String,
        attempts: u32,
        at_ms: i64,
    },
    NeedsRefetch,
    /// A placement whose outcome is not known (being sent, or the answer was lost): it may exist
    /// on AliExpress. Resolved by linking the AliExpress order.
    PlacementUnconfirmed {
        seller_id: String,
        out_order_id: String,
        /// AliExpress confirmed the order exists (`REPEATED_ORDER_ERROR`), without its number.
        created: bool,
        advice: String,
    },
    /// Placing failed: AliExpress' words and what to do.
    PlacementFailed {
        #[serde(skip_serializing_if = "Option::is_none")]
        seller_id: Option<String>,
        failure: Failure,
    },
}

impl Order {
    /// A new order from its first Shopify event.
    pub fn from_shopify(
        shop: ShopDomain,
        id: u64,
        facts: ShopifyFacts,
        cause: &str,
        now_ms: i64,
    ) -> Self {
        let mut order = Self {
            shop,
            id,
            shopify: facts,
            supplier_orders: Vec::new(),
            failed: None,
            status: OrderStatus::Pending,
            needs_refetch: false,
            history: Vec::new(),
            placements: Vec::new(),
            placement_failure: None,
        };
        order.status = order.derive_status();
        order.history.push(HistoryEntry {
            status: order.status,
            at_ms: now_ms,
            cause: cause.to_owned(),
            user_action: None,
        });
        order
    }

    /// Replaces the Shopify facts when the event is newer than what is stored, or joins them when
    /// it is from the same second ([`ShopifyFacts::join_same_instant`]). Returns whether anything
    /// was applied.
    pub fn merge_shopify_facts(&mut self, facts: ShopifyFacts) -> bool {
        if facts.updated_at_ms == self.shopify.updated_at_ms {
            return self.shopify.join_same_instant(&facts);
        }
        if facts.updated_at_ms < self.shopify.updated_at_ms {
            return false;
        }
        self.shopify = facts;
        self.needs_refetch = false;
        true
    }

    /// Quantity of a line item that needs shipping (lines AliExpress canceled need none).
    fn needed(&self) -> BTreeMap<u64, u32> {
        let mut needed: BTreeMap<u64, u32> = self
            .shopify
            .line_items
            .iter()
            .filter(|li| li.quantity > 0)
            .map(|li| (li.id, li.quantity))
            .collect();
        for so in &self.supplier_orders {
            let dropped: &[u64] = if so.status == SupplierStatus::Canceled {
                &so.line_item_ids
            } else {
                &so.canceled_line_item_ids
            };
            for id in dropped {
                needed.remove(id);
            }
        }
        needed
    }

    /// How many of each line item are fulfilled, by line item id: what dropsync pushed to
    /// Shopify in its packages, or Shopify's own count when that is larger (the merchant or
    /// another app fulfilled some by hand), never more than the line's quantity. Shopify's
    /// webhook may never report back what dropsync pushed, so the line's stored
    /// `fulfilled_quantity` alone under-counts.
    pub fn fulfilled_quantities(&self) -> BTreeMap<u64, u32> {
        let mut done = self.done();
        for li in &self.shopify.line_items {
            if let Some(q) = done.get_mut(&li.id) {
                *q = (*q).min(li.quantity);
            }
        }
        done
    }

    /// How many of one line item are fulfilled (see [`Order::fulfilled_quantities`]).
    pub fn fulfilled_quantity(&self, line_item_id: u64) -> u32 {
        self.fulfilled_quantities()
            .get(&line_item_id)
            .copied()
            .unwrap_or(0)
    }

    /// Quantity of each line item that is done: pushed by dropsync or fulfilled in Shopify.
    fn done(&self) -> BTreeMap<u64, u32> {
        let mut pushed: BTreeMap<u64, u32> = BTreeMap::new();
        for so in &self.supplier_orders {
            for p in so.packages.iter().filter(|p| p.push.is_pushed()) {
                for it in &p.items {
                    *pushed.entry(it.line_item_id).or_default() += it.quantity;
                }
            }
        }
        // Shopify's own count already includes what dropsync pushed once its webhook arrives, so
        // the larger of the two is what is done, never the sum.
        for li in &self.shopify.line_items {
            let e = pushed.entry(li.id).or_default();
            *e = (*e).max(li.fulfilled_quantity);
        }
        pushed
    }

    /// The status the order's parts imply. Pure: the same parts always give the same status.
    pub fn derive_status(&self) -> OrderStatus {
        let s = &self.shopify;
        if s.cancelled || s.financial_status.is_void() {
            return OrderStatus::Canceled;
        }
        let live: Vec<&SupplierOrder> = self
            .supplier_orders
            .iter()
            .filter(|so| so.status != SupplierStatus::Canceled)
            .collect();
        if self.supplier_orders.is_empty() && self.failed.is_some() {
            return OrderStatus::Failed;
        }
        let needed = self.needed();
        if !self.supplier_orders.is_empty() && (live.is_empty() || needed.is_empty()) {
            // Everything bought was canceled on AliExpress.
            return OrderStatus::Canceled;
        }
        let done = self.done();
        let all_done = !needed.is_empty()
            && needed
                .iter()
                .all(|(id, q)| done.get(id).copied().unwrap_or(0) >= *q);
        if all_done {
            return OrderStatus::Fulfilled;
        }
        if self.supplier_orders.is_empty() {
            return if s.financial_status.is_captured() {
                OrderStatus::AwaitingOrder
            } else {
                OrderStatus::Pending
            };
        }
        // Once anything has shipped, the order shows as partly done whatever else is pending:
        // this keeps the derivation monotone when more supplier orders are linked later.
        let something_shipped = self
            .supplier_orders
            .iter()
            .any(|so| !so.packages.is_empty())
            || done.values().any(|q| *q > 0);
        if something_shipped {
            return OrderStatus::AwaitingFulfillment;
        }
        let covered = |id: &u64| live.iter().any(|so| so.line_item_ids.contains(id));
        if needed.keys().any(|id| !covered(id)) {
            return OrderStatus::AwaitingOrder;
        }
        if live
            .iter()
            .any(|so| so.status == SupplierStatus::AwaitingPayment)
        {
            return OrderStatus::AwaitingPayment;
        }
        OrderStatus::AwaitingShipment
    }

    /// Moves the stored status to the derived one when the transition table allows it, and
    /// records the move. Returns the transition made, if any.
    pub fn recompute_status(
        &mut self,
        cause: &str,
        now_ms: i64,
    ) -> Option<(OrderStatus, OrderStatus)> {
        let derived = self.derive_status();
        if derived == self.status || !is_automatic_transition(self.status, derived) {
            return None;
        }
        let from = self.status;
        self.status = derived;
        self.history.push(HistoryEntry {
            status: derived,
            at_ms: self.next_history_ms(now_ms),
            cause: cause.to_owned(),
            user_action: None,
        });
        Some((from, derived))
    }

    /// A merchant action that moves the order back. Returns false when the action is not
    /// allowed from the current status.
    pub fn apply_user_action(&mut self, action: UserAction, cause: &str, now_ms: i64) -> bool {
        if !action.allows(self.status) {
            return false;
        }
        self.status = action.target();
        self.failed = None;
        self.history.push(HistoryEntry {
            status: self.status,
            at_ms: self.next_history_ms(now_ms),
            cause: cause.to_owned(),
            user_action: Some(action),
        });
        true
    }

    /// A history entry's time: never before the previous one (a writer that re-decided after
    /// losing a race carries the time its request began).
    fn next_history_ms(&self, now_ms: i64) -> i64 {
        self.history.last().map_or(now_ms, |h| now_ms.max(h.at_ms))
    }

    pub fn supplier_order(&self, ae_order_id: u64) -> Option<&SupplierOrder> {
        self.supplier_orders
            .iter()
            .find(|so| so.ae_order_id == ae_order_id)
    }

    pub fn supplier_order_mut(&mut self, ae_order_id: u64) -> Option<&mut SupplierOrder> {
        self.supplier_orders
            .iter_mut()
            .find(|so| so.ae_order_id == ae_order_id)
    }

    /// A package by its supplier order and tracking number.
    pub fn package_mut(&mut self, ae_order_id: u64, tracking_number: &str) -> Option<&mut Package> {
        self.supplier_order_mut(ae_order_id)?
            .packages
            .iter_mut()
            .find(|p| p.tracking_number == tracking_number)
    }

    /// Whether any supplier order still needs polling.
    pub fn has_open_supplier_orders(&self) -> bool {
        self.status != OrderStatus::Canceled
            && self.supplier_orders.iter().any(|so| so.status.is_open())
    }

    /// Packages whose push (or tracking update) is due.
    pub fn due_pushes(&self) -> Vec<(u64, &Package)> {
        self.supplier_orders
            .iter()
            .flat_map(|so| so.packages.iter().map(move |p| (so.ae_order_id, p)))
            .filter(|(_, p)| p.push.is_due())
            .collect()
    }

    /// Flags for the merchant, derived from the state (never stored, so never stale).
    pub fn attention(&self) -> Vec<Attention> {
        let mut out = Vec::new();
        let live: Vec<String> = self
            .supplier_orders
            .iter()
            .filter(|so| so.status != SupplierStatus::Canceled)
            .map(|so| so.ae_order_id.to_string())
            .collect();
        if (self.shopify.cancelled || self.shopify.financial_status.is_void()) && !live.is_empty() {
            out.push(Attention::CancelOnAliexpressByHand {
                aliexpress_order_ids: live,
            });
        }
        let mut canceled_lines: Vec<String> = Vec::new();
        for so in &self.supplier_orders {
            for reason in &so.attention {
                out.push(Attention::Supplier {
                    aliexpress_order_id: so.ae_order_id.to_string(),
                    reason: reason.clone(),
                });
            }
            if so.status == SupplierStatus::Canceled && self.status != OrderStatus::Canceled {
                canceled_lines.extend(so.line_item_ids.iter().map(u64::to_string));
            }
            canceled_lines.extend(so.canceled_line_item_ids.iter().map(u64::to_string));
            for p in &so.packages {
                if let PushState::Failed { reason } = &p.push {
                    out.push(Attention::PushFailed {
                        tracking_number: p.tracking_number.clone(),
                        reason: reason.clone(),
                    });
                }
                if let Some(g) = p.gave_up.as_ref().filter(|_| p.push.is_due()) {
                    out.push(Attention::PushDeadLettered {
                        tracking_number: p.tracking_number.clone(),
                        reason: g.reason.clone(),
                        attempts: g.attempts,
                        at_ms: g.at_ms,
                    });
                }
            }
        }
        if !canceled_lines.is_empty() {
            out.push(Attention::ItemsCanceledOnAliexpress {
                line_item_ids: canceled_lines,
            });
        }
        if self.needs_refetch {
            out.push(Attention::NeedsRefetch);
        }
        self.placement_attention(&mut out);
        out
    }

    /// Unresolved placements: unknown outcomes whose lines no supplier order covers yet, and
    /// the latest failure of each seller whose lines are still to buy.
    fn placement_attention(&self, out: &mut Vec<Attention>) {
        let covered = |lines: &[u64]| {
            !lines.is_empty()
                && lines.iter().all(|id| {
                    self.supplier_orders
                        .iter()
                        .filter(|so| so.status != SupplierStatus::Canceled)
                        .any(|so| so.line_item_ids.contains(id))
                })
        };
        if let Some(f) = &self.placement_failure {
            out.push(Attention::PlacementFailed {
                seller_id: None,
                failure: f.clone(),
            });
        }
        for p in &self.placements {
            if crate::placement::latest(self, p.seller_id).map(|l| l.attempt) != Some(p.attempt)
                || covered(&p.line_item_ids)
            {
                continue;
            }
            match &p.state {
                PlacementState::Sending { .. } => out.push(Attention::PlacementUnconfirmed {
                    seller_id: p.seller_id.to_string(),
                    out_order_id: p.out_order_id.clone(),
                    created: false,
                    advice: UNCONFIRMED_ADVICE.to_owned(),
                }),
                PlacementState::Unconfirmed { created, .. } => {
                    out.push(Attention::PlacementUnconfirmed {
                        seller_id: p.seller_id.to_string(),
                        out_order_id: p.out_order_id.clone(),
                        created: *created,
                        advice: UNCONFIRMED_ADVICE.to_owned(),
                    })
                }
                PlacementState::Failed { failure } => out.push(Attention::PlacementFailed {
                    seller_id: Some(p.seller_id.to_string()),
                    failure: failure.clone(),
                }),
                PlacementState::Placed { .. } => {}
            }
        }
    }
}

/// Checks a history is a valid path: every step an automatic transition, or a merchant action
/// allowed from where the order was.
pub fn history_is_valid(history: &[HistoryEntry]) -> bool {
    history.windows(2).all(|w| match w {
        [a, b] => match b.user_action {
            Some(action) => action.allows(a.status) && action.target() == b.status,
            None => is_automatic_transition(a.status, b.status),
        },
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn facts(fin: &str, lines: &[(u64, u32)]) -> ShopifyFacts {
        ShopifyFacts {
            name: "#1001".into(),
            created_at_ms: 1_000,
            updated_at_ms: 1_000,
            financial_status: FinancialStatus::parse(fin),
            cancelled: false,
            test: false,
            fulfillment_status: None,
            line_items: lines.iter().map(|(id, q)| LineItem::new(*id, *q)).collect(),
            fulfillment_tracking: vec![],
        }
    }

    fn shop() -> ShopDomain {
        ShopDomain::parse("a.myshopify.com").unwrap()
    }

    #[test]
    fn unpaid_orders_wait_in_pending_and_paid_ones_await_ordering() {
        for fin in ["pending", "authorized", "partially_paid"] {
            let o = Order::from_shopify(shop(), 1, facts(fin, &[(1, 1)]), "t", 0);
            assert_eq!(o.status, OrderStatus::Pending, "{fin}");
        }
        let o = Order::from_shopify(shop(), 1, facts("paid", &[(1, 1)]), "t", 0);
        assert_eq!(o.status, OrderStatus::AwaitingOrder);
    }

    #[test]
    fn a_stale_shopify_event_is_not_applied() {
        let mut o = Order::from_shopify(shop(), 1, facts("pending", &[(1, 1)]), "t", 0);
        let mut newer = facts("paid", &[(1, 1)]);
        newer.updated_at_ms = 2_000;
        assert!(o.merge_shopify_facts(newer.clone()));
        assert!(!o.merge_shopify_facts(newer));
        let stale = facts("pending", &[(1, 1)]);
        assert!(!o.merge_shopify_facts(stale));
        assert_eq!(o.shopify.financial_status, FinancialStatus::Paid);
    }

    #[test]
    fn same_second_events_join_to_the_same_facts_in_any_order() {
        let variants = || {
            let mut paid = facts("paid", &[(1, 2)]);
            paid.line_items[0].fulfilled_quantity = 1;
            paid.fulfillment_tracking = vec!["T1".into()];
            let mut cancelled = facts("authorized", &[(1, 2)]);
            cancelled.cancelled = true;
            cancelled.fulfillment_tracking = vec!["T2".into()];
            vec![facts("pending", &[(1, 2)]), paid, cancelled]
        };
        let orders = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        let joined: Vec<ShopifyFacts> = orders
            .iter()
            .map(|perm| {
                let v = variants();
                let mut acc = v[perm[0]].clone();
                for &i in &perm[1..] {
                    acc.join_same_instant(&v[i]);
                }
                acc
            })
            .collect();
        for j in &joined {
            assert_eq!(j.financial_status, FinancialStatus::Paid);
            assert!(j.cancelled);
            assert_eq!(j.line_items[0].fulfilled_quantity, 1);
            let mut t = j.fulfillment_tracking.clone();
            t.sort();
            assert_eq!(t, ["T1", "T2"]);
        }
        let mut again = joined[0].clone();
        assert!(
            !again.join_same_instant(&joined[0]),
            "joining is idempotent"
        );
    }

    #[test]
    fn two_suppliers_one_shipped_and_pushed_is_awaiting_fulfillment_then_fulfilled() {
        let mut o = Order::from_shopify(shop(), 1, facts("paid", &[(1, 1), (2, 2)]), "t", 0);
        o.supplier_orders
            .push(SupplierOrder::new(11, vec![1], vec![]));
        o.supplier_orders
            .push(SupplierOrder::new(12, vec![2], vec![]));
        assert_eq!(o.derive_status(), OrderStatus::AwaitingPayment);
        for so in &mut o.supplier_orders {
            so.status = SupplierStatus::AwaitingShipment;
        }
        assert_eq!(o.derive_status(), OrderStatus::AwaitingShipment);
        let pkg = |line, q, push| Package {
            tracking_number: format!("T{line}"),
            carrier: None,
            items: vec![PackageItem {
                line_item_id: line,
                quantity: q,
            }],
            push,
            previous_tracking: None,
            found_at_ms: 0,
            due_since_ms: 0,
            gave_up: None,
        };
        o.supplier_orders[0].packages.push(pkg(
            1,
            1,
            PushState::Pushed {
                fulfillment_id: None,
            },
        ));
        assert_eq!(o.derive_status(), OrderStatus::AwaitingFulfillment);
        o.supplier_orders[1]
            .packages
            .push(pkg(2, 2, PushState::Pending));
        assert_eq!(o.derive_status(), OrderStatus::AwaitingFulfillment);
        o.supplier_orders[1].packages[0].push = PushState::Pushed {
            fulfillment_id: None,
        };
        assert_eq!(o.derive_status(), OrderStatus::Fulfilled);
    }

    #[test]
    fn fulfilled_quantities_count_pushed_packages_and_shopifys_own_fulfillments() {
        let mut o =
            Order::from_shopify(shop(), 1, facts("paid", &[(1, 2), (2, 3), (3, 1)]), "t", 0);
        let pkg = |n: &str, items: &[(u64, u32)], push| Package {
            tracking_number: n.into(),
            carrier: None,
            items: items
                .iter()
                .map(|(line_item_id, quantity)| PackageItem {
                    line_item_id: *line_item_id,
                    quantity: *quantity,
                })
                .collect(),
            push,
            previous_tracking: None,
            found_at_ms: 0,
            due_since_ms: 0,
            gave_up: None,
        };
        let pushed = || PushState::Pushed {
            fulfillment_id: Some("gid://shopify/Fulfillment/1".into()),
        };
        let mut so = SupplierOrder::new(11, vec![1, 2], vec![]);
        so.packages.push(pkg("A", &[(1, 2), (2, 1)], pushed()));
        so.packages.push(pkg("B", &[(2, 1)], pushed()));
        // Found but not yet in Shopify: not fulfilled.
        so.packages.push(pkg("C", &[(2, 1)], PushState::Pending));
        o.supplier_orders.push(so);
        // Line 3 was fulfilled by hand in Shopify; line 2's stored count lags behind the pushes.
        o.shopify.line_items[1].fulfilled_quantity = 1;
        o.shopify.line_items[2].fulfilled_quantity = 1;
        let q = o.fulfilled_quantities();
        assert_eq!(q.get(&1), Some(&2));
        assert_eq!(q.get(&2), Some(&2));
        assert_eq!(o.fulfilled_quantity(3), 1);
        assert_eq!(o.fulfilled_quantity(99), 0, "an unknown line has none");
        // A package that claims more than was ordered does not show more than the quantity.
        o.supplier_orders[0]
            .packages
            .push(pkg("D", &[(1, 5)], pushed()));
        assert_eq!(o.fulfilled_quantity(1), 2);
    }

    #[test]
    fn a_shopify_cancel_with_supplier_orders_asks_for_a_cancel_on_aliexpress_by_hand() {
        let mut o = Order::from_shopify(shop(), 1, facts("paid", &[(1, 1)]), "t", 0);
        o.supplier_orders
            .push(SupplierOrder::new(11, vec![1], vec![]));
        o.shopify.cancelled = true;
        assert_eq!(o.derive_status(), OrderStatus::Canceled);
        assert!(matches!(
            o.attention().first(),
            Some(Attention::CancelOnAliexpressByHand { .. })
        ));
    }

    #[test]
    fn every_supplier_order_canceled_on_aliexpress_cancels_the_order() {
        let mut o = Order::from_shopify(shop(), 1, facts("paid", &[(1, 1)]), "t", 0);
        let mut so = SupplierOrder::new(11, vec![1], vec![]);
        so.status = SupplierStatus::Canceled;
        o.supplier_orders.push(so);
        assert_eq!(o.derive_status(), OrderStatus::Canceled);
    }

    #[test]
    fn recompute_never_moves_back_and_records_history() {
        let mut o = Order::from_shopify(shop(), 1, facts("paid", &[(1, 1)]), "t", 0);
        o.supplier_orders
            .push(SupplierOrder::new(11, vec![1], vec![]));
        assert_eq!(
            o.recompute_status("link", 1),
            Some((OrderStatus::AwaitingOrder, OrderStatus::AwaitingPayment))
        );
        o.status = OrderStatus::Fulfilled;
        assert_eq!(o.recompute_status("stale", 2), None);
        assert_eq!(o.status, OrderStatus::Fulfilled);
        assert!(history_is_valid(&o.history));
    }
}
