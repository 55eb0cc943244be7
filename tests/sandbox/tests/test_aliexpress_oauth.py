"""The sandbox AliExpress's OAuth, as dropsync's connect flow uses it: the authorize redirect, the signed
``/rest/auth/token/create`` (signature checked before the code, single-use and expiring codes), the refresh with
rotation that keeps the authorization's end, and the refused refresh once that end has passed.

Run: PYTHONPATH=tests/sandbox .venv/bin/python -m pytest -q tests/sandbox/tests/test_aliexpress_oauth.py
"""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from dropsync_sandbox.aliexpress import AliExpressClient, AliExpressSandbox, compute_sign, http_request

ACCOUNT = "oauth-buyer"
_keys = itertools.count(700_001)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Harness:
    def __init__(self, running):
        self.url = running.base_url

    def admin(self, verb, path, body=None, expect=200):
        data = None if body is None else json.dumps(body).encode()
        status, obj = http_request(verb, self.url + path, data, {"Content-Type": "application/json"})
        assert status == expect, (status, obj)
        return obj

    def app(self, **config):
        key = str(next(_keys))
        secret = f"secret-{key}"
        self.admin("POST", "/_admin/apps", {"app_key": key, "app_secret": secret, **config})
        return AliExpressClient(self.url, key, secret)

    def clock_ms(self):
        return self.admin("GET", "/_admin/clock")["now_ms"]

    def authorize(self, client, state="st-1"):
        """The merchant's browser at the authorize page: the sandbox consents and redirects back."""
        query = urllib.parse.urlencode({"response_type": "code", "force_auth": "true", "client_id": client.app_key,
                                        "redirect_uri": "https://dropsync.example/connect/aliexpress/callback",
                                        "state": state, "account": ACCOUNT})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.build_opener(NoRedirect).open(self.url + "/oauth/authorize?" + query)
        assert caught.value.code == 302
        location = urllib.parse.urlsplit(caught.value.headers["Location"])
        assert (location.netloc, location.path) == ("dropsync.example", "/connect/aliexpress/callback")
        got = dict(urllib.parse.parse_qsl(location.query))
        assert got["state"] == state
        return got["code"]


@pytest.fixture
def ae():
    with AliExpressSandbox(seed=11).start() as running:
        yield Harness(running)


def create(client, code, **kw):
    return client.rest("/auth/token/create", {"code": code}, **kw)[1]


def test_the_official_token_create_vector_signs_to_the_documented_value():
    params = {"app_key": "12345678", "code": "3_500102_JxZ05Ux3cnnSSUm6dCxYg6Q26", "timestamp": "1517820392000",
              "sign_method": "sha256"}
    assert compute_sign("helloworld", params, "/auth/token/create") == \
        "35607762342831B6A417A0DED84B79C05FEFBF116969C48AD6DC00279A9F4D81"


def test_token_create_checks_the_signature_before_the_code(ae):
    client = ae.app()
    code = ae.authorize(client)
    # Signed with another secret: refused as a signature error, and the code is not spent.
    forger = AliExpressClient(ae.url, client.app_key, "not-the-secret")
    assert create(forger, code)["code"] == "IncompleteSignature"
    # Signed without sign_method in the signed set (a common client bug): refused the same way.
    params = {"app_key": client.app_key, "timestamp": str(ae.clock_ms()), "code": code}
    params["sign"] = compute_sign(client.app_secret, params, "/auth/token/create")
    params["sign_method"] = "sha256"
    _, body = client.post("/rest/auth/token/create", params, business_keys=("code",))
    assert body["code"] == "IncompleteSignature"
    # A dummy code with a good signature reaches the code check: the signer is right.
    assert create(client, "0_dummy")["code"] == "InvalidCode"
    # The real code still works once.
    body = create(client, code)
    assert body["code"] == "0" and body["account"] == ACCOUNT
    assert create(client, code)["code"] == "InvalidCode"


def test_a_code_is_bound_to_its_app_and_expires(ae):
    client, other = ae.app(), ae.app()
    assert create(other, ae.authorize(client))["code"] == "InvalidCode"
    stale = ae.authorize(client)
    ae.admin("POST", "/_admin/clock", {"advance_seconds": 31 * 60})
    assert create(client, stale, timestamp_ms=ae.clock_ms())["code"] == "InvalidCode"


def test_the_created_pair_refreshes_with_rotation_and_the_authorizations_end_never_moves(ae):
    client = ae.app(app_status="launched")
    first = create(client, ae.authorize(client))
    assert first["code"] == "0"
    end = first["refresh_token_valid_time"]
    assert abs(first["refresh_expires_in"] - 60 * 86400) <= 1
    ae.admin("POST", "/_admin/clock", {"advance_seconds": 10 * 86400})
    now = ae.clock_ms()
    _, second = client.rest("/auth/token/refresh", {"refresh_token": first["refresh_token"]}, timestamp_ms=now)
    assert second["code"] == "0", second
    assert second["access_token"] != first["access_token"] and second["refresh_token"] != first["refresh_token"]
    assert second["refresh_token_valid_time"] == end
    assert second["refresh_expires_in"] <= 50 * 86400 + 1
    # The rotated-out refresh token is dead; the new one is the only way on.
    _, replay = client.rest("/auth/token/refresh", {"refresh_token": first["refresh_token"]}, timestamp_ms=now)
    assert replay["code"] == "IllegalRefreshToken"
    # Past the authorization's end nothing refreshes: the merchant must authorize again.
    ae.admin("POST", "/_admin/clock", {"advance_seconds": 51 * 86400})
    _, late = client.rest("/auth/token/refresh", {"refresh_token": second["refresh_token"]},
                          timestamp_ms=ae.clock_ms())
    assert late["code"] == "IllegalRefreshToken"
    # ...and authorizing again starts a new end.
    again = create(client, ae.authorize(client), timestamp_ms=ae.clock_ms())
    assert again["code"] == "0" and again["refresh_token_valid_time"] > end
