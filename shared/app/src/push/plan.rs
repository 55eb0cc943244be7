//! Which fulfillment-order lines a package asks Shopify to fulfil, and which standing
//! fulfillment already carries a tracking number: pure decisions over what Shopify reported.

use dropsync_domain::Package;
use dropsync_shopify::admin::{ExistingFulfillment, FulfillmentState};

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
pub(super) fn live(state: &FulfillmentState) -> impl Iterator<Item = &ExistingFulfillment> {
    state.fulfillments.iter().filter(|f| {
        !["CANCELLED", "ERROR", "FAILURE"]
            .iter()
            .any(|s| f.status.trim().eq_ignore_ascii_case(s))
    })
}

/// The standing fulfillment that carries this tracking number, if any.
pub(super) fn carrying<'a>(
    state: &'a FulfillmentState,
    number: &str,
) -> Option<&'a ExistingFulfillment> {
    let number = number.trim();
    live(state).find(|f| f.tracking_numbers.iter().any(|n| n.trim() == number))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::test_support::package;
    use dropsync_shopify::admin::{FoLineItem, FulfillmentOrder};

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
}
