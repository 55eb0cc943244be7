"""Sandbox AliExpress Open Platform gateway for dropsync's tests, demo and benchmarks.

A faithful stand-in for ``api-sg.aliexpress.com`` as its documentation describes it:

* ``POST /sync`` business gateway (``aliexpress.trade.ds.order.get``, ``aliexpress.ds.order.tracking.get``),
* ``POST /rest/auth/token/create`` and ``/rest/auth/token/refresh`` (flat ``/rest`` envelopes),
* ``GET /oauth/authorize`` (302 to the callback with ``code`` + ``state``),
* a test-only JSON admin API under ``/_admin/`` to register apps, tokens and orders, drive the order lifecycle,
  move the sandbox clock, switch response-shape quirks and inject faults, and read per-app call statistics.

Every request is verified like the real platform does (app key, mandatory parameters, HMAC-SHA256 signature,
timestamp window, session), so a client that passes here is signing correctly.

Library use (in-process)::

    sandbox = AliExpressSandbox()
    running = sandbox.start("127.0.0.1", 0)        # background thread
    ...  running.base_url ...
    running.stop()

Command line::

    PYTHONPATH=tests/sandbox python -m dropsync_sandbox.aliexpress --host 127.0.0.1 --port 0 --ready-file /tmp/ae.url

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import collections
import email.parser
import email.policy
import hashlib
import hmac
import json
import math
import os
import random
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

# --------------------------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------------------------

METHOD_ORDER_GET = "aliexpress.trade.ds.order.get"
METHOD_TRACKING_GET = "aliexpress.ds.order.tracking.get"
SYNC_METHODS = (METHOD_ORDER_GET, METHOD_TRACKING_GET)
METHOD_PRODUCT_GET = "aliexpress.ds.product.get"
METHOD_FREIGHT_QUERY = "aliexpress.ds.freight.query"
METHOD_ORDER_CREATE = "aliexpress.ds.order.create"
PLACE_METHODS = (METHOD_PRODUCT_GET, METHOD_FREIGHT_QUERY, METHOD_ORDER_CREATE)
# How long AliExpress remembers an out_order_id (documented: "The validity period ... is 24 hours").
OUT_ORDER_ID_TTL_MS = 24 * 3600 * 1000
ADDRESS_FAIL = "B_DROPSHIPPER_DELIVERY_ADDRESS_VALIDATE_FAIL"

REST_TOKEN_CREATE = "/auth/token/create"
REST_TOKEN_REFRESH = "/auth/token/refresh"
REST_PATHS = (REST_TOKEN_CREATE, REST_TOKEN_REFRESH)

ORDER_STATUSES = (
    "PLACE_ORDER_SUCCESS",
    "WAIT_GROUP",
    "WAIT_COMPLETE_ADDRESS",
    "PAYMENT_PROCESSING",
    "WAIT_SELLER_EXAMINE_MONEY",
    "RISK_CONTROL",
    "RISK_CONTROL_HOLD",
    "WAIT_SELLER_SEND_GOODS",
    "SELLER_PART_SEND_GOODS",
    "WAIT_BUYER_ACCEPT_GOODS",
    "FINISH",
    "IN_CANCEL",
)
LOGISTICS_STATUSES = (
    "DEFAULT",
    "WAIT_SELLER_SEND_GOODS",
    "SELLER_SEND_PART_GOODS",
    "SELLER_SEND_GOODS",
    "BUYER_ACCEPT_GOODS",
    "NO_LOGISTICS",
)
# Statuses that imply the buyer has paid: moving an order into one of them stamps ``order_paidtime_string``.
PAID_STATUSES = frozenset(
    {
        "PAYMENT_PROCESSING",
        "WAIT_SELLER_EXAMINE_MONEY",
        "RISK_CONTROL",
        "RISK_CONTROL_HOLD",
        "WAIT_SELLER_SEND_GOODS",
        "SELLER_PART_SEND_GOODS",
        "WAIT_BUYER_ACCEPT_GOODS",
    }
)

# Token lifetimes by app status: test apps get 1 d / 2 d, launched apps 30 d / 60 d.
LIFETIMES = {"test": (86_400, 172_800), "launched": (2_592_000, 5_184_000)}

TIMESTAMP_WINDOW_SECONDS = 7200
PACIFIC = ZoneInfo("America/Los_Angeles")
MAX_U64 = 2**64 - 1
AUTH_CODE_TTL_MS = 30 * 60 * 1000

END_REASON_DESCS = {"CANCELED": "Order canceled", "buyer_pay_timeout": "Buyer did not pay in time"}


# --------------------------------------------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------------------------------------------


def string_to_sign(params: dict[str, str], api_path: str | None = None) -> str:
    """Sorted ``name+value`` concatenation, prefixed with the API path for ``/rest`` APIs.

    ``sign`` itself is never part of the string. Names are sorted by their UTF-8 bytes, which is the "ASCII byte
    order" of the documentation (upper case < ``_`` < lower case); values are the raw, not URL-encoded, strings.
    """
    parts = [api_path or ""]
    for name in sorted((k for k in params if k != "sign"), key=lambda k: k.encode("utf-8")):
        parts.append(name)
        parts.append(params[name])
    return "".join(parts)


def compute_sign(secret: str, params: dict[str, str], api_path: str | None = None) -> str:
    """HMAC-SHA256 over :func:`string_to_sign`, keyed with the app secret, as UPPERCASE hex."""
    message = string_to_sign(params, api_path).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest().upper()


# --------------------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------------------


class AdminError(Exception):
    """A bad admin request: rendered as ``{"error": msg}`` with the given HTTP status."""

    def __init__(self, msg: str, status: int = 400):
        super().__init__(msg)
        self.msg = msg
        self.status = status


class GatewayError(Exception):
    """A platform error. ``/sync`` renders it as ``error_response``, ``/rest`` as a flat body."""

    def __init__(self, code: str, type_: str, msg: str, sub_code: str | None = None, sub_msg: str | None = None):
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.type = type_
        self.msg = msg
        self.sub_code = sub_code
        self.sub_msg = sub_msg


def _err_app_key() -> GatewayError:
    return GatewayError("isv.appkey-not-exists", "ISV", "The specified App Key is invalid")


def _err_missing(name: str) -> GatewayError:
    return GatewayError(
        "MissingParameter",
        "ISV",
        f'The input parameter "{name}" that is mandatory for processing this request is not supplied.',
    )


def _err_invalid_param(name: str, why: str) -> GatewayError:
    return GatewayError("InvalidParameter", "ISV", f'The input parameter "{name}" is invalid: {why}')


def _err_signature(detail: str | None = None) -> GatewayError:
    return GatewayError(
        "IncompleteSignature",
        "ISV",
        "The request signature does not conform to platform standards",
        sub_msg=detail,
    )


def _err_timestamp() -> GatewayError:
    return GatewayError(
        "InvalidTimestamp",
        "ISV",
        f"The request has expired: timestamp must be within {TIMESTAMP_WINDOW_SECONDS} seconds of the server time",
    )


def _err_access_token() -> GatewayError:
    return GatewayError("IllegalAccessToken", "ISV", "The specified access token is invalid or expired")


def _err_api_path(what: str) -> GatewayError:
    return GatewayError("InvalidApiPath", "ISV", f"The specified API path is invalid: {what}")


def _err_invalid_authorization() -> GatewayError:
    return GatewayError(
        "15",
        "ISP",
        "Remote service error",
        sub_code="isv.invalid-authorization",
        sub_msg="The order does not exist or does not belong to the authorized account.",
    )


def _err_service_unavailable() -> GatewayError:
    return GatewayError(
        "15",
        "ISP",
        "Remote service error",
        sub_code="isp.service-unavailable",
        sub_msg="The service is temporarily unavailable, please try again later.",
    )


def _err_api_call_limit(ban_seconds: float) -> GatewayError:
    # The real message always states a whole number of seconds; sub-second bans (handy in fast tests) round up.
    n = max(1, math.ceil(ban_seconds))
    return GatewayError(
        "ApiCallLimit", "ISV", f"Api access frequency exceeds the limit. this ban will last {n} seconds"
    )


def _money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"amount": format(amount.quantize(Decimal("0.01")), "f"), "currency_code": currency}


def _pacific_gmt(ms: int) -> str:
    """``gmt_create`` style: ``yyyy-MM-dd HH:mm:ss`` in US Pacific time, no zone."""
    return datetime.fromtimestamp(ms / 1000, PACIFIC).strftime("%Y-%m-%d %H:%M:%S")


def _pacific_bracketed(ms: int) -> str:
    """``order_paidtime_string`` style: ISO-8601 with offset plus a ``[America/Los_Angeles]`` suffix."""
    return datetime.fromtimestamp(ms // 1000, PACIFIC).isoformat(timespec="seconds") + "[America/Los_Angeles]"


def _parse_id(value: Any, name: str) -> int:
    """An id given as a JSON integer or a decimal string (never a float: that is how ids near 2^53 get corrupted)."""
    if isinstance(value, bool):
        raise AdminError(f"{name} must be an integer or a decimal string")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and value.isdigit():
        n = int(value)
    else:
        raise AdminError(f"{name} must be an integer or a decimal string, got {value!r}")
    if not 0 < n <= MAX_U64:
        raise AdminError(f"{name} out of u64 range")
    return n


def _parse_decimal(value: Any, name: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except InvalidOperation as exc:
        raise AdminError(f"{name} must be a decimal amount") from exc
    if not d.is_finite():
        raise AdminError(f"{name} must be a decimal amount")
    return d


def _number(value: Any, name: str, *, allow_none: bool = False, minimum: float = 0.0) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise AdminError(f"{name} must be a number >= {minimum}")
    return value


def _stable_digits(text: str, salt: str, digits: int) -> str:
    h = int.from_bytes(hashlib.sha256((salt + text).encode()).digest()[:8], "big")
    return str(10 ** (digits - 1) + h % (9 * 10 ** (digits - 1)))


# --------------------------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------------------------


class SandboxClock:
    """Wall clock plus an adjustable offset: it keeps running, and tests can jump it forward or set it."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.offset_ms

    def to_json(self) -> dict[str, int]:
        return {"now_ms": self.now_ms(), "offset_ms": self.offset_ms}


@dataclass
class AppStats:
    total_calls: int = 0
    accepted_calls: int = 0
    calls_by_method: collections.Counter = field(default_factory=collections.Counter)
    accepted_calls_by_method: collections.Counter = field(default_factory=collections.Counter)
    errors_by_code: collections.Counter = field(default_factory=collections.Counter)
    bans_started: int = 0
    api_call_limit_responses: int = 0
    isp_errors: int = 0
    server_errors_5xx: int = 0
    signature_failures: int = 0
    slow_responses: int = 0
    max_accepted_calls_in_any_1s: int = 0
    first_call_ms: int | None = None
    last_call_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "total_calls": self.total_calls,
            "accepted_calls": self.accepted_calls,
            "calls_by_method": dict(self.calls_by_method),
            "accepted_calls_by_method": dict(self.accepted_calls_by_method),
            "errors_by_code": dict(self.errors_by_code),
            "bans_started": self.bans_started,
            "api_call_limit_responses": self.api_call_limit_responses,
            "isp_errors": self.isp_errors,
            "server_errors_5xx": self.server_errors_5xx,
            "signature_failures": self.signature_failures,
            "slow_responses": self.slow_responses,
            "max_accepted_calls_in_any_1s": self.max_accepted_calls_in_any_1s,
            "first_call_ms": self.first_call_ms,
            "last_call_ms": self.last_call_ms,
        }


DEFAULT_FAULTS = {"api_call_limit": 0.0, "isp_error": 0.0, "server_error": 0.0, "slow": 0.0, "slow_ms": 0}
DEFAULT_QUIRKS = {
    "simplify": "request",
    "bare_single": False,
    "numbers_as_strings": False,
    "booleans_as_strings": False,
}


@dataclass
class App:
    app_key: str
    app_secret: str
    calls_per_second: float | None = None
    ban_seconds: float = 1
    latency_ms: float = 0
    faults: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FAULTS))
    quirks: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_QUIRKS))
    seed: int = 1
    app_status: str = "test"
    check_timestamp: bool = True
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    # Rate limiter state, on the monotonic wall clock (real call rates, independent of the sandbox clock).
    accepted_times: collections.deque = field(default_factory=collections.deque)
    banned_until: float = 0.0
    stats: AppStats = field(default_factory=AppStats)

    def to_json(self) -> dict[str, Any]:
        return {
            "app_key": self.app_key,
            "app_secret": self.app_secret,
            "calls_per_second": self.calls_per_second,
            "ban_seconds": self.ban_seconds,
            "latency_ms": self.latency_ms,
            "faults": dict(self.faults),
            "quirks": dict(self.quirks),
            "seed": self.seed,
            "app_status": self.app_status,
            "check_timestamp": self.check_timestamp,
        }


@dataclass
class Token:
    app_key: str
    account: str
    access_token: str
    refresh_token: str
    expires_in: int  # access lifetime in seconds; reset on every refresh
    access_expires_ms: int
    refresh_valid_ms: int  # fixed at creation: a refresh does not extend it

    def to_json(self, now_ms: int) -> dict[str, Any]:
        return {
            "app_key": self.app_key,
            "account": self.account,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_in": self.expires_in,
            "refresh_expires_in": max(0, (self.refresh_valid_ms - now_ms) // 1000),
            "expire_time": self.access_expires_ms,
            "refresh_token_valid_time": self.refresh_valid_ms,
        }


@dataclass
class Item:
    product_id: int
    sku_id: str
    count: int
    title: str
    price: Decimal
    sku_desc: str = ""
    end_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "product_id": str(self.product_id),
            "sku_id": self.sku_id,
            "count": self.count,
            "title": self.title,
            "price": format(self.price, "f"),
            "sku_desc": self.sku_desc,
            "end_reason": self.end_reason,
        }


@dataclass
class Package:
    mail_no: str
    carrier_name: str
    items: list[dict[str, Any]]  # {product_id:int, sku_id:str, quantity:int}
    nodes: list[dict[str, Any]]  # {time_stamp:int ms, tracking_name, tracking_detail_desc}
    visible: bool
    visible_at_ms: int | None
    eta_ms: int
    logistics_no: str
    created_ms: int
    previous_mail_nos: list[str] = field(default_factory=list)

    def is_visible(self, now_ms: int) -> bool:
        return self.visible or (self.visible_at_ms is not None and now_ms >= self.visible_at_ms)

    def to_json(self, now_ms: int) -> dict[str, Any]:
        return {
            "mail_no": self.mail_no,
            "carrier_name": self.carrier_name,
            "items": [{**i, "product_id": str(i["product_id"])} for i in self.items],
            "nodes": list(self.nodes),
            "visible": self.is_visible(now_ms),
            "visible_at_ms": self.visible_at_ms,
            "eta_time_stamps": self.eta_ms,
            "logistics_no": self.logistics_no,
            "created_ms": self.created_ms,
            "previous_mail_nos": list(self.previous_mail_nos),
        }


@dataclass
class Order:
    order_id: int
    app_key: str | None
    account: str
    status: str
    logistics_status: str
    created_ms: int
    items: list[Item]
    currency: str = "USD"
    paid_ms: int | None = None
    unavailable_until_ms: int = 0
    pay_timeout_second: int = 86_400
    store_id: int = 1102233445
    store_name: str = "Example Store"
    logistics_service: str = "CAINIAO_FULFILLMENT_STD"
    packages: list[Package] = field(default_factory=list)
    # Scheduled transitions on the sandbox clock: {at_ms, if_status?, status?, logistics_status?, end_reasons?}
    schedule: list[dict[str, Any]] = field(default_factory=list)

    def package(self, mail_no: str) -> Package:
        for p in self.packages:
            if p.mail_no == mail_no:
                return p
        raise AdminError(f"no package {mail_no} on order {self.order_id}", 404)

    def to_json(self, now_ms: int) -> dict[str, Any]:
        return {
            "order_id": str(self.order_id),
            "app_key": self.app_key,
            "account": self.account,
            "status": self.status,
            "logistics_status": self.logistics_status,
            "created_ms": self.created_ms,
            "paid_ms": self.paid_ms,
            "currency": self.currency,
            "unavailable_until_ms": self.unavailable_until_ms,
            "pay_timeout_second": self.pay_timeout_second,
            "store_id": str(self.store_id),
            "store_name": self.store_name,
            "logistics_service": self.logistics_service,
            "items": [i.to_json() for i in self.items],
            "packages": [p.to_json(now_ms) for p in self.packages],
            "schedule": [dict(s) for s in self.schedule],
        }


class Shape:
    """Applies an app's response-shape quirks while a response is being built."""

    def __init__(self, simplify: bool, bare_single: bool, numbers_as_strings: Any, booleans_as_strings: bool):
        self.simplify = simplify
        self.bare_single = bare_single
        self.numbers_as_strings = numbers_as_strings
        self.booleans_as_strings = booleans_as_strings
        self._seen: collections.Counter = collections.Counter()

    def list(self, wrapper: str, items: list[Any]) -> Any:
        value: Any = items[0] if self.bare_single and len(items) == 1 else items
        return value if self.simplify else {wrapper: value}

    def num(self, n: int, name: str) -> int | str:
        if self.numbers_as_strings == "mixed":
            # Per field name, alternate number / string from one list element to the next, as in the documentation's
            # order.get sample (first child `"product_count": 2`, second `"product_count": "1"`).
            self._seen[name] += 1
            return n if self._seen[name] % 2 else str(n)
        return str(n) if self.numbers_as_strings else n

    def boolean(self, b: bool) -> bool | str:
        return ("true" if b else "false") if self.booleans_as_strings else b


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json;charset=UTF-8"
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def _json_response(obj: Any, status: int = 200, delay_s: float = 0.0) -> Response:
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Response(status, body, delay_s=delay_s)


# --------------------------------------------------------------------------------------------------------------
# The sandbox
# --------------------------------------------------------------------------------------------------------------


class AliExpressSandbox:
    """All sandbox state plus the request logic. Thread-safe: one lock guards every state change."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.RLock()
        self.clock = SandboxClock()
        self._seed = seed
        self._reset_state()

    def _reset_state(self) -> None:
        self.apps: dict[str, App] = {}
        self.tokens: dict[str, Token] = {}  # by access token
        self.refresh_index: dict[str, Token] = {}  # by refresh token
        self.orders: dict[int, Order] = {}
        self.auth_codes: dict[str, dict[str, Any]] = {}
        self.unknown_app_key_calls = 0
        self._ids = random.Random(self._seed)  # generated ids (order ids, mail numbers, tokens): reproducible
        self._request_seq = 0
        self._reset_placement_state()

    # ---- ids ------------------------------------------------------------------------------------------------

    def _request_id(self) -> str:
        self._request_seq += 1
        return f"2101{self._ids.getrandbits(24):06x}{int(time.time() * 1000)}{self._request_seq % 10000:04d}"

    def _new_order_id(self) -> int:
        while True:
            # 16 digits, below 2^53 = 9007199254740992, like real AE order ids.
            n = self._ids.randrange(8_000_000_000_000_000, 9_007_199_254_740_000)
            if n not in self.orders:
                return n

    def _new_mail_no(self) -> str:
        return "YT26" + "".join(str(self._ids.randrange(10)) for _ in range(14))

    def _new_lp_number(self) -> str:
        """Cainiao-internal logistics number, as the deprecated logistics_info_list carries it."""
        return "LP" + "".join(str(self._ids.randrange(10)) for _ in range(14))

    def _new_token(self, prefix: str) -> str:
        return prefix + "".join(f"{self._ids.getrandbits(4):x}" for _ in range(40))

    # ---- admin: apps, tokens, clock, stats --------------------------------------------------------------------

    def upsert_app(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            key = body.get("app_key")
            if not isinstance(key, str) or not key:
                raise AdminError("app_key (string) is required")
            app = self.apps.get(key)
            if app is None:
                secret = body.get("app_secret")
                if not isinstance(secret, str) or not secret:
                    raise AdminError("app_secret (string) is required for a new app")
                app = App(app_key=key, app_secret=secret)
                self.apps[key] = app
            if "app_secret" in body:
                if not isinstance(body["app_secret"], str) or not body["app_secret"]:
                    raise AdminError("app_secret must be a non-empty string")
                app.app_secret = body["app_secret"]
            if "calls_per_second" in body:
                app.calls_per_second = _number(body["calls_per_second"], "calls_per_second", allow_none=True)
            if "ban_seconds" in body:
                app.ban_seconds = _number(body["ban_seconds"], "ban_seconds")
            if "latency_ms" in body:
                app.latency_ms = _number(body["latency_ms"], "latency_ms")
            if "faults" in body:
                faults = body["faults"] or {}
                for name, value in faults.items():
                    if name not in DEFAULT_FAULTS:
                        raise AdminError(f"unknown fault {name!r}; known: {sorted(DEFAULT_FAULTS)}")
                    if name != "slow_ms" and not 0.0 <= _number(value, f"faults.{name}") <= 1.0:
                        raise AdminError(f"faults.{name} is a probability in [0, 1]")
                    app.faults[name] = _number(value, f"faults.{name}")
            if "quirks" in body:
                for name, value in (body["quirks"] or {}).items():
                    if name not in DEFAULT_QUIRKS:
                        raise AdminError(f"unknown quirk {name!r}; known: {sorted(DEFAULT_QUIRKS)}")
                    allowed = {
                        "simplify": (True, False, "request"),
                        "numbers_as_strings": (True, False, "mixed"),
                    }.get(name, (True, False))
                    if not any(value is a or (isinstance(a, str) and value == a) for a in allowed):
                        raise AdminError(f"quirks.{name} must be one of {allowed}")
                    app.quirks[name] = value
            if "seed" in body:
                if isinstance(body["seed"], bool) or not isinstance(body["seed"], int):
                    raise AdminError("seed must be an integer")
                app.seed = body["seed"]
                app.rng = random.Random(app.seed)
            if "app_status" in body:
                if body["app_status"] not in LIFETIMES:
                    raise AdminError(f"app_status must be one of {sorted(LIFETIMES)}")
                app.app_status = body["app_status"]
            if "check_timestamp" in body:
                app.check_timestamp = bool(body["check_timestamp"])
            return app.to_json()

    def get_app(self, key: str) -> dict[str, Any]:
        with self._lock:
            return self._app_or_404(key).to_json()

    def _app_or_404(self, key: Any) -> App:
        app = self.apps.get(key) if isinstance(key, str) else None
        if app is None:
            raise AdminError(f"unknown app_key {key!r}", 404)
        return app

    def _issue_token(
        self,
        app: App,
        account: str,
        access_token: str | None = None,
        refresh_token: str | None = None,
        expires_in: int | None = None,
        refresh_expires_in: int | None = None,
        refresh_valid_ms: int | None = None,
    ) -> Token:
        now = self.clock.now_ms()
        default_access, default_refresh = LIFETIMES[app.app_status]
        expires_in = default_access if expires_in is None else expires_in
        if refresh_valid_ms is None:
            refresh_valid_ms = now + 1000 * (default_refresh if refresh_expires_in is None else refresh_expires_in)
        token = Token(
            app_key=app.app_key,
            account=account,
            access_token=access_token or self._new_token("50000"),
            refresh_token=refresh_token or self._new_token("50001"),
            expires_in=expires_in,
            access_expires_ms=now + 1000 * expires_in,
            refresh_valid_ms=refresh_valid_ms,
        )
        for old in (self.tokens.get(token.access_token), self.refresh_index.get(token.refresh_token)):
            if old is not None:
                self._revoke(old)
        self.tokens[token.access_token] = token
        self.refresh_index[token.refresh_token] = token
        return token

    def _revoke(self, token: Token) -> None:
        if self.tokens.get(token.access_token) is token:
            del self.tokens[token.access_token]
        if self.refresh_index.get(token.refresh_token) is token:
            del self.refresh_index[token.refresh_token]

    def add_token(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            app = self._app_or_404(body.get("app_key"))
            account = body.get("account")
            if not isinstance(account, str) or not account:
                raise AdminError("account (string) is required")
            for name in ("access_token", "refresh_token"):
                if name in body and (not isinstance(body[name], str) or not body[name]):
                    raise AdminError(f"{name} must be a non-empty string")
            expires_in = body.get("expires_in")
            refresh_expires_in = body.get("refresh_expires_in")
            token = self._issue_token(
                app,
                account,
                access_token=body.get("access_token"),
                refresh_token=body.get("refresh_token"),
                expires_in=None if expires_in is None else int(_number(expires_in, "expires_in")),
                refresh_expires_in=None
                if refresh_expires_in is None
                else int(_number(refresh_expires_in, "refresh_expires_in")),
            )
            return token.to_json(self.clock.now_ms())

    def clock_json(self) -> dict[str, int]:
        with self._lock:
            return self.clock.to_json()

    def set_clock(self, body: dict[str, Any]) -> dict[str, int]:
        with self._lock:
            if "set_ms" in body:
                target = _number(body["set_ms"], "set_ms")
                self.clock.offset_ms = int(target) - int(time.time() * 1000)
            elif "advance_seconds" in body:
                self.clock.offset_ms += int(1000 * _number(body["advance_seconds"], "advance_seconds", minimum=-1e12))
            elif "advance_ms" in body:
                self.clock.offset_ms += int(_number(body["advance_ms"], "advance_ms", minimum=-1e15))
            elif body.get("reset"):
                self.clock.offset_ms = 0
            else:
                raise AdminError("give one of advance_seconds, advance_ms, set_ms, reset")
            return self.clock.to_json()

    def stats(self, app_key: str | None) -> dict[str, Any]:
        with self._lock:
            if app_key is not None:
                return {"app_key": app_key, **self._app_or_404(app_key).stats.to_json()}
            return {
                "apps": {k: a.stats.to_json() for k, a in self.apps.items()},
                "unknown_app_key_calls": self.unknown_app_key_calls,
            }

    def reset_stats(self, app_key: str | None) -> dict[str, Any]:
        with self._lock:
            apps = [self._app_or_404(app_key)] if app_key is not None else list(self.apps.values())
            for app in apps:
                app.stats = AppStats()
            if app_key is None:
                self.unknown_app_key_calls = 0
            return {"ok": True}

    def reset(self) -> dict[str, Any]:
        """Forget everything (apps, tokens, orders, stats) and put the clock back to wall time."""
        with self._lock:
            self._reset_state()
            self.clock.offset_ms = 0
            return {"ok": True}

    # ---- admin: orders ----------------------------------------------------------------------------------------

    def _order_or_404(self, order_id: Any) -> Order:
        oid = _parse_id(order_id, "order_id")
        order = self.orders.get(oid)
        if order is None:
            raise AdminError(f"unknown order {oid}", 404)
        self._settle(order)
        return order

    def _parse_items(self, raw: Any) -> list[Item]:
        if raw is None:
            raw = [
                {
                    "product_id": "1005006123456789",
                    "sku_id": "12000037000000001",
                    "count": 1,
                    "title": "Steel bottle 500ml",
                    "price": "7.50",
                }
            ]
        if not isinstance(raw, list) or not raw:
            raise AdminError("items must be a non-empty list")
        items = []
        for i, it in enumerate(raw):
            if not isinstance(it, dict):
                raise AdminError(f"items[{i}] must be an object")
            count = it.get("count", it.get("product_count", 1))
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise AdminError(f"items[{i}].count must be a positive integer")
            items.append(
                Item(
                    product_id=_parse_id(it.get("product_id"), f"items[{i}].product_id"),
                    sku_id=str(it.get("sku_id", "")),
                    count=count,
                    title=str(it.get("title", f"Product {i + 1}")),
                    price=_parse_decimal(it.get("price", "1.00"), f"items[{i}].price"),
                    sku_desc=str(it.get("sku_desc", "")),
                    end_reason=it.get("end_reason"),
                )
            )
        return items

    def _parse_schedule(self, raw: Any, now: int) -> list[dict[str, Any]]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise AdminError("schedule must be a list")
        out = []
        for i, entry in enumerate(raw):
            if not isinstance(entry, dict) or "after_seconds" not in entry:
                raise AdminError(f"schedule[{i}] needs after_seconds")
            e = {k: v for k, v in entry.items() if k != "after_seconds"}
            e["at_ms"] = now + int(1000 * _number(entry["after_seconds"], f"schedule[{i}].after_seconds"))
            out.append(e)
        return out

    def _apply_update(self, order: Order, body: dict[str, Any], now: int) -> None:
        """Status / logistics status / per-child end reasons; shared by the admin update and the schedule."""
        if "status" in body:
            if not isinstance(body["status"], str) or not body["status"]:
                raise AdminError("status must be a non-empty string")
            order.status = body["status"]  # any string: unknown statuses must be testable
            if order.status in PAID_STATUSES and order.paid_ms is None:
                order.paid_ms = now
        if "logistics_status" in body:
            if not isinstance(body["logistics_status"], str) or not body["logistics_status"]:
                raise AdminError("logistics_status must be a non-empty string")
            order.logistics_status = body["logistics_status"]
        if "paid_ms" in body:
            order.paid_ms = None if body["paid_ms"] is None else int(_number(body["paid_ms"], "paid_ms"))
        reasons = body.get("end_reasons")
        if reasons is not None:
            if not isinstance(reasons, dict):
                raise AdminError('end_reasons must be an object {"<product_id>"|"*": reason|null}')
            for key, reason in reasons.items():
                if reason is not None and not isinstance(reason, str):
                    raise AdminError("end_reasons values must be strings or null")
                if key == "*":
                    targets = order.items
                else:
                    pid = _parse_id(key, "end_reasons key")
                    targets = [i for i in order.items if i.product_id == pid]
                    if not targets:
                        raise AdminError(f"order {order.order_id} has no product {pid}")
                for item in targets:
                    item.end_reason = reason
        if "unavailable_for_ms" in body:
            order.unavailable_until_ms = now + int(_number(body["unavailable_for_ms"], "unavailable_for_ms"))

    def _settle(self, order: Order) -> None:
        """Apply scheduled transitions that are due on the sandbox clock (lazily, whenever the order is read)."""
        if not order.schedule:
            return
        now = self.clock.now_ms()
        due = sorted((e for e in order.schedule if e["at_ms"] <= now), key=lambda e: e["at_ms"])
        for entry in due:
            order.schedule.remove(entry)
            if "if_status" in entry and entry["if_status"] != order.status:
                continue
            self._apply_update(order, entry, entry["at_ms"])

    def create_order(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            now = self.clock.now_ms()
            app_key = body.get("app_key")
            if app_key is not None:
                self._app_or_404(app_key)
            account = body.get("account")
            if not isinstance(account, str) or not account:
                raise AdminError("account (string) is required")
            oid = _parse_id(body["order_id"], "order_id") if body.get("order_id") is not None else self._new_order_id()
            order = Order(
                order_id=oid,
                app_key=app_key,
                account=account,
                status="PLACE_ORDER_SUCCESS",
                logistics_status="DEFAULT",
                created_ms=int(_number(body["created_ms"], "created_ms")) if "created_ms" in body else now,
                items=self._parse_items(body.get("items")),
                currency=str(body.get("currency", "USD")),
                pay_timeout_second=int(_number(body.get("pay_timeout_second", 86_400), "pay_timeout_second")),
                store_id=_parse_id(body.get("store_id", 1102233445), "store_id"),
                store_name=str(body.get("store_name", "Example Store")),
                logistics_service=str(body.get("logistics_service", "CAINIAO_FULFILLMENT_STD")),
            )
            self._apply_update(
                order,
                {
                    "status": body.get("status", "PLACE_ORDER_SUCCESS"),
                    "logistics_status": body.get("logistics_status", "DEFAULT"),
                    "unavailable_for_ms": body.get("unavailable_for_ms") or 0,
                    **({"paid_ms": body["paid_ms"]} if "paid_ms" in body else {}),
                },
                now,
            )
            order.schedule = self._parse_schedule(body.get("schedule"), now)
            self.orders[oid] = order  # an existing id is replaced: idempotent test setup
            return {"order_id": str(oid), "order": order.to_json(now)}

    def update_order(self, order_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            order = self._order_or_404(order_id)
            now = self.clock.now_ms()
            self._apply_update(order, body, now)
            order.schedule.extend(self._parse_schedule(body.get("schedule"), now))
            return order.to_json(now)

    def get_order(self, order_id: str) -> dict[str, Any]:
        with self._lock:
            return self._order_or_404(order_id).to_json(self.clock.now_ms())

    def _package_items(self, order: Order, raw: Any) -> list[dict[str, Any]]:
        if raw is None:  # default: every line that is not cancelled, full quantity
            return [
                {"product_id": i.product_id, "sku_id": i.sku_id, "quantity": i.count}
                for i in order.items
                if i.end_reason is None
            ]
        if not isinstance(raw, list):
            raise AdminError("package items must be a list")
        out = []
        for n, it in enumerate(raw):
            if not isinstance(it, dict):
                raise AdminError(f"items[{n}] must be an object")
            pid = _parse_id(it.get("product_id"), f"items[{n}].product_id")
            match = next((i for i in order.items if i.product_id == pid), None)
            qty = it.get("quantity", match.count if match else 1)
            if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
                raise AdminError(f"items[{n}].quantity must be a positive integer")
            sku = it.get("sku_id", match.sku_id if match else "")
            out.append({"product_id": pid, "sku_id": str(sku), "quantity": qty})
        return out

    def _node(self, raw: Any, now: int) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise AdminError("a tracking node must be an object")
        return {
            "time_stamp": int(_number(raw.get("time_stamp", now), "time_stamp")),
            "tracking_name": str(raw.get("tracking_name", "Shipping update")),
            "tracking_detail_desc": str(raw.get("tracking_detail_desc", "")),
        }

    def _add_package(self, order: Order, body: dict[str, Any], now: int) -> Package:
        mail_no = body.get("mail_no") or self._new_mail_no()
        if not isinstance(mail_no, str):
            raise AdminError("mail_no must be a string")
        if any(p.mail_no == mail_no for p in order.packages):
            raise AdminError(f"order {order.order_id} already has package {mail_no}", 409)
        visible_at = None
        if body.get("visible_after_seconds") is not None:
            visible_at = now + int(1000 * _number(body["visible_after_seconds"], "visible_after_seconds"))
        nodes_raw = body.get("nodes")
        if nodes_raw is None:
            nodes_raw = [{"time_stamp": now, "tracking_name": "Shipping update",
                          "tracking_detail_desc": "Shipping label created, awaiting collection"}]
        if not isinstance(nodes_raw, list):
            raise AdminError("nodes must be a list")
        package = Package(
            mail_no=mail_no,
            carrier_name=str(body.get("carrier_name", "AliExpress Selection Standard")),
            items=self._package_items(order, body.get("items")),
            nodes=[self._node(n, now) for n in nodes_raw],
            # Hidden until visible_after_seconds when that is given; visible at once otherwise.
            visible=bool(body.get("visible", visible_at is None)),
            visible_at_ms=visible_at,
            eta_ms=int(_number(body.get("eta_time_stamps", now + 10 * 86_400_000), "eta_time_stamps")),
            logistics_no=str(body.get("logistics_no") or self._new_lp_number()),
            created_ms=now,
        )
        order.packages.append(package)
        return package

    def add_package(self, order_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            order = self._order_or_404(order_id)
            now = self.clock.now_ms()
            package = self._add_package(order, body, now)
            return {"order_id": str(order.order_id), "mail_no": package.mail_no, "package": package.to_json(now)}

    def update_package(self, order_id: str, mail_no: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            order = self._order_or_404(order_id)
            package = order.package(mail_no)
            now = self.clock.now_ms()
            if "visible" in body:
                package.visible = bool(body["visible"])
                if not package.visible:
                    package.visible_at_ms = None
            if body.get("visible_after_seconds") is not None:
                package.visible = False
                delay_s = _number(body["visible_after_seconds"], "visible_after_seconds")
                package.visible_at_ms = now + int(1000 * delay_s)
            if "carrier_name" in body:
                package.carrier_name = str(body["carrier_name"])
            if "items" in body:
                package.items = self._package_items(order, body["items"])
            if "add_node" in body:
                package.nodes.append(self._node(body["add_node"], now))
            new_mail_no = body.get("new_mail_no")
            if new_mail_no is not None:
                if not isinstance(new_mail_no, str) or not new_mail_no:
                    raise AdminError("new_mail_no must be a non-empty string")
                if any(p.mail_no == new_mail_no for p in order.packages if p is not package):
                    raise AdminError(f"order {order.order_id} already has package {new_mail_no}", 409)
                package.previous_mail_nos.append(package.mail_no)
                package.mail_no = new_mail_no
            return {"order_id": str(order.order_id), "mail_no": package.mail_no, "package": package.to_json(now)}

    def ship_order(self, order_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Convenience: WAIT_BUYER_ACCEPT_GOODS + SELLER_SEND_GOODS and one visible package with all open lines."""
        with self._lock:
            order = self._order_or_404(order_id)
            now = self.clock.now_ms()
            shipped = {"status": "WAIT_BUYER_ACCEPT_GOODS", "logistics_status": "SELLER_SEND_GOODS"}
            self._apply_update(order, shipped, now)
            package = self._add_package(order, body, now)  # visible at once unless visible_after_seconds
            return {"order_id": str(order.order_id), "mail_no": package.mail_no, "order": order.to_json(now)}

    # ---- OAuth ------------------------------------------------------------------------------------------------

    def authorize(self, query: dict[str, str]) -> Response:
        """``GET /oauth/authorize``: the user "consents" at once; 302 to ``redirect_uri`` with ``code`` + ``state``.

        Sandbox extension: ``account=<buyer>`` chooses whose orders the resulting token sees (default
        ``sandbox-buyer``).
        """
        with self._lock:
            client_id = query.get("client_id")
            redirect_uri = query.get("redirect_uri")
            if client_id not in self.apps:
                return Response(400, b"invalid client_id", "text/plain;charset=UTF-8")
            if not redirect_uri:
                return Response(400, b"missing redirect_uri", "text/plain;charset=UTF-8")
            code = "0_" + self._new_token("")[:32]
            self.auth_codes[code] = {
                "app_key": client_id,
                "account": query.get("account") or "sandbox-buyer",
                "expires_ms": self.clock.now_ms() + AUTH_CODE_TTL_MS,
            }
            extra = {"code": code}
            if "state" in query:
                extra["state"] = query["state"]
            sep = "&" if "?" in redirect_uri else "?"
            location = redirect_uri + sep + urllib.parse.urlencode(extra)
            return Response(302, b"", "text/plain;charset=UTF-8", headers={"Location": location})

    # ---- the gateway ------------------------------------------------------------------------------------------

    def handle_api(self, api_path: str | None, params: dict[str, str]) -> Response:
        """One call to ``/sync`` (``api_path`` None) or to ``/rest<api_path>``.

        Check order: app key, mandatory parameters, signature, timestamp, rate limit / ban, then (``/sync``)
        session and method or (``/rest``) the path; business errors last. Random faults use the app's own seeded
        generator, drawn in a fixed order on every call so a run is reproducible for a given seed and call order.
        """
        rest = api_path is not None
        with self._lock:
            request_id = self._request_id()
            app = self.apps.get(params.get("app_key", ""))
            if app is None:
                self.unknown_app_key_calls += 1
                return self._render_error(_err_app_key(), rest, request_id, 0.0)

            st = app.stats
            now_wall_ms = int(time.time() * 1000)
            st.total_calls += 1
            st.first_call_ms = st.first_call_ms or now_wall_ms
            st.last_call_ms = now_wall_ms
            label = api_path if rest else (params.get("method") or "(no method)")
            st.calls_by_method[label] += 1

            rng = app.rng
            draw_slow, draw_limit, draw_5xx, draw_502, draw_isp = (rng.random() for _ in range(5))
            delay = app.latency_ms / 1000
            if draw_slow < app.faults["slow"]:
                delay += app.faults["slow_ms"] / 1000
                st.slow_responses += 1

            try:
                if rest:
                    self._check_rest_system(app, api_path, params)
                else:
                    self._check_sync_system(app, params)
                self._admit(app, draw_limit < app.faults["api_call_limit"])
                st.accepted_calls_by_method[label] += 1
                if draw_5xx < app.faults["server_error"]:
                    st.server_errors_5xx += 1
                    if draw_502 < 0.5:
                        return Response(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                                        "text/html", delay_s=delay)
                    return Response(500, b"Internal Server Error", "text/plain", delay_s=delay)
                if rest:
                    body = self._rest_call(app, api_path, params, request_id)
                else:
                    body = self._sync_call(app, params, request_id, draw_isp < app.faults["isp_error"])
                return _json_response(body, delay_s=delay)
            except _LostAnswer as lost:
                st.server_errors_5xx += 1
                return lost.response
            except GatewayError as exc:
                st.errors_by_code[exc.code if exc.sub_code is None else f"{exc.code}/{exc.sub_code}"] += 1
                if exc.code == "ApiCallLimit":
                    st.api_call_limit_responses += 1
                elif exc.code == "IncompleteSignature":
                    st.signature_failures += 1
                elif (exc.sub_code or "").startswith("isp."):
                    st.isp_errors += 1
                return self._render_error(exc, rest, request_id, delay)

    def _render_error(self, exc: GatewayError, rest: bool, request_id: str, delay: float) -> Response:
        if rest:
            flat = {"code": exc.code, "type": exc.type, "message": exc.msg, "request_id": request_id}
            return _json_response(flat, delay_s=delay)
        err: dict[str, Any] = {"code": exc.code, "type": exc.type, "msg": exc.msg}
        if exc.sub_code is not None:
            err["sub_code"] = exc.sub_code
        if exc.sub_msg is not None:
            err["sub_msg"] = exc.sub_msg
        err["request_id"] = request_id
        return _json_response({"error_response": err}, delay_s=delay)

    @staticmethod
    def _require(params: dict[str, str], names: tuple[str, ...]) -> None:
        for name in names:
            if not params.get(name):  # empty values count as missing
                raise _err_missing(name)

    def _check_signature_and_time(self, app: App, params: dict[str, str], api_path: str | None) -> None:
        if params["sign_method"] != "sha256":
            raise _err_signature(f"unsupported sign_method {params['sign_method']!r}; use sha256")
        expected = compute_sign(app.app_secret, params, api_path)
        # Exact comparison: the platform wants UPPERCASE hex, a lowercase signature is a client bug.
        if not hmac.compare_digest(expected, params["sign"]):
            raise _err_signature()
        if app.check_timestamp:
            ts = _parse_timestamp(params["timestamp"])
            if ts is None or abs(ts - self.clock.now_ms()) > TIMESTAMP_WINDOW_SECONDS * 1000:
                raise _err_timestamp()

    def _check_sync_system(self, app: App, params: dict[str, str]) -> None:
        # The docs name the user token `access_token`; the SDKs send `session`. Either is accepted.
        session_name = "access_token" if "session" not in params and "access_token" in params else "session"
        self._require(params, ("method", "timestamp", "sign_method", "sign", session_name))
        self._check_signature_and_time(app, params, None)

    def _check_rest_system(self, app: App, api_path: str, params: dict[str, str]) -> None:
        self._require(params, ("timestamp", "sign_method", "sign"))
        self._check_signature_and_time(app, params, api_path)

    def _admit(self, app: App, inject_limit: bool) -> None:
        """Ban / sliding-window rate limit. Only calls that pass count as accepted."""
        now = time.monotonic()
        st = app.stats
        if now < app.banned_until:
            raise _err_api_call_limit(app.ban_seconds)
        window = app.accepted_times
        while window and window[0] <= now - 1.0:
            window.popleft()
        over = app.calls_per_second is not None and len(window) + 1 > app.calls_per_second
        if inject_limit or over:
            if app.ban_seconds > 0:
                app.banned_until = now + app.ban_seconds
                st.bans_started += 1
            raise _err_api_call_limit(app.ban_seconds)
        window.append(now)
        st.accepted_calls += 1
        st.max_accepted_calls_in_any_1s = max(st.max_accepted_calls_in_any_1s, len(window))

    def _session(self, app: App, params: dict[str, str]) -> Token:
        token = self.tokens.get(params.get("session") or params.get("access_token") or "")
        if token is None or token.app_key != app.app_key or self.clock.now_ms() >= token.access_expires_ms:
            raise _err_access_token()
        return token

    def _shape(self, app: App, params: dict[str, str]) -> Shape:
        simplify = app.quirks["simplify"]
        if simplify == "request":
            simplify = params.get("simplify", "").lower() == "true"
        return Shape(
            simplify=bool(simplify),
            bare_single=bool(app.quirks["bare_single"]),
            numbers_as_strings=app.quirks["numbers_as_strings"],
            booleans_as_strings=bool(app.quirks["booleans_as_strings"]),
        )

    def _sync_call(self, app: App, params: dict[str, str], request_id: str, inject_isp: bool) -> dict[str, Any]:
        token = self._session(app, params)
        method = params["method"]
        if method in PLACE_METHODS:
            return self._place_call(app, token, params, request_id, inject_isp)
        if method not in SYNC_METHODS:
            raise _err_api_path(method)
        if inject_isp:
            raise _err_service_unavailable()
        shape = self._shape(app, params)
        if method == METHOD_ORDER_GET:
            result = self._order_get(token, params, shape)
        else:
            result = self._tracking_get(token, params, shape)
        return {method.replace(".", "_") + "_response": {"result": result, "request_id": request_id}}

    def _visible_order(self, token: Token, order_id: int | None) -> Order:
        """The order if it belongs to the session's account; otherwise the same error as for an unknown order."""
        order = self.orders.get(order_id) if order_id is not None else None
        if order is None or order.account != token.account:
            raise _err_invalid_authorization()
        self._settle(order)
        return order

    def _order_get(self, token: Token, params: dict[str, str], shape: Shape) -> dict[str, Any]:
        raw = params.get("single_order_query")
        if not raw:
            raise _err_missing("single_order_query")
        try:
            query = json.loads(raw)
        except ValueError as exc:
            raise _err_invalid_param("single_order_query", "not valid JSON") from exc
        if not isinstance(query, dict) or query.get("order_id") in (None, ""):
            raise _err_missing("single_order_query.order_id")
        oid = query["order_id"]
        if isinstance(oid, float) or isinstance(oid, bool):
            # A float order id has already lost precision (ids sit near 2^53): reject it loudly.
            raise _err_invalid_param("single_order_query.order_id", "must be an integer or a decimal string")
        order_id = int(oid) if isinstance(oid, int) or (isinstance(oid, str) and oid.isdigit()) else None
        order = self._visible_order(token, order_id)
        if self.clock.now_ms() < order.unavailable_until_ms:
            raise _err_service_unavailable()
        return self._render_order(order, shape)

    def _render_order(self, order: Order, shape: Shape) -> dict[str, Any]:
        cur = order.currency
        children = []
        total = Decimal("0")
        for item in order.items:
            line_total = item.price * item.count
            total += line_total
            child: dict[str, Any] = {
                "product_id": shape.num(item.product_id, "product_id"),
                "sku_id": item.sku_id,
                "product_name": item.title,
                "product_count": shape.num(item.count, "product_count"),
                "product_price": _money(item.price, cur),
                "sale_fee": _money(line_total, cur),
                "shipping_fee": _money(Decimal(0), cur),
                "actual_shipping_fee": _money(Decimal(0), cur),
                "actual_fee": _money(line_total, cur),
            }
            if item.end_reason is not None:
                child["end_reason"] = item.end_reason
                child["end_reason_desc"] = END_REASON_DESCS.get(item.end_reason, item.end_reason)
            children.append(child)
        result: dict[str, Any] = {
            "gmt_create": _pacific_gmt(order.created_ms),
            "order_status": order.status,
            "logistics_status": order.logistics_status,
            "pay_timeout_second": str(order.pay_timeout_second),
        }
        if order.paid_ms is not None:
            result["order_paidtime_string"] = _pacific_bracketed(order.paid_ms)
        result["order_amount"] = _money(total, cur)
        result["user_order_amount"] = _money(total, cur)
        result["store_info"] = {
            "store_id": shape.num(order.store_id, "store_id"),
            "store_name": order.store_name,
            "store_url": f"https://www.aliexpress.com/store/{order.store_id}",
        }
        result["child_order_list"] = shape.list("aeop_child_order_info", children)
        now = self.clock.now_ms()
        visible = [p for p in order.packages if p.is_visible(now)]
        if visible:
            # Deprecated field, kept because the real platform still sends it; it carries the internal LP number.
            logistics = [
                {"logistics_service": order.logistics_service, "logistics_no": p.logistics_no} for p in visible
            ]
            result["logistics_info_list"] = shape.list("aeop_order_logistics_info", logistics)
        return result

    def _tracking_get(self, token: Token, params: dict[str, str], shape: Shape) -> dict[str, Any]:
        self._require(params, ("ae_order_id", "language"))
        raw = params["ae_order_id"]
        order = self._visible_order(token, int(raw) if raw.isdigit() else None)
        now = self.clock.now_ms()
        titles = {i.product_id: i for i in order.items}
        lines = []
        for package in order.packages:
            if not package.is_visible(now):
                continue
            nodes = sorted(package.nodes, key=lambda n: n["time_stamp"], reverse=True)  # newest first
            node_objs = [
                {
                    "time_stamp": shape.num(n["time_stamp"], "time_stamp"),
                    "tracking_name": n["tracking_name"],
                    "tracking_detail_desc": n["tracking_detail_desc"],
                }
                for n in nodes
            ]
            item_objs = []
            for it in package.items:
                src = titles.get(it["product_id"])
                item_objs.append(
                    {
                        "item_id": shape.num(it["product_id"], "item_id"),
                        "sku_id": it["sku_id"],
                        "quantity": shape.num(it["quantity"], "quantity"),
                        "item_title": src.title if src else "",
                        "sku_desc": src.sku_desc if src else "",
                    }
                )
            lines.append(
                {
                    "mail_no": package.mail_no,
                    "carrier_name": package.carrier_name,
                    "eta_time_stamps": package.eta_ms,
                    "detail_node_list": shape.list("detail_node", node_objs),
                    "package_item_list": shape.list("package_item", item_objs),
                }
            )
        if not lines:
            # Not shipped, or tracking not visible yet: a normal business answer, HTTP 200 inside `result`.
            return {"ret": shape.boolean(False), "code": "1001", "msg": "TRACKING DATA NOT FOUND"}
        return {
            "ret": shape.boolean(True),
            "code": "",
            "msg": "",
            "data": {"tracking_detail_line_list": shape.list("tracking_detail", lines)},
        }

    def _rest_call(self, app: App, api_path: str, params: dict[str, str], request_id: str) -> dict[str, Any]:
        if api_path not in REST_PATHS:
            raise _err_api_path(api_path)
        now = self.clock.now_ms()
        if api_path == REST_TOKEN_CREATE:
            self._require(params, ("code",))
            grant = self.auth_codes.pop(params["code"], None)
            if grant is None or grant["app_key"] != app.app_key or now >= grant["expires_ms"]:
                raise GatewayError("InvalidCode", "ISV", "The authorization code is invalid, used or expired")
            token = self._issue_token(app, grant["account"])
        else:
            self._require(params, ("refresh_token",))
            old = self.refresh_index.get(params["refresh_token"])
            if old is None or old.app_key != app.app_key or now >= old.refresh_valid_ms:
                raise GatewayError("IllegalRefreshToken", "ISV", "The specified refresh token is invalid or expired")
            # Rotation: both old tokens stop working, the access lifetime restarts, the refresh validity does not.
            self._revoke(old)
            token = self._issue_token(
                app, old.account, expires_in=old.expires_in, refresh_valid_ms=old.refresh_valid_ms
            )
        return self._token_body(token, now, request_id)

    @staticmethod
    def _token_body(token: Token, now: int, request_id: str) -> dict[str, Any]:
        account = token.account
        user_id = account if account.isdigit() else _stable_digits(account, "uid", 10)
        return {
            "code": "0",
            "access_token": token.access_token,
            "refresh_token": token.refresh_token,
            "expires_in": token.expires_in,
            "refresh_expires_in": max(0, (token.refresh_valid_ms - now) // 1000),
            "expire_time": token.access_expires_ms,
            "refresh_token_valid_time": token.refresh_valid_ms,
            "user_id": user_id,
            "seller_id": user_id,
            "havana_id": _stable_digits(account, "havana", 13),
            "user_nick": "us" + user_id[-7:],
            "account": account,
            "account_platform": "buyerApp",
            "sp": "ae",
            "locale": "en_US",
            "request_id": request_id,
        }

    # ---- servers ----------------------------------------------------------------------------------------------

    # ---- supplier-order placement: ds.product.get, ds.freight.query, ds.order.create -------------------------

    def _reset_placement_state(self) -> None:
        self.products: dict[int, dict[str, Any]] = {}
        # (account, out_order_id) -> {"at_ms", "order_ids"}: AliExpress' 24 h idempotency memory.
        self.out_order_ids: dict[tuple[str, str], dict[str, Any]] = {}
        self.placements: list[dict[str, Any]] = []  # every order.create that reached the business logic
        self.create_faults: list[dict[str, Any]] = []
        for product in DEFAULT_CATALOG:
            self._upsert_product(json.loads(json.dumps(product)))

    def _upsert_product(self, body: dict[str, Any]) -> dict[str, Any]:
        pid = _parse_id(body.get("product_id"), "product_id")
        store_id = _parse_id(body.get("store_id"), "store_id")
        skus = body.get("skus")
        if not isinstance(skus, list) or not skus:
            raise AdminError("skus (non-empty list) is required")
        clean_skus = []
        for sku in skus:
            if not isinstance(sku, dict) or not sku.get("sku_id"):
                raise AdminError("every sku needs a sku_id")
            clean_skus.append({
                "sku_id": str(sku["sku_id"]),
                "sku_attr": str(sku.get("sku_attr", "")),
                "price": format(_parse_decimal(sku.get("price", "1.00"), "price"), "f"),
                "stock": int(_number(sku.get("stock", 100), "stock")),
                "properties": list(sku.get("properties", [])),
            })
        freight = body.get("freight") or [dict(f) for f in DEFAULT_FREIGHT]
        product = {
            "product_id": pid,
            "title": str(body.get("title", f"Product {pid}")),
            "store_id": store_id,
            "store_name": str(body.get("store_name", f"Store {store_id}")),
            "skus": clean_skus,
            "freight": freight,
            "not_sold_to": [str(c) for c in body.get("not_sold_to", [])],
            "no_delivery_to": [str(c) for c in body.get("no_delivery_to", [])],
            # product_status_type: "onSelling", or "offline" once the seller takes it down.
            "status": str(body.get("status", "onSelling")),
        }
        self.products[pid] = product
        return product

    def placement_admin(self, verb: str, path: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """Admin routes of the placement simulator; None when the path is not one of them."""
        with self._lock:
            if path == "/_admin/products" and verb == "POST":
                return self._upsert_product(data)
            if path == "/_admin/products" and verb == "GET":
                return {"products": list(self.products.values())}
            if path == "/_admin/placements" and verb == "GET":
                # ?out_order_id_prefix= narrows the log to one order's creates (a harness polling
                # for one create must not copy the whole log each time).
                prefix = str(data.get("out_order_id_prefix", ""))
                return {"placements": [p for p in self.placements if p["out_order_id"].startswith(prefix)]}
            if path == "/_admin/faults/order-create" and verb == "POST":
                mode = data.get("mode")
                if mode not in ("business_error", "lose_answer", "isp_error"):
                    raise AdminError("mode must be business_error, lose_answer or isp_error")
                fault = {
                    "mode": mode,
                    "times": int(_number(data.get("times", 1), "times")),
                    "code": str(data.get("code", "INVENTORY_HOLD_ERROR")),
                    "message": str(data.get("message", "Inventory hold failed")),
                    "status": int(_number(data.get("status", 504), "status")),
                    "delay_ms": int(_number(data.get("delay_ms", 0), "delay_ms")),
                    # Only creates whose out_order_id starts with this (tests running side by side).
                    "out_order_id_prefix": str(data.get("out_order_id_prefix", "")),
                }
                self.create_faults.append(fault)
                return {"faults": list(self.create_faults)}
            if path == "/_admin/faults/order-create" and verb == "DELETE":
                self.create_faults.clear()
                return {"faults": []}
            m = re.match(r"^/_admin/orders/([^/]+)/pay$", path)
            if m and verb == "POST":
                order = self._order_or_404(m.group(1))
                now = self.clock.now_ms()
                if order.status != "PLACE_ORDER_SUCCESS":
                    raise AdminError(f"order {order.order_id} is {order.status}, not awaiting payment", 409)
                self._apply_update(order, {"status": "WAIT_SELLER_SEND_GOODS",
                                           "logistics_status": "WAIT_SELLER_SEND_GOODS"}, now)
                return order.to_json(now)
            return None

    def _place_call(self, app: App, token: Token, params: dict[str, str], request_id: str,
                    inject_isp: bool) -> dict[str, Any]:
        method = params["method"]
        if inject_isp:
            raise _err_service_unavailable()
        if method == METHOD_PRODUCT_GET:
            body = self._product_get(params)
        elif method == METHOD_FREIGHT_QUERY:
            body = {"result": self._freight_query(params)}
        else:
            body = {"result": self._order_create(app, token, params)}
        return {method.replace(".", "_") + "_response": {**body, "request_id": request_id}}

    def _product_get(self, params: dict[str, str]) -> dict[str, Any]:
        self._require(params, ("product_id", "ship_to_country"))
        raw = params["product_id"]
        product = self.products.get(int(raw)) if raw.isdigit() else None
        if product is None:
            return {"rsp_code": "605", "rsp_msg": "ITEM_ID_NOT_FOUND"}
        if params["ship_to_country"] in product["not_sold_to"]:
            return {"rsp_code": "602", "rsp_msg": "Item is not allowed to this country"}
        skus = []
        for sku in product["skus"]:
            skus.append({
                "sku_id": sku["sku_id"],
                "sku_attr": sku["sku_attr"],
                "sku_price": sku["price"],
                "offer_sale_price": sku["price"],
                "sku_available_stock": sku["stock"],
                "currency_code": "USD",
                "ae_sku_property_dtos": {"ae_sku_property_d_t_o": [
                    {"sku_property_name": p.get("name"), "sku_property_value": p.get("value")}
                    for p in sku["properties"]]},
            })
        return {
            "result": {
                "ae_item_sku_info_dtos": {"ae_item_sku_info_d_t_o": skus},
                "ae_item_base_info_dto": {"subject": product["title"], "product_id": product["product_id"],
                                          "product_status_type": product["status"], "currency_code": "USD"},
                "ae_store_info": {"store_id": product["store_id"], "store_name": product["store_name"],
                                  "store_country_code": "CN"},
            },
            "rsp_code": "200",
            "rsp_msg": "Call succeeds",
        }

    def _freight_query(self, params: dict[str, str]) -> dict[str, Any]:
        raw = params.get("queryDeliveryReq")
        if not raw:
            raise _err_missing("queryDeliveryReq")
        try:
            req = json.loads(raw)
        except ValueError as exc:
            raise _err_invalid_param("queryDeliveryReq", "not valid JSON") from exc
        if not isinstance(req, dict):
            raise _err_invalid_param("queryDeliveryReq", "not a JSON object")
        for name in ("quantity", "shipToCountry", "productId", "selectedSkuId", "language", "locale", "currency"):
            if req.get(name) in (None, ""):
                return {"success": False, "code": 501, "msg": f"PARAM ERROR: {name} is required"}
        pid = str(req["productId"])
        product = self.products.get(int(pid)) if pid.isdigit() else None
        if product is None or not any(s["sku_id"] == str(req["selectedSkuId"]) for s in product["skus"]):
            return {"success": False, "code": 501, "msg": "PARAM ERROR: product or sku not found"}
        if req["shipToCountry"] in product["no_delivery_to"]:
            return {"success": False, "code": 505, "msg": "DELIVERY_NOT_AVAILABLE_TO_YOUR_ADDRESS"}
        options = []
        for f in product["freight"]:
            options.append({
                "code": f["code"],
                "company": f.get("company", f["code"]),
                "shipping_fee_cent": f.get("fee", "0.00"),
                "shipping_fee_currency": "USD",
                "free_shipping": bool(f.get("free_shipping", False)),
                "mayHavePFS": False,
                "min_delivery_days": f.get("min_days", 10),
                "max_delivery_days": f.get("max_days", 25),
                "ship_from_country": "CN",
                "tracking": True,
            })
        return {"code": 200, "success": True, "delivery_options": {"delivery_option_d_t_o": options}}

    @staticmethod
    def _address_error(addr: dict[str, Any]) -> tuple[str, str] | None:
        """The first problem AliExpress would report with a logistics_address, as (error_code, error_msg)."""
        def text(name: str) -> str:
            v = addr.get(name)
            return v.strip() if isinstance(v, str) else ""

        if not text("address"):
            return ADDRESS_FAIL, "Please enter an address"
        country = text("country")
        if len(country) != 2 or not country.isalpha() or not country.isupper():
            return ADDRESS_FAIL, "Please select a country"
        if not text("province"):
            return ADDRESS_FAIL, "Please select a State/Province/County"
        if not text("city"):
            return ADDRESS_FAIL, "Please enter a city"
        mobile, phone_country = text("mobile_no"), text("phone_country").lstrip("+")
        if not (mobile.isdigit() and 5 <= len(mobile) <= 16 and phone_country.isdigit()):
            return ADDRESS_FAIL, ("Please enter a valid phone number: country code and phone number without any "
                                  "spaces or special characters")
        contact = text("contact_person")
        if not contact:
            return ADDRESS_FAIL, "Please enter a contact name"
        if country == "US":
            if any(not (2 <= len(part) <= 32) for part in contact.split()):
                return ADDRESS_FAIL, "Please enter between 2 - 32 characters"
            if not text("zip"):
                return ADDRESS_FAIL, "Please enter a ZIP code"
        if country == "BR":
            cpf = text("cpf")
            if not _cpf_is_valid(cpf):
                return ADDRESS_FAIL + "_CPF_CN_INVALID", "The CPF is invalid"
        return None

    def _order_create(self, app: App, token: Token, params: dict[str, str]) -> dict[str, Any]:
        raw = params.get("param_place_order_request4_open_api_d_t_o")
        if not raw:
            raise _err_missing("param_place_order_request4_open_api_d_t_o")
        try:
            req = json.loads(raw, parse_float=Decimal)
        except ValueError as exc:
            raise _err_invalid_param("param_place_order_request4_open_api_d_t_o", "not valid JSON") from exc
        if not isinstance(req, dict):
            raise _err_invalid_param("param_place_order_request4_open_api_d_t_o", "not a JSON object")
        now = self.clock.now_ms()
        out_order_id = str(req.get("out_order_id") or "")
        log: dict[str, Any] = {"out_order_id": out_order_id, "account": token.account, "at_ms": now}
        self.placements.append(log)

        def fail(code: str, msg: str) -> dict[str, Any]:
            log.update(outcome="rejected", error_code=code)
            return {"is_success": False, "error_code": code, "error_msg": msg}

        fault = next((f for f in self.create_faults if out_order_id.startswith(f["out_order_id_prefix"])), None)
        if fault is not None:
            fault["times"] -= 1
            if fault["times"] <= 0:
                self.create_faults.remove(fault)
            if fault["mode"] == "business_error":
                return fail(fault["code"], fault["message"])
            if fault["mode"] == "isp_error":
                log.update(outcome="isp_error")
                raise _err_service_unavailable()
        if out_order_id:
            seen = self.out_order_ids.get((token.account, out_order_id))
            if seen is not None and now - seen["at_ms"] < OUT_ORDER_ID_TTL_MS:
                return fail("REPEATED_ORDER_ERROR",
                            "Repeated placed order, the request has already been handled successfully")
        addr = req.get("logistics_address")
        if not isinstance(addr, dict):
            raise _err_missing("logistics_address")
        problem = self._address_error(addr)
        if problem is not None:
            return fail(*problem)
        items = req.get("product_items")
        if not isinstance(items, list) or not items:
            raise _err_missing("product_items")
        by_store: dict[int, list[Item]] = {}
        services: dict[int, str] = {}
        for it in items:
            if not isinstance(it, dict):
                raise _err_invalid_param("product_items", "items must be objects")
            pid_raw = it.get("product_id")
            if isinstance(pid_raw, (float, Decimal)) and not isinstance(pid_raw, bool):
                raise _err_invalid_param("product_items.product_id", "must be an integer")
            try:
                pid = int(pid_raw)
                count = int(it.get("product_count"))
            except (TypeError, ValueError):
                raise _err_invalid_param("product_items", "product_id and product_count are numbers") from None
            product = self.products.get(pid)
            if product is None or product["status"] != "onSelling":
                return fail("ERROR_WHEN_BUILD_FOR_PLACE_ORDER", f"product {pid} cannot be ordered")
            sku_attr = str(it.get("sku_attr") or "")
            skus = [s for s in product["skus"] if s["sku_attr"] == sku_attr]
            if not skus and sku_attr == "" and len(product["skus"]) == 1:
                skus = product["skus"]
            if not skus:
                return fail("ERROR_WHEN_BUILD_FOR_PLACE_ORDER", f"sku_attr {sku_attr!r} is not a SKU of {pid}")
            sku = skus[0]
            if count < 1 or sku["stock"] < count:
                return fail("INVENTORY_HOLD_ERROR", "Inventory hold failed: insufficient available quantity")
            service = str(it.get("logistics_service_name") or "")
            if service not in [f["code"] for f in product["freight"]] or addr["country"] in product["no_delivery_to"]:
                return fail("DELIVERY_METHOD_NOT_EXIST", "The delivery method does not exist")
            desc = ";".join(f"{p.get('name')}:{p.get('value')}" for p in sku["properties"])
            by_store.setdefault(product["store_id"], []).append(
                Item(pid, sku["sku_id"], count, product["title"], Decimal(sku["price"]), desc))
            services[product["store_id"]] = service
        for store_items in by_store.values():
            for item in store_items:
                stock_sku = next(s for s in self.products[item.product_id]["skus"] if s["sku_id"] == item.sku_id)
                stock_sku["stock"] -= item.count
        order_ids = []
        for store_id, store_items in by_store.items():
            oid = self._new_order_id()
            product = self.products[store_items[0].product_id]
            self.orders[oid] = Order(
                order_id=oid, app_key=app.app_key, account=token.account, status="PLACE_ORDER_SUCCESS",
                logistics_status="DEFAULT", created_ms=now, items=store_items, store_id=store_id,
                store_name=product["store_name"], logistics_service=services[store_id],
            )
            order_ids.append(oid)
        if out_order_id:
            self.out_order_ids[(token.account, out_order_id)] = {"at_ms": now, "order_ids": order_ids}
        log.update(outcome="created", order_ids=[str(o) for o in order_ids])
        result: dict[str, Any] = {"is_success": True, "order_list": {"number": order_ids}}
        extend = params.get("ds_extend_request")
        if extend:
            try:
                pay = (json.loads(extend).get("payment") or {})
            except (ValueError, AttributeError):
                pay = {}
            if str(pay.get("try_to_pay", "")).lower() == "true":
                # The sandbox app key is never allow-listed for API payment.
                result["error_msg"] = "OrderCreated, autoPay fail:APIPayFail"
        if fault is not None and fault["mode"] == "lose_answer":
            log.update(answer_lost=True)
            status = fault["status"]
            if status == 200:
                raise _LostAnswer(Response(200, json.dumps({"result": result}).encode()[:20], "application/json",
                                           delay_s=fault["delay_ms"] / 1000))
            raise _LostAnswer(Response(status, b"<html><body><h1>Gateway Timeout</h1></body></html>", "text/html",
                                       delay_s=fault["delay_ms"] / 1000))
        return result

    def make_server(self, host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> "SandboxHTTPServer":
        """A bound, not yet serving, HTTP server for this sandbox (``port=0`` picks a free port)."""
        return SandboxHTTPServer((host, port), self, verbose=verbose)

    def start(self, host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> "RunningSandbox":
        """Serve in a background daemon thread; for in-process tests."""
        server = self.make_server(host, port, verbose)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        return RunningSandbox(self, server, thread)

    def serve(self, host: str = "127.0.0.1", port: int = 0, ready_file: str | None = None,
              verbose: bool = False) -> int:
        """Blocking: serve until SIGTERM/SIGINT, then shut down cleanly and return 0."""
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        running = self.start(host, port, verbose)
        # The file first, then the line: whoever reads READY may read the file at once.
        if ready_file:
            tmp = f"{ready_file}.tmp{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(running.base_url + "\n")
            os.replace(tmp, ready_file)  # atomic: a watcher never reads a half-written URL
        print(f"READY {running.base_url}", flush=True)
        while not stop.wait(0.2):
            pass
        running.stop()
        return 0


def _parse_timestamp(raw: str) -> int | None:
    """ms epoch (what dropsync sends); the documented ``yyyy-MM-dd HH:mm:ss`` form is read as UTC."""
    if raw.isdigit():
        return int(raw)
    try:
        return int(datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp() * 1000)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------------------------------------------


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Benchmarks open many connections at once; the stdlib default backlog of 5 would refuse some of them.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], sandbox: AliExpressSandbox, verbose: bool = False):
        self.sandbox = sandbox
        self.verbose = verbose
        super().__init__(address, _Handler)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


@dataclass
class RunningSandbox:
    sandbox: AliExpressSandbox
    server: SandboxHTTPServer
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> "RunningSandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def parse_form_body(content_type: str, body: bytes) -> dict[str, str]:
    """Params from an ``application/x-www-form-urlencoded`` or ``multipart/form-data`` body.

    File parts (those with a filename) are dropped: the platform neither signs nor needs them here.
    """
    ctype = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return {}
    if ctype == "multipart/form-data":
        head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n"
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        params = {}
        if not msg.is_multipart():
            raise ValueError("malformed multipart body")
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not name or part.get_filename() is not None:
                continue
            payload = part.get_payload(decode=True) or b""
            params[name] = payload.decode(part.get_content_charset() or "utf-8")
        return params
    # urlencoded (also the fallback for a missing content type, like lenient gateways do)
    return dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))


_ADMIN_ORDER = re.compile(r"^/_admin/orders/([^/]+)(?:/(ship|packages)(?:/([^/]+))?)?$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as reqwest pools connections
    # Headers and body go out in separate writes; with Nagle on, a keep-alive client's delayed ACK would add
    # ~40 ms to every response and cap throughput near 25 calls/s.
    disable_nagle_algorithm = True
    server_version = "dropsync-aliexpress-sandbox/1.0"
    server: SandboxHTTPServer

    def log_message(self, fmt: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(fmt, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, resp: Response) -> None:
        if resp.delay_s > 0:
            time.sleep(resp.delay_s)  # outside the sandbox lock: slow calls do not block others
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    def _dispatch(self, verb: str) -> None:
        try:
            split = urllib.parse.urlsplit(self.path)
            path = split.path
            query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
            body = self._read_body()
            sandbox = self.server.sandbox
            if path.startswith("/_admin/"):
                resp = self._admin(verb, path, query, body)
            elif path == "/sync" and verb in ("GET", "POST"):
                resp = sandbox.handle_api(None, self._api_params(query, body))
            elif path.startswith("/rest/") and verb in ("GET", "POST"):
                resp = sandbox.handle_api(path[len("/rest"):], self._api_params(query, body))
            elif path == "/oauth/authorize" and verb == "GET":
                resp = sandbox.authorize(query)
            else:
                resp = _json_response({"error": f"no route {verb} {path}"}, 404)
        except _BadRequest as exc:
            resp = _json_response({"error": str(exc)}, 400)
        except Exception as exc:  # a sandbox bug must not kill the connection silently
            resp = _json_response({"error": f"sandbox internal error: {exc!r}"}, 500)
        self._send(resp)

    def _api_params(self, query: dict[str, str], body: bytes) -> dict[str, str]:
        try:
            form = parse_form_body(self.headers.get("Content-Type", ""), body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _BadRequest(f"unreadable body: {exc}") from exc
        return {**query, **form}  # a body value wins over a query value of the same name

    def _admin(self, verb: str, path: str, query: dict[str, str], body: bytes) -> Response:
        sandbox = self.server.sandbox
        data: dict[str, Any] = {}
        if body.strip():
            try:
                data = json.loads(body)
            except ValueError:
                return _json_response({"error": "body must be JSON"}, 400)
            if not isinstance(data, dict):
                return _json_response({"error": "body must be a JSON object"}, 400)
        try:
            if path == "/_admin/health" and verb == "GET":
                return _json_response({"ok": True})
            if path == "/_admin/apps" and verb == "POST":
                return _json_response(sandbox.upsert_app(data))
            if path.startswith("/_admin/apps/") and verb == "GET":
                return _json_response(sandbox.get_app(urllib.parse.unquote(path[len("/_admin/apps/"):])))
            if path == "/_admin/tokens" and verb == "POST":
                return _json_response(sandbox.add_token(data))
            if path == "/_admin/orders" and verb == "POST":
                return _json_response(sandbox.create_order(data))
            if path == "/_admin/stats" and verb == "GET":
                return _json_response(sandbox.stats(query.get("app_key")))
            if path == "/_admin/stats/reset" and verb == "POST":
                return _json_response(sandbox.reset_stats(query.get("app_key") or data.get("app_key")))
            if path == "/_admin/clock":
                if verb == "GET":
                    return _json_response(sandbox.clock_json())
                if verb == "POST":
                    return _json_response(sandbox.set_clock(data))
            if path == "/_admin/reset" and verb == "POST":
                return _json_response(sandbox.reset())
            placement = sandbox.placement_admin(verb, path, data if verb != "GET" else dict(query))
            if placement is not None:
                return _json_response(placement)
            m = _ADMIN_ORDER.match(path)
            if m:
                order_id, sub, mail_no = m.group(1), m.group(2), m.group(3)
                if sub is None and verb == "GET":
                    return _json_response(sandbox.get_order(order_id))
                if sub is None and verb in ("POST", "PATCH"):
                    return _json_response(sandbox.update_order(order_id, data))
                if sub == "ship" and mail_no is None and verb == "POST":
                    return _json_response(sandbox.ship_order(order_id, data))
                if sub == "packages" and verb in ("POST", "PATCH"):
                    if mail_no is None:
                        return _json_response(sandbox.add_package(order_id, data))
                    return _json_response(sandbox.update_package(order_id, urllib.parse.unquote(mail_no), data))
            return _json_response({"error": f"no admin route {verb} {path}"}, 404)
        except AdminError as exc:
            return _json_response({"error": exc.msg}, exc.status)


class _BadRequest(Exception):
    pass


class _LostAnswer(Exception):
    """order.create did its work, and the answer is lost on the way (a fault): this response goes out instead."""

    def __init__(self, response: "Response"):
        super().__init__("answer lost")
        self.response = response


def _cpf_is_valid(cpf: str) -> bool:
    """Brazil's CPF: 11 digits, not all equal, with both check digits right."""
    if len(cpf) != 11 or not cpf.isdigit() or len(set(cpf)) == 1:
        return False
    digits = [int(c) for c in cpf]
    for n in (9, 10):
        total = sum(d * w for d, w in zip(digits[:n], range(n + 1, 1, -1)))
        if (total * 10 % 11) % 10 != digits[n]:
            return False
    return True


DEFAULT_FREIGHT = (
    {"code": "CAINIAO_STANDARD", "company": "AliExpress Standard Shipping", "fee": "2.35", "min_days": 12, "max_days": 25},
    {"code": "CAINIAO_FULFILLMENT_STD", "company": "AliExpress Selection Standard", "fee": "4.10", "min_days": 7,
     "max_days": 15},
    {"code": "EMS", "company": "EMS", "fee": "19.99", "min_days": 5, "max_days": 10},
)

# A catalog with several sellers, seeded on every reset (tests add more through POST /_admin/products).
DEFAULT_CATALOG = (
    {"product_id": 1005006123456789, "title": "Steel bottle 500ml", "store_id": 1102233445, "store_name": "Example Store",
     "skus": [
         {"sku_id": "12000037000000001", "sku_attr": "14:175#Silver", "price": "7.50", "stock": 100000,
          "properties": [{"name": "Color", "value": "Silver"}]},
         {"sku_id": "12000037000000003", "sku_attr": "14:193#Black", "price": "7.50", "stock": 100000,
          "properties": [{"name": "Color", "value": "Black"}]}]},
    {"product_id": 1005006987654321, "title": "Bottle brush", "store_id": 1102233445, "store_name": "Example Store",
     "skus": [{"sku_id": "12000038000000002", "sku_attr": "", "price": "2.19", "stock": 100000, "properties": []}]},
    {"product_id": 1005007111111111, "title": "Phone case", "store_id": 2203344556, "store_name": "Gadget Hub",
     "skus": [
         {"sku_id": "12000041000000001", "sku_attr": "14:29#Red;5:361386#S", "price": "3.20", "stock": 100000,
          "properties": [{"name": "Color", "value": "Red"}, {"name": "Size", "value": "S"}]},
         {"sku_id": "12000041000000002", "sku_attr": "14:29#Red;5:361385#M", "price": "3.40", "stock": 100000,
          "properties": [{"name": "Color", "value": "Red"}, {"name": "Size", "value": "M"}]}]},
    {"product_id": 1005007222222222, "title": "Desk lamp (sold out)", "store_id": 2203344556, "store_name": "Gadget Hub",
     "skus": [{"sku_id": "12000042000000001", "sku_attr": "", "price": "12.00", "stock": 0, "properties": []}],
     "no_delivery_to": ["BR"]},
)


# --------------------------------------------------------------------------------------------------------------
# A minimal signed client (tests, demo scripts)
# --------------------------------------------------------------------------------------------------------------


class AliExpressClient:
    """Signs and sends calls the way dropsync does: system params in the query, business params in a form body."""

    def __init__(self, base_url: str, app_key: str, app_secret: str, session: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.app_key = app_key
        self.app_secret = app_secret
        self.session = session

    def signed_params(
        self,
        method: str | None,
        business: dict[str, str] | None = None,
        *,
        api_path: str | None = None,
        session: str | None = None,
        timestamp_ms: int | None = None,
    ) -> dict[str, str]:
        params = {
            "app_key": self.app_key,
            "timestamp": str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)),
            "sign_method": "sha256",
        }
        if method is not None:
            params["method"] = method
        sess = session if session is not None else self.session
        if api_path is None and sess:
            params["session"] = sess
        params.update(business or {})
        params["sign"] = compute_sign(self.app_secret, params, api_path)
        return params

    def call(self, method: str, business: dict[str, str] | None = None, **kw: Any) -> tuple[int, Any]:
        params = self.signed_params(method, business, **kw)
        return self.post("/sync", params, business_keys=tuple((business or {}).keys()))

    def rest(self, api_path: str, business: dict[str, str] | None = None, **kw: Any) -> tuple[int, Any]:
        params = self.signed_params(None, business, api_path=api_path, **kw)
        return self.post("/rest" + api_path, params, business_keys=tuple((business or {}).keys()))

    def post(self, path: str, params: dict[str, str], business_keys: tuple[str, ...] = ()) -> tuple[int, Any]:
        query = {k: v for k, v in params.items() if k not in business_keys}
        form = {k: v for k, v in params.items() if k in business_keys}
        return http_request(
            "POST",
            f"{self.base_url}{path}?{urllib.parse.urlencode(query)}",
            urllib.parse.urlencode(form).encode(),
            {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
        )


def http_request(method: str, url: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, Any]:
    """(status, parsed JSON or raw text). Non-2xx statuses are returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


# --------------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dropsync_sandbox.aliexpress", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ready-file", help="write the base URL here once listening")
    parser.add_argument("--seed", type=int, default=0, help="seed for generated ids and tokens")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    return AliExpressSandbox(seed=args.seed).serve(args.host, args.port, args.ready_file, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
