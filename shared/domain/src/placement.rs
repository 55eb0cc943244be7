//! Placing supplier orders: which line items go to which seller, the state of each (order,
//! seller) placement, the deterministic `out_order_id`, what each outcome does to the order, the
//! merchant's advice per failure code, and the address pre-flight.
//!
//! The rule that prevents duplicate AliExpress orders lives here: a placement whose outcome is
//! unknown never gets a new attempt (a new `out_order_id`). Only the same `out_order_id` may be
//! re-sent, and only while AliExpress still remembers it (24 h); a new attempt follows only a
//! definitive failure.

use crate::mapping::VariantMapping;
use crate::order::{Order, SupplierOrder};
use crate::status::SupplierStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// AliExpress asks for payment within 20 days of placement.
pub const PAYMENT_WINDOW_MS: i64 = 20 * 24 * 3600 * 1000;
/// How long AliExpress remembers an `out_order_id`.
pub const OUT_ORDER_ID_TTL_MS: i64 = 24 * 3600 * 1000;
/// A re-send must reach AliExpress well inside the 24 h: after this, never re-send.
pub const RESEND_WINDOW_MS: i64 = OUT_ORDER_ID_TTL_MS - 3600 * 1000;
/// A claim older than this without an outcome was lost (a crash between the create and the
/// write): its outcome is unknown.
pub const SENDING_STALE_MS: i64 = 2 * 60 * 1000;

/// The idempotency key of one placement attempt.
pub fn out_order_id(order_id: u64, seller_id: u64, attempt: u32) -> String {
    format!("{order_id}-{seller_id}-{attempt}")
}

/// A definitive failure, for the merchant: AliExpress' code and words, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
    pub advice: String,
}

impl Failure {
    /// A failure with the advice for its code.
    pub fn new(code: &str, message: &str) -> Self {
        Self {
            code: code.to_owned(),
            message: message.to_owned(),
            advice: advice_for(code).to_owned(),
        }
    }
}

/// Plain-words advice for a failure code (AliExpress' or dropsync's own pre-flight codes).
pub fn advice_for(code: &str) -> &'static str {
    match code {
        c if c.contains("CPF") => {
            "The Brazilian CPF is missing, invalid or does not match the customer's name. Ask the customer for their CPF, put it in the order's shipping address (company field) in Shopify, then place the order again."
        }
        "B_DROPSHIPPER_DELIVERY_ADDRESS_VALIDATE_FAIL" | "ADDRESS_INVALID" => {
            "AliExpress refused the shipping address. Correct it in Shopify (city, state/province, ZIP, a phone number with its country code, a first and last name of 2 to 32 letters each), then place the order again."
        }
        "ADDRESS_MISSING" => {
            "The order has no shipping address. Add one in Shopify, then place the order again."
        }
        "NO_MAPPING" => {
            "Some items are not mapped to an AliExpress product. Map each variant (Mappings), then place the order again."
        }
        "NO_SHIPPING_METHOD" | "DELIVERY_METHOD_NOT_EXIST" => {
            "No usable shipping method to this country. Choose a shipping method for the mapping (a code from AliExpress' shipping options, e.g. CAINIAO_STANDARD) or map a supplier that ships there, then place the order again."
        }
        "PRODUCT_UNAVAILABLE" => {
            "The supplier took this product down, or no longer ships it to this country. Map the variant to another AliExpress product (Mappings), then place the order again."
        }
        "SKU_CHANGED" => {
            "The supplier changed or removed this SKU. Map the variant again (Mappings), then place the order again."
        }
        "INVENTORY_HOLD_ERROR" | "BUY_LIMIT_RESOURCE_INSUFFICIENT" | "OUT_OF_STOCK" => {
            "The supplier does not have enough stock. Wait for a restock or map another supplier, then place the order again."
        }
        "PRICE_PAY_CURRENCY_ERROR" => {
            "The items are priced in different currencies. Map items from suppliers selling in USD, then place the order again."
        }
        "BLACKLIST_BUYER_IN_LIST" | "USER_ACCOUNT_DISABLED" => {
            "AliExpress refuses orders from the buyer account. Contact AliExpress support about the account; nothing can be placed until it is fixed."
        }
        c if c.starts_with('A')
            && c.get(1..4)
                .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit())) =>
        {
            "AliExpress cannot place this order. Contact AliExpress support with the code, or place it on aliexpress.com and link it here."
        }
        "ERROR_WHEN_BUILD_FOR_PLACE_ORDER" => {
            "AliExpress could not build this order (often a SKU that is no longer sold). Check the mapping, or place it on aliexpress.com and link it here."
        }
        "ALIEXPRESS_UNAVAILABLE" => {
            "AliExpress refused the request (a token or permission problem). Check the AliExpress connection, then place the order again."
        }
        _ => {
            "AliExpress refused the order. Read its message, fix the cause, then place the order again, or place it on aliexpress.com and link it here."
        }
    }
}

/// Advice shown on an order whose placement outcome is unknown.
pub const UNCONFIRMED_ADVICE: &str = "AliExpress may have created this order: the answer was lost. Do not place it again. Find it in your AliExpress orders (Awaiting payment) and link it to this order with its AliExpress order number.";

/// Where one (order, seller) placement stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PlacementState {
    /// Claimed: `order.create` is being sent (or the sender died: see [`SENDING_STALE_MS`]).
    Sending { since_ms: i64 },
    /// Created on AliExpress.
    Placed {
        aliexpress_order_ids: Vec<u64>,
        placed_at_ms: i64,
        payment_due_at_ms: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Definitively not created.
    Failed { failure: Failure },
    /// Perhaps created, ids unknown. `created` is set once AliExpress answered
    /// `REPEATED_ORDER_ERROR` (created for sure; nothing more to send).
    Unconfirmed {
        reason: String,
        since_ms: i64,
        #[serde(default)]
        created: bool,
    },
}

/// One (order, seller) placement attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub seller_id: u64,
    pub attempt: u32,
    pub out_order_id: String,
    pub line_item_ids: Vec<u64>,
    /// When this attempt's `out_order_id` was first sent: the start of AliExpress' 24 h memory.
    pub first_sent_at_ms: i64,
    #[serde(flatten)]
    pub state: PlacementState,
}

/// What a placer may do for one seller now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Send `order.create` with this attempt's `out_order_id` (a new attempt, or a re-send of an
    /// unknown outcome within the 24 h).
    Send {
        attempt: u32,
        out_order_id: String,
        resend: bool,
    },
    /// Another placer is sending right now.
    InFlight,
    /// Nothing to send: placed, or created with unknown ids, or too late to re-send.
    Settled,
}

/// The latest placement of a seller on this order.
pub fn latest(order: &Order, seller_id: u64) -> Option<&Placement> {
    order
        .placements
        .iter()
        .filter(|p| p.seller_id == seller_id)
        .max_by_key(|p| p.attempt)
}

/// The failure to show the merchant: an order-level one (address, mapping), else the latest
/// seller failure that no later attempt of that seller has replaced.
pub fn current_failure(order: &Order) -> Option<&Failure> {
    order.placement_failure.as_ref().or_else(|| {
        order.placements.iter().rev().find_map(|p| match &p.state {
            PlacementState::Failed { failure }
                if latest(order, p.seller_id).is_some_and(|l| l.attempt == p.attempt) =>
            {
                Some(failure)
            }
            _ => None,
        })
    })
}

/// Decides what may be sent for `seller_id` at `now_ms`.
pub fn decide_claim(order: &Order, seller_id: u64, now_ms: i64) -> Claim {
    let Some(p) = latest(order, seller_id) else {
        return Claim::Send {
            attempt: 1,
            out_order_id: out_order_id(order.id, seller_id, 1),
            resend: false,
        };
    };
    let resend = || {
        if now_ms.saturating_sub(p.first_sent_at_ms) < RESEND_WINDOW_MS {
            Claim::Send {
                attempt: p.attempt,
                out_order_id: p.out_order_id.clone(),
                resend: true,
            }
        } else {
            Claim::Settled
        }
    };
    match &p.state {
        PlacementState::Sending { since_ms }
            if now_ms.saturating_sub(*since_ms) < SENDING_STALE_MS =>
        {
            Claim::InFlight
        }
        PlacementState::Sending { .. } => resend(),
        PlacementState::Unconfirmed { created: false, .. } => resend(),
        PlacementState::Unconfirmed { created: true, .. } | PlacementState::Placed { .. } => {
            Claim::Settled
        }
        PlacementState::Failed { .. } => {
            let attempt = p.attempt.saturating_add(1);
            Claim::Send {
                attempt,
                out_order_id: out_order_id(order.id, seller_id, attempt),
                resend: false,
            }
        }
    }
}

/// Records a claim on the order (to be written with a conditional write before sending).
/// Returns false when the claim is no longer what [`decide_claim`] allows (a racing placer won).
pub fn apply_claim(
    order: &mut Order,
    seller_id: u64,
    claim: &Claim,
    line_item_ids: &[u64],
    now_ms: i64,
) -> bool {
    if decide_claim(order, seller_id, now_ms) != *claim {
        return false;
    }
    let Claim::Send {
        attempt,
        out_order_id,
        resend,
    } = claim
    else {
        return false;
    };
    let sending = PlacementState::Sending { since_ms: now_ms };
    if *resend {
        if let Some(p) = order
            .placements
            .iter_mut()
            .find(|p| p.seller_id == seller_id && p.attempt == *attempt)
        {
            p.state = sending;
            return true;
        }
        return false;
    }
    order.placements.push(Placement {
        seller_id,
        attempt: *attempt,
        out_order_id: out_order_id.clone(),
        line_item_ids: line_item_ids.to_vec(),
        first_sent_at_ms: now_ms,
        state: sending,
    });
    true
}

/// What `order.create` came back with, in domain terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created {
        aliexpress_order_ids: Vec<u64>,
        note: Option<String>,
    },
    Failed(Failure),
    /// Created, ids unknown (`REPEATED_ORDER_ERROR`).
    Repeated,
    Unknown(String),
}

/// Which AliExpress product/SKU each line item was bought as, for matching packages later.
pub type LineSkus = Vec<(u64, String, String)>;

/// Applies an outcome to the placement `(seller_id, attempt)` and to the order: supplier orders
/// for a creation, the failure for a refusal, the flag for an unknown outcome. Returns false
/// when the placement is not in `Sending` any more (already recorded).
pub fn record_outcome(
    order: &mut Order,
    seller_id: u64,
    attempt: u32,
    outcome: &Outcome,
    items: &LineSkus,
    now_ms: i64,
) -> bool {
    let Some(p) = order
        .placements
        .iter_mut()
        .find(|p| p.seller_id == seller_id && p.attempt == attempt)
    else {
        return false;
    };
    if !matches!(p.state, PlacementState::Sending { .. }) {
        return false;
    }
    let lines = p.line_item_ids.clone();
    let first_sent = p.first_sent_at_ms;
    let out_id = p.out_order_id.clone();
    match outcome {
        Outcome::Created {
            aliexpress_order_ids,
            note,
        } => {
            p.state = PlacementState::Placed {
                aliexpress_order_ids: aliexpress_order_ids.clone(),
                placed_at_ms: now_ms,
                payment_due_at_ms: now_ms.saturating_add(PAYMENT_WINDOW_MS),
                note: note.clone(),
            };
            add_supplier_orders(order, aliexpress_order_ids, &lines, items);
            order.placement_failure = None;
            // With a supplier order the order is no longer `failed`; a failure of another seller
            // stays visible on its placement.
            order.failed = None;
            let cause = format!("placed on AliExpress as {out_id}");
            crate::ops::settle_status(order, &cause, now_ms);
        }
        Outcome::Failed(failure) => {
            p.state = PlacementState::Failed {
                failure: failure.clone(),
            };
            mark_order_failed(order, failure, now_ms);
        }
        Outcome::Repeated => {
            p.state = PlacementState::Unconfirmed {
                reason: "AliExpress says this order was already created (REPEATED_ORDER_ERROR), without its order number".into(),
                since_ms: first_sent,
                created: true,
            };
        }
        Outcome::Unknown(reason) => {
            p.state = PlacementState::Unconfirmed {
                reason: reason.clone(),
                since_ms: first_sent,
                created: false,
            };
        }
    }
    true
}

/// Splits the created ids over the seller's lines. AliExpress makes one order per seller, so
/// one id is the usual case; should it split one seller's items, every id gets all the lines
/// (the poller then matches packages item by item).
fn add_supplier_orders(order: &mut Order, ids: &[u64], lines: &[u64], items: &LineSkus) {
    let links: Vec<crate::order::ItemLink> = items
        .iter()
        .filter(|(line, _, _)| lines.contains(line))
        .map(|(line, product, sku)| crate::order::ItemLink {
            line_item_id: *line,
            product_id: Some(product.clone()),
            sku_id: Some(sku.clone()),
        })
        .collect();
    for id in ids {
        if order.supplier_order(*id).is_none() {
            order
                .supplier_orders
                .push(SupplierOrder::new(*id, lines.to_vec(), links.clone()));
        }
    }
}

/// Records a definitive failure: the order goes to `failed` when nothing was bought for it.
pub fn mark_order_failed(order: &mut Order, failure: &Failure, now_ms: i64) {
    order.failed = Some(format!("{}: {}", failure.code, failure.message));
    order.recompute_status("placing the supplier order failed", now_ms);
}

/// Records an order-level failure found before any seller was contacted (no address, an
/// address AliExpress would refuse, an unmapped item). Returns whether anything changed.
pub fn fail_before_sending(order: &mut Order, failure: Failure, now_ms: i64) -> bool {
    if order.placement_failure.as_ref() == Some(&failure) {
        return false;
    }
    mark_order_failed(order, &failure, now_ms);
    order.placement_failure = Some(failure);
    true
}

/// Whether the order can take a placement at all: paid, not canceled.
pub fn is_placeable(order: &Order) -> bool {
    let s = &order.shopify;
    !s.cancelled && !s.financial_status.is_void() && s.financial_status.is_captured()
}

/// Line items still to buy: paid lines (quantity > 0) with no live supplier order and no
/// placement that is placed, in flight, or of unknown outcome.
pub fn lines_to_place(order: &Order) -> Vec<u64> {
    let covered = |id: u64| {
        order
            .supplier_orders
            .iter()
            .filter(|so| so.status != SupplierStatus::Canceled)
            .any(|so| so.line_item_ids.contains(&id))
    };
    let pending = |id: u64| {
        order.placements.iter().any(|p| {
            p.line_item_ids.contains(&id)
                && !matches!(p.state, PlacementState::Failed { .. })
                && latest(order, p.seller_id).is_some_and(|l| l.attempt == p.attempt)
        })
    };
    order
        .shopify
        .line_items
        .iter()
        .filter(|li| li.quantity > 0 && li.quantity > li.fulfilled_quantity)
        .map(|li| li.id)
        .filter(|id| !covered(*id) && !pending(*id))
        .collect()
}

/// One item to buy from a seller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyItem {
    pub line_item_id: u64,
    pub product_id: u64,
    pub sku_id: String,
    pub sku_attr: String,
    pub count: u32,
    pub shipping_method: Option<String>,
}

/// The items of one seller: one `order.create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SellerGroup {
    pub seller_id: u64,
    pub line_item_ids: Vec<u64>,
    pub items: Vec<BuyItem>,
}

/// Groups the lines to buy by seller through the variants' mappings for `country`. `Err` names
/// the line items that have no variant or no mapping row for that country.
pub fn group_by_seller(
    order: &Order,
    lines: &[u64],
    mappings: &BTreeMap<u64, VariantMapping>,
    country: &str,
) -> Result<Vec<SellerGroup>, Vec<u64>> {
    let mut groups: BTreeMap<u64, SellerGroup> = BTreeMap::new();
    let mut unmapped = Vec::new();
    for li in order
        .shopify
        .line_items
        .iter()
        .filter(|li| lines.contains(&li.id))
    {
        let rows = li
            .variant_id
            .and_then(|v| mappings.get(&v))
            .map(|m| m.rows_for(country))
            .unwrap_or_default();
        if rows.is_empty() {
            unmapped.push(li.id);
            continue;
        }
        let units = li.quantity.saturating_sub(li.fulfilled_quantity);
        for row in rows {
            let g = groups.entry(row.seller_id).or_insert_with(|| SellerGroup {
                seller_id: row.seller_id,
                line_item_ids: Vec::new(),
                items: Vec::new(),
            });
            if !g.line_item_ids.contains(&li.id) {
                g.line_item_ids.push(li.id);
            }
            g.items.push(BuyItem {
                line_item_id: li.id,
                product_id: row.product_id,
                sku_id: row.sku_id.clone(),
                sku_attr: row.sku_attr.clone(),
                count: units.saturating_mul(row.quantity),
                shipping_method: row.shipping_method.clone(),
            });
        }
    }
    if !unmapped.is_empty() {
        return Err(unmapped);
    }
    Ok(groups.into_values().collect())
}

// ------------------------------------------------------------------------------------------------
// Address pre-flight
// ------------------------------------------------------------------------------------------------

/// The shipping address as Shopify has it (read at placement time, never stored or logged:
/// `Debug` shows the country only).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ShippingAddress {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub name: Option<String>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub province_code: Option<String>,
    pub country_code: Option<String>,
    pub zip: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
}

impl std::fmt::Debug for ShippingAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShippingAddress")
            .field("country_code", &self.country_code)
            .finish_non_exhaustive()
    }
}

/// An address ready for AliExpress (`Debug` shows the country only).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct CheckedAddress {
    pub address: String,
    pub address2: Option<String>,
    pub city: String,
    pub province: String,
    pub country: String,
    pub zip: Option<String>,
    pub contact_person: String,
    pub full_name: String,
    pub phone_country: String,
    pub mobile_no: String,
    pub cpf: Option<String>,
}

impl std::fmt::Debug for CheckedAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedAddress")
            .field("country", &self.country)
            .finish_non_exhaustive()
    }
}

/// Countries AliExpress requires a ZIP code for (the common destinations).
const ZIP_REQUIRED: &[&str] = &[
    "US", "CA", "GB", "DE", "FR", "ES", "IT", "NL", "BE", "AU", "BR", "MX", "PL", "SE", "AT", "CH",
    "PT", "CZ", "JP", "KR", "IL", "CL",
];

/// International calling codes of the countries dropsync meets most.
fn calling_code(country: &str) -> Option<&'static str> {
    Some(match country {
        "US" | "CA" | "PR" => "1",
        "GB" => "44",
        "DE" => "49",
        "FR" => "33",
        "ES" => "34",
        "IT" => "39",
        "NL" => "31",
        "BE" => "32",
        "AT" => "43",
        "CH" => "41",
        "PT" => "351",
        "IE" => "353",
        "PL" => "48",
        "CZ" => "420",
        "SE" => "46",
        "NO" => "47",
        "DK" => "45",
        "FI" => "358",
        "AU" => "61",
        "NZ" => "64",
        "BR" => "55",
        "MX" => "52",
        "CL" => "56",
        "AR" => "54",
        "CO" => "57",
        "PE" => "51",
        "KR" => "82",
        "JP" => "81",
        "IL" => "972",
        "SA" => "966",
        "AE" => "971",
        "IN" => "91",
        "ZA" => "27",
        "UA" => "380",
        "RO" => "40",
        "GR" => "30",
        "HU" => "36",
        _ => return None,
    })
}

fn clean(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|v| !v.is_empty())
}

/// Splits a phone number into (`phone_country` with its plus, national `mobile_no` digits).
pub fn split_phone(raw: &str, country: &str) -> Option<(String, String)> {
    let trimmed = raw.trim();
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    let code = calling_code(country);
    let (cc, national) = if trimmed.starts_with('+') || trimmed.starts_with("00") {
        let digits = if trimmed.starts_with("00") {
            digits.get(2..)?.to_owned()
        } else {
            digits
        };
        match code.filter(|c| digits.starts_with(c)) {
            Some(c) => (c.to_owned(), digits.get(c.len()..)?.to_owned()),
            // A number of another country: its code is unknown to us, so refuse rather than guess.
            None => return None,
        }
    } else {
        let c = code?;
        // US numbers are often written 1-555-…; elsewhere a leading 0 is the trunk prefix.
        let national = if c == "1" && digits.len() == 11 && digits.starts_with('1') {
            digits.get(1..)?.to_owned()
        } else {
            digits.trim_start_matches('0').to_owned()
        };
        (c.to_owned(), national)
    };
    (5..=15)
        .contains(&national.len())
        .then(|| (format!("+{cc}"), national))
}

/// Whether a Brazilian CPF (11 digits) has the right check digits.
pub fn cpf_is_valid(cpf: &str) -> bool {
    let d: Vec<u32> = cpf.chars().filter_map(|c| c.to_digit(10)).collect();
    if d.len() != 11
        || cpf.chars().any(|c| !c.is_ascii_digit())
        || d.windows(2).all(|w| w.first() == w.last())
    {
        return false;
    }
    for n in [9usize, 10] {
        let total: u32 = (0..n)
            .map(|i| d.get(i).copied().unwrap_or(0) * (n as u32 + 1 - i as u32))
            .sum();
        if (total * 10 % 11) % 10 != d.get(n).copied().unwrap_or(u32::MAX) {
            return false;
        }
    }
    true
}

/// Checks and converts an address before any AliExpress call. `Err` says what to fix (the
/// failure's message names the field, never its value).
pub fn preflight(addr: &ShippingAddress) -> Result<CheckedAddress, Failure> {
    let fail = |what: &str| Failure::new("ADDRESS_INVALID", what);
    let country = clean(&addr.country_code)
        .map(|c| c.to_ascii_uppercase())
        .filter(|c| crate::mapping::is_country_code(c))
        .ok_or_else(|| fail("The address has no country code"))?;
    let address = clean(&addr.address1).ok_or_else(|| fail("The address has no street line"))?;
    let city = clean(&addr.city).ok_or_else(|| fail("The address has no city"))?;
    // AliExpress wants a province; countries without one get "Other", as integrators do.
    let province = clean(&addr.province)
        .or_else(|| clean(&addr.province_code))
        .unwrap_or_else(|| "Other".to_owned());
    let zip = clean(&addr.zip);
    if zip.is_none() && ZIP_REQUIRED.contains(&country.as_str()) {
        return Err(fail("The address has no ZIP/postal code"));
    }
    let phone = clean(&addr.phone).ok_or_else(|| fail("The address has no phone number"))?;
    let (phone_country, mobile_no) = split_phone(&phone, &country).ok_or_else(|| {
        fail("The phone number cannot be read as a number of the destination country (country code and 5 to 15 digits)")
    })?;
    let full_name = clean(&addr.name)
        .or_else(|| {
            let parts: Vec<String> = [clean(&addr.first_name), clean(&addr.last_name)]
                .into_iter()
                .flatten()
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
        .ok_or_else(|| fail("The address has no recipient name"))?;
    // AliExpress splits contact_person on spaces and wants every part 2 to 32 characters:
    // initials are dropped, a longer part cannot be fixed.
    let parts: Vec<&str> = full_name
        .split_whitespace()
        .filter(|p| p.trim_end_matches('.').chars().count() >= 2)
        .collect();
    if parts.is_empty() || parts.iter().any(|p| p.chars().count() > 32) {
        return Err(fail(
            "The recipient name must have parts of 2 to 32 characters each",
        ));
    }
    let contact_person = parts.join(" ");
    let cpf = if country == "BR" {
        let digits: String = clean(&addr.company)
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        if !cpf_is_valid(&digits) {
            return Err(Failure::new(
                "CPF_MISSING",
                "Orders to Brazil need the customer's CPF (11 digits) in the address's company field",
            ));
        }
        Some(digits)
    } else {
        None
    };
    Ok(CheckedAddress {
        address,
        address2: clean(&addr.address2),
        city,
        province,
        country,
        zip,
        contact_person,
        full_name,
        phone_country,
        mobile_no,
        cpf,
    })
}

#[cfg(test)]
mod tests;
