//! Property tests of the status machine: whatever happens, in whatever order, an order's status
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! only moves forward except through a merchant action, and the derivation agrees with the table.

use dropsync_domain::ops::{
    AeChild, AeObservation, AeParcelItem, AeTrackingLine, apply_ae_observation,
    link_supplier_order, mark_pushed,
};
use dropsync_domain::*;
use proptest::prelude::*;

const AE_STATUSES: &[(&str, &str)] = &[
    ("PLACE_ORDER_SUCCESS", "DEFAULT"),
    ("WAIT_COMPLETE_ADDRESS", "DEFAULT"),
    ("PAYMENT_PROCESSING", "DEFAULT"),
    ("RISK_CONTROL", "DEFAULT"),
    ("RISK_CONTROL_HOLD", "DEFAULT"),
    ("WAIT_SELLER_SEND_GOODS", "WAIT_SELLER_SEND_GOODS"),
    ("SELLER_PART_SEND_GOODS", "SELLER_SEND_PART_GOODS"),
    ("WAIT_BUYER_ACCEPT_GOODS", "SELLER_SEND_GOODS"),
    ("FINISH", "BUYER_ACCEPT_GOODS"),
    ("FINISH", "NO_LOGISTICS"),
    ("IN_CANCEL", "DEFAULT"),
    ("IN_FROZEN", "DEFAULT"),
    ("NEW_UNKNOWN_STATUS", "DEFAULT"),
];

#[derive(Debug, Clone)]
enum Event {
    Financial(&'static str),
    Cancel,
    FulfilledInShopify(usize),
    Link(Vec<usize>),
    Ae {
        so: usize,
        status: usize,
        cancel_child: bool,
    },
    Tracking {
        so: usize,
        n: u8,
        partial: bool,
    },
    Push {
        so: usize,
        pkg: usize,
    },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        prop::sample::select(vec![
            "pending",
            "authorized",
            "paid",
            "partially_refunded",
            "refunded",
            "voided",
            "mystery"
        ])
        .prop_map(Event::Financial),
        Just(Event::Cancel),
        (0usize..3).prop_map(Event::FulfilledInShopify),
        prop::collection::vec(0usize..3, 1..3).prop_map(Event::Link),
        (0usize..2, 0..AE_STATUSES.len(), any::<bool>()).prop_map(|(so, status, cancel_child)| {
            Event::Ae {
                so,
                status,
                cancel_child,
            }
        }),
        (0usize..2, 0u8..3, any::<bool>()).prop_map(|(so, n, partial)| Event::Tracking {
            so,
            n,
            partial
        }),
        (0usize..2, 0usize..3).prop_map(|(so, pkg)| Event::Push { so, pkg }),
    ]
}

fn new_order() -> Order {
    let facts = ShopifyFacts {
        name: "#1".into(),
        created_at_ms: 0,
        updated_at_ms: 0,
        financial_status: FinancialStatus::Pending,
        cancelled: false,
        test: false,
        fulfillment_status: None,
        line_items: (1..=3)
            .map(|id| LineItem {
                sku: Some(format!("SKU{id}")),
                ..LineItem::new(id, id as u32)
            })
            .collect(),
        fulfillment_tracking: vec![],
    };
    Order::from_shopify(
        ShopDomain::parse("p.myshopify.com").unwrap(),
        7,
        facts,
        "orders/create",
        0,
    )
}

/// Applies one event the way the services do; returns whether it was a merchant action.
fn apply(order: &mut Order, e: &Event, t: i64) -> bool {
    match e {
        Event::Financial(f) => {
            // Shopify's payment states only move forward (a stale delivery is dropped by its
            // `updated_at` before it gets here); an unknown state ranks with the unpaid ones.
            let rank = |s: &str| match s {
                "authorized" => 1,
                "partially_paid" => 2,
                "paid" => 3,
                "partially_refunded" => 4,
                "refunded" | "voided" => 5,
                _ => 0,
            };
            if rank(f) < rank(order.shopify.financial_status.as_str()) {
                return false;
            }
            let mut facts = order.shopify.clone();
            facts.financial_status = FinancialStatus::parse(f);
            facts.updated_at_ms = t;
            order.merge_shopify_facts(facts);
            order.recompute_status("orders/updated", t);
        }
        Event::Cancel => {
            let mut facts = order.shopify.clone();
            facts.cancelled = true;
            facts.updated_at_ms = t;
            order.merge_shopify_facts(facts);
            order.recompute_status("orders/cancelled", t);
        }
        Event::FulfilledInShopify(i) => {
            let mut facts = order.shopify.clone();
            if let Some(li) = facts.line_items.get_mut(*i) {
                li.fulfilled_quantity = li.quantity;
            }
            facts.updated_at_ms = t;
            order.merge_shopify_facts(facts);
            order.recompute_status("orders/fulfilled", t);
        }
        Event::Link(lines) => {
            let ids: Vec<u64> = lines.iter().map(|i| *i as u64 + 1).collect();
            let ae = 1000 + order.supplier_orders.len() as u64;
            let _ = link_supplier_order(order, ae, &ids, vec![], t);
            return true;
        }
        Event::Ae {
            so,
            status,
            cancel_child,
        } => {
            let Some(ae) = order.supplier_orders.get(*so).map(|s| s.ae_order_id) else {
                return false;
            };
            let (st, lg) = AE_STATUSES[*status];
            let children = vec![AeChild {
                sku_id: Some("SKU1".into()),
                end_reason: cancel_child.then(|| "CANCELED".to_owned()),
                ..AeChild::default()
            }];
            let obs = AeObservation {
                order_status: st.into(),
                logistics_status: Some(lg.into()),
                children,
                tracking: None,
            };
            apply_ae_observation(order, ae, &obs, t);
        }
        Event::Tracking { so, n, partial } => {
            let Some(s) = order.supplier_orders.get(*so) else {
                return false;
            };
            let ae = s.ae_order_id;
            let items = if *partial {
                vec![AeParcelItem {
                    sku_id: Some("SKU1".into()),
                    product_id: None,
                    quantity: 1,
                }]
            } else {
                vec![]
            };
            let obs = AeObservation {
                order_status: "WAIT_BUYER_ACCEPT_GOODS".into(),
                logistics_status: Some("SELLER_SEND_GOODS".into()),
                children: vec![],
                tracking: Some(vec![AeTrackingLine {
                    mail_no: format!("T{ae}-{n}"),
                    carrier_name: None,
                    items,
                }]),
            };
            apply_ae_observation(order, ae, &obs, t);
        }
        Event::Push { so, pkg } => {
            let found = order.supplier_orders.get(*so).and_then(|s| {
                s.packages
                    .get(*pkg)
                    .map(|p| (s.ae_order_id, p.tracking_number.clone()))
            });
            if let Some((ae, tn)) = found {
                mark_pushed(
                    order,
                    ae,
                    &tn,
                    Some(format!("gid://shopify/Fulfillment/{t}")),
                    t,
                );
            }
        }
    }
    false
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Stored status: every step in the history is an automatic transition or a merchant action
    /// allowed from where the order was; automatic events never move it backwards.
    #[test]
    fn the_status_never_moves_backwards_except_through_a_merchant_action(events in prop::collection::vec(event(), 1..40)) {
        let mut order = new_order();
        for (i, e) in events.iter().enumerate() {
            let before = order.status;
            let user = apply(&mut order, e, i as i64 + 1);
            if !user {
                prop_assert!(is_automatic_transition(before, order.status), "{before} -> {} by {e:?}", order.status);
            }
        }
        prop_assert!(history_is_valid(&order.history), "{:?}", order.history);
        prop_assert_eq!(order.history.last().map(|h| h.status), Some(order.status));
    }

    /// The derivation itself is monotone in the parts: when parts only move forward (no merchant
    /// action), each change of the derived status is one the transition table allows.
    #[test]
    fn the_derivation_and_the_transition_table_agree(events in prop::collection::vec(event(), 1..40)) {
        let mut order = new_order();
        let mut derived = order.derive_status();
        for (i, e) in events.iter().enumerate() {
            let user = apply(&mut order, e, i as i64 + 1);
            let next = order.derive_status();
            if !user {
                prop_assert!(is_automatic_transition(derived, next), "derived {derived} -> {next} by {e:?}");
                // ...and the stored status follows the derivation wherever the table allows.
                if is_automatic_transition(order.history.last().map_or(derived, |h| h.status), next) {
                    prop_assert_eq!(order.status, next);
                }
            }
            derived = next;
        }
    }
}
