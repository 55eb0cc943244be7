"""Tests of the sandbox Shopify's OAuth, client credentials and managed webhook subscriptions
(tests/sandbox/dropsync_sandbox/shopify_oauth.py and the resolvers in shopify_graphql.py).

Run: PYTHONPATH=tests/sandbox .venv/bin/python -m pytest -q tests/sandbox/tests/test_shopify_oauth.py
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from dropsync_sandbox.shopify import ShopifySandbox, load_schema
from dropsync_sandbox.shopify_oauth import query_hmac

SECRET = "app_secret_for_tests"


@pytest.fixture(scope="module")
def sandbox():
    sb = ShopifySandbox(schema=load_schema()).start()
    yield sb
    sb.stop()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return None


def call(method, url, body=None, headers=None, form=None):
    hdrs = dict(headers or {})
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=10) as r:
            raw = r.read()
            return r.status, dict(r.headers), (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            parsed = raw.decode()
        return e.code, dict(e.headers), parsed


def new_shop(sandbox, **cfg):
    domain = f"oauth-{uuid.uuid4().hex[:8]}.myshopify.com"
    sandbox.admin("POST", "/_admin/shops", {"shop": domain, "access_token": "shpat_unused_" + domain, **cfg})
    return domain


def app(sandbox, client_id=None, **cfg):
    cid = client_id or uuid.uuid4().hex
    sandbox.admin("POST", "/_admin/oauth/app", {"client_id": cid, "client_secret": SECRET, **cfg})
    return cid


def authorize(sandbox, shop, cid, state="st"):
    q = urllib.parse.urlencode({"client_id": cid, "scope": "read_orders", "state": state,
                                "redirect_uri": "https://example.test/connect/shopify/callback", "shop": shop})
    status, headers, _ = call("GET", f"{sandbox.url}/admin/oauth/authorize?{q}")
    assert status == 302
    loc = urllib.parse.urlsplit(headers["Location"])
    return dict(urllib.parse.parse_qsl(loc.query))


def token(sandbox, shop, form):
    return call("POST", f"{sandbox.url}/admin/oauth/access_token", form=form,
                headers={"X-Shopify-Shop-Domain": shop})


def gql(sandbox, token_, query, variables=None):
    return call("POST", sandbox.graphql_url(), {"query": query, "variables": variables or {}},
                {"X-Shopify-Access-Token": token_})


def test_the_authorize_redirect_carries_a_real_hmac_and_the_state(sandbox):
    shop, cid = new_shop(sandbox), app(sandbox)
    params = authorize(sandbox, shop, cid, state="nonce-1")
    assert params["state"] == "nonce-1" and params["shop"] == shop
    assert params["hmac"] == query_hmac(SECRET, params)
    assert params["hmac"] != query_hmac("other", params)


def test_the_published_hmac_vector_signs_as_documented():
    params = {"code": "0907a61c0c8d55e99db179b68161bc00", "shop": "some-shop.myshopify.com",
              "state": "0.6784241404160823", "timestamp": "1337178173"}
    assert query_hmac("hush", params) == "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf"


def test_a_code_is_single_use_and_expiring_gives_a_pair(sandbox):
    shop, cid = new_shop(sandbox), app(sandbox)
    code = authorize(sandbox, shop, cid)["code"]
    form = {"client_id": cid, "client_secret": SECRET, "code": code, "expiring": "1"}
    status, _, body = token(sandbox, shop, form)
    assert status == 200 and body["expires_in"] == 3600 and body["refresh_token"].startswith("shprt_")
    assert gql(sandbox, body["access_token"], "{ shop { myshopifyDomain } }")[0] == 200
    status, _, again = token(sandbox, shop, form)
    assert status == 400 and "access_token" not in again


def test_an_expired_access_token_gets_401_and_a_refresh_rotates_with_grace_until_the_new_one_is_used(sandbox):
    shop, cid = new_shop(sandbox), app(sandbox)
    code = authorize(sandbox, shop, cid)["code"]
    _, _, first = token(sandbox, shop, {"client_id": cid, "client_secret": SECRET, "code": code, "expiring": "1"})
    sandbox.admin("POST", "/_admin/oauth/expire", {"shop": shop})
    assert gql(sandbox, first["access_token"], "{ shop { myshopifyDomain } }")[0] == 401
    refresh = {"client_id": cid, "client_secret": SECRET, "grant_type": "refresh_token"}
    status, _, second = token(sandbox, shop, {**refresh, "refresh_token": first["refresh_token"]})
    assert status == 200 and second["refresh_token"] != first["refresh_token"]
    assert gql(sandbox, second["access_token"], "{ shop { myshopifyDomain } }")[0] == 200
    # The old refresh token still works until its replacement is used ...
    status, _, _ = token(sandbox, shop, {**refresh, "refresh_token": first["refresh_token"]})
    assert status == 200
    status, _, _ = token(sandbox, shop, {**refresh, "refresh_token": second["refresh_token"]})
    assert status == 200
    # ... and not after.
    status, _, body = token(sandbox, shop, {**refresh, "refresh_token": first["refresh_token"]})
    assert status == 400 and body["error"] == "invalid_grant"


def test_a_revoked_shop_refuses_refreshes_with_invalid_grant_or_401(sandbox):
    shop, cid = new_shop(sandbox), app(sandbox)
    code = authorize(sandbox, shop, cid)["code"]
    _, _, pair = token(sandbox, shop, {"client_id": cid, "client_secret": SECRET, "code": code, "expiring": "1"})
    refresh = {"client_id": cid, "client_secret": SECRET, "grant_type": "refresh_token",
               "refresh_token": pair["refresh_token"]}
    sandbox.admin("POST", "/_admin/oauth/revoke", {"shop": shop})
    status, _, body = token(sandbox, shop, refresh)
    assert status == 400 and body["error"] == "invalid_grant"
    sandbox.admin("POST", "/_admin/oauth/revoke", {"shop": shop, "mode": "401"})
    assert token(sandbox, shop, refresh)[0] == 401


def test_client_credentials_mint_a_day_long_token_or_refuse_with_shop_not_permitted(sandbox):
    shop, cid = new_shop(sandbox), app(sandbox)
    form = {"client_id": cid, "client_secret": SECRET, "grant_type": "client_credentials"}
    status, _, body = token(sandbox, shop, form)
    assert status == 200 and body["expires_in"] == 86399 and "refresh_token" not in body
    sandbox.admin("POST", "/_admin/oauth/client_credentials", {"shop": shop, "refuse": "shop_not_permitted"})
    status, _, body = token(sandbox, shop, form)
    assert status == 400 and body["error"] == "shop_not_permitted"
    status, _, body = token(sandbox, shop, {**form, "client_secret": "wrong"})
    assert status == 401 and body["error"] == "invalid_client"


def test_webhook_subscriptions_are_listed_created_repointed_and_can_disappear(sandbox):
    shop = new_shop(sandbox)
    tok = "shpat_unused_" + shop
    create = """mutation C($topic: WebhookSubscriptionTopic!, $s: WebhookSubscriptionInput!) {
      webhookSubscriptionCreate(topic: $topic, webhookSubscription: $s) {
        webhookSubscription { id topic uri } userErrors { field message } } }"""
    status, _, body = gql(sandbox, tok, create, {"topic": "ORDERS_CREATE", "s": {"uri": "https://elsewhere.test/x"}})
    assert status == 200, body
    sub = body["data"]["webhookSubscriptionCreate"]["webhookSubscription"]
    assert sub["topic"] == "ORDERS_CREATE"
    update = """mutation U($id: ID!, $s: WebhookSubscriptionInput!) {
      webhookSubscriptionUpdate(id: $id, webhookSubscription: $s) {
        webhookSubscription { id uri } userErrors { message } } }"""
    _, _, body = gql(sandbox, tok, update, {"id": sub["id"], "s": {"uri": "https://mine.test/webhooks/shopify"}})
    assert body["data"]["webhookSubscriptionUpdate"]["webhookSubscription"]["uri"] == "https://mine.test/webhooks/shopify"
    listing = "{ webhookSubscriptions(first: 50) { nodes { id topic uri } pageInfo { hasNextPage endCursor } } }"
    _, _, body = gql(sandbox, tok, listing)
    assert [n["topic"] for n in body["data"]["webhookSubscriptions"]["nodes"]] == ["ORDERS_CREATE"]
    sandbox.admin("POST", "/_admin/webhooks/subscriptions", {"shop": shop, "delete_topic": "orders/create"})
    _, _, body = gql(sandbox, tok, listing)
    assert body["data"]["webhookSubscriptions"]["nodes"] == []
