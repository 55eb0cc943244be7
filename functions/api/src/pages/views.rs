//! What the templates show: plain view structs built from domain orders, with every label in the
//! merchant's words. Nothing here holds a token, a secret or a customer address (orders carry
//! none; sessions and credentials never reach a view).

use askama::Template;
use dropsync_app::push::tracking_url;
use dropsync_domain::{
    Attention, Order, OrderStatus, PushState, SupplierAttention, SupplierStatus,
};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

/// The stylesheet and script, embedded in the binary and served with a year-long cache under a
/// path that changes with their content.
pub const CSS: &str = include_str!("../../static/app.css");
pub const JS: &str = include_str!("../../static/app.js");

const fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut rest = bytes;
    while let [first, tail @ ..] = rest {
        h ^= *first as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        rest = tail;
    }
    h
}
pub const ASSET_VERSION: u64 = fnv(CSS.as_bytes()) ^ fnv(JS.as_bytes()).rotate_left(1);

/// A message shown once after an action.
#[derive(Debug, Clone)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

/// The frame every page shares.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub title: String,
    /// The shop whose pages the navigation points at.
    pub shop: Option<String>,
    /// Which navigation entry is current: "orders", "attention", "mappings", "settings", "shops".
    pub nav: &'static str,
    pub flash: Option<Flash>,
    /// Empty when signed out.
    pub csrf: String,
    pub asset_version: String,
    /// How many shops the session sees (the shop switcher shows when more than one).
    pub shop_count: usize,
}

impl Chrome {
    pub fn signed_in(&self) -> bool {
        !self.csrf.is_empty()
    }
    pub fn is_nav(&self, name: &str) -> bool {
        self.nav == name
    }
}

pub fn tab_label(s: OrderStatus) -> &'static str {
    match s {
        OrderStatus::Pending => "Pending",
        OrderStatus::AwaitingOrder => "Awaiting order",
        OrderStatus::AwaitingPayment => "Awaiting payment",
        OrderStatus::AwaitingShipment => "Awaiting shipment",
        OrderStatus::AwaitingFulfillment => "Awaiting fulfillment",
        OrderStatus::Fulfilled => "Fulfilled",
        OrderStatus::Canceled => "Canceled",
        OrderStatus::Failed => "Failed",
    }
}

/// The badge colour family of a status.
pub fn tone(s: OrderStatus) -> &'static str {
    match s {
        OrderStatus::Pending => "muted",
        OrderStatus::AwaitingOrder | OrderStatus::AwaitingPayment => "warn",
        OrderStatus::AwaitingShipment | OrderStatus::AwaitingFulfillment => "info",
        OrderStatus::Fulfilled => "ok",
        OrderStatus::Canceled => "muted",
        OrderStatus::Failed => "bad",
    }
}

fn supplier_label(s: SupplierStatus) -> &'static str {
    match s {
        SupplierStatus::AwaitingPayment => "Awaiting payment on AliExpress",
        SupplierStatus::AwaitingShipment => "Paid, awaiting shipment",
        SupplierStatus::PartiallyShipped => "Partly shipped",
        SupplierStatus::Shipped => "Shipped",
        SupplierStatus::Delivered => "Delivered",
        SupplierStatus::Canceled => "Canceled on AliExpress",
    }
}

fn supplier_tone(s: SupplierStatus) -> &'static str {
    match s {
        SupplierStatus::AwaitingPayment => "warn",
        SupplierStatus::AwaitingShipment | SupplierStatus::PartiallyShipped => "info",
        SupplierStatus::Shipped | SupplierStatus::Delivered => "ok",
        SupplierStatus::Canceled => "muted",
    }
}

/// `2026-01-31 14:05 UTC` from ms since the epoch.
pub fn when(ms: i64) -> String {
    const FORMAT: &[BorrowedFormatItem<'_>] =
        format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    crate::view::utc(ms)
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_default()
}

/// What an attention flag means, and what to do about it.
pub fn attention_words(a: &Attention) -> (String, String) {
    match a {
        Attention::CancelOnAliexpressByHand {
            aliexpress_order_ids,
        } => (
            format!(
                "Canceled in Shopify, but AliExpress order {} is still open.",
                aliexpress_order_ids.join(", ")
            ),
            "AliExpress has no cancel API: cancel it on aliexpress.com (before paying, if it is unpaid).".into(),
        ),
        Attention::Supplier {
            aliexpress_order_id,
            reason,
        } => {
            let (what, advice) = match reason {
                SupplierAttention::AddressIncomplete => (
                    "AliExpress is waiting for a complete shipping address".to_owned(),
                    "Complete the address on the AliExpress order page, then press Sync now.",
                ),
                SupplierAttention::PaymentHeld => (
                    "AliExpress holds the payment for a risk check".to_owned(),
                    "This usually clears within 24 hours; check the order on AliExpress if it does not.",
                ),
                SupplierAttention::AmbiguousFinish { logistics_status } => (
                    format!("AliExpress closed the order without saying it shipped ({logistics_status})"),
                    "Open the order on AliExpress to see whether it shipped or was refunded.",
                ),
                SupplierAttention::UnknownStatus { raw } => (
                    format!("AliExpress reports a status dropsync does not know ({raw})"),
                    "Check the order on AliExpress; dropsync keeps syncing it.",
                ),
                SupplierAttention::UnknownLogisticsStatus { raw } => (
                    format!("AliExpress reports a shipping status dropsync does not know ({raw})"),
                    "Check the order on AliExpress; dropsync keeps syncing it.",
                ),
                SupplierAttention::UnknownEndReason { raw } => (
                    format!("An item ended on AliExpress for an unusual reason ({raw})"),
                    "Check the order on AliExpress and re-order the item if needed.",
                ),
            };
            (
                format!("AliExpress order {aliexpress_order_id}: {what}."),
                advice.to_owned(),
            )
        }
        Attention::ItemsCanceledOnAliexpress { line_item_ids } => (
            format!(
                "AliExpress canceled {} item{}.",
                line_item_ids.len(),
                if line_item_ids.len() == 1 { "" } else { "s" }
            ),
            "Re-order the items, or refund the customer in Shopify.".into(),
        ),
        Attention::PushFailed {
            tracking_number,
            reason,
        } => (
            format!("Shopify refused tracking number {tracking_number}: {reason}."),
            "Fix the cause in Shopify (for example a fulfillment hold), then press Sync now to send it again.".into(),
        ),
        Attention::PushDeadLettered {
            tracking_number,
            attempts,
            ..
        } => (
            format!(
                "Tracking number {tracking_number} could not be sent to Shopify after {attempts} tries."
            ),
            "Shopify was unreachable or busy. Press Sync now to send it again.".into(),
        ),
        Attention::PlacementUnconfirmed {
            out_order_id,
            created,
            advice,
            ..
        } => (
            if *created {
                format!(
                    "AliExpress says order request {out_order_id} was placed, but did not say its number."
                )
            } else {
                format!(
                    "Placing order request {out_order_id} got no clear answer from AliExpress: it may or may not exist."
                )
            },
            advice.clone(),
        ),
        Attention::PlacementFailed { failure, .. } => (
            format!("AliExpress refused the order: {}", failure.message),
            failure.advice.clone(),
        ),
        Attention::NeedsRefetch => (
            "This order arrived without its details.".into(),
            "dropsync fetches them from Shopify on the next sync; press Sync now to do it at once.".into(),
        ),
    }
}

/// DSers' advice for a failed placement, by the words of the failure.
pub fn failure_advice(reason: &str) -> &'static str {
    let r = reason.to_ascii_lowercase();
    if r.contains("token") || r.contains("authoriz") || r.contains("illegalaccess") {
        "The AliExpress authorization expired: re-authorize AliExpress on the Shops page, then re-place."
    } else if r.contains("inventory") || r.contains("stock") || r.contains("offline") {
        "The product is out of stock or offline: map the item to another product or supplier, then re-place."
    } else if r.contains("address") {
        "AliExpress did not accept the customer's address: correct it in Shopify (province, city, phone), then re-place."
    } else if r.contains("delivery") || r.contains("freight") || r.contains("ship") {
        "The supplier cannot ship this to the customer's country by the chosen method: pick another shipping method or supplier."
    } else if r.contains("sku") {
        "The supplier changed the product's variants: update the mapping, then re-place."
    } else {
        "Check the product mapping and the customer's details, then re-place, or place it on AliExpress and link it here."
    }
}

#[derive(Debug, Clone)]
pub struct TabView {
    pub key: &'static str,
    pub label: &'static str,
    pub count: u64,
    pub current: bool,
}

#[derive(Debug, Clone)]
pub struct OrderRow {
    pub id: String,
    pub name: String,
    pub created: String,
    pub items: String,
    pub suppliers: String,
    pub tracking: String,
    pub status: &'static str,
    pub tone: &'static str,
    pub attention: bool,
}

impl OrderRow {
    pub fn from_order(o: &Order) -> Self {
        let qty: u32 = o.shopify.line_items.iter().map(|l| l.quantity).sum();
        let titles: Vec<&str> = o
            .shopify
            .line_items
            .iter()
            .filter_map(|l| l.title.as_deref().or(l.sku.as_deref()))
            .take(2)
            .collect();
        let more = o.shopify.line_items.len().saturating_sub(titles.len());
        let mut items = format!("{qty} × {}", titles.join(", "));
        if more > 0 {
            items.push_str(&format!(" and {more} more"));
        }
        let tracking: Vec<&str> = o
            .supplier_orders
            .iter()
            .flat_map(|so| so.packages.iter().map(|p| p.tracking_number.as_str()))
            .collect();
        let suppliers = match o.supplier_orders.len() {
            0 => "Not ordered".to_owned(),
            1 => "1 AliExpress order".to_owned(),
            n => format!("{n} AliExpress orders"),
        };
        Self {
            id: o.id.to_string(),
            name: display_name(o),
            created: when(o.shopify.created_at_ms),
            items,
            suppliers,
            tracking: match tracking.len() {
                0 => "—".to_owned(),
                1 => tracking.join(""),
                n => format!("{n} parcels"),
            },
            status: tab_label(o.status),
            tone: tone(o.status),
            attention: !o.attention().is_empty(),
        }
    }
}

fn display_name(o: &Order) -> String {
    if o.shopify.name.is_empty() {
        format!("Order {}", o.id)
    } else {
        o.shopify.name.clone()
    }
}

#[derive(Debug, Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub chrome: Chrome,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ShopCard {
    pub domain: String,
    pub active: bool,
    pub attention: usize,
    pub aliexpress_reauth_needed: bool,
}

#[derive(Debug, Template)]
#[template(path = "shops.html")]
pub struct ShopsPage {
    pub chrome: Chrome,
    pub shops: Vec<ShopCard>,
    /// "Re-authorize within N days" and whether it is urgent; `None` when unknown.
    pub aliexpress: AliexpressConnection,
    pub admin: bool,
}

/// The re-authorize reminder for an AliExpress authorization that expires at `expires_ms`, and
/// whether it is urgent (under a week).
pub fn reauth_countdown(expires_ms: Option<i64>, now_ms: i64) -> (Option<String>, bool) {
    let Some(at) = expires_ms else {
        return (
            Some("dropsync warns here as soon as AliExpress asks for a new authorization.".into()),
            false,
        );
    };
    let left_h = (at - now_ms).div_euclid(3_600_000);
    if at <= now_ms {
        (
            Some("The authorization has expired: re-authorize now.".into()),
            true,
        )
    } else if left_h < 48 {
        (Some(format!("Re-authorize within {left_h} hours.")), true)
    } else {
        (
            Some(format!("Re-authorize within {} days.", left_h / 24)),
            left_h < 7 * 24,
        )
    }
}

#[derive(Debug, Clone)]
pub struct AliexpressConnection {
    pub configured: bool,
    pub countdown: Option<String>,
    pub urgent: bool,
}

#[derive(Debug, Template)]
#[template(path = "orders.html")]
pub struct OrdersPage {
    pub chrome: Chrome,
    pub shop: String,
    pub tabs: Vec<TabView>,
    pub tab: &'static str,
    pub tab_label: &'static str,
    pub rows: Vec<OrderRow>,
    pub next: Option<String>,
    pub paged: bool,
    pub q: String,
    pub searched: bool,
    pub bulk: bool,
}

#[derive(Debug, Clone)]
pub struct LineView {
    pub id: String,
    pub title: String,
    pub sku: String,
    pub quantity: u32,
    pub fulfilled: u32,
    pub linked: bool,
    /// The Shopify variant (what a mapping is for), or empty when the line has none.
    pub variant: String,
}

#[derive(Debug, Clone)]
pub struct PackageView {
    pub tracking_number: String,
    pub carrier: String,
    pub tracking_url: String,
    pub pushed: bool,
    pub push_words: String,
    pub push_tone: &'static str,
    pub previous: String,
    pub found: String,
    pub items: String,
}

#[derive(Debug, Clone)]
pub struct SupplierView {
    pub id: String,
    pub url: String,
    pub status: &'static str,
    pub tone: &'static str,
    pub raw: String,
    pub checked: String,
    pub items: String,
    pub packages: Vec<PackageView>,
}

#[derive(Debug, Clone)]
pub struct HistoryView {
    pub at: String,
    pub status: &'static str,
    pub cause: String,
}

#[derive(Debug, Clone)]
pub struct AttentionView {
    pub what: String,
    pub advice: String,
}

#[derive(Debug, Template)]
#[template(path = "order.html")]
pub struct OrderPage {
    pub chrome: Chrome,
    pub shop: String,
    pub id: String,
    pub name: String,
    pub status: &'static str,
    pub tab: &'static str,
    pub tone: &'static str,
    pub created: String,
    pub financial: String,
    pub cancelled: bool,
    pub test: bool,
    pub lines: Vec<LineView>,
    pub unlinked: Vec<LineView>,
    /// Lines still to order that have a variant, so a mapping can be made for them.
    pub mappable: Vec<LineView>,
    pub suppliers: Vec<SupplierView>,
    pub history: Vec<HistoryView>,
    pub attention: Vec<AttentionView>,
    pub failed: Option<(String, String)>,
    pub can_place: bool,
    pub replace: bool,
}

/// Builds the order page's view of an order.
pub fn order_page(chrome: Chrome, o: &Order, tracking_url_template: &str) -> OrderPage {
    let title_of = |id: u64| {
        o.shopify
            .line_items
            .iter()
            .find(|l| l.id == id)
            .and_then(|l| l.title.clone().or_else(|| l.sku.clone()))
            .unwrap_or_else(|| format!("item {id}"))
    };
    let linked: Vec<u64> = o
        .supplier_orders
        .iter()
        .filter(|so| so.status != SupplierStatus::Canceled)
        .flat_map(|so| so.line_item_ids.iter().copied())
        .collect();
    let fulfilled = o.fulfilled_quantities();
    let lines: Vec<LineView> = o
        .shopify
        .line_items
        .iter()
        .map(|l| LineView {
            id: l.id.to_string(),
            title: l.title.clone().unwrap_or_else(|| "Untitled item".into()),
            sku: l.sku.clone().unwrap_or_default(),
            quantity: l.quantity,
            fulfilled: fulfilled.get(&l.id).copied().unwrap_or(0),
            linked: linked.contains(&l.id),
            variant: l.variant_id.map(|v| v.to_string()).unwrap_or_default(),
        })
        .collect();
    let unlinked: Vec<LineView> = lines.iter().filter(|l| !l.linked).cloned().collect();
    let mappable: Vec<LineView> = unlinked
        .iter()
        .filter(|l| !l.variant.is_empty())
        .cloned()
        .collect();
    let suppliers = o
        .supplier_orders
        .iter()
        .map(|so| SupplierView {
            id: so.ae_order_id.to_string(),
            url: format!(
                "https://www.aliexpress.com/p/order/detail.html?orderId={}",
                so.ae_order_id
            ),
            status: supplier_label(so.status),
            tone: supplier_tone(so.status),
            raw: so.raw_status.clone().unwrap_or_default(),
            checked: so.last_checked_ms.map(when).unwrap_or_default(),
            items: so
                .line_item_ids
                .iter()
                .map(|id| title_of(*id))
                .collect::<Vec<_>>()
                .join(", "),
            packages: so
                .packages
                .iter()
                .map(|p| {
                    let (pushed, words, tone) = match &p.push {
                        PushState::Pushed { .. } => (true, "Sent to Shopify".to_owned(), "ok"),
                        PushState::UpdatePending { .. } => (
                            true,
                            "Sent; new number on its way to Shopify".to_owned(),
                            "info",
                        ),
                        PushState::Pending => (false, "On its way to Shopify".to_owned(), "info"),
                        PushState::Failed { reason } => {
                            (false, format!("Shopify refused it: {reason}"), "bad")
                        }
                    };
                    PackageView {
                        tracking_url: tracking_url(tracking_url_template, &p.tracking_number),
                        tracking_number: p.tracking_number.clone(),
                        carrier: p.carrier.clone().unwrap_or_default(),
                        pushed,
                        push_words: words,
                        push_tone: tone,
                        previous: p.previous_tracking.clone().unwrap_or_default(),
                        found: when(p.found_at_ms),
                        items: p
                            .items
                            .iter()
                            .map(|i| format!("{} × {}", i.quantity, title_of(i.line_item_id)))
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                })
                .collect(),
        })
        .collect();
    let history = o
        .history
        .iter()
        .rev()
        .map(|h| HistoryView {
            at: when(h.at_ms),
            status: tab_label(h.status),
            cause: h.cause.replace(['_', '/'], " "),
        })
        .collect();
    // A placement failure carries its own advice; older failures only their text.
    let failed = match dropsync_domain::placement::current_failure(o) {
        Some(f) if o.status == OrderStatus::Failed => Some((f.message.clone(), f.advice.clone())),
        _ => o
            .failed
            .as_ref()
            .filter(|_| o.status == OrderStatus::Failed)
            .map(|r| (r.clone(), failure_advice(r).to_owned())),
    };
    // The "Placing failed" card says it already, with what to do: not twice.
    let attention = o
        .attention()
        .iter()
        .filter(|a| failed.is_none() || !matches!(a, Attention::PlacementFailed { .. }))
        .map(|a| {
            let (what, advice) = attention_words(a);
            AttentionView { what, advice }
        })
        .collect();
    let can_place = matches!(
        o.status,
        OrderStatus::AwaitingOrder | OrderStatus::Failed | OrderStatus::Canceled
    ) && !o.shopify.cancelled
        && !unlinked.is_empty();
    OrderPage {
        chrome,
        shop: o.shop.as_str().to_owned(),
        id: o.id.to_string(),
        name: display_name(o),
        status: tab_label(o.status),
        tab: o.status.as_str(),
        tone: tone(o.status),
        created: when(o.shopify.created_at_ms),
        financial: o.shopify.financial_status.as_str().replace('_', " "),
        cancelled: o.shopify.cancelled,
        test: o.shopify.test,
        lines,
        unlinked,
        mappable,
        suppliers,
        history,
        attention,
        failed,
        can_place,
        replace: o.status != OrderStatus::AwaitingOrder,
    }
}

#[derive(Debug, Template)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    pub chrome: Chrome,
    pub shop: String,
    pub notify_customer: bool,
    pub tracking_url_template: String,
    pub carrier_mapping: String,
    pub auto_place_available: bool,
    pub auto_place: bool,
}

#[derive(Debug, Clone)]
pub struct AttentionRow {
    pub id: String,
    pub name: String,
    pub status: &'static str,
    pub tone: &'static str,
    pub reasons: Vec<AttentionView>,
}

#[derive(Debug, Template)]
#[template(path = "attention.html")]
pub struct AttentionPage {
    pub chrome: Chrome,
    pub shop: String,
    pub rows: Vec<AttentionRow>,
    pub next: Option<String>,
}

/// One row of a variant's mapping.
#[derive(Debug, Clone)]
pub struct MappingRowView {
    pub product_id: String,
    pub url: String,
    pub title: String,
    pub sku_id: String,
    pub options: String,
    pub seller: String,
    pub price: String,
    pub quantity: u32,
    pub countries: String,
    pub shipping: String,
}

#[derive(Debug, Clone)]
pub struct MappingView {
    pub variant_id: String,
    pub rows: Vec<MappingRowView>,
}

/// One SKU of a looked-up product.
#[derive(Debug, Clone)]
pub struct SkuView {
    pub id: String,
    pub options: String,
    pub price: String,
    pub stock: String,
    pub sold_out: bool,
    pub checked: bool,
}

/// A product as `ds.product.get` answered it.
#[derive(Debug, Clone)]
pub struct LookupView {
    pub product_id: String,
    pub url: String,
    pub title: String,
    pub seller: String,
    pub on_sale: bool,
    pub status: String,
    pub skus: Vec<SkuView>,
}

#[derive(Debug, Template)]
#[template(path = "mappings.html")]
pub struct MappingsPage {
    pub chrome: Chrome,
    pub shop: String,
    pub mappings: Vec<MappingView>,
    pub next: Option<String>,
    pub paged: bool,
    /// The lookup form as typed.
    pub product: String,
    pub country: String,
    pub variant: String,
    /// The order the merchant came from (back there after saving), or empty.
    pub order: String,
    pub lookup: Option<LookupView>,
    pub lookup_error: Option<String>,
}

#[derive(Debug, Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub heading: String,
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reauthorize_countdown_counts_days_then_hours_then_says_expired() {
        let now = 1_767_225_600_000;
        let h = 3_600_000;
        assert_eq!(
            reauth_countdown(Some(now + 30 * 24 * h), now),
            (Some("Re-authorize within 30 days.".into()), false)
        );
        assert!(reauth_countdown(Some(now + 3 * 24 * h), now).1);
        assert_eq!(
            reauth_countdown(Some(now + 5 * h), now).0.as_deref(),
            Some("Re-authorize within 5 hours.")
        );
        assert_eq!(
            reauth_countdown(Some(now - h), now),
            (
                Some("The authorization has expired: re-authorize now.".into()),
                true
            )
        );
        assert!(!reauth_countdown(None, now).1);
    }

    #[test]
    fn timestamps_read_as_utc_minutes() {
        assert_eq!(when(1_767_225_600_123), "2026-01-01 00:00 UTC");
        assert_eq!(when(951_782_400_000 + 3_660_000), "2000-02-29 01:01 UTC");
        assert_eq!(when(0), "");
        assert_eq!(when(i64::MAX), "");
    }

    #[test]
    fn tracking_links_fill_in_the_number_and_encode_anything_odd() {
        assert_eq!(
            tracking_url("https://t.example/?n={number}", "LP00123&x=1"),
            "https://t.example/?n=LP00123%26x%3D1"
        );
    }

    #[test]
    fn failure_advice_follows_the_cause() {
        assert!(failure_advice("IllegalAccessToken").contains("re-authorize"));
        assert!(failure_advice("INVENTORY_HOLD_ERROR").contains("out of stock"));
        assert!(failure_advice("B_DROPSHIPPER_DELIVERY_ADDRESS_CITY").contains("address"));
    }
}
