use super::*;
use crate::ids::ShopDomain;
use crate::mapping::MappingRow;
use crate::order::{FinancialStatus, LineItem, ShopifyFacts};
use crate::status::OrderStatus;
use proptest::prelude::*;

fn order(lines: &[(u64, u64, u32)]) -> Order {
    let facts = ShopifyFacts {
        name: "#1001".into(),
        created_at_ms: 1,
        updated_at_ms: 1,
        financial_status: FinancialStatus::parse("paid"),
        cancelled: false,
        test: false,
        fulfillment_status: None,
        line_items: lines
            .iter()
            .map(|(id, variant, q)| LineItem {
                variant_id: Some(*variant),
                ..LineItem::new(*id, *q)
            })
            .collect(),
        fulfillment_tracking: Vec::new(),
    };
    Order::from_shopify(
        ShopDomain::parse("a.myshopify.com").unwrap(),
        5001,
        facts,
        "test",
        0,
    )
}

fn mapping(variant: u64, rows: &[(u64, u64, u32, &[&str])]) -> VariantMapping {
    VariantMapping {
        variant_id: variant,
        rows: rows
            .iter()
            .map(|(product, seller, qty, ship_to)| MappingRow {
                product_id: *product,
                sku_id: format!("sku-{product}"),
                sku_attr: format!("14:1#{product}"),
                seller_id: *seller,
                title: "t".into(),
                price: None,
                quantity: *qty,
                ship_to: ship_to.iter().map(|c| (*c).to_owned()).collect(),
                shipping_method: None,
            })
            .collect(),
    }
}

#[test]
fn the_out_order_id_is_order_seller_attempt() {
    assert_eq!(out_order_id(5001, 1102233445, 2), "5001-1102233445-2");
}

#[test]
fn lines_are_grouped_by_seller_with_bundles_and_country_rows() {
    let o = order(&[(1, 10, 2), (2, 20, 1), (3, 30, 1)]);
    let mut maps = BTreeMap::new();
    // Variant 10: a buy-one-get-one (2 per unit) from seller A.
    maps.insert(10, mapping(10, &[(100, 7, 2, &[])]));
    // Variant 20: a bundle of two products, one from each seller.
    maps.insert(20, mapping(20, &[(200, 7, 1, &[]), (201, 8, 1, &[])]));
    // Variant 30: seller B for the US, seller A elsewhere.
    maps.insert(30, mapping(30, &[(300, 8, 1, &["US"]), (301, 7, 1, &[])]));
    let groups = group_by_seller(&o, &[1, 2, 3], &maps, "US").unwrap();
    assert_eq!(groups.len(), 2);
    let a = groups.iter().find(|g| g.seller_id == 7).unwrap();
    let b = groups.iter().find(|g| g.seller_id == 8).unwrap();
    assert_eq!(a.line_item_ids, [1, 2]);
    assert_eq!(
        a.items
            .iter()
            .map(|i| (i.product_id, i.count))
            .collect::<Vec<_>>(),
        [(100, 4), (200, 1)]
    );
    assert_eq!(b.line_item_ids, [2, 3]);
    let de = group_by_seller(&o, &[3], &maps, "DE").unwrap();
    assert_eq!(de[0].seller_id, 7, "the fallback row");
    maps.remove(&20);
    assert_eq!(group_by_seller(&o, &[1, 2], &maps, "US"), Err(vec![2]));
}

#[test]
fn a_success_makes_supplier_orders_awaiting_payment_due_in_20_days() {
    let mut o = order(&[(1, 10, 1)]);
    let claim = decide_claim(&o, 7, 1_000);
    assert_eq!(
        claim,
        Claim::Send {
            attempt: 1,
            out_order_id: "5001-7-1".into(),
            resend: false
        }
    );
    assert!(apply_claim(&mut o, 7, &claim, &[1], 1_000));
    assert_eq!(
        decide_claim(&o, 7, 1_500),
        Claim::InFlight,
        "a double click"
    );
    assert!(!apply_claim(&mut o, 7, &claim, &[1], 1_500));
    let created = Outcome::Created {
        aliexpress_order_ids: vec![8198352049851315],
        note: None,
    };
    let items = vec![(1, "100".to_owned(), "sku".to_owned())];
    assert!(record_outcome(&mut o, 7, 1, &created, &items, 2_000));
    assert!(
        !record_outcome(&mut o, 7, 1, &created, &items, 2_000),
        "once"
    );
    assert_eq!(o.status, OrderStatus::AwaitingPayment);
    assert_eq!(o.supplier_orders[0].ae_order_id, 8198352049851315);
    let PlacementState::Placed {
        payment_due_at_ms, ..
    } = &o.placements[0].state
    else {
        panic!("not placed")
    };
    assert_eq!(*payment_due_at_ms, 2_000 + PAYMENT_WINDOW_MS);
    assert_eq!(decide_claim(&o, 7, 3_000), Claim::Settled);
    assert!(lines_to_place(&o).is_empty());
    assert!(o.attention().is_empty());
}

#[test]
fn a_business_error_fails_the_order_and_re_placing_uses_the_next_attempt() {
    let mut o = order(&[(1, 10, 1)]);
    let c1 = decide_claim(&o, 7, 0);
    apply_claim(&mut o, 7, &c1, &[1], 0);
    let f = Failure::new("INVENTORY_HOLD_ERROR", "Inventory hold failed");
    record_outcome(&mut o, 7, 1, &Outcome::Failed(f.clone()), &vec![], 10);
    assert_eq!(o.status, OrderStatus::Failed);
    assert!(f.advice.contains("stock"));
    assert_eq!(lines_to_place(&o), [1]);
    let c2 = decide_claim(&o, 7, 20);
    assert_eq!(
        c2,
        Claim::Send {
            attempt: 2,
            out_order_id: "5001-7-2".into(),
            resend: false
        }
    );
    apply_claim(&mut o, 7, &c2, &[1], 20);
    let created = Outcome::Created {
        aliexpress_order_ids: vec![42],
        note: Some("OrderCreated, autoPay fail:APIPayFail".into()),
    };
    record_outcome(&mut o, 7, 2, &created, &vec![], 30);
    assert_eq!(
        o.status,
        OrderStatus::AwaitingPayment,
        "re-ordered from failed"
    );
    assert_eq!(o.failed, None);
    assert!(o.attention().is_empty(), "{:?}", o.attention());
}

#[test]
fn an_unknown_outcome_is_never_a_new_attempt() {
    let mut o = order(&[(1, 10, 1)]);
    let c1 = decide_claim(&o, 7, 0);
    apply_claim(&mut o, 7, &c1, &[1], 0);
    record_outcome(
        &mut o,
        7,
        1,
        &Outcome::Unknown("HTTP 504".into()),
        &vec![],
        10,
    );
    assert_eq!(o.status, OrderStatus::AwaitingOrder);
    assert!(matches!(
        o.attention().as_slice(),
        [crate::order::Attention::PlacementUnconfirmed { created: false, .. }]
    ));
    assert!(lines_to_place(&o).is_empty(), "nothing to re-place");
    // Within 24 h: the same out_order_id may be re-sent.
    assert_eq!(
        decide_claim(&o, 7, 3_600_000),
        Claim::Send {
            attempt: 1,
            out_order_id: "5001-7-1".into(),
            resend: true
        }
    );
    // After the window: never again.
    assert_eq!(decide_claim(&o, 7, OUT_ORDER_ID_TTL_MS), Claim::Settled);
    let c = decide_claim(&o, 7, 3_600_000);
    apply_claim(&mut o, 7, &c, &[1], 3_600_000);
    record_outcome(&mut o, 7, 1, &Outcome::Repeated, &vec![], 3_600_001);
    assert_eq!(decide_claim(&o, 7, 3_600_002), Claim::Settled);
    assert!(matches!(
        o.attention().as_slice(),
        [crate::order::Attention::PlacementUnconfirmed { created: true, .. }]
    ));
    // Linking the AliExpress order resolves it.
    crate::ops::link_supplier_order(&mut o, 77, &[1], vec![], 3_600_003).unwrap();
    assert!(o.attention().is_empty());
    assert_eq!(o.status, OrderStatus::AwaitingPayment);
}

#[test]
fn a_claim_left_by_a_crash_becomes_a_resend_of_the_same_key() {
    let mut o = order(&[(1, 10, 1)]);
    let c = decide_claim(&o, 7, 0);
    apply_claim(&mut o, 7, &c, &[1], 0);
    assert!(!o.attention().is_empty(), "in flight shows until settled");
    assert_eq!(
        decide_claim(&o, 7, SENDING_STALE_MS),
        Claim::Send {
            attempt: 1,
            out_order_id: "5001-7-1".into(),
            resend: true
        }
    );
}

fn addr() -> ShippingAddress {
    ShippingAddress {
        first_name: Some("Jane".into()),
        last_name: Some("Doe".into()),
        name: Some("Jane Doe".into()),
        address1: Some("123 Main St".into()),
        address2: None,
        city: Some("Vineland".into()),
        province: Some("New Jersey".into()),
        province_code: Some("NJ".into()),
        country_code: Some("US".into()),
        zip: Some("08360".into()),
        phone: Some("+1 (555) 360-0000".into()),
        company: None,
    }
}

#[test]
fn a_good_address_is_split_for_aliexpress() {
    let a = preflight(&addr()).unwrap();
    assert_eq!(
        (a.phone_country.as_str(), a.mobile_no.as_str()),
        ("+1", "5553600000")
    );
    assert_eq!(a.contact_person, "Jane Doe");
    assert_eq!(a.country, "US");
    assert!(
        !format!("{a:?}").contains("Main"),
        "Debug never shows the address"
    );
    assert!(!format!("{:?}", addr()).contains("Jane"));
}

#[test]
fn phones_are_split_by_country() {
    assert_eq!(
        split_phone("07911 123456", "GB"),
        Some(("+44".into(), "7911123456".into()))
    );
    assert_eq!(
        split_phone("+49 30 1234567", "DE"),
        Some(("+49".into(), "301234567".into()))
    );
    assert_eq!(
        split_phone("1-555-360-0000", "US"),
        Some(("+1".into(), "5553600000".into()))
    );
    assert_eq!(
        split_phone("+33 1 23 45 67 89", "DE"),
        None,
        "another country's number"
    );
    assert_eq!(split_phone("12", "US"), None);
}

#[test]
fn bad_addresses_fail_before_any_call_with_advice() {
    let mut a = addr();
    a.city = Some("  ".into());
    assert_eq!(preflight(&a).unwrap_err().code, "ADDRESS_INVALID");
    let mut a = addr();
    a.phone = None;
    assert!(preflight(&a).unwrap_err().message.contains("phone"));
    let mut a = addr();
    a.zip = None;
    assert!(preflight(&a).is_err());
    let mut a = addr();
    a.name = Some("J".into());
    assert!(preflight(&a).is_err());
    let mut a = addr();
    a.name = Some("Jane Q. Doe".into());
    assert_eq!(
        preflight(&a).unwrap().contact_person,
        "Jane Doe",
        "initials dropped"
    );
}

#[test]
fn brazil_needs_a_valid_cpf() {
    let mut a = addr();
    a.country_code = Some("BR".into());
    a.phone = Some("+55 11 98765-4321".into());
    a.company = None;
    let e = preflight(&a).unwrap_err();
    assert!(e.code.contains("CPF") && e.advice.contains("CPF"));
    a.company = Some("529.982.247-25".into());
    assert_eq!(preflight(&a).unwrap().cpf.as_deref(), Some("52998224725"));
    assert!(!cpf_is_valid("11111111111"));
}

#[test]
fn every_failure_code_gets_plain_advice() {
    for code in [
        "B_DROPSHIPPER_DELIVERY_ADDRESS_VALIDATE_FAIL",
        "B_DROPSHIPPER_DELIVERY_ADDRESS_VALIDATE_FAIL_CPF_NOT_MATCH",
        "DELIVERY_METHOD_NOT_EXIST",
        "INVENTORY_HOLD_ERROR",
        "BLACKLIST_BUYER_IN_LIST",
        "A003_SOMETHING",
        "NO_MAPPING",
        "NO_SHIPPING_METHOD",
        "WHATEVER",
    ] {
        let a = advice_for(code);
        assert!(a.len() > 40 && a.ends_with('.'), "{code}: {a}");
    }
    assert_ne!(advice_for("INVENTORY_HOLD_ERROR"), advice_for("NO_MAPPING"));
}

fn is_placed(s: &PlacementState) -> bool {
    matches!(s, PlacementState::Placed { .. })
}

proptest! {
    #[test]
    fn any_sequence_of_outcomes_never_gives_two_attempts_without_a_failure(
        outcomes in prop::collection::vec(0u8..4, 1..12),
        steps in prop::collection::vec(0i64..30_000_000, 1..12),
    ) {
        let mut o = order(&[(1, 10, 1)]);
        let mut now = 0i64;
        for (i, kind) in outcomes.iter().enumerate() {
            now += steps.get(i).copied().unwrap_or(1);
            let claim = decide_claim(&o, 7, now);
            let before = latest(&o, 7).cloned();
            if let Claim::Send { attempt, resend, .. } = &claim {
                // A new attempt only ever follows a definitive failure.
                if !resend && *attempt > 1 {
                    let prev = before.as_ref().unwrap();
                    let failed = matches!(prev.state, PlacementState::Failed { .. });
                    prop_assert!(failed);
                }
                if *resend {
                    prop_assert!(now - before.as_ref().unwrap().first_sent_at_ms < OUT_ORDER_ID_TTL_MS);
                }
                prop_assert!(apply_claim(&mut o, 7, &claim, &[1], now));
                let outcome = match kind {
                    0 => Outcome::Failed(Failure::new("INVENTORY_HOLD_ERROR", "x")),
                    1 => Outcome::Unknown("timeout".into()),
                    2 => Outcome::Repeated,
                    _ => Outcome::Created { aliexpress_order_ids: vec![1000 + i as u64], note: None },
                };
                record_outcome(&mut o, 7, *attempt, &outcome, &vec![], now);
            }
        }
        let placed = o.placements.iter().filter(|p| is_placed(&p.state)).count();
        prop_assert!(placed <= 1, "at most one placed attempt per seller");
        prop_assert_eq!(o.supplier_orders.len(), placed);
    }
}
