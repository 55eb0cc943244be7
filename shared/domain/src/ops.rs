//! The changes that happen to an order: linking a supplier order, what a poll of AliExpress
//! found, a package pushed to Shopify. Pure functions over [`Order`]; the store makes them
//! durable with conditional writes.

use crate::aliexpress_map::map_ae_order;
use crate::order::{ItemLink, Order, Package, PackageItem, PushGaveUp, PushState, SupplierOrder};
use crate::status::{OrderStatus, SupplierStatus, UserAction, is_automatic_transition};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("line item {0} is not part of this order")]
    UnknownLineItem(u64),
    #[error("line item {line_item_id} is already linked to AliExpress order {ae_order_id}")]
    AlreadyLinked { line_item_id: u64, ae_order_id: u64 },
    #[error("AliExpress order {0} is already linked to other line items of this order")]
    DifferentLines(u64),
    #[error("no line items given")]
    NoLineItems,
    #[error("the order is {0} and cannot take a supplier order")]
    WrongStatus(OrderStatus),
}

/// Links an AliExpress order placed elsewhere to some of the order's line items. Linking the same
/// AliExpress order to the same lines again changes nothing (returns `Ok(false)`).
pub fn link_supplier_order(
    order: &mut Order,
    ae_order_id: u64,
    line_item_ids: &[u64],
    items: Vec<ItemLink>,
    now_ms: i64,
) -> Result<bool, LinkError> {
    if line_item_ids.is_empty() {
        return Err(LinkError::NoLineItems);
    }
    let mut lines: Vec<u64> = line_item_ids.to_vec();
    lines.sort_unstable();
    lines.dedup();
    for id in &lines {
        if !order.shopify.line_items.iter().any(|li| li.id == *id) {
            return Err(LinkError::UnknownLineItem(*id));
        }
    }
    if let Some(existing) = order.supplier_order(ae_order_id) {
        let mut have = existing.line_item_ids.clone();
        have.sort_unstable();
        return if have == lines {
            Ok(false)
        } else {
            Err(LinkError::DifferentLines(ae_order_id))
        };
    }
    for so in order
        .supplier_orders
        .iter()
        .filter(|so| so.status != SupplierStatus::Canceled)
    {
        if let Some(id) = lines.iter().find(|id| so.line_item_ids.contains(id)) {
            return Err(LinkError::AlreadyLinked {
                line_item_id: *id,
                ae_order_id: so.ae_order_id,
            });
        }
    }
    // An order canceled in Shopify takes no new supplier order; one canceled on AliExpress may
    // (that is a re-order).
    if order.shopify.cancelled || order.shopify.financial_status.is_void() {
        return Err(LinkError::WrongStatus(order.status));
    }
    let items = items
        .into_iter()
        .filter(|it| lines.contains(&it.line_item_id))
        .collect();
    order
        .supplier_orders
        .push(SupplierOrder::new(ae_order_id, lines, items));
    let cause = format!("linked AliExpress order {ae_order_id}");
    settle_status(order, &cause, now_ms);
    Ok(true)
}

/// Recomputes the status after a merchant change: forward when the table allows, otherwise as
/// the merchant's re-order (the only way back), otherwise unchanged.
pub fn settle_status(order: &mut Order, cause: &str, now_ms: i64) {
    let derived = order.derive_status();
    if is_automatic_transition(order.status, derived) {
        order.recompute_status(cause, now_ms);
    } else if derived == UserAction::ReOrder.target() {
        order.apply_user_action(UserAction::ReOrder, cause, now_ms);
    }
}

/// Records that placing the supplier order failed.
pub fn mark_failed(order: &mut Order, reason: &str, now_ms: i64) -> bool {
    if order.status != OrderStatus::AwaitingOrder {
        return false;
    }
    order.failed = Some(reason.to_owned());
    order.recompute_status("placing the supplier order failed", now_ms);
    order.status == OrderStatus::Failed
}

/// One child line of an AliExpress order, as `order.get` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AeChild {
    pub product_id: Option<String>,
    pub sku_id: Option<String>,
    pub end_reason: Option<String>,
}

/// One item of a tracking line's `package_item_list`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AeParcelItem {
    pub product_id: Option<String>,
    pub sku_id: Option<String>,
    pub quantity: u32,
}

/// One tracking line of `tracking.get`: one package.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AeTrackingLine {
    pub mail_no: String,
    pub carrier_name: Option<String>,
    pub items: Vec<AeParcelItem>,
}

/// What a poll found about one AliExpress order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AeObservation {
    pub order_status: String,
    pub logistics_status: Option<String>,
    pub children: Vec<AeChild>,
    /// `None` when tracking was not asked for or not found (1001: not shipped yet).
    pub tracking: Option<Vec<AeTrackingLine>>,
}

/// What applying an observation changed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncChanges {
    pub status_changed: bool,
    pub new_packages: Vec<String>,
    pub corrected_packages: Vec<String>,
    pub attention_changed: bool,
}

impl SyncChanges {
    pub fn is_empty(&self) -> bool {
        !self.status_changed
            && self.new_packages.is_empty()
            && self.corrected_packages.is_empty()
            && !self.attention_changed
    }
}

/// Applies what a poll of AliExpress found to one supplier order, forward only. New packages are
/// recorded with their push pending; a changed tracking number of a pushed package becomes a
/// tracking update. Returns `None` when the order has no such supplier order.
pub fn apply_ae_observation(
    order: &mut Order,
    ae_order_id: u64,
    obs: &AeObservation,
    now_ms: i64,
) -> Option<SyncChanges> {
    let line_items = order.shopify.line_items.clone();
    let so = order.supplier_order_mut(ae_order_id)?;
    let mut changes = SyncChanges::default();
    let reasons: Vec<Option<&str>> = obs
        .children
        .iter()
        .map(|c| c.end_reason.as_deref())
        .collect();
    let mapping = map_ae_order(&obs.order_status, obs.logistics_status.as_deref(), &reasons);

    if let Some(next) = mapping.status
        && next != so.status
        && so.status.can_move_to(next)
    {
        so.status = next;
        changes.status_changed = true;
    }
    if mapping.attention != so.attention {
        so.attention = mapping.attention.clone();
        changes.attention_changed = true;
    }
    so.raw_status = Some(obs.order_status.clone());
    so.raw_logistics_status = obs.logistics_status.clone();
    so.last_checked_ms = Some(now_ms);

    for idx in &mapping.canceled_children {
        let Some(child) = obs.children.get(*idx) else {
            continue;
        };
        for line in lines_for(
            so,
            &line_items,
            child.product_id.as_deref(),
            child.sku_id.as_deref(),
        ) {
            if !so.canceled_line_item_ids.contains(&line) {
                so.canceled_line_item_ids.push(line);
                changes.status_changed = true;
            }
        }
    }

    if let Some(lines) = &obs.tracking {
        let live_numbers: Vec<&str> = lines.iter().map(|l| l.mail_no.as_str()).collect();
        for line in lines {
            if line.mail_no.trim().is_empty() || so.package(&line.mail_no).is_some() {
                continue;
            }
            let items = package_items(so, &line_items, &line.items);
            // A number that replaced one AliExpress no longer lists, for the same parcel contents,
            // is a correction of that package, not a second parcel.
            let corrected = so
                .packages
                .iter_mut()
                .find(|p| !live_numbers.contains(&p.tracking_number.as_str()) && p.items == items);
            if let Some(p) = corrected {
                let old = std::mem::replace(&mut p.tracking_number, line.mail_no.clone());
                p.previous_tracking = Some(old);
                p.carrier = line.carrier_name.clone().or(p.carrier.take());
                p.push = match &p.push {
                    PushState::Pushed {
                        fulfillment_id: Some(id),
                    }
                    | PushState::UpdatePending { fulfillment_id: id } => PushState::UpdatePending {
                        fulfillment_id: id.clone(),
                    },
                    // Not in Shopify yet (or we never learned the fulfillment id): push afresh.
                    _ => PushState::Pending,
                };
                p.due_since_ms = now_ms;
                p.gave_up = None;
                changes.corrected_packages.push(line.mail_no.clone());
                continue;
            }
            so.packages.push(Package {
                tracking_number: line.mail_no.clone(),
                carrier: line.carrier_name.clone(),
                items,
                push: PushState::Pending,
                previous_tracking: None,
                found_at_ms: now_ms,
                due_since_ms: now_ms,
                gave_up: None,
            });
            changes.new_packages.push(line.mail_no.clone());
        }
        // Tracking proves shipment even when order_status lags behind.
        if !so.packages.is_empty()
            && so.status.can_move_to(SupplierStatus::PartiallyShipped)
            && so.status < SupplierStatus::PartiallyShipped
        {
            so.status = SupplierStatus::PartiallyShipped;
            changes.status_changed = true;
        }
    }

    let cause = format!("AliExpress order {ae_order_id} synced");
    if order.recompute_status(&cause, now_ms).is_some() {
        changes.status_changed = true;
    }
    Some(changes)
}

/// The Shopify line items an AliExpress item stands for: the link's item mapping first, then the
/// line items' SKUs, then — for a supplier order of a single line — that line.
fn lines_for(
    so: &SupplierOrder,
    line_items: &[crate::order::LineItem],
    product_id: Option<&str>,
    sku_id: Option<&str>,
) -> Vec<u64> {
    let by_link: Vec<u64> = so
        .items
        .iter()
        .filter(|it| {
            let sku_match = matches!((&it.sku_id, sku_id), (Some(a), Some(b)) if a == b);
            let product_match =
                matches!((&it.product_id, product_id), (Some(a), Some(b)) if a == b);
            sku_match || (product_match && it.sku_id.is_none())
        })
        .map(|it| it.line_item_id)
        .collect();
    if !by_link.is_empty() {
        return by_link;
    }
    let by_sku: Vec<u64> = line_items
        .iter()
        .filter(|li| so.line_item_ids.contains(&li.id))
        .filter(|li| matches!((&li.sku, sku_id), (Some(a), Some(b)) if !a.is_empty() && a == b))
        .map(|li| li.id)
        .collect();
    if !by_sku.is_empty() {
        return by_sku;
    }
    match so.line_item_ids.as_slice() {
        [only] => vec![*only],
        _ => Vec::new(),
    }
}

/// Maps a parcel's AliExpress items to Shopify line items. A parcel listing nothing, or carrying
/// everything of its supplier order, covers all the supplier order's lines in full.
fn package_items(
    so: &SupplierOrder,
    line_items: &[crate::order::LineItem],
    parcel: &[AeParcelItem],
) -> Vec<PackageItem> {
    let full: Vec<PackageItem> = line_items
        .iter()
        .filter(|li| {
            so.line_item_ids.contains(&li.id) && !so.canceled_line_item_ids.contains(&li.id)
        })
        .map(|li| PackageItem {
            line_item_id: li.id,
            quantity: li.quantity,
        })
        .collect();
    if parcel.is_empty() {
        return full;
    }
    let mut out: Vec<PackageItem> = Vec::new();
    for item in parcel {
        let lines = lines_for(
            so,
            line_items,
            item.product_id.as_deref(),
            item.sku_id.as_deref(),
        );
        for line in lines {
            let max = line_items
                .iter()
                .find(|li| li.id == line)
                .map_or(0, |li| li.quantity);
            match out.iter_mut().find(|p| p.line_item_id == line) {
                Some(p) => p.quantity = (p.quantity + item.quantity).min(max),
                None => out.push(PackageItem {
                    line_item_id: line,
                    quantity: item.quantity.min(max).max(1),
                }),
            }
        }
    }
    if out.is_empty() {
        // Nothing recognisable: the whole supplier order is the safest reading, and the
        // fulfillment-order quantities on Shopify's side cap it.
        return full;
    }
    out.sort_by_key(|p| p.line_item_id);
    out
}

/// Records that a package is in Shopify. Idempotent.
pub fn mark_pushed(
    order: &mut Order,
    ae_order_id: u64,
    tracking_number: &str,
    fulfillment_id: Option<String>,
    now_ms: i64,
) -> bool {
    let Some(p) = order.package_mut(ae_order_id, tracking_number) else {
        return false;
    };
    let next = PushState::Pushed {
        fulfillment_id: fulfillment_id.or_else(|| match &p.push {
            PushState::Pushed { fulfillment_id } => fulfillment_id.clone(),
            PushState::UpdatePending { fulfillment_id } => Some(fulfillment_id.clone()),
            _ => None,
        }),
    };
    if p.push == next {
        return false;
    }
    p.push = next;
    p.gave_up = None;
    order.recompute_status(
        &format!("tracking {tracking_number} pushed to Shopify"),
        now_ms,
    );
    true
}

/// Records that Shopify refused a package, for the merchant to see.
pub fn mark_push_failed(
    order: &mut Order,
    ae_order_id: u64,
    tracking_number: &str,
    reason: &str,
) -> bool {
    let Some(p) = order.package_mut(ae_order_id, tracking_number) else {
        return false;
    };
    if p.push.is_pushed() && !matches!(p.push, PushState::UpdatePending { .. }) {
        return false;
    }
    let next = PushState::Failed {
        reason: reason.to_owned(),
    };
    if p.push == next {
        return false;
    }
    p.push = next;
    p.gave_up = None;
    true
}

/// Records that the pusher gave up on a package still due (its message is going to the
/// dead-letter queue after `attempts` failed deliveries). The push stays due. Returns whether
/// anything changed.
pub fn mark_push_gave_up(
    order: &mut Order,
    ae_order_id: u64,
    tracking_number: &str,
    reason: &str,
    attempts: u32,
    now_ms: i64,
) -> bool {
    let Some(p) = order.package_mut(ae_order_id, tracking_number) else {
        return false;
    };
    if !p.push.is_due() {
        return false;
    }
    p.gave_up = Some(PushGaveUp {
        reason: reason.to_owned(),
        attempts,
        at_ms: now_ms,
    });
    true
}

/// Marks the pushes that are still due but went unsent for longer than `grace_ms` (the sync that
/// made them due stopped between its write and its send, or the message was lost) as due again
/// from `now_ms`, and returns them as `(AliExpress order id, tracking number)`: the caller writes
/// the order and then re-sends exactly these. Recording the new time in the same conditional
/// write means two syncs racing on one order re-send a stale push once, not twice.
pub fn claim_stale_pushes(order: &mut Order, now_ms: i64, grace_ms: i64) -> Vec<(u64, String)> {
    let mut claimed = Vec::new();
    for so in &mut order.supplier_orders {
        for p in &mut so.packages {
            if p.push.is_due() && p.due_since_ms.saturating_add(grace_ms) <= now_ms {
                p.due_since_ms = now_ms;
                claimed.push((so.ae_order_id, p.tracking_number.clone()));
            }
        }
    }
    claimed
}

/// A merchant's "try again" (a manual sync of the order): pushes Shopify refused are due again,
/// and pushes that went to the dead-letter queue are re-sent now instead of at the next run.
/// Returns them as `(AliExpress order id, tracking number)` for the caller to send after writing.
pub fn retry_pushes(order: &mut Order, now_ms: i64) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for so in &mut order.supplier_orders {
        for p in &mut so.packages {
            if p.needs_retry() {
                if matches!(p.push, PushState::Failed { .. }) {
                    p.push = PushState::Pending;
                }
                p.gave_up = None;
                p.due_since_ms = now_ms;
                out.push((so.ae_order_id, p.tracking_number.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{FinancialStatus, LineItem, ShopifyFacts};
    use crate::{OrderStatus, ShopDomain};

    fn order() -> Order {
        let facts = ShopifyFacts {
            name: "#1".into(),
            created_at_ms: 0,
            updated_at_ms: 1,
            financial_status: FinancialStatus::Paid,
            cancelled: false,
            test: false,
            fulfillment_status: None,
            line_items: vec![LineItem::new(1, 1)],
            fulfillment_tracking: vec![],
        };
        let shop = ShopDomain::parse("a.myshopify.com").unwrap();
        let mut o = Order::from_shopify(shop, 1, facts, "t", 0);
        assert_eq!(link_supplier_order(&mut o, 11, &[1], vec![], 0), Ok(true));
        o
    }

    fn shipped(mail_no: &str) -> AeObservation {
        AeObservation {
            order_status: "WAIT_BUYER_ACCEPT_GOODS".into(),
            logistics_status: Some("SELLER_SEND_GOODS".into()),
            children: vec![AeChild::default()],
            tracking: Some(vec![AeTrackingLine {
                mail_no: mail_no.into(),
                carrier_name: None,
                items: vec![],
            }]),
        }
    }

    #[test]
    fn a_dead_lettered_push_needs_attention_until_it_is_pushed_and_never_marks_a_done_package() {
        let mut o = order();
        apply_ae_observation(&mut o, 11, &shipped("T1"), 5_000);
        assert!(
            !mark_push_gave_up(&mut o, 11, "T9", "x", 8, 6_000),
            "unknown package"
        );
        assert!(mark_push_gave_up(&mut o, 11, "T1", "Shopify 503", 8, 6_000));
        assert!(matches!(
            &o.attention()[..],
            [crate::Attention::PushDeadLettered {
                attempts: 8,
                at_ms: 6_000,
                ..
            }]
        ));
        assert!(
            o.supplier_order(11)
                .and_then(|so| so.package("T1"))
                .is_some_and(|p| p.push.is_due())
        );
        assert!(mark_pushed(&mut o, 11, "T1", None, 7_000));
        assert!(o.attention().is_empty());
        assert!(
            !mark_push_gave_up(&mut o, 11, "T1", "late", 8, 8_000),
            "already pushed"
        );
        assert!(o.attention().is_empty());
    }

    #[test]
    fn a_merchant_retry_makes_refused_and_dead_lettered_pushes_due_now_and_leaves_the_rest() {
        let mut o = order();
        let mut obs = shipped("T1");
        if let Some(t) = obs.tracking.as_mut() {
            t.push(AeTrackingLine {
                mail_no: "T2".into(),
                carrier_name: None,
                items: vec![],
            });
            t.push(AeTrackingLine {
                mail_no: "T3".into(),
                carrier_name: None,
                items: vec![],
            });
        }
        apply_ae_observation(&mut o, 11, &obs, 5_000);
        assert!(mark_push_failed(&mut o, 11, "T1", "ON_HOLD"));
        assert!(mark_push_gave_up(&mut o, 11, "T2", "503", 8, 6_000));
        assert_eq!(
            retry_pushes(&mut o, 9_000),
            vec![(11, "T1".to_owned()), (11, "T2".to_owned())]
        );
        assert!(o.attention().is_empty());
        let so = o.supplier_order(11).unwrap();
        for tn in ["T1", "T2"] {
            let p = so.package(tn).unwrap();
            assert_eq!(
                (&p.push, p.due_since_ms),
                (&PushState::Pending, 9_000),
                "{tn}"
            );
        }
        assert_eq!(so.package("T3").unwrap().due_since_ms, 5_000, "untouched");
        assert!(
            retry_pushes(&mut o, 10_000).is_empty(),
            "nothing left to retry"
        );
    }

    #[test]
    fn a_new_package_is_due_from_the_time_it_was_found() {
        let mut o = order();
        let changes = apply_ae_observation(&mut o, 11, &shipped("T1"), 5_000);
        assert_eq!(changes.map(|c| c.new_packages), Some(vec!["T1".to_owned()]));
        let p = o.supplier_order(11).and_then(|so| so.package("T1"));
        assert_eq!(
            p.map(|p| (p.due_since_ms, p.found_at_ms)),
            Some((5_000, 5_000))
        );
        assert_eq!(o.status, OrderStatus::AwaitingFulfillment);
    }

    #[test]
    fn a_corrected_tracking_number_of_a_pushed_package_is_due_again_as_an_update() {
        let mut o = order();
        apply_ae_observation(&mut o, 11, &shipped("T1"), 5_000);
        assert!(mark_pushed(
            &mut o,
            11,
            "T1",
            Some("gid://f/1".into()),
            6_000
        ));
        let changes = apply_ae_observation(&mut o, 11, &shipped("T2"), 9_000);
        assert_eq!(
            changes.map(|c| c.corrected_packages),
            Some(vec!["T2".to_owned()])
        );
        let p = o.supplier_order(11).and_then(|so| so.package("T2"));
        assert_eq!(
            p.map(|p| (p.push.clone(), p.due_since_ms, p.previous_tracking.clone())),
            Some((
                PushState::UpdatePending {
                    fulfillment_id: "gid://f/1".into()
                },
                9_000,
                Some("T1".into())
            ))
        );
    }

    #[test]
    fn only_pushes_left_unsent_past_the_grace_are_claimed_and_only_once() {
        let mut o = order();
        apply_ae_observation(&mut o, 11, &shipped("T1"), 5_000);
        assert!(claim_stale_pushes(&mut o, 5_500, 1_000).is_empty());
        assert_eq!(
            claim_stale_pushes(&mut o, 6_000, 1_000),
            vec![(11, "T1".to_owned())]
        );
        // Claimed at 6 000: not stale again until the grace has passed once more.
        assert!(claim_stale_pushes(&mut o, 6_500, 1_000).is_empty());
        assert!(mark_pushed(&mut o, 11, "T1", None, 7_000));
        assert!(claim_stale_pushes(&mut o, 60_000, 1_000).is_empty());
    }
}
