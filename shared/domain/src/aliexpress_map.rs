//! Mapping AliExpress `order_status` / `logistics_status` / child `end_reason` to dropsync's
//! supplier-order status. Unknown values are kept raw and flagged for
//! attention; they never fail anything.

use crate::status::SupplierStatus;
use serde::{Deserialize, Serialize};

/// AliExpress `order_status`, kept open: an unknown value survives as `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AeOrderStatus {
    PlaceOrderSuccess,
    WaitGroup,
    WaitCompleteAddress,
    PaymentProcessing,
    WaitSellerExamineMoney,
    RiskControl,
    RiskControlHold,
    WaitSellerSendGoods,
    SellerPartSendGoods,
    WaitBuyerAcceptGoods,
    Finish,
    InCancel,
    FundProcessing,
    InIssue,
    InFrozen,
    Archive,
    Other(String),
}

impl AeOrderStatus {
    pub fn parse(raw: &str) -> Self {
        match raw.trim() {
            "PLACE_ORDER_SUCCESS" => Self::PlaceOrderSuccess,
            "WAIT_GROUP" => Self::WaitGroup,
            "WAIT_COMPLETE_ADDRESS" => Self::WaitCompleteAddress,
            "PAYMENT_PROCESSING" => Self::PaymentProcessing,
            "WAIT_SELLER_EXAMINE_MONEY" => Self::WaitSellerExamineMoney,
            "RISK_CONTROL" => Self::RiskControl,
            "RISK_CONTROL_HOLD" => Self::RiskControlHold,
            "WAIT_SELLER_SEND_GOODS" => Self::WaitSellerSendGoods,
            "SELLER_PART_SEND_GOODS" => Self::SellerPartSendGoods,
            "WAIT_BUYER_ACCEPT_GOODS" => Self::WaitBuyerAcceptGoods,
            "FINISH" => Self::Finish,
            "IN_CANCEL" => Self::InCancel,
            "FUND_PROCESSING" => Self::FundProcessing,
            "IN_ISSUE" => Self::InIssue,
            "IN_FROZEN" => Self::InFrozen,
            "ARCHIVE" => Self::Archive,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// AliExpress `logistics_status`, kept open.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AeLogisticsStatus {
    Default,
    WaitSellerSendGoods,
    SellerSendPartGoods,
    SellerSendGoods,
    BuyerAcceptGoods,
    NoLogistics,
    Other(String),
}

impl AeLogisticsStatus {
    pub fn parse(raw: &str) -> Self {
        match raw.trim() {
            "DEFAULT" => Self::Default,
            "WAIT_SELLER_SEND_GOODS" => Self::WaitSellerSendGoods,
            "SELLER_SEND_PART_GOODS" => Self::SellerSendPartGoods,
            "SELLER_SEND_GOODS" => Self::SellerSendGoods,
            "BUYER_ACCEPT_GOODS" => Self::BuyerAcceptGoods,
            "NO_LOGISTICS" => Self::NoLogistics,
            other => Self::Other(other.to_owned()),
        }
    }

    /// How far the parcels have got, as a supplier status, when the logistics status says so.
    fn implied(&self) -> Option<SupplierStatus> {
        match self {
            Self::SellerSendPartGoods => Some(SupplierStatus::PartiallyShipped),
            Self::SellerSendGoods => Some(SupplierStatus::Shipped),
            Self::BuyerAcceptGoods => Some(SupplierStatus::Delivered),
            _ => None,
        }
    }
}

/// A child line's `end_reason`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AeEndReason {
    Canceled,
    Other(String),
}

impl AeEndReason {
    /// `None` for an absent or empty reason (the line is live).
    pub fn parse(raw: Option<&str>) -> Option<Self> {
        let raw = raw?.trim();
        if raw.is_empty() {
            return None;
        }
        Some(match raw.to_ascii_uppercase().as_str() {
            "CANCELED" | "CANCELLED" => Self::Canceled,
            _ => Self::Other(raw.to_owned()),
        })
    }
}

/// Why a supplier order needs the merchant's eyes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum SupplierAttention {
    /// AliExpress waits for the shipping address to be completed.
    AddressIncomplete,
    /// AliExpress holds the payment in risk control.
    PaymentHeld,
    /// `FINISH` with neither shipping nor an all-canceled order: cannot tell what happened.
    AmbiguousFinish { logistics_status: String },
    /// A status dropsync does not know (older APIs, new values).
    UnknownStatus { raw: String },
    /// A logistics status dropsync does not know.
    UnknownLogisticsStatus { raw: String },
    /// A child line ended for a reason other than a cancel.
    UnknownEndReason { raw: String },
}

/// The outcome of mapping one `order.get` result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AeMapping {
    /// The supplier status the facts imply; `None` keeps the stored one (unknown or ambiguous).
    pub status: Option<SupplierStatus>,
    pub attention: Vec<SupplierAttention>,
    /// Indexes (into the child list given) of the lines canceled under a live parent.
    pub canceled_children: Vec<usize>,
}

/// Maps an `order.get` result. `children` are the child lines' `end_reason`s in order.
pub fn map_ae_order(
    order_status: &str,
    logistics_status: Option<&str>,
    children: &[Option<&str>],
) -> AeMapping {
    let status = AeOrderStatus::parse(order_status);
    let logistics = logistics_status
        .filter(|s| !s.trim().is_empty())
        .map(AeLogisticsStatus::parse);
    let reasons: Vec<Option<AeEndReason>> =
        children.iter().map(|r| AeEndReason::parse(*r)).collect();
    let all_children_canceled =
        !reasons.is_empty() && reasons.iter().all(|r| r == &Some(AeEndReason::Canceled));

    let mut attention = Vec::new();
    let base = match &status {
        AeOrderStatus::PlaceOrderSuccess | AeOrderStatus::WaitGroup => {
            Some(SupplierStatus::AwaitingPayment)
        }
        AeOrderStatus::WaitCompleteAddress => {
            attention.push(SupplierAttention::AddressIncomplete);
            Some(SupplierStatus::AwaitingPayment)
        }
        AeOrderStatus::PaymentProcessing
        | AeOrderStatus::WaitSellerExamineMoney
        | AeOrderStatus::RiskControl
        | AeOrderStatus::WaitSellerSendGoods => Some(SupplierStatus::AwaitingShipment),
        AeOrderStatus::RiskControlHold => {
            attention.push(SupplierAttention::PaymentHeld);
            Some(SupplierStatus::AwaitingShipment)
        }
        AeOrderStatus::SellerPartSendGoods => Some(SupplierStatus::PartiallyShipped),
        AeOrderStatus::WaitBuyerAcceptGoods | AeOrderStatus::FundProcessing => {
            Some(SupplierStatus::Shipped)
        }
        AeOrderStatus::Finish => match &logistics {
            Some(AeLogisticsStatus::SellerSendGoods) => Some(SupplierStatus::Shipped),
            Some(AeLogisticsStatus::BuyerAcceptGoods) => Some(SupplierStatus::Delivered),
            Some(AeLogisticsStatus::NoLogistics) | Some(AeLogisticsStatus::Default) | None
                if all_children_canceled =>
            {
                Some(SupplierStatus::Canceled)
            }
            other => {
                attention.push(SupplierAttention::AmbiguousFinish {
                    logistics_status: match other {
                        Some(l) => logistics_raw(l),
                        None => String::new(),
                    },
                });
                None
            }
        },
        AeOrderStatus::InCancel => Some(SupplierStatus::Canceled),
        AeOrderStatus::InIssue | AeOrderStatus::InFrozen | AeOrderStatus::Archive => {
            attention.push(SupplierAttention::UnknownStatus {
                raw: order_status.trim().to_owned(),
            });
            None
        }
        AeOrderStatus::Other(raw) => {
            attention.push(SupplierAttention::UnknownStatus { raw: raw.clone() });
            None
        }
    };

    // For a paid, live order the logistics status can be further along than order_status
    // (AliExpress updates them separately); never let it pull a status back.
    let status = match (
        base,
        logistics.as_ref().and_then(AeLogisticsStatus::implied),
    ) {
        (Some(b), Some(l)) if b.is_paid() && b != SupplierStatus::Canceled && b < l => Some(l),
        (b, _) => b,
    };
    if let Some(AeLogisticsStatus::Other(raw)) = &logistics {
        attention.push(SupplierAttention::UnknownLogisticsStatus { raw: raw.clone() });
    }

    let mut canceled_children = Vec::new();
    for (i, r) in reasons.iter().enumerate() {
        match r {
            Some(AeEndReason::Canceled) if status != Some(SupplierStatus::Canceled) => {
                canceled_children.push(i)
            }
            Some(AeEndReason::Canceled) => {}
            Some(AeEndReason::Other(raw)) => {
                attention.push(SupplierAttention::UnknownEndReason { raw: raw.clone() })
            }
            None => {}
        }
    }

    AeMapping {
        status,
        attention,
        canceled_children,
    }
}

fn logistics_raw(l: &AeLogisticsStatus) -> String {
    match l {
        AeLogisticsStatus::Default => "DEFAULT".into(),
        AeLogisticsStatus::WaitSellerSendGoods => "WAIT_SELLER_SEND_GOODS".into(),
        AeLogisticsStatus::SellerSendPartGoods => "SELLER_SEND_PART_GOODS".into(),
        AeLogisticsStatus::SellerSendGoods => "SELLER_SEND_GOODS".into(),
        AeLogisticsStatus::BuyerAcceptGoods => "BUYER_ACCEPT_GOODS".into(),
        AeLogisticsStatus::NoLogistics => "NO_LOGISTICS".into(),
        AeLogisticsStatus::Other(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SupplierStatus::*;

    fn st(order: &str, logistics: Option<&str>) -> AeMapping {
        map_ae_order(order, logistics, &[None])
    }

    /// One row per documented `order_status`, with the logistics status it usually comes with.
    #[test]
    fn every_order_status_of_the_spec_maps_to_its_tab() {
        let rows: &[(&str, Option<&str>, Option<SupplierStatus>, bool)] = &[
            (
                "PLACE_ORDER_SUCCESS",
                Some("DEFAULT"),
                Some(AwaitingPayment),
                false,
            ),
            ("WAIT_GROUP", None, Some(AwaitingPayment), false),
            ("WAIT_COMPLETE_ADDRESS", None, Some(AwaitingPayment), true),
            ("PAYMENT_PROCESSING", None, Some(AwaitingShipment), false),
            (
                "WAIT_SELLER_EXAMINE_MONEY",
                None,
                Some(AwaitingShipment),
                false,
            ),
            ("RISK_CONTROL", None, Some(AwaitingShipment), false),
            ("RISK_CONTROL_HOLD", None, Some(AwaitingShipment), true),
            (
                "WAIT_SELLER_SEND_GOODS",
                Some("WAIT_SELLER_SEND_GOODS"),
                Some(AwaitingShipment),
                false,
            ),
            (
                "SELLER_PART_SEND_GOODS",
                Some("SELLER_SEND_PART_GOODS"),
                Some(PartiallyShipped),
                false,
            ),
            (
                "WAIT_BUYER_ACCEPT_GOODS",
                Some("SELLER_SEND_GOODS"),
                Some(Shipped),
                false,
            ),
            ("FINISH", Some("BUYER_ACCEPT_GOODS"), Some(Delivered), false),
            ("FINISH", Some("SELLER_SEND_GOODS"), Some(Shipped), false),
            ("IN_CANCEL", None, Some(Canceled), false),
            ("FUND_PROCESSING", None, Some(Shipped), false),
            ("IN_ISSUE", None, None, true),
            ("IN_FROZEN", None, None, true),
            ("ARCHIVE", None, None, true),
            ("SOMETHING_NEW_FROM_ALIEXPRESS", None, None, true),
        ];
        for (order, logistics, want, attention) in rows {
            let m = st(order, *logistics);
            assert_eq!(m.status, *want, "{order} / {logistics:?}");
            assert_eq!(
                !m.attention.is_empty(),
                *attention,
                "{order}: {:?}",
                m.attention
            );
        }
    }

    #[test]
    fn an_unknown_status_is_kept_raw_for_the_merchant() {
        let m = st("TOTALLY_NEW", None);
        assert_eq!(
            m.attention,
            vec![SupplierAttention::UnknownStatus {
                raw: "TOTALLY_NEW".into()
            }]
        );
    }

    #[test]
    fn every_logistics_status_of_the_spec_is_understood() {
        for l in [
            "DEFAULT",
            "WAIT_SELLER_SEND_GOODS",
            "SELLER_SEND_PART_GOODS",
            "SELLER_SEND_GOODS",
            "BUYER_ACCEPT_GOODS",
            "NO_LOGISTICS",
        ] {
            assert!(!matches!(
                AeLogisticsStatus::parse(l),
                AeLogisticsStatus::Other(_)
            ));
        }
        let m = st("WAIT_SELLER_SEND_GOODS", Some("TELEPORTED"));
        assert_eq!(m.status, Some(AwaitingShipment));
        assert_eq!(
            m.attention,
            vec![SupplierAttention::UnknownLogisticsStatus {
                raw: "TELEPORTED".into()
            }]
        );
    }

    #[test]
    fn logistics_further_along_than_the_order_status_wins() {
        assert_eq!(
            st("WAIT_SELLER_SEND_GOODS", Some("SELLER_SEND_PART_GOODS")).status,
            Some(PartiallyShipped)
        );
        assert_eq!(
            st("WAIT_BUYER_ACCEPT_GOODS", Some("BUYER_ACCEPT_GOODS")).status,
            Some(Delivered)
        );
        // An unpaid order does not become shipped because of a stray logistics value.
        assert_eq!(
            st("PLACE_ORDER_SUCCESS", Some("SELLER_SEND_GOODS")).status,
            Some(AwaitingPayment)
        );
    }

    #[test]
    fn finish_with_no_logistics_and_every_line_canceled_is_a_cancel() {
        let m = map_ae_order(
            "FINISH",
            Some("NO_LOGISTICS"),
            &[Some("CANCELED"), Some("CANCELED")],
        );
        assert_eq!(m.status, Some(Canceled));
        assert!(m.canceled_children.is_empty());
        let m = map_ae_order("FINISH", Some("DEFAULT"), &[Some("CANCELED")]);
        assert_eq!(m.status, Some(Canceled));
    }

    #[test]
    fn finish_with_no_logistics_and_live_lines_needs_attention() {
        let m = map_ae_order("FINISH", Some("NO_LOGISTICS"), &[None, Some("CANCELED")]);
        assert_eq!(m.status, None);
        assert_eq!(
            m.attention.first(),
            Some(&SupplierAttention::AmbiguousFinish {
                logistics_status: "NO_LOGISTICS".into()
            })
        );
    }

    #[test]
    fn a_canceled_child_under_a_live_parent_cancels_that_line_only() {
        let m = map_ae_order(
            "WAIT_BUYER_ACCEPT_GOODS",
            Some("SELLER_SEND_GOODS"),
            &[None, Some("CANCELED")],
        );
        assert_eq!(m.status, Some(Shipped));
        assert_eq!(m.canceled_children, vec![1]);
    }

    #[test]
    fn an_unknown_end_reason_is_flagged_not_fatal() {
        let m = map_ae_order("WAIT_SELLER_SEND_GOODS", None, &[Some("BUYER_REGRETS")]);
        assert_eq!(m.status, Some(AwaitingShipment));
        assert_eq!(
            m.attention,
            vec![SupplierAttention::UnknownEndReason {
                raw: "BUYER_REGRETS".into()
            }]
        );
        assert!(m.canceled_children.is_empty());
    }
}
