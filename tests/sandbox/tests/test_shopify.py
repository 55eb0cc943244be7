"""Tests of the sandbox Shopify (tests/sandbox/dropsync_sandbox/shopify*.py).

Run from the repository root: PYTHONPATH=tests/sandbox .venv/bin/python -m pytest -q tests/sandbox/tests/test_shopify.py
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dropsync_sandbox.shopify import (
    ShopifySandbox,
    load_schema,
    serialize,
    serialize_order,
    sign_body,
    verify_signature,
)

SANDBOX_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Shopify's documented fulfillment-orders query and fulfillmentCreate mutation, verbatim.
SPEC_5_2 = """
query OrderFOs($id: ID!) {
  order(id: $id) { id name displayFinancialStatus displayFulfillmentStatus
    fulfillmentOrders(first: 10) { nodes { id status requestStatus
      supportedActions { action } assignedLocation { name }
      lineItems(first: 50) { nodes { id remainingQuantity totalQuantity lineItem { id sku } } } } } } }
"""
SPEC_5_3 = """
mutation Fulfil($f: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $f, message: "synced") {
    fulfillment { id status trackingInfo(first: 5) { company number url } }
    userErrors { field message } } }
"""

# What the tests read back. Cost: order 1 + fulfillments 5 x (1 + trackingInfo 5 + (2 + 10 x 2)) = 140
# + fulfillmentOrders 2 + 5 x (1 + 1 + 1 + 1 + (2 + 50 x 2)) = 532 -> 673, under the 1000 limit.
ORDER_QUERY = """
query OrderState($id: ID!) {
  order(id: $id) {
    id name legacyResourceId displayFinancialStatus displayFulfillmentStatus test updatedAt
    fulfillments(first: 5) {
      id status createdAt
      trackingInfo(first: 5) { company number url }
      fulfillmentLineItems(first: 10) { nodes { id quantity lineItem { id sku } } }
    }
    fulfillmentOrders(first: 5) {
      nodes {
        id status requestStatus
        supportedActions { action }
        assignedLocation { name }
        fulfillmentHolds { id reason }
        lineItems(first: 50) { nodes { id remainingQuantity totalQuantity lineItem { id sku } } }
      }
    }
  }
}
"""

FULFIL = """
mutation Fulfil($f: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $f) {
    fulfillment { id status trackingInfo(first: 5) { company number url } }
    userErrors { field message }
  }
}
"""

CHEAP_MUTATION = """
mutation Open($id: ID!) { fulfillmentOrderOpen(id: $id) { userErrors { field message } } }
"""


# ------------------------------------------------------------------------------------------------------------------
# Fixtures and helpers
# ------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox():
    schema = load_schema()  # once per test module
    sb = ShopifySandbox(schema=schema).start()
    yield sb
    sb.stop()


def http(method, url, body=None, headers=None, timeout=10.0):
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, resp.headers, raw
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


class Shop:
    """One fresh shop per test, talking to the sandbox over HTTP."""

    def __init__(self, sb: ShopifySandbox, **cfg):
        self.sb = sb
        self.domain = f"t-{uuid.uuid4().hex[:10]}.myshopify.com"
        self.token = f"shpat_{uuid.uuid4().hex}"
        self.secret = f"shpss_{uuid.uuid4().hex}"
        self.configure(access_token=self.token, webhook_secret=self.secret, **cfg)

    def configure(self, **cfg):
        status, body = self.admin("POST", "/_admin/shops", {"shop": self.domain, **cfg})
        assert status == 200, body
        return body

    def admin(self, method, path, body=None):
        status, _, raw = http(method, self.sb.url + path, body)
        return status, json.loads(raw) if raw else None

    def gql(self, query, variables=None, token=None, version="2026-10", timeout=10.0, operation_name=None):
        payload = {"query": query, "variables": variables or {}}
        if operation_name:
            payload["operationName"] = operation_name
        status, headers, raw = http(
            "POST", f"{self.sb.url}/admin/api/{version}/graphql.json", payload,
            {"X-Shopify-Access-Token": self.token if token is None else token}, timeout=timeout)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        return status, headers, body

    def data(self, query, variables=None):
        status, _, body = self.gql(query, variables)
        assert status == 200, body
        assert "errors" not in body, body["errors"]
        return body["data"]

    def create_order(self, line_items=None, fulfillment_orders=None, **order):
        order.setdefault("line_items", line_items or [{"sku": "SKU-A", "title": "Lamp", "quantity": 2},
                                                      {"sku": "SKU-B", "title": "Cable", "quantity": 1}])
        body = {"shop": self.domain, "order": order}
        if fulfillment_orders is not None:
            body["fulfillment_orders"] = fulfillment_orders
        status, out = self.admin("POST", "/_admin/orders", body)
        assert status == 200, out
        return out

    def order_state(self, order_gid):
        return self.data(ORDER_QUERY, {"id": order_gid})["order"]

    def stats(self):
        return self.admin("GET", f"/_admin/stats?shop={self.domain}")[1]

    def admin_order(self, order_id):
        return self.admin("GET", f"/_admin/orders/{order_id}?shop={self.domain}")[1]

    def fulfil(self, entries, tracking=None, notify=None):
        f = {"lineItemsByFulfillmentOrder": entries}
        if tracking is not None:
            f["trackingInfo"] = tracking
        if notify is not None:
            f["notifyCustomer"] = notify
        return self.data(FULFIL, {"f": f})["fulfillmentCreate"]


def fo_entry(fo, quantities=None):
    """FulfillmentOrderLineItemsInput for an admin-API FO; quantities = {line index: qty} (None = whole FO)."""
    entry = {"fulfillmentOrderId": fo["id"]}
    if quantities is not None:
        entry["fulfillmentOrderLineItems"] = [{"id": fo["line_items"][i]["id"], "quantity": q}
                                              for i, q in quantities.items()]
    return entry


TRACKING = {"company": "YunExpress", "number": "YT2601234567890123",
            "url": "https://t.17track.net/en#nums=YT2601234567890123"}


# ------------------------------------------------------------------------------------------------------------------
# Webhook signing and serialisation
# ------------------------------------------------------------------------------------------------------------------


def test_the_spec_hmac_test_vector_signs_to_the_documented_value():
    body = b'{"id":820982911946154508,"name":"#9999","note":"a\\/b \\u0026 c"}'
    assert sign_body("shpss_test_secret", body) == "tcKX1/dyrUALHktowGkZMZGKdIukPqkONANSdHTJ+FE="
    assert verify_signature("shpss_test_secret", body, "tcKX1/dyrUALHktowGkZMZGKdIukPqkONANSdHTJ+FE=")
    assert not verify_signature("wrong", body, "tcKX1/dyrUALHktowGkZMZGKdIukPqkONANSdHTJ+FE=")


def test_serialisation_escapes_slashes_and_ampersands_so_reserialising_breaks_the_signature():
    obj = {"id": 820982911946154508, "name": "#9999", "note": "a/b & c"}
    body = serialize(obj)
    assert body == b'{"id":820982911946154508,"name":"#9999","note":"a\\/b \\u0026 c"}'
    assert sign_body("shpss_test_secret", body) == "tcKX1/dyrUALHktowGkZMZGKdIukPqkONANSdHTJ+FE="
    # A receiver that parses and re-serialises gets different bytes, hence a failing HMAC.
    reserialised = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert reserialised != body
    assert not verify_signature("shpss_test_secret", reserialised, sign_body("shpss_test_secret", body))
    # Non-ASCII stays raw UTF-8; the big id stays an exact integer.
    assert serialize({"n": "Zoë <b>"}) == '{"n":"Zoë \\u003cb\\u003e"}'.encode()
    assert serialize_order({"order": {"id": 2**60 + 1}}) == b'{"id":1152921504606846977}'


# ------------------------------------------------------------------------------------------------------------------
# Auth, validation, versions
# ------------------------------------------------------------------------------------------------------------------


def test_a_request_without_a_valid_access_token_gets_401(sandbox):
    shop = Shop(sandbox)
    for token in ("", "shpat_unknown"):
        status, _, body = shop.gql("{ shop { name } }", token=token)
        assert status == 401
        assert body == {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
    status, headers, _ = shop.gql("query { orders(first: 1) { nodes { id } } }")
    assert status == 200


def test_the_api_version_of_the_url_is_echoed_in_the_response_header(sandbox):
    shop = Shop(sandbox)
    status, headers, _ = shop.gql("query { orders(first: 1) { nodes { id } } }", version="2026-07")
    assert status == 200 and headers["X-Shopify-API-Version"] == "2026-07"
    shop.configure(api_version="2026-10")  # simulate falling forward
    _, headers, _ = shop.gql("query { orders(first: 1) { nodes { id } } }", version="2025-01")
    assert headers["X-Shopify-API-Version"] == "2026-10"


def test_a_document_with_a_field_the_schema_lacks_is_rejected(sandbox):
    shop = Shop(sandbox)
    bad = SPEC_5_3.replace("userErrors { field message }", "userErrors { field message code }")
    status, _, body = shop.gql(bad, {"f": {"lineItemsByFulfillmentOrder": []}})
    assert status == 200
    assert "data" not in body
    (err,) = body["errors"]
    assert "code" in err["message"] and "UserError" in err["message"]
    assert err["extensions"]["code"] == "undefinedField"
    assert err["locations"][0]["line"] > 0
    stats = shop.stats()
    assert stats["invalid_documents"] == 1 and stats["fulfillments_created"] == 0
    status, out = shop.admin("POST", "/_admin/validate", {"query": bad})
    assert status == 200 and out["valid"] is False and out["errors"]


def test_the_spec_documents_for_reading_fos_and_fulfilling_validate_against_the_real_schema(sandbox):
    shop = Shop(sandbox)
    for doc in (SPEC_5_2, SPEC_5_3, ORDER_QUERY, FULFIL, CHEAP_MUTATION):
        status, out = shop.admin("POST", "/_admin/validate", {"query": doc})
        assert status == 200 and out == {**out, "valid": True, "errors": []}, out


def test_other_invalid_documents_are_rejected_with_shopify_style_errors(sandbox):
    shop = Shop(sandbox)
    cases = {
        "query { order(id: ": "parseError",
        'query { order(id: "gid://shopify/Order/1") { id notAField } }': "undefinedField",
        "query { order { id } }": "missingRequiredArguments",
        'query { order(id: "gid://shopify/Order/1", bogus: 1) { id } }': "argumentNotAccepted",
        'query { order(id: "gid://shopify/Order/1") { fulfillmentOrders(first: 1) } }': "selectionMismatch",
    }
    for doc, code in cases.items():
        status, _, body = shop.gql(doc)
        assert status == 200, doc
        assert body["errors"][0]["extensions"]["code"] == code, (doc, body)
    assert shop.stats()["invalid_documents"] == len(cases)


def test_a_variable_of_the_wrong_shape_is_an_invalid_variable_error(sandbox):
    shop = Shop(sandbox)
    status, _, body = shop.gql(SPEC_5_3, {"f": {"trackingInfo": {"number": "1"}}})
    assert status == 200
    assert body["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE"
    assert "data" not in body or body["data"] is None


# ------------------------------------------------------------------------------------------------------------------
# Orders and fulfillment orders
# ------------------------------------------------------------------------------------------------------------------


def test_orders_get_ids_above_2_pow_53_and_rest_shape(sandbox):
    shop = Shop(sandbox)
    out = shop.create_order(name="#1001", test=True)
    order = out["order"]
    assert order["id"] > 2**53
    assert order["admin_graphql_api_id"] == f"gid://shopify/Order/{order['id']}"
    assert all(li["id"] > 2**53 and li["admin_graphql_api_id"].startswith("gid://shopify/LineItem/")
               for li in order["line_items"])
    assert isinstance(order["total_price"], str) and isinstance(order["line_items"][0]["price"], str)
    assert order["created_at"][-6] in "+-" and order["fulfillment_status"] is None
    (fo,) = out["fulfillment_orders"]
    assert fo["status"] == "OPEN" and fo["id"].startswith("gid://shopify/FulfillmentOrder/")
    assert [li["line_item_id"] for li in fo["line_items"]] == [str(li["id"]) for li in order["line_items"]]
    assert [li["remaining_quantity"] for li in fo["line_items"]] == [2, 1]
    state = shop.order_state(order["admin_graphql_api_id"])
    assert state["legacyResourceId"] == str(order["id"]) and state["test"] is True
    assert state["displayFinancialStatus"] == "PAID" and state["displayFulfillmentStatus"] == "UNFULFILLED"
    node = state["fulfillmentOrders"]["nodes"][0]
    assert {a["action"] for a in node["supportedActions"]} >= {"CREATE_FULFILLMENT"}
    assert node["assignedLocation"]["name"] == "Main"
    assert [n["lineItem"]["sku"] for n in node["lineItems"]["nodes"]] == ["SKU-A", "SKU-B"]


def test_an_unknown_order_is_null_and_shops_are_told_apart_by_their_tokens(sandbox):
    a, b = Shop(sandbox), Shop(sandbox)
    order = a.create_order()["order"]
    assert a.order_state("gid://shopify/Order/1234567890123456789") is None
    assert b.order_state(order["admin_graphql_api_id"]) is None
    assert a.order_state(order["admin_graphql_api_id"])["id"] == order["admin_graphql_api_id"]


def test_fulfillment_orders_appear_only_after_the_configured_delay(sandbox):
    shop = Shop(sandbox, fo_delay_ms=400)
    out = shop.create_order()
    gid = out["order"]["admin_graphql_api_id"]
    assert shop.order_state(gid)["fulfillmentOrders"]["nodes"] == []
    res = shop.fulfil([fo_entry(out["fulfillment_orders"][0])])
    assert res["fulfillment"] is None and res["userErrors"]
    time.sleep(0.5)
    assert len(shop.order_state(gid)["fulfillmentOrders"]["nodes"]) == 1


def test_orders_can_be_listed_by_updated_at_with_pagination(sandbox):
    shop = Shop(sandbox)
    first = shop.create_order()["order"]
    second = shop.create_order()["order"]
    status, upd = shop.admin("POST", f"/_admin/orders/{first['id']}/update",
                             {"shop": shop.domain, "financial_status": "refunded"})
    assert status == 200
    assert upd["order"]["updated_at"] > first["updated_at"]
    assert upd["order"]["financial_status"] == "refunded"
    q = """query Recon($q: String, $after: String) {
      orders(first: 1, after: $after, query: $q, sortKey: UPDATED_AT) {
        nodes { id updatedAt displayFinancialStatus } pageInfo { hasNextPage endCursor } } }"""
    page1 = shop.data(q, {"q": None})["orders"]
    assert page1["nodes"][0]["id"] == second["admin_graphql_api_id"] and page1["pageInfo"]["hasNextPage"]
    page2 = shop.data(q, {"after": page1["pageInfo"]["endCursor"]})["orders"]
    assert page2["nodes"][0]["id"] == first["admin_graphql_api_id"]
    assert page2["nodes"][0]["displayFinancialStatus"] == "REFUNDED"
    assert page2["pageInfo"]["hasNextPage"] is False
    newer = shop.data(q, {"q": f"updated_at:>'{second['updated_at']}'"})["orders"]
    assert [n["id"] for n in newer["nodes"]] == [first["admin_graphql_api_id"]]
    status, _, body = shop.gql("query { orders { nodes { id } } }")
    assert body["errors"][0]["message"] == "you must provide one of first or last"


# ------------------------------------------------------------------------------------------------------------------
# fulfillmentCreate
# ------------------------------------------------------------------------------------------------------------------


def test_fulfilling_part_then_the_rest_moves_the_fo_to_in_progress_then_closed(sandbox):
    shop = Shop(sandbox)
    out = shop.create_order(email="bob@example.com")
    order, fo = out["order"], out["fulfillment_orders"][0]
    res = shop.fulfil([fo_entry(fo, {0: 1})], TRACKING, notify=True)
    assert res["userErrors"] == []
    f = res["fulfillment"]
    assert f["status"] == "SUCCESS" and f["id"].startswith("gid://shopify/Fulfillment/")
    assert int(f["id"].rsplit("/", 1)[1]) > 2**53
    assert f["trackingInfo"] == [TRACKING]
    state = shop.order_state(order["admin_graphql_api_id"])
    assert state["displayFulfillmentStatus"] == "PARTIALLY_FULFILLED"
    node = state["fulfillmentOrders"]["nodes"][0]
    assert node["status"] == "IN_PROGRESS"
    assert [n["remainingQuantity"] for n in node["lineItems"]["nodes"]] == [1, 1]
    assert [n["totalQuantity"] for n in node["lineItems"]["nodes"]] == [2, 1]
    (gf,) = state["fulfillments"]
    assert gf["fulfillmentLineItems"]["nodes"][0]["quantity"] == 1
    assert gf["fulfillmentLineItems"]["nodes"][0]["lineItem"]["sku"] == "SKU-A"

    res = shop.fulfil([fo_entry(fo)])  # omitted line items = the rest of the FO
    assert res["userErrors"] == []
    state = shop.order_state(order["admin_graphql_api_id"])
    assert state["displayFulfillmentStatus"] == "FULFILLED"
    node = state["fulfillmentOrders"]["nodes"][0]
    assert node["status"] == "CLOSED" and node["supportedActions"] == []
    assert [n["remainingQuantity"] for n in node["lineItems"]["nodes"]] == [0, 0]

    adm = shop.admin_order(order["id"])
    assert adm["order"]["fulfillment_status"] == "fulfilled"
    assert [f["notify_customer"] for f in adm["fulfillments"]] == [True, False]
    assert [f["created_by"] for f in adm["fulfillments"]] == ["api", "api"]
    assert adm["fulfillments"][0]["tracking"] == TRACKING
    assert adm["fulfillments"][1]["line_items"] == [
        {"line_item_id": str(order["line_items"][0]["id"]), "quantity": 1},
        {"line_item_id": str(order["line_items"][1]["id"]), "quantity": 1}]
    assert adm["emails_sent"] == 1
    assert adm["order"]["updated_at"] > order["updated_at"]
    assert len(adm["order"]["fulfillments"]) == 2
    assert shop.stats()["fulfillments_created"] == 2

    res = shop.fulfil([fo_entry(fo)])  # nothing left: the closed FO no longer supports CREATE_FULFILLMENT
    assert res["fulfillment"] is None and "closed" in res["userErrors"][0]["message"]


def test_quantity_above_remaining_is_a_user_error_and_changes_nothing(sandbox):
    shop = Shop(sandbox)
    out = shop.create_order()
    fo = out["fulfillment_orders"][0]
    res = shop.fulfil([fo_entry(fo, {0: 3})], TRACKING)
    assert res["fulfillment"] is None
    (err,) = res["userErrors"]
    assert err["field"][-1] == "quantity" and err["message"]
    adm = shop.admin_order(out["order"]["id"])
    assert adm["fulfillments"] == [] and adm["fulfillment_orders"][0]["line_items"][0]["remaining_quantity"] == 2


@pytest.mark.parametrize(
    "tracking, field",
    [
        ({"company": "YunExpress", "url": "https://t.17track.net/en#nums=1"}, "url"),
        ({"number": "1", "numbers": ["1", "2"]}, "numbers"),
        ({"numbers": ["1"], "url": "https://a.example/1", "urls": ["https://a.example/1"]}, "urls"),
        ({"number": "1", "url": "t.17track.net/en#nums=1"}, "url"),
        ({"number": "1", "url": "https://"}, "url"),
    ],
    ids=["url-without-number", "number-and-numbers", "url-and-urls", "url-without-scheme", "url-without-host"],
)
def test_invalid_tracking_info_is_a_user_error(sandbox, tracking, field):
    shop = Shop(sandbox)
    fo = shop.create_order()["fulfillment_orders"][0]
    res = shop.fulfil([fo_entry(fo)], tracking)
    assert res["fulfillment"] is None
    assert res["userErrors"] and res["userErrors"][0]["field"][:2] == ["fulfillment", "trackingInfo"]
    assert res["userErrors"][0]["field"][-1] == field
    assert shop.stats()["fulfillments_created"] == 0


def test_several_numbers_pair_with_urls_by_position(sandbox):
    shop = Shop(sandbox)
    fo = shop.create_order()["fulfillment_orders"][0]
    res = shop.fulfil([fo_entry(fo)], {"company": "4PX", "numbers": ["A1", "B2"], "urls": ["https://x.example/A1"]})
    assert res["userErrors"] == []
    assert res["fulfillment"]["trackingInfo"] == [
        {"company": "4PX", "number": "A1", "url": "https://x.example/A1"},
        {"company": "4PX", "number": "B2", "url": None}]


def test_fos_of_different_orders_or_locations_cannot_share_a_fulfillment(sandbox):
    shop = Shop(sandbox)
    a = shop.create_order()["fulfillment_orders"][0]
    b = shop.create_order()["fulfillment_orders"][0]
    res = shop.fulfil([fo_entry(a), fo_entry(b)])
    assert res["fulfillment"] is None and any("same order" in e["message"] for e in res["userErrors"])

    order = shop.admin("POST", "/_admin/orders", {
        "shop": shop.domain,
        "order": {"line_items": [{"id": 9_100_000_000_000_000_001, "sku": "X", "quantity": 1},
                                 {"id": 9_100_000_000_000_000_002, "sku": "Y", "quantity": 1}]},
        "fulfillment_orders": [
            {"location": "Main", "line_items": [{"line_item_id": "9100000000000000001", "quantity": 1}]},
            {"location": "Warehouse 2", "line_items": [{"line_item_id": "9100000000000000002", "quantity": 1}]},
        ]})[1]
    fo1, fo2 = order["fulfillment_orders"]
    res = shop.fulfil([fo_entry(fo1), fo_entry(fo2)])
    assert res["fulfillment"] is None and any("location" in e["message"] for e in res["userErrors"])
    assert shop.fulfil([fo_entry(fo1)])["userErrors"] == []


@pytest.mark.parametrize("fo_spec", [
    {"status": "ON_HOLD", "hold_reason": "HIGH_RISK_OF_FRAUD"},
    {"status": "SCHEDULED"},
    {"status": "CLOSED"},
    {"status": "OPEN", "fulfillment_service": True, "location": "Some 3PL"},
], ids=["on-hold", "scheduled", "closed", "fulfillment-service"])
def test_fos_without_create_fulfillment_cannot_be_fulfilled(sandbox, fo_spec):
    shop = Shop(sandbox)
    out = shop.create_order(line_items=[{"sku": "X", "quantity": 1}], fulfillment_orders=[fo_spec])
    fo = out["fulfillment_orders"][0]
    node = shop.order_state(out["order"]["admin_graphql_api_id"])["fulfillmentOrders"]["nodes"][0]
    assert "CREATE_FULFILLMENT" not in [a["action"] for a in node["supportedActions"]]
    res = shop.fulfil([fo_entry(fo)], TRACKING)
    assert res["fulfillment"] is None and res["userErrors"]
    assert res["userErrors"][0]["field"][-1] == "fulfillmentOrderId"
    status, err = shop.admin("POST", f"/_admin/orders/{out['order']['id']}/fulfill",
                             {"shop": shop.domain, "tracking_number": "1", "company": "UPS"})
    assert status == 422 and err["error"]


def test_releasing_a_hold_reopens_the_fo_and_makes_it_fulfillable(sandbox):
    shop = Shop(sandbox)
    out = shop.create_order(fulfillment_orders=[{"status": "ON_HOLD", "hold_reason": "AWAITING_PAYMENT"}])
    state = shop.order_state(out["order"]["admin_graphql_api_id"])
    node = state["fulfillmentOrders"]["nodes"][0]
    assert state["displayFulfillmentStatus"] == "ON_HOLD"
    assert node["status"] == "ON_HOLD" and node["fulfillmentHolds"][0]["reason"] == "AWAITING_PAYMENT"
    assert "RELEASE_HOLD" in [a["action"] for a in node["supportedActions"]]
    release = """mutation Release($id: ID!) { fulfillmentOrderReleaseHold(id: $id) {
        fulfillmentOrder { id status supportedActions { action } fulfillmentHolds { id } }
        userErrors { field message code } } }"""
    res = shop.data(release, {"id": node["id"]})["fulfillmentOrderReleaseHold"]
    assert res["userErrors"] == []
    assert res["fulfillmentOrder"]["status"] == "OPEN" and res["fulfillmentOrder"]["fulfillmentHolds"] == []
    assert "CREATE_FULFILLMENT" in [a["action"] for a in res["fulfillmentOrder"]["supportedActions"]]
    again = shop.data(release, {"id": node["id"]})["fulfillmentOrderReleaseHold"]
    assert again["fulfillmentOrder"] is None and again["userErrors"]
    assert shop.fulfil([fo_entry(out["fulfillment_orders"][0])])["userErrors"] == []


def test_opening_a_scheduled_fo_makes_it_fulfillable(sandbox):
    shop = Shop(sandbox)
    out = shop.create_order(fulfillment_orders=[{"status": "SCHEDULED"}])
    fo = out["fulfillment_orders"][0]
    q = """mutation Open($id: ID!) { fulfillmentOrderOpen(id: $id) {
        fulfillmentOrder { status } userErrors { field message } } }"""
    res = shop.data(q, {"id": fo["id"]})["fulfillmentOrderOpen"]
    assert res == {"fulfillmentOrder": {"status": "OPEN"}, "userErrors": []}
    assert shop.fulfil([fo_entry(fo)])["userErrors"] == []


def test_tracking_info_can_be_updated_and_notifies_when_asked(sandbox):
    shop = Shop(sandbox)
    out = shop.create_order()
    f = shop.fulfil([fo_entry(out["fulfillment_orders"][0])], TRACKING)["fulfillment"]
    q = """mutation Track($id: ID!, $t: FulfillmentTrackingInput!, $n: Boolean) {
        fulfillmentTrackingInfoUpdate(fulfillmentId: $id, trackingInfoInput: $t, notifyCustomer: $n) {
          fulfillment { id trackingInfo(first: 5) { company number url } } userErrors { field message } } }"""
    new = {"company": "USPS", "number": "9400100000000000000000", "url": "https://tools.usps.com/go/x"}
    res = shop.data(q, {"id": f["id"], "t": new, "n": True})["fulfillmentTrackingInfoUpdate"]
    assert res["userErrors"] == [] and res["fulfillment"]["trackingInfo"] == [new]
    bad = shop.data(q, {"id": f["id"], "t": {"url": "https://x.example"}})["fulfillmentTrackingInfoUpdate"]
    assert bad["fulfillment"] is None and bad["userErrors"]
    missing = shop.data(q, {"id": "gid://shopify/Fulfillment/1", "t": new})["fulfillmentTrackingInfoUpdate"]
    assert missing["userErrors"][0]["field"] == ["fulfillmentId"]
    adm = shop.admin_order(out["order"]["id"])
    assert adm["fulfillments"][0]["tracking"] == new and adm["emails_sent"] == 1
    assert shop.stats()["tracking_updates"] == 1


def test_a_merchant_fulfilment_by_hand_follows_the_fo_rules(sandbox):
    shop = Shop(sandbox)
    out = shop.create_order()
    order = out["order"]
    status, res = shop.admin("POST", f"/_admin/orders/{order['id']}/fulfill", {
        "shop": shop.domain, "tracking_number": "1Z999", "company": "UPS",
        "line_items": [{"line_item_id": str(order["line_items"][0]["id"]), "quantity": 2}]})
    assert status == 200, res
    assert res["fulfillments"][0]["created_by"] == "merchant"
    assert res["order"]["fulfillment_status"] == "partial"
    status, err = shop.admin("POST", f"/_admin/orders/{order['id']}/fulfill", {
        "shop": shop.domain, "line_items": [{"line_item_id": str(order["line_items"][0]["id"]), "quantity": 1}]})
    assert status == 422
    adm = shop.admin_order(order["id"])
    assert adm["fulfillments"][0]["tracking"]["number"] == "1Z999"
    assert shop.stats()["fulfillments_created"] == 0  # only API fulfilments count there


def test_missing_fulfillment_order_scopes_hide_fos_silently_and_block_writes(sandbox):
    shop = Shop(sandbox, scopes=["read_orders"])
    out = shop.create_order()
    gid = out["order"]["admin_graphql_api_id"]
    assert shop.order_state(gid)["fulfillmentOrders"]["nodes"] == []
    res = shop.fulfil([fo_entry(out["fulfillment_orders"][0])])
    assert res["fulfillment"] is None and "does not exist" in res["userErrors"][0]["message"]
    shop.configure(scopes=["read_orders", "read_merchant_managed_fulfillment_orders"])
    assert len(shop.order_state(gid)["fulfillmentOrders"]["nodes"]) == 1
    res = shop.fulfil([fo_entry(out["fulfillment_orders"][0])])
    assert res["userErrors"][0]["message"] == "The api_client does not have the required permission(s)."
    shop.configure(scopes=["write_merchant_managed_fulfillment_orders"])
    status, _, body = shop.gql(ORDER_QUERY, {"id": gid})
    assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED" and body["data"]["order"] is None


def test_an_expired_access_token_gets_401(sandbox):
    shop = Shop(sandbox)
    assert shop.gql(CHEAP_MUTATION, {"id": "gid://shopify/FulfillmentOrder/1"})[0] == 200
    shop.configure(access_token_expires_at=time.time() - 1)
    assert shop.gql(CHEAP_MUTATION, {"id": "gid://shopify/FulfillmentOrder/1"})[0] == 401
    shop.configure(access_token=shop.token)  # a refreshed token (no expiry given) works again
    assert shop.gql(CHEAP_MUTATION, {"id": "gid://shopify/FulfillmentOrder/1"})[0] == 200


# ------------------------------------------------------------------------------------------------------------------
# Cost and rate limits
# ------------------------------------------------------------------------------------------------------------------


def test_query_cost_follows_the_documented_formula(sandbox):
    shop = Shop(sandbox)
    cost = lambda q: shop.admin("POST", "/_admin/validate", {"query": q})[1]["requested_cost"]  # noqa: E731
    assert cost(ORDER_QUERY) == 673
    assert cost(SPEC_5_3) == 10
    assert cost('query { order(id: "gid://shopify/Order/1") { id name } }') == 1
    assert cost("query { orders(first: 20) { edges { node { id } } pageInfo { hasNextPage } } }") == 22
    # The documented fulfillment-orders query: 1 + 2 + 10 x (1 + 1 + 1 + (2 + 50 x 2)) = 1053 > 1000.
    assert cost(SPEC_5_2) == 1053


def test_a_query_over_1000_points_is_rejected_before_execution(sandbox):
    shop = Shop(sandbox)
    status, _, body = shop.gql("query { orders(first: 250) { nodes { lineItems(first: 250) { nodes { id } } } } }")
    assert status == 200
    assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert body["extensions"]["cost"]["requestedQueryCost"] > 1000
    assert shop.stats()["max_cost_exceeded"] == 1


def test_every_successful_response_carries_the_cost_extension_and_refunds_unused_points(sandbox):
    shop = Shop(sandbox)
    _, _, body = shop.gql(ORDER_QUERY, {"id": "gid://shopify/Order/1"})
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 673 and cost["actualQueryCost"] == 0
    ts = cost["throttleStatus"]
    assert ts["maximumAvailable"] == 1000.0 and ts["restoreRate"] == 100.0
    assert ts["currentlyAvailable"] >= 999


def test_throttling_answers_http_200_throttled_with_the_cost_extension(sandbox):
    shop = Shop(sandbox, bucket_size=25, restore_rate=0.5)
    fo_gid = "gid://shopify/FulfillmentOrder/1"
    for _ in range(2):
        status, _, body = shop.gql(CHEAP_MUTATION, {"id": fo_gid})
        assert status == 200 and body["extensions"]["cost"]["actualQueryCost"] == 10
    status, _, body = shop.gql(CHEAP_MUTATION, {"id": fo_gid})
    assert status == 200
    assert body["errors"] == [{"message": "Throttled", "extensions": {
        "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}]
    assert "data" not in body
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 10 and cost["actualQueryCost"] is None
    assert cost["throttleStatus"]["maximumAvailable"] == 25.0
    assert cost["throttleStatus"]["restoreRate"] == 0.5
    assert 5 <= cost["throttleStatus"]["currentlyAvailable"] < 10
    assert shop.stats()["throttled"] == 1


def test_throttling_in_429_mode_sends_retry_after(sandbox):
    shop = Shop(sandbox, bucket_size=25, restore_rate=0.5, throttle_mode="429")
    for _ in range(2):
        assert shop.gql(CHEAP_MUTATION, {"id": "gid://shopify/FulfillmentOrder/1"})[0] == 200
    status, headers, body = shop.gql(CHEAP_MUTATION, {"id": "gid://shopify/FulfillmentOrder/1"})
    assert status == 429
    retry_after = float(headers["Retry-After"])
    assert 8.0 <= retry_after <= 10.5  # (10 requested - ~5 available) / 0.5 per s
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["extensions"]["cost"]["actualQueryCost"] is None
    stats = shop.stats()
    assert stats["http_429"] == 1 and stats["throttled"] == 1


def test_the_bucket_restores_over_wall_time(sandbox):
    shop = Shop(sandbox, bucket_size=10, restore_rate=50)
    assert shop.gql(CHEAP_MUTATION, {"id": "gid://shopify/FulfillmentOrder/1"})[2]["extensions"]["cost"][
        "actualQueryCost"] == 10
    time.sleep(0.25)
    body = shop.gql(CHEAP_MUTATION, {"id": "gid://shopify/FulfillmentOrder/1"})[2]
    assert "errors" not in body


def test_fault_switches_throttle_and_fail_on_demand(sandbox):
    shop = Shop(sandbox, faults={"throttled": 1.0})
    status, _, body = shop.gql(CHEAP_MUTATION, {"id": "gid://shopify/FulfillmentOrder/1"})
    assert status == 200 and body["errors"][0]["extensions"]["code"] == "THROTTLED"
    shop.configure(faults={"http_429": 1.0, "retry_after": 2.0})
    status, headers, _ = shop.gql(CHEAP_MUTATION, {"id": "gid://shopify/FulfillmentOrder/1"})
    assert status == 429 and headers["Retry-After"] == "2.0"
    shop.configure(faults={"server_error": 1.0})
    status, headers, body = shop.gql(CHEAP_MUTATION, {"id": "gid://shopify/FulfillmentOrder/1"})
    assert status in (502, 503) and headers["Content-Type"].startswith("text/html") and "<html" in body
    shop.configure(faults={"latency_ms": 150})
    started = time.monotonic()
    assert shop.gql(CHEAP_MUTATION, {"id": "gid://shopify/FulfillmentOrder/1"})[0] == 200
    assert time.monotonic() - started >= 0.15
    stats = shop.stats()
    assert stats["server_errors"] == 1 and stats["http_429"] == 1 and stats["throttled"] == 1


def test_a_timeout_after_success_still_creates_the_fulfillment(sandbox):
    shop = Shop(sandbox, faults={"timeout_after_success": 1.0, "timeout_ms": 1500})
    out = shop.create_order()
    f = {"lineItemsByFulfillmentOrder": [fo_entry(out["fulfillment_orders"][0])], "trackingInfo": TRACKING}
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError, ConnectionError)):
        shop.gql(FULFIL, {"f": f}, timeout=0.5)
    shop.configure(faults={})
    adm = shop.admin_order(out["order"]["id"])
    assert len(adm["fulfillments"]) == 1 and adm["fulfillments"][0]["tracking"] == TRACKING
    assert adm["fulfillment_orders"][0]["status"] == "CLOSED"
    # A client that retries blindly gets a userError: the FO is already closed.
    res = shop.fulfil([fo_entry(out["fulfillment_orders"][0])], TRACKING)
    assert res["fulfillment"] is None
    stats = shop.stats()
    assert stats["fulfillments_created"] == 1 and stats["timeouts_after_success"] == 1


# ------------------------------------------------------------------------------------------------------------------
# Webhooks
# ------------------------------------------------------------------------------------------------------------------


class Receiver:
    """A tiny webhook endpoint that verifies the HMAC over the raw body, like dropsync must."""

    def __init__(self, secret):
        self.secret = secret
        self.received = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                ok = verify_signature(receiver.secret, raw, self.headers.get("X-Shopify-Hmac-Sha256"))
                receiver.received.append({"raw": raw, "headers": {k: v for k, v in self.headers.items()},
                                          "ok": ok})
                status = 200 if ok else 401
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if ok else b"no")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/webhooks/shopify"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_webhook_deliveries_are_signed_over_the_exact_bytes_with_shopify_headers(sandbox):
    shop = Shop(sandbox)
    receiver = Receiver(shop.secret)
    try:
        order = shop.create_order(note="a/b & c")["order"]
        status, out = shop.admin("POST", "/_admin/webhooks/deliver", {
            "shop": shop.domain, "topic": "orders/create", "target_url": receiver.url,
            "order_id": order["id"], "webhook_id": "wh-1", "times": 2})
        assert status == 200
        assert [d["status"] for d in out["deliveries"]] == [200, 200]
        assert [d["webhook_id"] for d in out["deliveries"]] == ["wh-1", "wh-1"]
        first = receiver.received[0]
        assert first["ok"]
        assert b'"note":"a\\/b \\u0026 c"' in first["raw"]
        assert json.loads(first["raw"])["id"] == order["id"]  # no {"order": …} wrapper
        h = first["headers"]
        assert h["X-Shopify-Topic"] == "orders/create" and h["X-Shopify-Shop-Domain"] == shop.domain
        assert h["X-Shopify-API-Version"] == "2026-10" and h["X-Shopify-Webhook-Id"] == "wh-1"
        assert h["X-Shopify-Event-Id"] and h["X-Shopify-Triggered-At"].endswith("Z")
        assert len(h["X-Shopify-Triggered-At"].split(".")[1]) == 10  # 9 digits + Z

        status, out = shop.admin("POST", "/_admin/webhooks/deliver", {
            "shop": shop.domain, "topic": "orders/updated", "target_url": receiver.url,
            "body": {"id": 1, "url": "https://x/y"}, "lowercase_headers": True})
        assert out["deliveries"][0]["status"] == 200
        assert "x-shopify-hmac-sha256" in receiver.received[-1]["headers"]
        assert out["deliveries"][0]["webhook_id"]  # a fresh uuid4

        status, out = shop.admin("POST", "/_admin/webhooks/deliver", {
            "shop": shop.domain, "topic": "orders/updated", "target_url": receiver.url,
            "body": {"id": 1}, "secret": "not-the-secret"})
        assert out["deliveries"][0]["status"] == 401 and receiver.received[-1]["ok"] is False
    finally:
        receiver.close()


def test_webhook_subscriptions_receive_fulfilment_events(sandbox):
    shop = Shop(sandbox)
    receiver = Receiver(shop.secret)
    try:
        shop.configure(webhook_subscriptions=[{"topic": "orders/fulfilled", "target_url": receiver.url},
                                              {"topic": "fulfillments/create", "target_url": receiver.url}])
        out = shop.create_order()
        shop.fulfil([fo_entry(out["fulfillment_orders"][0])], TRACKING)
        status, log = shop.admin("GET", f"/_admin/webhooks/log?shop={shop.domain}")
        topics = sorted(d["topic"] for d in log["deliveries"])
        assert topics == ["fulfillments/create", "orders/fulfilled"]
        assert all(d["status"] == 200 for d in log["deliveries"])
        assert all(r["ok"] for r in receiver.received)
    finally:
        receiver.close()


def test_the_library_deliver_function_signs_with_the_given_secret():
    from dropsync_sandbox.shopify import deliver

    receiver = Receiver("lib-secret")
    try:
        status, body = deliver(receiver.url, "lib.myshopify.com", "orders/paid", {"id": 5, "x": "&"},
                               secret="lib-secret", webhook_id="abc")
        assert (status, body) == (200, "ok")
        assert receiver.received[0]["headers"]["X-Shopify-Webhook-Id"] == "abc"
        assert receiver.received[0]["raw"] == b'{"id":5,"x":"\\u0026"}'
    finally:
        receiver.close()


# ------------------------------------------------------------------------------------------------------------------
# The command line
# ------------------------------------------------------------------------------------------------------------------


def test_the_command_line_server_prints_ready_and_exits_0_on_sigterm(tmp_path):
    ready = tmp_path / "ready.txt"
    env = {**os.environ, "PYTHONPATH": SANDBOX_DIR}
    proc = subprocess.Popen([sys.executable, "-m", "dropsync_sandbox.shopify", "--host", "127.0.0.1", "--port",
                             "0", "--ready-file", str(ready)], stdout=subprocess.PIPE, env=env, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:")
        url = line.split(" ", 1)[1]
        assert ready.read_text().strip() == url
        status, _, raw = http("GET", url + "/_admin/health")
        assert status == 200 and json.loads(raw) == {"ok": True}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
