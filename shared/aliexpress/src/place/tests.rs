use super::*;

const PRODUCT_GET: &str = r#"{"aliexpress_ds_product_get_response":{"result":{
  "ae_item_sku_info_dtos":{"ae_item_sku_info_d_t_o":[
    {"sku_id":"12000037000000001","sku_attr":"14:175#Silver;5:100014064","sku_price":"7.50","offer_sale_price":"6.99",
     "sku_available_stock":120,"currency_code":"USD",
     "ae_sku_property_dtos":{"ae_sku_property_d_t_o":[
       {"sku_property_id":14,"sku_property_name":"Color","sku_property_value":"silver","property_value_id":175,"property_value_definition_name":"Silver"},
       {"sku_property_id":5,"sku_property_name":"Size","sku_property_value":"500ml","property_value_id":100014064}]}},
    {"sku_id":12000037000000002,"sku_attr":"14:193#Black;5:100014064","sku_price":"7.50","sku_available_stock":"0","currency_code":"USD",
     "ae_sku_property_dtos":{"ae_sku_property_d_t_o":{"sku_property_name":"Color","sku_property_value":"Black"}}}]},
  "ae_item_base_info_dto":{"subject":"Steel bottle 500ml","product_id":1005006123456789,"product_status_type":"onSelling"},
  "ae_store_info":{"store_id":1102233445,"store_name":"Example Store","store_country_code":"CN"}},
 "rsp_code":"200","rsp_msg":"Call succeeds","request_id":"2101e5a8"}}"#;

#[test]
fn a_product_get_answer_yields_skus_seller_and_title() {
    let ProductAnswer::Found(p) = parse_product_get(PRODUCT_GET.as_bytes(), 1).unwrap() else {
        panic!("not found")
    };
    assert_eq!(p.product_id, 1005006123456789);
    assert_eq!(p.title.as_deref(), Some("Steel bottle 500ml"));
    assert_eq!(p.store_id, Some(1102233445));
    assert_eq!(p.skus.len(), 2);
    let first = p.sku("12000037000000001").unwrap();
    assert_eq!(first.sku_attr, "14:175#Silver;5:100014064");
    assert_eq!(first.price.as_deref(), Some("6.99"));
    assert_eq!(first.stock, Some(120));
    assert_eq!(first.properties[0].value, "Silver");
    let second = p.sku("12000037000000002").unwrap();
    assert_eq!(second.stock, Some(0));
    assert_eq!(second.properties.len(), 1);
}

#[test]
fn an_unknown_product_is_a_refusal_naming_the_code() {
    let body = r#"{"aliexpress_ds_product_get_response":{"rsp_code":"605","rsp_msg":"ITEM_ID_NOT_FOUND","request_id":"x"}}"#;
    assert_eq!(
        parse_product_get(body.as_bytes(), 5).unwrap(),
        ProductAnswer::Refused {
            code: "605".into(),
            message: "ITEM_ID_NOT_FOUND".into()
        }
    );
    let inner = r#"{"aliexpress_ds_product_get_response":{"result":{"code":602,"msg":"Item is not allowed to this country"},"request_id":"x"}}"#;
    assert!(matches!(
        parse_product_get(inner.as_bytes(), 5).unwrap(),
        ProductAnswer::Refused { code, .. } if code == "602"
    ));
}

#[test]
fn a_gateway_error_on_product_get_is_classified() {
    let body = r#"{"error_response":{"code":"ApiCallLimit","type":"ISV","msg":"this ban will last 2 seconds"}}"#;
    assert!(matches!(
        parse_product_get(body.as_bytes(), 5),
        Err(AeError::RateLimited { .. })
    ));
}

const FREIGHT: &str = r#"{"aliexpress_ds_freight_query_response":{"result":{"code":200,"success":true,
  "delivery_options":{"delivery_option_d_t_o":[
   {"code":"CAINIAO_STANDARD","company":"AliExpress Standard Shipping","shipping_fee_cent":"2.35","shipping_fee_currency":"USD",
    "free_shipping":false,"mayHavePFS":false,"min_delivery_days":15,"max_delivery_days":25,"ship_from_country":"CN"},
   {"code":"CAINIAO_FULFILLMENT_STD","company":"AliExpress Selection Standard","shipping_fee_cent":"4.10","free_shipping":"true"},
   {"code":"EMS","shipping_fee_cent":"19.99","free_shipping":false,"mayHavePFS":true,"free_shipping_threshold":"50.00"}]}},
 "request_id":"r"}}"#;

#[test]
fn freight_options_are_read_with_their_free_shipping_rules() {
    let options = parse_freight_query(FREIGHT.as_bytes()).unwrap();
    assert_eq!(options.len(), 3);
    assert_eq!(options[0].code, "CAINIAO_STANDARD");
    assert_eq!(options[0].fee_cents(0), Some(235));
    assert_eq!(options[1].fee_cents(0), Some(0), "free_shipping as text");
    assert_eq!(options[2].fee_cents(4_999), Some(1_999));
    assert_eq!(options[2].fee_cents(5_000), Some(0), "threshold reached");
}

#[test]
fn freight_not_available_is_no_options() {
    let body = r#"{"aliexpress_ds_freight_query_response":{"result":{"success":false,"code":505,"msg":"DELIVERY_NOT_AVAILABLE_TO_YOUR_ADDRESS"},"request_id":"r"}}"#;
    assert!(parse_freight_query(body.as_bytes()).unwrap().is_empty());
    let other = r#"{"aliexpress_ds_freight_query_response":{"result":{"success":false,"code":501,"msg":"PARAM ERROR"},"request_id":"r"}}"#;
    assert!(matches!(
        parse_freight_query(other.as_bytes()),
        Err(AeError::Permanent(_))
    ));
}

#[test]
fn decimal_text_becomes_cents_exactly() {
    assert_eq!(decimal_cents("172.71"), Some(17_271));
    assert_eq!(decimal_cents("2"), Some(200));
    assert_eq!(decimal_cents("2.3"), Some(230));
    assert_eq!(decimal_cents("-1"), None);
    assert_eq!(decimal_cents("1.234"), None);
    assert_eq!(decimal_cents("abc"), None);
}

fn create(result: &str) -> Vec<u8> {
    format!(r#"{{"aliexpress_ds_order_create_response":{{"result":{result},"request_id":"r"}}}}"#)
        .into_bytes()
}

#[test]
fn a_created_order_yields_its_ids_exactly_in_every_list_shape() {
    for list in [
        r#"{"number":[8198352049851315,8198352049861316]}"#,
        r#"[8198352049851315,"8198352049861316"]"#,
    ] {
        let out = parse_order_create(&create(&format!(
            r#"{{"is_success":true,"order_list":{list}}}"#
        )))
        .unwrap();
        assert_eq!(
            out,
            CreateOutcome::Created {
                order_ids: vec![8198352049851315, 8198352049861316],
                note: None
            }
        );
    }
    let single = parse_order_create(&create(
        r#"{"is_success":"true","order_list":{"number":8198352049851315}}"#,
    ))
    .unwrap();
    assert!(
        matches!(single, CreateOutcome::Created { order_ids, .. } if order_ids == [8198352049851315])
    );
}

#[test]
fn order_created_with_auto_pay_failing_is_a_success() {
    let out = parse_order_create(&create(
        r#"{"is_success":true,"order_list":{"number":[8198352049851315]},"error_msg":"OrderCreated, autoPay fail:APIPayFail"}"#,
    ))
    .unwrap();
    assert_eq!(
        out,
        CreateOutcome::Created {
            order_ids: vec![8198352049851315],
            note: Some("OrderCreated, autoPay fail:APIPayFail".into())
        }
    );
}

#[test]
fn a_business_error_is_a_rejection_with_aliexpress_words() {
    let out = parse_order_create(&create(
        r#"{"is_success":false,"error_code":"B_DROPSHIPPER_DELIVERY_ADDRESS_VALIDATE_FAIL","error_msg":"Please enter a city"}"#,
    ))
    .unwrap();
    assert_eq!(
        out,
        CreateOutcome::Rejected {
            code: "B_DROPSHIPPER_DELIVERY_ADDRESS_VALIDATE_FAIL".into(),
            message: "Please enter a city".into()
        }
    );
}

#[test]
fn a_repeated_out_order_id_is_created_with_unknown_ids() {
    let out = parse_order_create(&create(
        r#"{"is_success":false,"error_code":"REPEATED_ORDER_ERROR","error_msg":"Repeated placed order, request already been handled successfully"}"#,
    ))
    .unwrap();
    assert!(matches!(out, CreateOutcome::Repeated { .. }));
}

#[test]
fn success_without_ids_and_unreadable_answers_are_unknown_not_errors() {
    for body in [
        create(r#"{"is_success":true,"order_list":{"number":[]}}"#),
        create(r#"{"is_success":true}"#),
        create(r#"{}"#),
        b"<html>gateway</html>".to_vec(),
        br#"{"something_else":{}}"#.to_vec(),
        br#"{"error_response":{"code":"15","type":"ISP","sub_code":"isp.service-unavailable","msg":"Remote service error"}}"#.to_vec(),
    ] {
        assert!(
            matches!(parse_order_create(&body), Ok(CreateOutcome::Unknown { .. })),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[test]
fn a_gateway_refusal_of_order_create_is_an_error_because_nothing_was_processed() {
    let limit = br#"{"error_response":{"code":"ApiCallLimit","type":"ISV","msg":"this ban will last 1 seconds"}}"#;
    assert!(matches!(
        parse_order_create(limit),
        Err(AeError::RateLimited { .. })
    ));
    let token = br#"{"error_response":{"code":"IllegalAccessToken","type":"ISV","msg":"bad"}}"#;
    assert!(matches!(
        parse_order_create(token),
        Err(AeError::InvalidToken)
    ));
    let missing = br#"{"error_response":{"code":"MissingParameter","type":"ISV","msg":"param_place_order_request4_open_api_d_t_o"}}"#;
    assert!(matches!(
        parse_order_create(missing),
        Err(AeError::Permanent(_))
    ));
}

#[test]
fn the_order_parameter_keeps_ids_exact_and_the_address_out_of_debug() {
    let req = PlaceOrderRequest {
        out_order_id: "5001-1102233445-1".into(),
        address: LogisticsAddress {
            address: "123 Main St".into(),
            city: "Vineland".into(),
            province: "New Jersey".into(),
            country: "US".into(),
            zip: Some("08360".into()),
            contact_person: "Jane Doe".into(),
            full_name: "Jane Doe".into(),
            mobile_no: "5593600000".into(),
            phone_country: "+1".into(),
            ..LogisticsAddress::default()
        },
        items: vec![PlaceItem {
            product_id: 9_007_199_254_740_993,
            count: 2,
            sku_attr: "14:175#Silver".into(),
            logistics_service_name: "CAINIAO_STANDARD".into(),
        }],
    };
    let param = req.to_param();
    assert!(
        param.contains(r#""product_id":9007199254740993"#),
        "{param}"
    );
    assert!(param.contains(r#""out_order_id":"5001-1102233445-1""#));
    assert!(param.contains(r#""city":"Vineland""#));
    assert!(
        !param.contains("address2"),
        "absent optional fields are not sent"
    );
    let debug = format!("{req:?}");
    assert!(
        !debug.contains("Main St") && !debug.contains("Jane"),
        "{debug}"
    );
}

#[test]
fn arbitrary_bytes_never_panic_the_placement_parsers() {
    for body in [
        &b""[..],
        b"null",
        b"[]",
        b"{\"aliexpress_ds_order_create_response\":7}",
        b"\xff\xfe",
    ] {
        let _ = parse_order_create(body);
        let _ = parse_freight_query(body);
        let _ = parse_product_get(body, 1);
    }
}

#[test]
fn a_product_taken_offline_is_found_but_not_on_sale() {
    let body = r#"{"aliexpress_ds_product_get_response":{"result":{
      "ae_item_sku_info_dtos":{"ae_item_sku_info_d_t_o":[{"sku_id":"1","sku_attr":"14:175","offer_sale_price":"1.00"}]},
      "ae_item_base_info_dto":{"subject":"Gone","product_id":7,"product_status_type":"offline"},
      "ae_store_info":{"store_id":9}},"rsp_code":"200","request_id":"x"}}"#;
    let ProductAnswer::Found(p) = parse_product_get(body.as_bytes(), 7).unwrap() else {
        panic!("not found")
    };
    assert_eq!(p.status.as_deref(), Some("offline"));
    assert!(!p.on_sale());
    let ProductAnswer::Found(on) = parse_product_get(PRODUCT_GET.as_bytes(), 1).unwrap() else {
        panic!("not found")
    };
    assert!(on.on_sale());
}
