"""Tests of the sandbox AliExpress gateway: signing vectors, every gateway error over real signed HTTP, shapes,
lifecycle, rate limiting and token rotation.

Run from the repository root: PYTHONPATH=tests/sandbox .venv/bin/python -m pytest -q tests/sandbox/tests/test_aliexpress.py
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from dropsync_sandbox.aliexpress import (
    METHOD_ORDER_GET,
    METHOD_TRACKING_GET,
    AliExpressClient,
    AliExpressSandbox,
    compute_sign,
    http_request,
    string_to_sign,
)

SANDBOX_DIR = Path(__file__).resolve().parents[1]
ACCOUNT = "buyer-1"
_keys = itertools.count(500_001)


class Harness:
    """A running in-process sandbox plus helpers to drive its admin API over HTTP."""

    def __init__(self, running):
        self.running = running
        self.sandbox = running.sandbox
        self.url = running.base_url

    def admin(self, verb, path, body=None, expect=200):
        data = None if body is None else json.dumps(body).encode()
        status, obj = http_request(verb, self.url + path, data, {"Content-Type": "application/json"})
        assert status == expect, (status, obj)
        return obj

    def app(self, account=ACCOUNT, **config):
        """A fresh app with a registered session for `account`; returns a signed client bound to it."""
        key = str(next(_keys))
        secret = f"secret-{key}"
        self.admin("POST", "/_admin/apps", {"app_key": key, "app_secret": secret, **config})
        tok = self.admin("POST", "/_admin/tokens", {"app_key": key, "account": account,
                                                    "access_token": f"at-{key}", "refresh_token": f"rt-{key}"})
        return AliExpressClient(self.url, key, secret, session=tok["access_token"])

    def order(self, client, **body):
        body = {"app_key": client.app_key, "account": ACCOUNT, **body}
        return self.admin("POST", "/_admin/orders", body)["order_id"]

    def clock_ms(self):
        return self.admin("GET", "/_admin/clock")["now_ms"]


@pytest.fixture
def ae():
    sandbox = AliExpressSandbox(seed=7)
    with sandbox.start() as running:
        yield Harness(running)


def order_get(client, order_id, **kw):
    return client.call(METHOD_ORDER_GET, {"single_order_query": json.dumps({"order_id": int(order_id)})}, **kw)


def tracking_get(client, order_id, **kw):
    return client.call(METHOD_TRACKING_GET, {"ae_order_id": str(order_id), "language": "en_US"}, **kw)


def error_of(body):
    assert "error_response" in body, body
    return body["error_response"]


TWO_ITEMS = [
    {"product_id": "1005006123456789", "sku_id": "12000037000000001", "count": 2, "title": "Steel bottle 500ml",
     "price": "7.50", "sku_desc": "Color:Silver"},
    {"product_id": "1005006987654321", "sku_id": "12000038000000002", "count": 1, "title": "Bottle brush",
     "price": "7.19"},
]


# ---- signing vectors ----------------------------------------------------------------------------------


def test_the_official_doc_sample_signs_to_the_documented_value():
    params = {"access_token": "test", "app_key": "123456", "order_id": "1234", "sign_method": "sha256",
              "timestamp": "1517820392000"}
    assert string_to_sign(params, "/order/get") == (
        "/order/getaccess_tokentestapp_key123456order_id1234sign_methodsha256timestamp1517820392000")
    assert compute_sign("helloworld", params, "/order/get") == (
        "4190D32361CFB9581350222F345CB77F3B19F0E31D162316848A2C1FFD5FAB4A")


def test_names_are_sorted_by_ascii_bytes_and_the_rest_path_is_prefixed():
    params = {"foo": "1", "bar": "2", "foo_bar": "3", "foobar": "4"}
    assert string_to_sign(params, "/test/api") == "/test/apibar2foo1foo_bar3foobar4"
    assert compute_sign("helloworld", params, "/test/api") == (
        "BD011266EC150C787B2201495AA2D6F326BB6910DE77E84EA28F5215DCD7FA5E")
    # upper case < "_" < lower case, and `sign` itself is never signed
    assert string_to_sign({"b": "1", "B": "2", "_": "3", "sign": "X"}) == "B2_3b1"


def test_a_sync_call_is_signed_without_a_path_prefix():
    params = {"app_key": "123456", "method": "aliexpress.trade.ds.order.get", "session": "test",
              "sign_method": "sha256", "timestamp": "1517820392000",
              "single_order_query": '{"order_id":8198352049851315}'}
    assert string_to_sign(params) == (
        "app_key123456methodaliexpress.trade.ds.order.getsessiontestsign_methodsha256"
        'single_order_query{"order_id":8198352049851315}timestamp1517820392000')
    assert compute_sign("helloworld", params) == "53B0CEFFBED50E183410AF61D6524D98AFE1284A7CFFE8B5BDA824A22395A89D"


# ---- order.get ----------------------------------------------------------------------------------------------


def test_order_get_returns_the_documented_envelope_with_wrapped_lists_by_default(ae):
    client = ae.app()
    oid = ae.order(client, order_id="8198352049851315", items=TWO_ITEMS, status="WAIT_SELLER_SEND_GOODS",
                   logistics_status="WAIT_SELLER_SEND_GOODS")
    status, body = order_get(client, oid)
    assert status == 200
    envelope = body["aliexpress_trade_ds_order_get_response"]
    assert re.fullmatch(r"\w{10,}", envelope["request_id"])
    result = envelope["result"]
    assert result["order_status"] == "WAIT_SELLER_SEND_GOODS"
    assert result["logistics_status"] == "WAIT_SELLER_SEND_GOODS"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", result["gmt_create"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-0[78]:00\[America/Los_Angeles\]",
                        result["order_paidtime_string"])
    assert result["pay_timeout_second"] == "86400"
    assert result["order_amount"] == {"amount": "22.19", "currency_code": "USD"}
    children = result["child_order_list"]["aeop_child_order_info"]
    assert [c["product_id"] for c in children] == [1005006123456789, 1005006987654321]
    assert children[0]["product_count"] == 2
    assert children[0]["product_price"] == {"amount": "7.50", "currency_code": "USD"}
    assert children[0]["actual_fee"] == {"amount": "15.00", "currency_code": "USD"}
    assert isinstance(result["store_info"]["store_id"], int)


def test_gmt_create_is_pacific_wall_time(ae):
    client = ae.app()
    # 2026-03-03T02:04:11Z is 2026-03-02 18:04:11 in Los Angeles (PST, UTC-8)
    oid = ae.order(client, created_ms=1772503451000)
    _, body = order_get(client, oid)
    assert body["aliexpress_trade_ds_order_get_response"]["result"]["gmt_create"] == "2026-03-02 18:04:11"


def test_order_ids_near_and_above_2_pow_53_are_emitted_as_exact_json_integers(ae):
    client = ae.app()
    for oid in ("9007199254740993", "18446744073709551615"):
        ae.order(client, order_id=oid)
        params = client.signed_params(METHOD_ORDER_GET, {"single_order_query": f'{{"order_id":"{oid}"}}'})
        req = urllib.request.Request(ae.url + "/sync", data=urllib.parse.urlencode(params).encode(), method="POST")
        raw = urllib.request.urlopen(req).read().decode()
        assert '"aliexpress_trade_ds_order_get_response"' in raw
        admin = ae.admin("GET", f"/_admin/orders/{oid}")
        assert admin["order_id"] == oid


def test_a_generated_order_id_has_16_digits_below_2_pow_53(ae):
    client = ae.app()
    oid = ae.order(client)
    assert len(oid) == 16 and int(oid) < 2**53


def test_a_float_order_id_is_rejected_because_it_has_lost_precision(ae):
    client = ae.app()
    oid = ae.order(client)
    _, body = client.call(METHOD_ORDER_GET, {"single_order_query": json.dumps({"order_id": float(oid)})})
    assert error_of(body)["code"] == "InvalidParameter"


def test_an_order_of_another_account_is_refused_with_invalid_authorization(ae):
    client = ae.app()
    other = ae.admin("POST", "/_admin/orders", {"account": "someone-else"})["order_id"]
    _, body = order_get(client, other)
    err = error_of(body)
    assert (err["code"], err["type"], err["sub_code"]) == ("15", "ISP", "isv.invalid-authorization")
    assert err["request_id"]


def test_an_unknown_order_gets_the_same_answer_as_another_accounts_order(ae):
    client = ae.app()
    _, body = order_get(client, 8198352049851399)
    assert error_of(body)["sub_code"] == "isv.invalid-authorization"


def test_order_get_right_after_creation_can_be_unavailable_for_a_while(ae):
    client = ae.app()
    oid = ae.order(client, unavailable_for_ms=300)
    _, body = order_get(client, oid)
    err = error_of(body)
    assert (err["code"], err["type"], err["sub_code"]) == ("15", "ISP", "isp.service-unavailable")
    time.sleep(0.35)
    _, body = order_get(client, oid)
    assert "aliexpress_trade_ds_order_get_response" in body
    assert ae.admin("GET", f"/_admin/stats?app_key={client.app_key}")["isp_errors"] == 1


def test_a_flat_order_id_param_is_not_accepted(ae):
    client = ae.app()
    oid = ae.order(client)
    _, body = client.call(METHOD_ORDER_GET, {"order_id": oid})
    err = error_of(body)
    assert err["code"] == "MissingParameter" and "single_order_query" in err["msg"]


def test_an_order_id_given_as_a_string_in_the_query_is_accepted(ae):
    client = ae.app()
    oid = ae.order(client)
    _, body = client.call(METHOD_ORDER_GET, {"single_order_query": json.dumps({"order_id": oid})})
    assert "aliexpress_trade_ds_order_get_response" in body


def test_unknown_statuses_and_a_partial_cancel_are_reported_as_set(ae):
    client = ae.app()
    oid = ae.order(client, items=TWO_ITEMS, status="WAIT_SELLER_SEND_GOODS")
    ae.admin("POST", f"/_admin/orders/{oid}", {"status": "IN_FROZEN",
                                                "end_reasons": {"1005006987654321": "CANCELED"}})
    _, body = order_get(client, oid)
    result = body["aliexpress_trade_ds_order_get_response"]["result"]
    assert result["order_status"] == "IN_FROZEN"
    first, second = result["child_order_list"]["aeop_child_order_info"]
    assert "end_reason" not in first and second["end_reason"] == "CANCELED"


def test_an_unpaid_order_has_no_paid_time_and_a_scheduled_timeout_closes_it(ae):
    client = ae.app()
    unpaid_timeout = {"after_seconds": 3600, "if_status": "PLACE_ORDER_SUCCESS", "status": "FINISH",
                      "logistics_status": "NO_LOGISTICS", "end_reasons": {"*": "CANCELED"}}
    oid = ae.order(client, pay_timeout_second=3600, schedule=[unpaid_timeout])
    _, body = order_get(client, oid)
    result = body["aliexpress_trade_ds_order_get_response"]["result"]
    assert result["order_status"] == "PLACE_ORDER_SUCCESS" and "order_paidtime_string" not in result
    ae.admin("POST", "/_admin/clock", {"advance_seconds": 3601})
    # the client signs with the sandbox clock, which has moved an hour ahead
    _, body = order_get(client, oid, timestamp_ms=ae.clock_ms())
    result = body["aliexpress_trade_ds_order_get_response"]["result"]
    assert (result["order_status"], result["logistics_status"]) == ("FINISH", "NO_LOGISTICS")
    assert result["child_order_list"]["aeop_child_order_info"][0]["end_reason"] == "CANCELED"


# ---- tracking.get -------------------------------------------------------------------------------------------


def test_tracking_of_an_unshipped_order_is_1001_tracking_data_not_found(ae):
    client = ae.app()
    oid = ae.order(client)
    status, body = tracking_get(client, oid)
    assert status == 200
    assert body["aliexpress_ds_order_tracking_get_response"]["result"] == {
        "ret": False, "code": "1001", "msg": "TRACKING DATA NOT FOUND"}
    assert body["aliexpress_ds_order_tracking_get_response"]["request_id"]


def test_a_shipped_order_shows_its_package_with_items_and_newest_first_nodes(ae):
    client = ae.app()
    oid = ae.order(client, items=TWO_ITEMS, status="WAIT_SELLER_SEND_GOODS")
    shipped = ae.admin("POST", f"/_admin/orders/{oid}/ship", {})
    mail_no = shipped["mail_no"]
    assert shipped["order"]["status"] == "WAIT_BUYER_ACCEPT_GOODS"
    assert shipped["order"]["logistics_status"] == "SELLER_SEND_GOODS"
    now = ae.clock_ms()
    ae.admin("POST", f"/_admin/orders/{oid}/packages/{mail_no}",
             {"add_node": {"time_stamp": now + 3_600_000, "tracking_name": "Collected by carrier",
                           "tracking_detail_desc": "Parcel collected"}})
    _, body = tracking_get(client, oid)
    result = body["aliexpress_ds_order_tracking_get_response"]["result"]
    assert result["ret"] is True
    (line,) = result["data"]["tracking_detail_line_list"]["tracking_detail"]
    assert line["mail_no"] == mail_no and line["carrier_name"] == "AliExpress Selection Standard"
    stamps = [n["time_stamp"] for n in line["detail_node_list"]["detail_node"]]
    assert stamps == sorted(stamps, reverse=True) and len(stamps) == 2
    items = line["package_item_list"]["package_item"]
    assert [(i["item_id"], i["sku_id"], i["quantity"]) for i in items] == [
        (1005006123456789, "12000037000000001", 2), (1005006987654321, "12000038000000002", 1)]
    assert items[0]["item_title"] == "Steel bottle 500ml" and items[0]["sku_desc"] == "Color:Silver"


def test_a_package_hidden_until_made_visible_gives_1001_first(ae):
    client = ae.app()
    oid = ae.order(client, items=TWO_ITEMS, status="WAIT_SELLER_SEND_GOODS")
    ae.admin("POST", f"/_admin/orders/{oid}", {"status": "SELLER_PART_SEND_GOODS",
                                                "logistics_status": "SELLER_SEND_PART_GOODS"})
    ae.admin("POST", f"/_admin/orders/{oid}/packages", {
        "mail_no": "YT2600000000000001", "visible": False,
        "items": [{"product_id": "1005006123456789", "quantity": 1}]})
    _, body = tracking_get(client, oid)
    assert body["aliexpress_ds_order_tracking_get_response"]["result"]["code"] == "1001"
    ae.admin("POST", f"/_admin/orders/{oid}/packages/YT2600000000000001", {"visible": True})
    _, body = tracking_get(client, oid)
    result = body["aliexpress_ds_order_tracking_get_response"]["result"]
    (line,) = result["data"]["tracking_detail_line_list"]["tracking_detail"]
    assert line["package_item_list"]["package_item"] == [{
        "item_id": 1005006123456789, "sku_id": "12000037000000001", "quantity": 1,
        "item_title": "Steel bottle 500ml", "sku_desc": "Color:Silver"}]


def test_a_package_can_appear_hours_after_the_status_change_on_the_sandbox_clock(ae):
    client = ae.app()
    oid = ae.order(client, status="WAIT_SELLER_SEND_GOODS")
    ae.admin("POST", f"/_admin/orders/{oid}/ship", {"visible_after_seconds": 3 * 3600})
    _, body = tracking_get(client, oid)
    assert body["aliexpress_ds_order_tracking_get_response"]["result"]["code"] == "1001"
    ae.admin("POST", "/_admin/clock", {"advance_seconds": 3 * 3600})
    _, body = tracking_get(client, oid, timestamp_ms=ae.clock_ms())
    assert body["aliexpress_ds_order_tracking_get_response"]["result"]["ret"] is True


def test_a_tracking_number_can_be_corrected_later(ae):
    client = ae.app()
    oid = ae.order(client, status="WAIT_SELLER_SEND_GOODS")
    first = ae.admin("POST", f"/_admin/orders/{oid}/ship", {"mail_no": "LP00123456789012"})["mail_no"]
    ae.admin("POST", f"/_admin/orders/{oid}/packages/{first}", {"new_mail_no": "9400111899223197428490"})
    _, body = tracking_get(client, oid)
    (line,) = body["aliexpress_ds_order_tracking_get_response"]["result"]["data"][
        "tracking_detail_line_list"]["tracking_detail"]
    assert line["mail_no"] == "9400111899223197428490"
    assert ae.admin("GET", f"/_admin/orders/{oid}")["packages"][0]["previous_mail_nos"] == ["LP00123456789012"]


def test_tracking_without_language_is_a_missing_parameter(ae):
    client = ae.app()
    oid = ae.order(client)
    _, body = client.call(METHOD_TRACKING_GET, {"ae_order_id": oid})
    err = error_of(body)
    assert err["code"] == "MissingParameter" and "language" in err["msg"]


def test_tracking_of_another_accounts_order_is_refused(ae):
    client = ae.app()
    other = ae.admin("POST", "/_admin/orders", {"account": "someone-else"})["order_id"]
    _, body = tracking_get(client, other)
    assert error_of(body)["sub_code"] == "isv.invalid-authorization"


# ---- gateway checks -----------------------------------------------------------------------------------------


def test_an_unknown_app_key_is_rejected_as_an_invalid_app_key(ae):
    client = ae.app()
    stranger = AliExpressClient(ae.url, "999999", "whatever", session=client.session)
    _, body = order_get(stranger, 1)
    err = error_of(body)
    assert (err["code"], err["type"]) == ("isv.appkey-not-exists", "ISV")
    assert err["msg"] == "The specified App Key is invalid"


def test_a_request_without_a_timestamp_is_a_missing_parameter(ae):
    client = ae.app()
    params = client.signed_params(METHOD_ORDER_GET, {"single_order_query": '{"order_id":1}'})
    del params["timestamp"]
    _, body = client.post("/sync", params)
    err = error_of(body)
    assert err["code"] == "MissingParameter" and "timestamp" in err["msg"]


def test_a_request_without_a_session_is_a_missing_parameter(ae):
    client = ae.app()
    _, body = order_get(client, 1, session="")
    assert error_of(body)["code"] == "MissingParameter"


def test_a_request_signed_with_the_wrong_secret_is_rejected_with_incomplete_signature(ae):
    client = ae.app()
    oid = ae.order(client)
    forger = AliExpressClient(ae.url, client.app_key, "not-the-secret", session=client.session)
    _, body = order_get(forger, oid)
    err = error_of(body)
    assert (err["code"], err["type"]) == ("IncompleteSignature", "ISV")
    assert err["msg"] == "The request signature does not conform to platform standards"
    assert ae.admin("GET", f"/_admin/stats?app_key={client.app_key}")["signature_failures"] == 1


def test_a_lowercase_hex_signature_is_rejected(ae):
    client = ae.app()
    oid = ae.order(client)
    params = client.signed_params(METHOD_ORDER_GET, {"single_order_query": json.dumps({"order_id": int(oid)})})
    params["sign"] = params["sign"].lower()
    _, body = client.post("/sync", params)
    assert error_of(body)["code"] == "IncompleteSignature"


def test_a_param_changed_after_signing_is_rejected(ae):
    client = ae.app()
    params = client.signed_params(METHOD_TRACKING_GET, {"ae_order_id": "1", "language": "en_US"})
    params["language"] = "es_ES"
    _, body = client.post("/sync", params)
    assert error_of(body)["code"] == "IncompleteSignature"


def test_a_rest_call_signed_without_the_path_prefix_is_rejected(ae):
    client = ae.app()
    params = client.signed_params(None, {"refresh_token": f"rt-{client.app_key}"})  # no api_path
    _, body = client.post("/rest/auth/token/refresh", params)
    assert body["code"] == "IncompleteSignature" and "message" in body


def test_a_timestamp_three_hours_old_is_rejected(ae):
    client = ae.app()
    oid = ae.order(client)
    _, body = order_get(client, oid, timestamp_ms=int(time.time() * 1000) - 3 * 3600 * 1000)
    assert error_of(body)["code"] == "InvalidTimestamp"
    _, body = order_get(client, oid, timestamp_ms=int(time.time() * 1000) - 3600 * 1000)
    assert "aliexpress_trade_ds_order_get_response" in body


def test_an_unknown_session_is_an_illegal_access_token(ae):
    client = ae.app()
    oid = ae.order(client)
    _, body = order_get(client, oid, session="50000nope")
    assert error_of(body)["code"] == "IllegalAccessToken"


def test_an_expired_session_is_an_illegal_access_token(ae):
    client = ae.app()
    oid = ae.order(client)
    ae.admin("POST", "/_admin/clock", {"advance_seconds": 86400})
    _, body = order_get(client, oid, timestamp_ms=ae.clock_ms())
    assert error_of(body)["code"] == "IllegalAccessToken"


def test_a_session_of_another_app_is_an_illegal_access_token(ae):
    client = ae.app()
    other = ae.app()
    oid = ae.order(client)
    _, body = order_get(client, oid, session=other.session)
    assert error_of(body)["code"] == "IllegalAccessToken"


def test_an_unknown_method_is_an_invalid_api_path(ae):
    client = ae.app()
    _, body = client.call("aliexpress.ds.trade.order.get", {"order_id": "1"})
    assert error_of(body)["code"] == "InvalidApiPath"


def test_an_unknown_rest_path_and_a_business_method_on_rest_are_invalid_api_paths(ae):
    client = ae.app()
    for path in ("/auth/token/refresh2", "/aliexpress.trade.ds.order.get"):
        _, body = client.rest(path, {"refresh_token": "x"})
        assert body["code"] == "InvalidApiPath" and body["type"] == "ISV"


def test_params_may_sit_in_the_query_the_form_body_or_a_multipart_body(ae):
    client = ae.app()
    oid = ae.order(client)
    business = {"single_order_query": json.dumps({"order_id": int(oid)})}
    params = client.signed_params(METHOD_ORDER_GET, business)
    # everything in the query string
    _, body = http_request("POST", ae.url + "/sync?" + urllib.parse.urlencode(params), b"")
    assert "aliexpress_trade_ds_order_get_response" in body
    # everything in a urlencoded body (the Python SDK's layout)
    _, body = http_request("POST", ae.url + "/sync", urllib.parse.urlencode(params).encode(),
                           {"Content-Type": "application/x-www-form-urlencoded"})
    assert "aliexpress_trade_ds_order_get_response" in body
    # system params in the query, business params multipart (the PHP SDK's layout)
    boundary = "----dropsyncboundary"
    parts = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                    for k, v in business.items()) + f"--{boundary}--\r\n"
    query = {k: v for k, v in params.items() if k not in business}
    _, body = http_request("POST", ae.url + "/sync?" + urllib.parse.urlencode(query), parts.encode(),
                           {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert "aliexpress_trade_ds_order_get_response" in body, body


def test_many_calls_on_one_keep_alive_connection_are_fast(ae):
    client = ae.app()
    oid = ae.order(client)
    host, port = ae.running.server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    started = time.monotonic()
    for _ in range(50):
        params = client.signed_params(METHOD_ORDER_GET, {"single_order_query": json.dumps({"order_id": int(oid)})})
        conn.request("POST", "/sync", urllib.parse.urlencode(params),
                     {"Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        assert resp.status == 200 and b"order_get_response" in resp.read()
    conn.close()
    # 50 calls at Nagle/delayed-ACK speed would take about 2 s
    assert time.monotonic() - started < 1.0


def test_an_app_can_switch_the_timestamp_check_off_for_clients_that_sign_with_the_wall_clock(ae):
    client = ae.app(check_timestamp=False)
    ae.admin("POST", "/_admin/tokens", {"app_key": client.app_key, "account": ACCOUNT, "access_token": "long",
                                        "expires_in": 30 * 86400})
    oid = ae.order(client)
    ae.admin("POST", "/_admin/clock", {"advance_seconds": 3 * 86400})
    assert "aliexpress_trade_ds_order_get_response" in order_get(client, oid, session="long")[1]


# ---- shape quirks -------------------------------------------------------------------------------------------


def _line(body):
    return body["aliexpress_ds_order_tracking_get_response"]["result"]["data"]["tracking_detail_line_list"]


def test_the_request_simplify_param_decides_the_wrappers_when_the_app_leaves_it_to_the_request(ae):
    client = ae.app()
    oid = ae.order(client, items=TWO_ITEMS, status="WAIT_SELLER_SEND_GOODS")
    ae.admin("POST", f"/_admin/orders/{oid}/ship", {})
    _, body = client.call(METHOD_ORDER_GET, {"single_order_query": json.dumps({"order_id": int(oid)}),
                                             "simplify": "true"})
    children = body["aliexpress_trade_ds_order_get_response"]["result"]["child_order_list"]
    assert isinstance(children, list) and len(children) == 2
    _, body = client.call(METHOD_TRACKING_GET, {"ae_order_id": oid, "language": "en_US", "simplify": "true"})
    (line,) = _line(body)
    assert isinstance(line["detail_node_list"], list) and isinstance(line["package_item_list"], list)


def test_an_app_forcing_wrappers_ignores_the_request_simplify_param(ae):
    client = ae.app(quirks={"simplify": False})
    oid = ae.order(client)
    _, body = client.call(METHOD_ORDER_GET, {"single_order_query": json.dumps({"order_id": int(oid)}),
                                             "simplify": "true"})
    children = body["aliexpress_trade_ds_order_get_response"]["result"]["child_order_list"]
    assert isinstance(children["aeop_child_order_info"], list)


def test_bare_single_turns_one_element_lists_into_bare_objects(ae):
    client = ae.app(quirks={"bare_single": True})
    oid = ae.order(client, status="WAIT_SELLER_SEND_GOODS")
    ae.admin("POST", f"/_admin/orders/{oid}/ship", {})
    _, body = order_get(client, oid)
    child = body["aliexpress_trade_ds_order_get_response"]["result"]["child_order_list"]["aeop_child_order_info"]
    assert isinstance(child, dict) and child["product_id"] == 1005006123456789
    line = _line(tracking_get(client, oid)[1])["tracking_detail"]
    assert isinstance(line, dict)
    assert isinstance(line["detail_node_list"]["detail_node"], dict)
    assert isinstance(line["package_item_list"]["package_item"], dict)


def test_numbers_as_strings_turns_counts_ids_and_stamps_into_strings(ae):
    client = ae.app(quirks={"numbers_as_strings": True, "simplify": True})
    oid = ae.order(client, status="WAIT_SELLER_SEND_GOODS")
    ae.admin("POST", f"/_admin/orders/{oid}/ship", {})
    result = order_get(client, oid)[1]["aliexpress_trade_ds_order_get_response"]["result"]
    (child,) = result["child_order_list"]
    assert child["product_id"] == "1005006123456789" and child["product_count"] == "1"
    assert result["store_info"]["store_id"] == "1102233445"
    (line,) = _line(tracking_get(client, oid)[1])
    assert isinstance(line["detail_node_list"][0]["time_stamp"], str)
    assert line["package_item_list"][0]["quantity"] == "1"


def test_mixed_numbers_alternate_between_numbers_and_strings(ae):
    client = ae.app(quirks={"numbers_as_strings": "mixed"})
    oid = ae.order(client, items=TWO_ITEMS)
    result = order_get(client, oid)[1]["aliexpress_trade_ds_order_get_response"]["result"]
    first, second = result["child_order_list"]["aeop_child_order_info"]
    assert (first["product_count"], second["product_count"]) == (2, "1")
    assert (first["product_id"], second["product_id"]) == (1005006123456789, "1005006987654321")


def test_booleans_as_strings_sends_ret_as_a_string(ae):
    client = ae.app(quirks={"booleans_as_strings": True})
    oid = ae.order(client)
    result = tracking_get(client, oid)[1]["aliexpress_ds_order_tracking_get_response"]["result"]
    assert result["ret"] == "false" and result["code"] == "1001"


def test_quirks_can_be_switched_on_a_live_app_by_posting_it_again(ae):
    client = ae.app()
    oid = ae.order(client)
    ae.admin("POST", "/_admin/apps", {"app_key": client.app_key, "quirks": {"simplify": True}})
    result = order_get(client, oid)[1]["aliexpress_trade_ds_order_get_response"]["result"]
    assert isinstance(result["child_order_list"], list)
    app = ae.admin("GET", f"/_admin/apps/{client.app_key}")
    assert app["quirks"]["bare_single"] is False and app["app_secret"] == client.app_secret


# ---- rate limiting and faults ---------------------------------------------------------------------------------


def test_calls_over_the_limit_get_api_call_limit_and_a_ban_of_the_configured_length(ae):
    client = ae.app(calls_per_second=5, ban_seconds=1)
    oid = ae.order(client)
    results = [order_get(client, oid)[1] for _ in range(9)]
    ok = [r for r in results if "aliexpress_trade_ds_order_get_response" in r]
    limited = [error_of(r) for r in results if "error_response" in r]
    assert len(ok) == 5 and len(limited) == 4
    for err in limited:
        assert (err["code"], err["type"]) == ("ApiCallLimit", "ISV")
        assert err["msg"] == "Api access frequency exceeds the limit. this ban will last 1 seconds"
        assert re.search(r"ban will last (\d+) seconds?", err["msg"]).group(1) == "1"
    stats = ae.admin("GET", f"/_admin/stats?app_key={client.app_key}")
    assert stats["accepted_calls"] == 5 and stats["total_calls"] == 9
    assert stats["bans_started"] == 1 and stats["api_call_limit_responses"] == 4
    # after the ban a re-signed call goes through again
    time.sleep(1.05)
    assert "aliexpress_trade_ds_order_get_response" in order_get(client, oid)[1]


def test_concurrent_clients_never_get_more_accepted_calls_than_the_limit_in_any_second(ae):
    limit = 20
    client = ae.app(calls_per_second=limit, ban_seconds=0.1)
    oid = ae.order(client)
    accepted = []
    lock = threading.Lock()
    deadline = time.monotonic() + 1.5

    def hammer():
        while time.monotonic() < deadline:
            _, body = order_get(client, oid)
            if "aliexpress_trade_ds_order_get_response" in body:
                with lock:
                    accepted.append(time.monotonic())

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = ae.admin("GET", f"/_admin/stats?app_key={client.app_key}")
    assert stats["accepted_calls"] == len(accepted)
    assert stats["api_call_limit_responses"] > 0 and stats["bans_started"] > 0
    assert 0 < stats["max_accepted_calls_in_any_1s"] <= limit
    assert len(accepted) <= limit * 2  # 1.5 s of calls spans at most two full windows
    assert stats["total_calls"] == stats["accepted_calls"] + stats["api_call_limit_responses"]


def test_a_retry_during_the_ban_that_reuses_the_old_signature_is_still_limited(ae):
    client = ae.app(calls_per_second=1, ban_seconds=1)
    oid = ae.order(client)
    params = client.signed_params(METHOD_ORDER_GET, {"single_order_query": json.dumps({"order_id": int(oid)})})
    assert "aliexpress_trade_ds_order_get_response" in client.post("/sync", params)[1]
    assert error_of(client.post("/sync", params)[1])["code"] == "ApiCallLimit"
    assert error_of(client.post("/sync", params)[1])["code"] == "ApiCallLimit"
    assert ae.admin("GET", f"/_admin/stats?app_key={client.app_key}")["bans_started"] == 1


def test_injected_faults_are_reproducible_for_the_same_seed(ae):
    outcomes = []
    for _ in range(2):
        client = ae.app(seed=42, faults={"api_call_limit": 0.0, "isp_error": 0.3, "server_error": 0.2})
        oid = ae.order(client)
        run = []
        for _ in range(20):
            status, body = order_get(client, oid)
            run.append(status if status != 200 else next(iter(body)) + str(body.get("error_response", {})
                                                                                 .get("sub_code")))
        outcomes.append(run)
    assert outcomes[0] == outcomes[1]
    assert {500, 502} & set(outcomes[0]) and "error_responseisp.service-unavailable" in outcomes[0]


def test_an_injected_api_call_limit_starts_a_ban(ae):
    client = ae.app(faults={"api_call_limit": 1.0}, ban_seconds=1)
    oid = ae.order(client)
    assert error_of(order_get(client, oid)[1])["code"] == "ApiCallLimit"
    ae.admin("POST", "/_admin/apps", {"app_key": client.app_key, "faults": {"api_call_limit": 0.0}})
    assert error_of(order_get(client, oid)[1])["code"] == "ApiCallLimit"  # still banned
    stats = ae.admin("GET", f"/_admin/stats?app_key={client.app_key}")
    assert stats["bans_started"] == 1 and stats["accepted_calls"] == 0


def test_server_errors_isp_errors_slow_responses_and_latency_can_be_injected(ae):
    client = ae.app(faults={"server_error": 1.0})
    oid = ae.order(client)
    status, _ = order_get(client, oid)
    assert status in (500, 502)

    client = ae.app(faults={"isp_error": 1.0})
    oid = ae.order(client)
    err = error_of(order_get(client, oid)[1])
    assert (err["type"], err["sub_code"]) == ("ISP", "isp.service-unavailable")

    client = ae.app(faults={"slow": 1.0, "slow_ms": 200}, latency_ms=50)
    oid = ae.order(client)
    started = time.monotonic()
    assert "aliexpress_trade_ds_order_get_response" in order_get(client, oid)[1]
    assert time.monotonic() - started >= 0.25
    stats = ae.admin("GET", f"/_admin/stats?app_key={client.app_key}")
    assert stats["slow_responses"] == 1 and stats["calls_by_method"] == {METHOD_ORDER_GET: 1}


def test_stats_can_be_reset(ae):
    client = ae.app()
    oid = ae.order(client)
    order_get(client, oid)
    tracking_get(client, oid)
    stats = ae.admin("GET", f"/_admin/stats?app_key={client.app_key}")
    assert stats["accepted_calls_by_method"] == {METHOD_ORDER_GET: 1, METHOD_TRACKING_GET: 1}
    assert stats["first_call_ms"] <= stats["last_call_ms"]
    ae.admin("POST", f"/_admin/stats/reset?app_key={client.app_key}")
    stats = ae.admin("GET", f"/_admin/stats?app_key={client.app_key}")
    assert stats["total_calls"] == 0 and stats["first_call_ms"] is None


# ---- tokens -------------------------------------------------------------------------------------------------


def test_a_token_refresh_rotates_both_tokens_and_keeps_the_refresh_validity(ae):
    client = ae.app()
    oid = ae.order(client)
    before = ae.admin("POST", "/_admin/tokens", {"app_key": client.app_key, "account": ACCOUNT,
                                                 "access_token": "at-old", "refresh_token": "rt-old"})
    ae.admin("POST", "/_admin/clock", {"advance_seconds": 3600})
    now = ae.clock_ms()
    _, body = client.rest("/auth/token/refresh", {"refresh_token": "rt-old"}, timestamp_ms=now)
    assert body["code"] == "0", body
    assert body["access_token"] not in ("at-old", "") and body["refresh_token"] not in ("rt-old", "")
    assert body["refresh_token_valid_time"] == before["refresh_token_valid_time"]
    assert body["expires_in"] == 86400 and abs(body["expire_time"] - (now + 86_400_000)) < 5000
    assert body["refresh_expires_in"] <= 172800 - 3600 and body["request_id"]
    # the old refresh token and the old access token are dead; the new access token works
    _, again = client.rest("/auth/token/refresh", {"refresh_token": "rt-old"}, timestamp_ms=now)
    assert again["code"] == "IllegalRefreshToken" and again["type"] == "ISV" and again["message"]
    assert error_of(order_get(client, oid, session="at-old", timestamp_ms=now)[1])["code"] == "IllegalAccessToken"
    assert "aliexpress_trade_ds_order_get_response" in order_get(
        client, oid, session=body["access_token"], timestamp_ms=now)[1]


def test_an_expired_refresh_token_is_an_illegal_refresh_token(ae):
    client = ae.app()
    ae.admin("POST", "/_admin/clock", {"advance_seconds": 172800})
    _, body = client.rest("/auth/token/refresh", {"refresh_token": f"rt-{client.app_key}"},
                          timestamp_ms=ae.clock_ms())
    assert body["code"] == "IllegalRefreshToken"


def test_the_oauth_flow_mints_a_code_that_creates_a_working_token_once(ae):
    client = ae.app()
    oid = ae.order(client)
    query = urllib.parse.urlencode({"response_type": "code", "force_auth": "true", "client_id": client.app_key,
                                    "redirect_uri": "https://example.com/cb", "state": "xyz", "account": ACCOUNT})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(ae.url + "/oauth/authorize?" + query)
    assert caught.value.code == 302
    location = urllib.parse.urlsplit(caught.value.headers["Location"])
    assert location.netloc == "example.com" and location.path == "/cb"
    got = dict(urllib.parse.parse_qsl(location.query))
    assert got["state"] == "xyz"
    _, body = client.rest("/auth/token/create", {"code": got["code"]})
    assert body["code"] == "0" and body["account"] == ACCOUNT
    assert abs(body["expires_in"] - 86400) <= 1 and abs(body["refresh_expires_in"] - 172800) <= 1
    assert "aliexpress_trade_ds_order_get_response" in order_get(client, oid, session=body["access_token"])[1]
    _, again = client.rest("/auth/token/create", {"code": got["code"]})
    assert again["code"] != "0" and again["type"] == "ISV"


def test_a_launched_app_gets_30_and_60_day_tokens(ae):
    client = ae.app(app_status="launched")
    tok = ae.admin("POST", "/_admin/tokens", {"app_key": client.app_key, "account": ACCOUNT})
    # Lifetimes are computed from millisecond clocks: a second may already have gone by.
    assert abs(tok["expires_in"] - 2_592_000) <= 1 and abs(tok["refresh_expires_in"] - 5_184_000) <= 1


# ---- admin API and entry point --------------------------------------------------------------------------------


def test_the_admin_api_reports_health_clock_and_orders(ae):
    assert ae.admin("GET", "/_admin/health") == {"ok": True}
    ae.admin("POST", "/_admin/clock", {"set_ms": 1772503451000})
    assert abs(ae.clock_ms() - 1772503451000) < 2000
    ae.admin("POST", "/_admin/apps", {"app_key": "1", "app_secret": "s"})
    ae.admin("POST", "/_admin/orders", {"account": "a", "order_id": 8198352049851315})
    order = ae.admin("GET", "/_admin/orders/8198352049851315")
    assert order["order_id"] == "8198352049851315" and order["status"] == "PLACE_ORDER_SUCCESS"
    ae.admin("GET", "/_admin/orders/1", expect=404)
    ae.admin("POST", "/_admin/apps", {"app_key": "1", "faults": {"nope": 1}}, expect=400)


def test_the_entry_point_prints_ready_writes_the_ready_file_and_exits_cleanly_on_sigterm(tmp_path):
    ready = tmp_path / "ae.url"
    env = {**os.environ, "PYTHONPATH": str(SANDBOX_DIR)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dropsync_sandbox.aliexpress", "--host", "127.0.0.1", "--port", "0",
         "--ready-file", str(ready)],
        stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline().strip()
        match = re.fullmatch(r"READY (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        assert ready.read_text().strip() == match.group(1)
        assert http_request("GET", match.group(1) + "/_admin/health") == (200, {"ok": True})
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
