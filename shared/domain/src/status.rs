//! The order status (DSers' tabs), the supplier-order status, and the transition table.
//!
//! Statuses move forward only. The table below is the single source of the allowed moves: the
//! store turns it into DynamoDB `ConditionExpression`s, so an invalid transition cannot be stored
//! even by code that gets the rules wrong.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The tab an order sits in. Names on the wire are the snake_case tab names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    AwaitingOrder,
    AwaitingPayment,
    AwaitingShipment,
    AwaitingFulfillment,
    Fulfilled,
    Canceled,
    Failed,
}

impl OrderStatus {
    /// Every status, in tab order.
    pub const ALL: [OrderStatus; 8] = [
        OrderStatus::Pending,
        OrderStatus::AwaitingOrder,
        OrderStatus::AwaitingPayment,
        OrderStatus::AwaitingShipment,
        OrderStatus::AwaitingFulfillment,
        OrderStatus::Fulfilled,
        OrderStatus::Canceled,
        OrderStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::AwaitingOrder => "awaiting_order",
            OrderStatus::AwaitingPayment => "awaiting_payment",
            OrderStatus::AwaitingShipment => "awaiting_shipment",
            OrderStatus::AwaitingFulfillment => "awaiting_fulfillment",
            OrderStatus::Fulfilled => "fulfilled",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Failed => "failed",
        }
    }

    /// Position on the forward path; `None` for the exits (canceled, failed).
    pub fn rank(self) -> Option<u8> {
        match self {
            OrderStatus::Pending => Some(0),
            OrderStatus::AwaitingOrder => Some(1),
            OrderStatus::AwaitingPayment => Some(2),
            OrderStatus::AwaitingShipment => Some(3),
            OrderStatus::AwaitingFulfillment => Some(4),
            OrderStatus::Fulfilled => Some(5),
            OrderStatus::Canceled | OrderStatus::Failed => None,
        }
    }

    /// The statuses an automatic change (webhook, poll, push) may move *from* to reach `self`.
    /// Includes `self`: re-stating the current status is always allowed (idempotent writes).
    pub fn automatic_predecessors(self) -> Vec<OrderStatus> {
        OrderStatus::ALL
            .into_iter()
            .filter(|from| is_automatic_transition(*from, self))
            .collect()
    }

    /// True when an order in this status still has work that the sync must do.
    pub fn is_open(self) -> bool {
        !matches!(self, OrderStatus::Fulfilled | OrderStatus::Canceled)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown status name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for OrderStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// The automatic transition table: forward along the path (skipping steps is fine), into an exit
/// from any open status, and `awaiting_order -> failed` when placing the supplier order fails.
/// Nothing ever leaves `canceled` or `failed` automatically, and `fulfilled` only leaves for
/// `canceled` (a Shopify cancel or refund after shipping is still a fact the merchant must see).
pub fn is_automatic_transition(from: OrderStatus, to: OrderStatus) -> bool {
    if from == to {
        return true;
    }
    match (from.rank(), to.rank()) {
        (Some(a), Some(b)) => a < b,
        (Some(_), None) => match to {
            OrderStatus::Canceled => true,
            OrderStatus::Failed => matches!(from, OrderStatus::AwaitingOrder),
            _ => false,
        },
        // Exits are final for automatic changes.
        (None, _) => false,
    }
}

/// Explicit merchant actions: the only ways back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserAction {
    /// Place (or link) a supplier order again for an order that was canceled on AliExpress, failed,
    /// or lost one of its supplier orders: the order goes back to `awaiting_payment`.
    ReOrder,
    /// Return a wrongly fulfilled order for re-processing: back to `awaiting_order`.
    RollBack,
}

impl UserAction {
    pub fn target(self) -> OrderStatus {
        match self {
            UserAction::ReOrder => OrderStatus::AwaitingPayment,
            UserAction::RollBack => OrderStatus::AwaitingOrder,
        }
    }

    /// The statuses this action may be taken from.
    pub fn predecessors(self) -> &'static [OrderStatus] {
        match self {
            UserAction::ReOrder => &[
                OrderStatus::AwaitingOrder,
                OrderStatus::AwaitingPayment,
                OrderStatus::AwaitingShipment,
                OrderStatus::AwaitingFulfillment,
                OrderStatus::Canceled,
                OrderStatus::Failed,
            ],
            UserAction::RollBack => &[OrderStatus::AwaitingFulfillment, OrderStatus::Fulfilled],
        }
    }

    pub fn allows(self, from: OrderStatus) -> bool {
        self.predecessors().contains(&from)
    }
}

/// The state of one AliExpress order, as dropsync tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SupplierStatus {
    AwaitingPayment,
    AwaitingShipment,
    PartiallyShipped,
    Shipped,
    Delivered,
    Canceled,
}

impl SupplierStatus {
    pub const ALL: [SupplierStatus; 6] = [
        SupplierStatus::AwaitingPayment,
        SupplierStatus::AwaitingShipment,
        SupplierStatus::PartiallyShipped,
        SupplierStatus::Shipped,
        SupplierStatus::Delivered,
        SupplierStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SupplierStatus::AwaitingPayment => "awaiting_payment",
            SupplierStatus::AwaitingShipment => "awaiting_shipment",
            SupplierStatus::PartiallyShipped => "partially_shipped",
            SupplierStatus::Shipped => "shipped",
            SupplierStatus::Delivered => "delivered",
            SupplierStatus::Canceled => "canceled",
        }
    }

    fn rank(self) -> Option<u8> {
        match self {
            SupplierStatus::AwaitingPayment => Some(0),
            SupplierStatus::AwaitingShipment => Some(1),
            SupplierStatus::PartiallyShipped => Some(2),
            SupplierStatus::Shipped => Some(3),
            SupplierStatus::Delivered => Some(4),
            SupplierStatus::Canceled => None,
        }
    }

    /// Forward only: a stale or reordered poll never moves a supplier order back. A cancel is an
    /// exit from any state before delivery (AliExpress cancels unpaid and risk-held orders).
    pub fn can_move_to(self, to: SupplierStatus) -> bool {
        if self == to {
            return true;
        }
        match (self.rank(), to.rank()) {
            (Some(a), Some(b)) => a < b,
            (Some(_), None) => self != SupplierStatus::Delivered,
            (None, _) => false,
        }
    }

    /// Whether the poller still has to look at this supplier order.
    pub fn is_open(self) -> bool {
        !matches!(self, SupplierStatus::Delivered | SupplierStatus::Canceled)
    }

    /// Whether AliExpress has been paid.
    pub fn is_paid(self) -> bool {
        !matches!(
            self,
            SupplierStatus::AwaitingPayment | SupplierStatus::Canceled
        )
    }
}

impl fmt::Display for SupplierStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SupplierStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SupplierStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip_through_their_wire_form() {
        for s in OrderStatus::ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>(), Ok(s));
            let json = serde_json::to_string(&s).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        for s in SupplierStatus::ALL {
            assert_eq!(s.as_str().parse::<SupplierStatus>(), Ok(s));
        }
    }

    #[test]
    fn fulfilled_cannot_go_back_to_awaiting_payment_automatically() {
        assert!(!is_automatic_transition(
            OrderStatus::Fulfilled,
            OrderStatus::AwaitingPayment
        ));
        assert!(
            !OrderStatus::AwaitingPayment
                .automatic_predecessors()
                .contains(&OrderStatus::Fulfilled)
        );
    }

    #[test]
    fn a_poll_may_skip_steps_forward() {
        assert!(is_automatic_transition(
            OrderStatus::AwaitingPayment,
            OrderStatus::Fulfilled
        ));
    }

    #[test]
    fn exits_are_final_for_automatic_changes() {
        for to in OrderStatus::ALL {
            if to != OrderStatus::Canceled {
                assert!(!is_automatic_transition(OrderStatus::Canceled, to));
            }
            if to != OrderStatus::Failed {
                assert!(!is_automatic_transition(OrderStatus::Failed, to));
            }
        }
    }

    #[test]
    fn only_awaiting_order_can_fail() {
        let preds = OrderStatus::Failed.automatic_predecessors();
        assert_eq!(preds, vec![OrderStatus::AwaitingOrder, OrderStatus::Failed]);
    }

    #[test]
    fn user_actions_are_the_only_ways_back() {
        assert!(UserAction::ReOrder.allows(OrderStatus::Canceled));
        assert!(UserAction::RollBack.allows(OrderStatus::Fulfilled));
        assert!(!UserAction::RollBack.allows(OrderStatus::Pending));
    }

    #[test]
    fn supplier_status_never_moves_back_and_delivered_is_final() {
        assert!(!SupplierStatus::Shipped.can_move_to(SupplierStatus::AwaitingShipment));
        assert!(SupplierStatus::AwaitingPayment.can_move_to(SupplierStatus::Shipped));
        assert!(!SupplierStatus::Delivered.can_move_to(SupplierStatus::Canceled));
        assert!(!SupplierStatus::Canceled.can_move_to(SupplierStatus::Shipped));
    }
}
