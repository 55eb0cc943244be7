use super::*;
use proptest::prelude::*;
use std::time::Duration;

/// The documented `ds.order.get` answer, verbatim.
const ORDER_GET_SAMPLE: &str = r#"{"aliexpress_trade_ds_order_get_response": {"result": {
   "gmt_create": "2026-03-02 18:04:11", "order_status": "WAIT_BUYER_ACCEPT_GOODS", "logistics_status": "SELLER_SEND_GOODS",
   "pay_timeout_second": "86400", "order_paidtime_string": "2026-03-02T18:06:40-08:00[America/Los_Angeles]",
   "order_amount": {"amount": "23.17", "currency_code": "USD"}, "user_order_amount": {"amount": "23.17", "currency_code": "USD"},
   "store_info": {"store_id": 1102233445, "store_name": "Example Store", "store_url": "https://www.aliexpress.com/store/1102233445"},
   "child_order_list": {"aeop_child_order_info": [
     {"product_id": 1005006123456789, "sku_id": "12000037000000001", "product_name": "Steel bottle 500ml", "product_count": 2,
      "product_price": {"amount": "7.50", "currency_code": "USD"}, "actual_fee": {"amount": "15.98", "currency_code": "USD"}},
     {"product_id": 1005006987654321, "sku_id": "12000038000000002", "product_name": "Bottle brush", "product_count": "1",
      "product_price": {"amount": "7.19", "currency_code": "USD"}, "end_reason": "CANCELED"}]},
   "logistics_info_list": {"aeop_order_logistics_info": [{"logistics_service": "CAINIAO_FULFILLMENT_STD", "logistics_no": "LP00123456789012"}]}},
 "request_id": "2101e5a817409000000001234"}}"#;

/// The documented `ds.order.tracking.get` answer, verbatim.
const TRACKING_GET_SAMPLE: &str = r#"{"aliexpress_ds_order_tracking_get_response": {"result": {"ret": true, "code": "", "msg": "",
   "data": {"tracking_detail_line_list": {"tracking_detail": [
     {"mail_no": "YT2601234567890123", "carrier_name": "AliExpress Selection Standard", "eta_time_stamps": 1773100800000,
      "detail_node_list": {"detail_node": [
        {"time_stamp": 1772600000000, "tracking_name": "Shipping update", "tracking_detail_desc": "Departed from sorting center"},
        {"time_stamp": 1772500000000, "tracking_name": "Collected by carrier", "tracking_detail_desc": "Parcel collected"}]},
      "package_item_list": {"package_item": [{"item_id": 1005006123456789, "sku_id": "12000037000000001", "quantity": 2,
         "item_title": "Steel bottle 500ml", "sku_desc": "Color:Silver"}]}}]}}},
 "request_id": "2141244f17409000000005678"}}"#;

/// The documented `ds.order.tracking.get` "not shipped yet" answer.
const TRACKING_NOT_FOUND_SAMPLE: &str = r#"{"aliexpress_ds_order_tracking_get_response":{"result":{"ret":false,"code":"1001","msg":"TRACKING DATA NOT FOUND"},"request_id":"…"}}"#;

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn order_body(result: &str) -> String {
    format!(
        r#"{{"aliexpress_trade_ds_order_get_response":{{"result":{result},"request_id":"r"}}}}"#
    )
}

fn tracking_body(result: &str) -> String {
    format!(
        r#"{{"aliexpress_ds_order_tracking_get_response":{{"result":{result},"request_id":"r"}}}}"#
    )
}

fn bottle_line(qty: u32) -> AeParcelItem {
    AeParcelItem {
        product_id: s("1005006123456789"),
        sku_id: s("12000037000000001"),
        quantity: qty,
    }
}

#[test]
fn the_order_get_sample_of_the_spec_parses() {
    let order = parse_order_get(ORDER_GET_SAMPLE.as_bytes()).unwrap();
    assert_eq!(
        order,
        AeOrder {
            order_status: "WAIT_BUYER_ACCEPT_GOODS".into(),
            logistics_status: s("SELLER_SEND_GOODS"),
            children: vec![
                AeChild {
                    product_id: s("1005006123456789"),
                    sku_id: s("12000037000000001"),
                    end_reason: None,
                },
                AeChild {
                    product_id: s("1005006987654321"),
                    sku_id: s("12000038000000002"),
                    end_reason: s("CANCELED"),
                },
            ],
            gmt_create: s("2026-03-02 18:04:11"),
        }
    );
}

#[test]
fn the_tracking_get_sample_of_the_spec_parses_with_nodes_oldest_first() {
    let lines = parse_tracking_get(TRACKING_GET_SAMPLE.as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(
        lines,
        vec![AeTrackingLine {
            mail_no: "YT2601234567890123".into(),
            carrier_name: s("AliExpress Selection Standard"),
            items: vec![bottle_line(2)],
        }]
    );
    let details = parse_tracking_details(TRACKING_GET_SAMPLE.as_bytes())
        .unwrap()
        .unwrap();
    let d = &details[0];
    assert_eq!(d.eta_ms, Some(1_773_100_800_000));
    let stamps: Vec<_> = d.nodes.iter().map(|n| n.time_stamp_ms).collect();
    assert_eq!(
        stamps,
        vec![Some(1_772_500_000_000), Some(1_772_600_000_000)]
    );
    assert_eq!(d.nodes[0].tracking_name, s("Collected by carrier"));
}

#[test]
fn tracking_data_not_found_means_not_shipped_yet() {
    assert_eq!(
        parse_tracking_get(TRACKING_NOT_FOUND_SAMPLE.as_bytes()).unwrap(),
        None
    );
    // booleans as strings
    let body = tracking_body(r#"{"ret":"false","code":1001,"msg":"TRACKING DATA NOT FOUND"}"#);
    assert_eq!(parse_tracking_get(body.as_bytes()).unwrap(), None);
}

#[test]
fn another_tracking_business_error_is_permanent() {
    let body = tracking_body(r#"{"ret":false,"code":"UnsupportedParamMapping","msg":"bad"}"#);
    let err = parse_tracking_get(body.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, AeError::Permanent(m) if m.contains("UnsupportedParamMapping")),
        "{err:?}"
    );
}

#[test]
fn bare_arrays_parse_like_wrapped_ones() {
    let body = order_body(
        r#"{"order_status":"WAIT_SELLER_SEND_GOODS","child_order_list":[
            {"product_id":1005006123456789,"sku_id":"12000037000000001","product_count":2},
            {"product_id":"1005006987654321","sku_id":"12000038000000002","product_count":"1","end_reason":"CANCELED"}]}"#,
    );
    let order = parse_order_get(body.as_bytes()).unwrap();
    assert_eq!(order.children.len(), 2);
    assert_eq!(order.children[1].product_id, s("1005006987654321"));
    assert_eq!(order.children[1].end_reason, s("CANCELED"));

    let body = tracking_body(
        r#"{"ret":true,"data":{"tracking_detail_line_list":[{"mail_no":"A1","carrier_name":"X",
            "detail_node_list":[{"time_stamp":2},{"time_stamp":1}],
            "package_item_list":[{"item_id":1005006123456789,"sku_id":"12000037000000001","quantity":1}]}]}}"#,
    );
    let details = parse_tracking_details(body.as_bytes()).unwrap().unwrap();
    assert_eq!(details[0].line.items, vec![bottle_line(1)]);
    assert_eq!(details[0].nodes[0].time_stamp_ms, Some(1));
}

#[test]
fn a_single_element_may_be_a_bare_object_wrapped_or_not() {
    for list in [
        r#"{"aeop_child_order_info":{"product_id":1005006123456789,"sku_id":"12000037000000001"}}"#,
        r#"{"product_id":1005006123456789,"sku_id":"12000037000000001"}"#,
        r#"[{"product_id":1005006123456789,"sku_id":"12000037000000001"}]"#,
    ] {
        let body = order_body(&format!(
            r#"{{"order_status":"FINISH","child_order_list":{list}}}"#
        ));
        let order = parse_order_get(body.as_bytes()).unwrap();
        assert_eq!(
            order.children,
            vec![AeChild {
                product_id: s("1005006123456789"),
                sku_id: s("12000037000000001"),
                end_reason: None,
            }],
            "{list}"
        );
    }
    let body = tracking_body(
        r#"{"ret":true,"data":{"tracking_detail_line_list":{"tracking_detail":{"mail_no":"A1",
            "detail_node_list":{"detail_node":{"time_stamp":"5","tracking_name":"Delivered"}},
            "package_item_list":{"package_item":{"item_id":"1005006123456789","sku_id":"12000037000000001","quantity":"2"}}}}}}"#,
    );
    let details = parse_tracking_details(body.as_bytes()).unwrap().unwrap();
    assert_eq!(details.len(), 1);
    assert_eq!(details[0].line.items, vec![bottle_line(2)]);
    assert_eq!(details[0].nodes[0].time_stamp_ms, Some(5));
    // and one level of bare objects without wrappers
    let body = tracking_body(
        r#"{"ret":"true","data":{"tracking_detail_line_list":{"mail_no":"A1",
            "package_item_list":{"item_id":1005006123456789,"sku_id":"12000037000000001","quantity":2}}}}"#,
    );
    let lines = parse_tracking_get(body.as_bytes()).unwrap().unwrap();
    assert_eq!(lines[0].items, vec![bottle_line(2)]);
}

#[test]
fn numbers_as_strings_and_strings_as_numbers_keep_ids_exact() {
    // sku_id above 2^53 as a JSON number, product_id as a string, counts as strings.
    let body = order_body(
        r#"{"order_status":"FINISH","store_info":{"store_id":"1102233445"},
            "child_order_list":[{"product_id":"1005006123456789","sku_id":12000037000000001,"product_count":"2"}]}"#,
    );
    let order = parse_order_get(body.as_bytes()).unwrap();
    assert_eq!(order.children[0].sku_id, s("12000037000000001"));
    assert_eq!(order.children[0].product_id, s("1005006123456789"));
    let body = tracking_body(
        r#"{"ret":"true","data":{"tracking_detail_line_list":[{"mail_no":9400111899223197428490,
           "package_item_list":[{"item_id":"9007199254740993","sku_id":12000037000000001,"quantity":"3"}]}]}}"#,
    );
    let lines = parse_tracking_get(body.as_bytes()).unwrap().unwrap();
    assert_eq!(lines[0].items[0].product_id, s("9007199254740993"));
    assert_eq!(lines[0].items[0].quantity, 3);
    // a number above u64 is kept as serde_json prints it: never a crash
    assert!(!lines[0].mail_no.is_empty());
}

#[test]
fn the_lenient_scalars_read_every_shape() {
    let u = |j: &str| serde_json::from_str::<LenientU64>(j).unwrap().0;
    assert_eq!(u("2"), Some(2));
    assert_eq!(u(r#""2""#), Some(2));
    assert_eq!(u(r#"" 2 ""#), Some(2));
    assert_eq!(u("2.0"), Some(2));
    assert_eq!(u("-1"), None);
    assert_eq!(u("2.5"), None);
    assert_eq!(u(r#""x""#), None);
    assert_eq!(u("null"), None);
    assert_eq!(u("[1]"), None);
    assert_eq!(u("18446744073709551615"), Some(u64::MAX));
    let b = |j: &str| serde_json::from_str::<LenientBool>(j).unwrap().0;
    assert_eq!(b("true"), Some(true));
    assert_eq!(b(r#""true""#), Some(true));
    assert_eq!(b(r#""FALSE""#), Some(false));
    assert_eq!(b("1"), Some(true));
    assert_eq!(b(r#""yes""#), None);
    let t = |j: &str| serde_json::from_str::<LenientString>(j).unwrap().0;
    assert_eq!(t("8198352049851315"), s("8198352049851315"));
    assert_eq!(t("12000037000000001"), s("12000037000000001"));
    assert_eq!(t("true"), s("true"));
    assert_eq!(t(r#""  ""#), None);
    assert_eq!(t(r#"{"a":1}"#), None);
    let i = |j: &str| serde_json::from_str::<LenientI64>(j).unwrap().0;
    assert_eq!(i(r#""1772500000000""#), Some(1_772_500_000_000));
    assert_eq!(i("-5"), Some(-5));
}

#[test]
fn an_unknown_status_comes_through_raw() {
    let body =
        order_body(r#"{"order_status":"SOMETHING_NEW_2027","logistics_status":"WHO_KNOWS"}"#);
    let order = parse_order_get(body.as_bytes()).unwrap();
    assert_eq!(order.order_status, "SOMETHING_NEW_2027");
    assert_eq!(order.logistics_status, s("WHO_KNOWS"));
    assert!(order.children.is_empty());
}

#[test]
fn empty_lists_come_in_many_shapes() {
    for list in [
        r#"{}"#,
        r#""""#,
        "null",
        "[]",
        r#"{"aeop_child_order_info":[]}"#,
    ] {
        let body = order_body(&format!(
            r#"{{"order_status":"FINISH","child_order_list":{list}}}"#
        ));
        assert!(
            parse_order_get(body.as_bytes())
                .unwrap()
                .children
                .is_empty(),
            "{list}"
        );
    }
}

#[test]
fn unknown_top_level_keys_are_ignored() {
    let body = r#"{"code":"0","request_id":"x","aliexpress_trade_ds_order_get_response":{"result":{"order_status":"FINISH","new_field":{"a":[1]}},"request_id":"r"},"extra":[1,2]}"#;
    assert_eq!(
        parse_order_get(body.as_bytes()).unwrap().order_status,
        "FINISH"
    );
}

#[test]
fn a_list_element_that_is_not_an_object_fails_the_parse() {
    let body = order_body(r#"{"order_status":"FINISH","child_order_list":[{"product_id":1},7]}"#);
    assert!(matches!(
        parse_order_get(body.as_bytes()),
        Err(AeError::Permanent(_))
    ));
}

#[test]
fn tracking_lines_without_a_number_are_dropped_and_a_missing_quantity_counts_one() {
    let body = tracking_body(
        r#"{"ret":true,"data":{"tracking_detail_line_list":[{"carrier_name":"X"},
            {"mail_no":"B2","package_item_list":[{"item_id":1005006123456789,"sku_id":"12000037000000001"}]}]}}"#,
    );
    let lines = parse_tracking_get(body.as_bytes()).unwrap().unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].mail_no, "B2");
    assert_eq!(lines[0].items, vec![bottle_line(1)]);
}

#[test]
fn gateway_errors_are_classified() {
    let permission = r#"{"error_response":{"code":"15","type":"ISP","msg":"Remote service error","sub_code":"isv.insufficient-permission","sub_msg":"Insufficient permission.","request_id":"abc"}}"#;
    let err = parse_order_get(permission.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, AeError::Permanent(m) if m.contains("isv.insufficient-permission") && m.contains("abc")),
        "{err:?}"
    );
    let numeric = r#"{"error_response":{"code":15,"type":"ISP","msg":"Remote service error","sub_code":"isp.service-unavailable"}}"#;
    assert!(matches!(
        parse_order_get(numeric.as_bytes()),
        Err(AeError::Retryable(_))
    ));
    let limit = r#"{"error_response":{"code":"ApiCallLimit","type":"ISV","msg":"Api access frequency exceeds the limit. this ban will last 2 seconds","request_id":"x"}}"#;
    assert_eq!(
        parse_tracking_get(limit.as_bytes()),
        Err(AeError::RateLimited {
            ban: Duration::from_secs(2)
        })
    );
    let token = r#"{"error_response":{"code":"IllegalAccessToken","type":"ISV","msg":"The specified access token is invalid or expired"}}"#;
    assert_eq!(
        parse_order_get(token.as_bytes()),
        Err(AeError::InvalidToken)
    );
    let signature = r#"{"error_response":{"code":"IncompleteSignature","type":"ISV","msg":"The request signature does not conform to platform standards"}}"#;
    assert!(matches!(
        parse_order_get(signature.as_bytes()),
        Err(AeError::Permanent(m)) if m.contains("IncompleteSignature")
    ));
    let internal = r#"{"error_response":{"code":"InternalError","type":"SYSTEM","msg":"oops"}}"#;
    assert!(matches!(
        parse_order_get(internal.as_bytes()),
        Err(AeError::Retryable(_))
    ));
}

#[test]
fn rest_bodies_are_flat() {
    let ok = r#"{"code":"0","access_token":"50000abc","refresh_token":"50001def","expires_in":"86400","expire_time":1714192160000,"refresh_token_valid_time":"1716784148000","request_id":"r"}"#;
    let grant = parse_token_response(ok.as_bytes()).unwrap();
    assert_eq!(grant.access_token, "50000abc");
    assert_eq!(grant.refresh_token, s("50001def"));
    assert_eq!(grant.expire_time_ms, Some(1_714_192_160_000));
    assert_eq!(grant.expires_in_s, Some(86_400));
    assert_eq!(grant.refresh_token_valid_time_ms, Some(1_716_784_148_000));
    assert!(!format!("{grant:?}").contains("50000abc"));

    let refresh = r#"{"code":"IllegalRefreshToken","type":"ISV","message":"The specified refresh token is invalid or expired","request_id":"r"}"#;
    assert_eq!(
        parse_token_response(refresh.as_bytes()),
        Err(AeError::InvalidToken)
    );
    let path = r#"{"code":"InvalidApiPath","type":"ISV","message":"nope"}"#;
    assert!(matches!(
        parse_token_response(path.as_bytes()),
        Err(AeError::Permanent(m)) if m.contains("nope")
    ));
    let java = serde_json::json!({"gopErrorCode":"0","gopRequestId":"x","gopResponseBody": ok,"success":true}).to_string();
    assert_eq!(
        parse_token_response(java.as_bytes()).unwrap().access_token,
        "50000abc"
    );
}

#[test]
fn bodies_that_are_not_envelopes_are_permanent_errors() {
    for body in [
        "",
        "<html>502</html>",
        "[]",
        "{}",
        r#"{"aliexpress_trade_ds_order_get_response":5}"#,
        r#"{"aliexpress_trade_ds_order_get_response":{"result":{"order_status":""}}}"#,
        r#"{"aliexpress_trade_ds_order_get_response":{"result":"x"}}"#,
        r#"{"error_response":"x"}"#,
    ] {
        assert!(
            matches!(parse_order_get(body.as_bytes()), Err(AeError::Permanent(_))),
            "{body}"
        );
    }
    let business = order_body(r#"{"is_success":false,"error_code":"SOME_ERR","error_msg":"no"}"#);
    assert!(matches!(
        parse_order_get(business.as_bytes()),
        Err(AeError::Permanent(m)) if m.contains("SOME_ERR")
    ));
}

// ------------------------------------------------------------------------------------------------
// The parsers never panic
// ------------------------------------------------------------------------------------------------

fn arb_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("order_status".to_owned()),
        Just("logistics_status".to_owned()),
        Just("child_order_list".to_owned()),
        Just("aeop_child_order_info".to_owned()),
        Just("product_id".to_owned()),
        Just("sku_id".to_owned()),
        Just("end_reason".to_owned()),
        Just("ret".to_owned()),
        Just("code".to_owned()),
        Just("msg".to_owned()),
        Just("data".to_owned()),
        Just("tracking_detail_line_list".to_owned()),
        Just("tracking_detail".to_owned()),
        Just("mail_no".to_owned()),
        Just("detail_node_list".to_owned()),
        Just("detail_node".to_owned()),
        Just("time_stamp".to_owned()),
        Just("package_item_list".to_owned()),
        Just("package_item".to_owned()),
        Just("item_id".to_owned()),
        Just("quantity".to_owned()),
        Just("result".to_owned()),
        Just("error_response".to_owned()),
        Just("access_token".to_owned()),
        Just("gopResponseBody".to_owned()),
        "[a-z_]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(Value::from("1001")),
        Just(Value::from("true")),
        Just(Value::from("ApiCallLimit")),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn run_all(body: &[u8]) {
    let _ = parse_order_get(body);
    let _ = parse_tracking_get(body);
    let _ = parse_tracking_details(body);
    let _ = parse_token_response(body);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_parsers(body in prop::collection::vec(any::<u8>(), 0..512)) {
        run_all(&body);
    }

    #[test]
    fn arbitrary_json_never_panics_the_parsers(v in arb_json()) {
        run_all(v.to_string().as_bytes());
        for method in ["aliexpress_trade_ds_order_get_response", "aliexpress_ds_order_tracking_get_response"] {
            let wrapped = serde_json::json!({ method: { "result": v.clone() } });
            run_all(wrapped.to_string().as_bytes());
        }
        let _ = order_from_result(v.clone());
        let _ = tracking_from_result(v);
    }
}
