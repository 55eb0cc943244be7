"""Tests of the sandbox's placement methods: ds.product.get, ds.freight.query and ds.order.create (address
validation, one order per seller, 24 h out_order_id idempotency, faults that create and lose the answer), and
payment as a sandbox action.

Run: PYTHONPATH=tests/sandbox .venv/bin/python -m pytest -q tests/sandbox/tests/test_aliexpress_place.py
"""

from __future__ import annotations

import itertools
import json

import pytest

from dropsync_sandbox.aliexpress import (
    METHOD_FREIGHT_QUERY,
    METHOD_ORDER_CREATE,
    METHOD_ORDER_GET,
    METHOD_PRODUCT_GET,
    AliExpressClient,
    AliExpressSandbox,
    http_request,
)

ACCOUNT = "buyer-1"
_keys = itertools.count(700_001)
BOTTLE, BRUSH, CASE, LAMP = 1005006123456789, 1005006987654321, 1005007111111111, 1005007222222222

US_ADDRESS = {
    "address": "123 Main St", "city": "Vineland", "province": "New Jersey", "country": "US", "zip": "08360",
    "contact_person": "Jane Doe", "full_name": "Jane Doe", "mobile_no": "5593600000", "phone_country": "+1",
}


class Harness:
    def __init__(self, running):
        self.url = running.base_url
        self.sandbox = running.sandbox

    def admin(self, verb, path, body=None, expect=200):
        data = None if body is None else json.dumps(body).encode()
        status, obj = http_request(verb, self.url + path, data, {"Content-Type": "application/json"})
        assert status == expect, (status, obj)
        return obj

    def client(self):
        key = str(next(_keys))
        secret = f"secret-{key}"
        self.admin("POST", "/_admin/apps", {"app_key": key, "app_secret": secret})
        tok = self.admin("POST", "/_admin/tokens", {"app_key": key, "account": ACCOUNT,
                                                    "access_token": f"at-{key}", "refresh_token": f"rt-{key}"})
        return AliExpressClient(self.url, key, secret, session=tok["access_token"])


@pytest.fixture
def ae():
    sandbox = AliExpressSandbox(seed=3)
    with sandbox.start() as running:
        yield Harness(running)


def create(client, out_order_id, items, address=None, extend=None, **kw):
    param = {"out_order_id": out_order_id, "logistics_address": address or US_ADDRESS, "product_items": items}
    business = {"param_place_order_request4_open_api_d_t_o": json.dumps(param)}
    if extend is not None:
        business["ds_extend_request"] = json.dumps(extend)
    status, body = client.call(METHOD_ORDER_CREATE, business, **kw)
    assert status == 200, body
    assert "aliexpress_ds_order_create_response" in body, body
    return body["aliexpress_ds_order_create_response"]["result"]


def item(pid, attr, count=1, service="CAINIAO_STANDARD"):
    return {"product_id": pid, "product_count": count, "sku_attr": attr, "logistics_service_name": service}


def test_product_get_answers_skus_store_and_subject(ae):
    c = ae.client()
    status, body = c.call(METHOD_PRODUCT_GET, {"product_id": str(BOTTLE), "ship_to_country": "US"})
    assert status == 200
    resp = body["aliexpress_ds_product_get_response"]
    assert resp["rsp_code"] == "200"
    result = resp["result"]
    skus = result["ae_item_sku_info_dtos"]["ae_item_sku_info_d_t_o"]
    assert [s["sku_attr"] for s in skus] == ["14:175#Silver", "14:193#Black"]
    assert result["ae_store_info"]["store_id"] == 1102233445
    assert result["ae_item_base_info_dto"]["subject"] == "Steel bottle 500ml"


def test_an_unknown_product_is_item_id_not_found(ae):
    status, body = ae.client().call(METHOD_PRODUCT_GET, {"product_id": "42", "ship_to_country": "US"})
    assert body["aliexpress_ds_product_get_response"]["rsp_code"] == "605"


def test_a_product_taken_offline_says_so_and_cannot_be_ordered(ae):
    c = ae.client()
    ae.admin("POST", "/_admin/products", {"product_id": 777001, "store_id": 555001, "status": "offline",
                                          "skus": [{"sku_id": "1", "sku_attr": "14:175"}]})
    _, body = c.call(METHOD_PRODUCT_GET, {"product_id": "777001", "ship_to_country": "US"})
    base = body["aliexpress_ds_product_get_response"]["result"]["ae_item_base_info_dto"]
    assert base["product_status_type"] == "offline"
    result = create(c, "offline-1", [item(777001, "14:175")])
    assert result["is_success"] is False
    assert result["error_code"] == "ERROR_WHEN_BUILD_FOR_PLACE_ORDER"
    _, body = c.call(METHOD_PRODUCT_GET, {"product_id": str(BOTTLE), "ship_to_country": "US"})
    base = body["aliexpress_ds_product_get_response"]["result"]["ae_item_base_info_dto"]
    assert base["product_status_type"] == "onSelling"


def test_freight_lists_options_and_refuses_where_it_does_not_deliver(ae):
    c = ae.client()
    req = {"productId": str(BOTTLE), "selectedSkuId": "12000037000000001", "quantity": "1", "shipToCountry": "US",
           "language": "en_US", "locale": "en_US", "currency": "USD"}
    _, body = c.call(METHOD_FREIGHT_QUERY, {"queryDeliveryReq": json.dumps(req)})
    result = body["aliexpress_ds_freight_query_response"]["result"]
    assert result["success"] is True
    codes = [o["code"] for o in result["delivery_options"]["delivery_option_d_t_o"]]
    assert "CAINIAO_STANDARD" in codes
    req.update(productId=str(LAMP), selectedSkuId="12000042000000001", shipToCountry="BR")
    _, body = c.call(METHOD_FREIGHT_QUERY, {"queryDeliveryReq": json.dumps(req)})
    result = body["aliexpress_ds_freight_query_response"]["result"]
    assert (result["success"], result["code"]) == (False, 505)


def test_one_create_makes_one_order_per_seller_that_order_get_then_sees(ae):
    c = ae.client()
    result = create(c, "1001-x-1", [item(BOTTLE, "14:175#Silver", 2), item(BRUSH, ""), item(CASE, "14:29#Red;5:361386#S")])
    assert result["is_success"] is True
    ids = result["order_list"]["number"]
    assert len(ids) == 2, "two sellers, two orders"
    seen = []
    for oid in ids:
        _, body = c.call(METHOD_ORDER_GET, {"single_order_query": json.dumps({"order_id": oid})})
        r = body["aliexpress_trade_ds_order_get_response"]["result"]
        assert r["order_status"] == "PLACE_ORDER_SUCCESS"
        seen.append(sorted(int(ch["product_id"]) for ch in r["child_order_list"]["aeop_child_order_info"]))
    assert sorted(seen) == sorted([[BOTTLE, BRUSH], [CASE]])


def test_the_same_out_order_id_within_24_hours_is_repeated_and_creates_nothing(ae):
    c = ae.client()
    first = create(c, "1002-s-1", [item(BRUSH, "")])
    assert first["is_success"] is True
    orders_before = len(ae.sandbox.orders)
    again = create(c, "1002-s-1", [item(BRUSH, "")])
    assert (again["is_success"], again["error_code"]) == (False, "REPEATED_ORDER_ERROR")
    assert len(ae.sandbox.orders) == orders_before
    ae.admin("POST", "/_admin/clock", {"advance_ms": 24 * 3600 * 1000 + 1})
    # The test app's access token lives one day too: the merchant re-authorized meanwhile.
    c.session = ae.admin("POST", "/_admin/tokens", {"app_key": c.app_key, "account": ACCOUNT,
                                                    "access_token": "at-later", "refresh_token": "rt-later"})["access_token"]
    later = create(c, "1002-s-1", [item(BRUSH, "")], timestamp_ms=ae.admin("GET", "/_admin/clock")["now_ms"])
    assert later["is_success"] is True, "after 24 h the key is forgotten: a real duplicate"


@pytest.mark.parametrize("change, message", [
    ({"city": ""}, "Please enter a city"),
    ({"province": ""}, "Please select a State/Province/County"),
    ({"mobile_no": "555 360-0000"}, "phone number"),
    ({"contact_person": "J Doe"}, "between 2 - 32 characters"),
])
def test_bad_addresses_are_refused_with_aliexpress_words_and_create_nothing(ae, change, message):
    c = ae.client()
    before = len(ae.sandbox.orders)
    result = create(c, "1003-a-1", [item(BRUSH, "")], address={**US_ADDRESS, **change})
    assert result["is_success"] is False
    assert result["error_code"] == "B_DROPSHIPPER_DELIVERY_ADDRESS_VALIDATE_FAIL"
    assert message in result["error_msg"]
    assert len(ae.sandbox.orders) == before


def test_brazil_needs_a_valid_cpf(ae):
    c = ae.client()
    br = {**US_ADDRESS, "country": "BR", "province": "Sao Paulo", "city": "Sao Paulo", "phone_country": "+55",
          "mobile_no": "11987654321"}
    bad = create(c, "1004-b-1", [item(BRUSH, "")], address={**br, "cpf": "12345678900"})
    assert bad["error_code"].endswith("_CPF_CN_INVALID")
    good = create(c, "1004-b-2", [item(BRUSH, "")], address={**br, "cpf": "52998224725"})
    assert good["is_success"] is True


def test_stock_and_shipping_method_errors(ae):
    c = ae.client()
    assert create(c, "1005-1", [item(LAMP, "")])["error_code"] == "INVENTORY_HOLD_ERROR"
    assert create(c, "1005-2", [item(BRUSH, "", service="NOPE")])["error_code"] == "DELIVERY_METHOD_NOT_EXIST"


def test_auto_pay_failing_still_creates_the_order(ae):
    c = ae.client()
    result = create(c, "1006-1", [item(BRUSH, "")], extend={"payment": {"pay_currency": "USD", "try_to_pay": "true"}})
    assert result["is_success"] is True
    assert result["error_msg"].startswith("OrderCreated, autoPay fail")


def test_a_lost_answer_still_creates_the_order_and_a_resend_is_repeated(ae):
    c = ae.client()
    ae.admin("POST", "/_admin/faults/order-create", {"mode": "lose_answer", "status": 504, "out_order_id_prefix": "1007-"})
    param = {"out_order_id": "1007-s-1", "logistics_address": US_ADDRESS, "product_items": [item(BRUSH, "")]}
    status, _ = c.call(METHOD_ORDER_CREATE, {"param_place_order_request4_open_api_d_t_o": json.dumps(param)})
    assert status == 504
    log = ae.admin("GET", "/_admin/placements")["placements"]
    assert log[-1]["outcome"] == "created" and log[-1]["answer_lost"] is True
    again = create(c, "1007-s-1", [item(BRUSH, "")])
    assert again["error_code"] == "REPEATED_ORDER_ERROR"
    assert sum(1 for p in ae.admin("GET", "/_admin/placements")["placements"] if p.get("outcome") == "created") == 1


def test_the_placement_log_can_be_narrowed_to_one_orders_creates(ae):
    c = ae.client()
    create(c, "1010-s-1", [item(BRUSH, "")])
    create(c, "1011-s-1", [item(BRUSH, "")])
    log = ae.admin("GET", "/_admin/placements?out_order_id_prefix=1010-")["placements"]
    assert [p["out_order_id"] for p in log] == ["1010-s-1"]
    assert len(ae.admin("GET", "/_admin/placements")["placements"]) == 2


def test_an_injected_business_error_creates_nothing(ae):
    c = ae.client()
    ae.admin("POST", "/_admin/faults/order-create", {"mode": "business_error", "code": "BLACKLIST_BUYER_IN_LIST",
                                                     "message": "buyer blacklisted"})
    before = len(ae.sandbox.orders)
    result = create(c, "1008-1", [item(BRUSH, "")])
    assert (result["error_code"], result["error_msg"]) == ("BLACKLIST_BUYER_IN_LIST", "buyer blacklisted")
    assert len(ae.sandbox.orders) == before
    assert create(c, "1008-1", [item(BRUSH, "")])["is_success"] is True, "the fault fired once"


def test_payment_is_a_sandbox_action(ae):
    c = ae.client()
    oid = create(c, "1009-1", [item(BRUSH, "")])["order_list"]["number"][0]
    paid = ae.admin("POST", f"/_admin/orders/{oid}/pay")
    assert paid["status"] == "WAIT_SELLER_SEND_GOODS"
    ae.admin("POST", f"/_admin/orders/{oid}/pay", expect=409)


def test_a_missing_order_parameter_is_a_gateway_error(ae):
    status, body = ae.client().call(METHOD_ORDER_CREATE, {})
    assert body["error_response"]["code"] == "MissingParameter"


def test_a_fault_with_a_prefix_only_hits_matching_out_order_ids(ae):
    c = ae.client()
    ae.admin("POST", "/_admin/faults/order-create", {"mode": "business_error", "code": "X_FAULT",
                                                     "out_order_id_prefix": "2001-"})
    assert create(c, "2002-1", [item(BRUSH, "")])["is_success"] is True
    assert create(c, "2001-1", [item(BRUSH, "")])["error_code"] == "X_FAULT"
