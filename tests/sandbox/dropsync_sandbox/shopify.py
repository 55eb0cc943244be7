"""Sandbox Shopify: Admin GraphQL API + signed webhook sender, for dropsync's tests, `make demo` and benchmarks.

Run:  PYTHONPATH=tests/sandbox python -m dropsync_sandbox.shopify --host 127.0.0.1 --port 0 [--schema PATH]
          [--ready-file PATH]
Prints ``READY http://127.0.0.1:<port>`` once the schema is loaded and the socket listens; stops on SIGTERM/SIGINT.

In-process (Python tests)::

    from dropsync_sandbox.shopify import ShopifySandbox
    with ShopifySandbox() as sb:          # binds 127.0.0.1:<free port>, serves in a background thread
        sb.url                            # "http://127.0.0.1:<port>"
        sb.admin("POST", "/_admin/shops", {...})

See tests/sandbox/README.md, section "Shopify sandbox", for the admin API, the cost formula and the faults.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import graphql
from graphql import OperationType
from graphql.utilities import get_operation_ast

from . import shopify_graphql as sg
from . import shopify_store as st
from .shopify_oauth import OAuth
from .shopify_webhooks import deliver, deliver_detailed, serialize, serialize_order, sign_body, verify_signature

__all__ = [
    "ShopifySandbox",
    "SandboxState",
    "sign_body",
    "serialize",
    "serialize_order",
    "deliver",
    "deliver_detailed",
    "verify_signature",
    "load_schema",
    "DEFAULT_SCHEMA_PATH",
    "main",
]

load_schema = sg.load_schema
DEFAULT_SCHEMA_PATH = sg.DEFAULT_SCHEMA_PATH

UNAUTHORIZED_BODY = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
THROTTLED_ERROR = {
    "message": "Throttled",
    "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"},
}
_GRAPHQL_PATH = re.compile(r"^/admin/api/(\d{4}-\d{2}|unstable)/graphql\.json$")
_ORDER_PATH = re.compile(r"^/_admin/orders/([^/]+)(/update|/fulfill)?$")
_FO_PATH = re.compile(r"^/_admin/fulfillment_orders/([^/]+)/update$")


class Reply:
    """An HTTP answer, or (drop=True) a connection closed without one after ``delay`` seconds."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None,
                 content_type: str = "application/json; charset=utf-8", delay: float = 0.0, drop: bool = False):
        self.status = status
        self.headers = dict(headers or {})
        self.content_type = content_type
        if isinstance(body, (bytes, bytearray)):
            self.body = bytes(body)
        elif isinstance(body, str):
            self.body = body.encode("utf-8")
        elif body is None:
            self.body = b""
        else:
            self.body = json.dumps(body, separators=(",", ":")).encode("utf-8")
        self.delay = delay
        self.drop = drop


def _html_error(status: int) -> bytes:
    title = {502: "502 Bad Gateway", 503: "503 Service Unavailable"}.get(status, f"{status} Error")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>"
            f"<body><h1>{title}</h1><p>There was a problem loading this website. Please try again."
            f"</p><!-- dropsync sandbox fault --></body></html>\n").encode("utf-8")


class SandboxState:
    """All shops plus the GraphQL/admin request logic, independent of the HTTP layer."""

    def __init__(self, schema: graphql.GraphQLSchema | None = None, schema_path: str | None = None):
        self.schema = schema or sg.load_schema(schema_path)
        self.validator = sg.Validator(self.schema)
        self.lock = threading.RLock()
        self.shops: dict[str, st.Shop] = {}
        self.tokens: dict[str, st.Shop] = {}
        self.unauthorized = 0
        self.token_expiry: dict[str, float] = {}
        self.oauth = OAuth(self._register_token)
        self._webhook_queue: "queue.Queue[tuple[st.Shop, str, Any, str] | None]" = queue.Queue()
        self._webhook_thread = threading.Thread(target=self._webhook_worker, name="sandbox-webhooks", daemon=True)
        self._webhook_thread.start()

    # ------------------------------------------------------------------------------------------------------------
    # GraphQL
    # ------------------------------------------------------------------------------------------------------------
    def _register_token(self, token: str, shop: st.Shop, expires_at: float | None) -> None:
        with self.lock:
            self.tokens[token] = shop
            if expires_at is not None:
                self.token_expiry[token] = expires_at

    def expire_tokens(self, shop: st.Shop) -> int:
        """Expires every OAuth/client-credentials token of the shop now (they then get 401)."""
        n = 0
        with self.lock:
            for token, s in self.tokens.items():
                if s is shop and token in self.token_expiry:
                    self.token_expiry[token] = time.time() - 1
                    n += 1
        return n

    def graphql(self, version: str, token: str | None, raw_body: bytes) -> Reply:
        shop = self.tokens.get(token or "")
        expiry = self.token_expiry.get(token or "")
        if expiry is not None and time.time() >= expiry:
            shop = None  # an expired expiring token is refused like an unknown one
        if shop is not None and shop.access_token_expires_at is not None and time.time() >= \
                shop.access_token_expires_at:
            shop = None  # an expired (expiring offline) token is refused like an unknown one
        if shop is None:
            with self.lock:
                self.unauthorized += 1
            return Reply(401, UNAUTHORIZED_BODY)
        version_out = shop.api_version or version
        base_headers = {"X-Shopify-API-Version": version_out, "X-Request-Id": str(uuid.uuid4())}
        faults = shop.faults
        with shop.lock:
            shop.stats["requests"] += 1
            latency = float(faults.get("latency_ms") or 0) / 1000.0
            if shop.roll("server_error"):
                shop.stats["server_errors"] += 1
                status = shop.rng.choice([502, 503])
                return Reply(status, _html_error(status), base_headers, "text/html; charset=utf-8", delay=latency)
            if shop.roll("http_429"):
                shop.stats["http_429"] += 1
                retry = float(faults.get("retry_after") or 1.0)
                return Reply(429, {"errors": [THROTTLED_ERROR]}, {**base_headers, "Retry-After": f"{retry:.1f}"},
                             delay=latency)

        def answer(status: int, body: Any, extra: dict[str, str] | None = None, delay: float | None = None,
                   drop: bool = False) -> Reply:
            return Reply(status, body, {**base_headers, **(extra or {})},
                         delay=latency if delay is None else delay, drop=drop)

        # Request body
        try:
            payload = json.loads(raw_body.decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError):
            payload = None
        query = payload.get("query") if isinstance(payload, dict) else None
        if not isinstance(query, str) or not query.strip():
            return answer(400, {"errors": {"query": "Required parameter missing or invalid"}})
        variables = payload.get("variables")
        if isinstance(variables, str):
            try:
                variables = json.loads(variables) if variables.strip() else None
            except json.JSONDecodeError:
                return answer(400, {"errors": {"variables": "Invalid JSON"}})
        if variables is not None and not isinstance(variables, dict):
            return answer(400, {"errors": {"variables": "must be a JSON object"}})
        op_name = payload.get("operationName") or None

        checked = self.validator.check(query)
        doc_key = op_name or _doc_name(checked.document) or " ".join(query.split())[:40]
        with shop.lock:
            docs = shop.stats["documents"]
            docs[doc_key] = docs.get(doc_key, 0) + 1
        if checked.kind != "ok":
            with shop.lock:
                shop.stats["invalid_documents"] += 1
            return answer(200, {"errors": checked.errors})
        doc = checked.document
        op = get_operation_ast(doc, op_name)
        if op is None:
            with shop.lock:
                shop.stats["invalid_documents"] += 1
            msg = (f"No operation named \"{op_name}\"" if op_name
                   else "An operation name is required when the document contains several operations")
            return answer(200, {"errors": [{"message": msg, "extensions": {"code": "OPERATION_NOT_FOUND"}}]})
        is_mutation = op.operation == OperationType.MUTATION
        cost_vars = sg.variables_with_defaults(self.schema, op, variables)
        calc = sg.CostCalculator(self.schema, doc, cost_vars)
        requested = calc.requested(op)

        with shop.lock:
            shop.stats["requested_cost_total"] += requested
            if requested > shop.max_query_cost:
                shop.stats["max_cost_exceeded"] += 1
                shop.refill()
                return answer(200, {
                    "errors": [{
                        "message": (f"Query cost is {requested}, which exceeds the single query max cost limit "
                                    f"({shop.max_query_cost}). Ask for fewer items (smaller first/last) or use "
                                    "bulk operations."),
                        "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested,
                                       "maxCost": shop.max_query_cost,
                                       "documentation": "https://shopify.dev/api/usage/rate-limits"},
                    }],
                    "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": None,
                                            "throttleStatus": shop.throttle_status()}},
                })
            available = shop.refill()
            forced = shop.roll("throttled")
            if forced or available < requested:
                shop.stats["throttled"] += 1
                body = {"errors": [THROTTLED_ERROR],
                        "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": None,
                                                "throttleStatus": shop.throttle_status()}}}
                if shop.throttle_mode == "429":
                    shop.stats["http_429"] += 1
                    wait = (requested - available) / shop.restore_rate if shop.restore_rate > 0 else 60.0
                    if forced and wait <= 0:
                        wait = float(faults.get("retry_after") or 1.0)
                    wait = max(0.1, math.ceil(wait * 10) / 10)
                    return answer(429, body, {"Retry-After": f"{wait:.1f}"})
                return answer(200, body)
            shop.available -= requested
            ctx = sg.Context(shop)
            result = sg.execute(self.schema, doc, ctx, variables, op_name)
            errors = [self._format_exec_error(e) for e in (result.errors or [])]
            actual = calc.actual(op, result.data) if result.data is not None else 0
            actual = min(actual, requested)
            shop.available = min(shop.bucket_size, shop.available + (requested - actual))
            shop.stats["actual_cost_total"] += actual
            if result.data is None and errors:
                if any(e["extensions"].get("code") == "INVALID_VARIABLE" for e in errors):
                    shop.stats["invalid_variables"] += 1
            else:
                shop.stats["graphql_ok"] += 1
            out: dict[str, Any] = {}
            if errors:
                out["errors"] = errors
            if result.data is not None or not errors:
                out["data"] = result.data
            out["extensions"] = {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual,
                                          "throttleStatus": shop.throttle_status()}}
            timeout = is_mutation and result.data is not None and shop.roll("timeout_after_success")
            if timeout:
                shop.stats["timeouts_after_success"] += 1
            events = list(ctx.events)
        for topic, body_obj in events:
            self.emit(shop, topic, body_obj)
        if timeout:
            sleep = float(faults.get("timeout_ms") or 0) / 1000.0
            if str(faults.get("timeout_mode") or "drop") == "late":
                return answer(200, out, delay=latency + sleep)
            return answer(200, out, delay=latency + sleep, drop=True)
        return answer(200, out)

    @staticmethod
    def _format_exec_error(err: graphql.GraphQLError) -> dict[str, Any]:
        msg = err.message
        if msg.startswith("Variable '$"):
            return sg.format_error(err, "INVALID_VARIABLE")
        code = (err.extensions or {}).get("code")
        if code is None and err.original_error is not None and not isinstance(err.original_error,
                                                                               graphql.GraphQLError):
            code = "INTERNAL_SERVER_ERROR"
        return sg.format_error(err, code or "BAD_REQUEST")

    # ------------------------------------------------------------------------------------------------------------
    # Webhooks
    # ------------------------------------------------------------------------------------------------------------
    def emit(self, shop: st.Shop, topic: str, body_obj: Any) -> None:
        """Queue deliveries of ``topic`` to the shop's matching webhook_subscriptions (asynchronous)."""
        for sub in shop.webhook_subscriptions:
            if sub.get("topic") == topic:
                self._webhook_queue.put((shop, topic, body_obj, sub["target_url"]))

    def _webhook_worker(self) -> None:
        while True:
            item = self._webhook_queue.get()
            if item is None:
                self._webhook_queue.task_done()
                return
            shop, topic, body_obj, url = item
            try:
                res = deliver_detailed(url, shop, topic, body_obj)
            except Exception as exc:  # noqa: BLE001 - never kill the worker
                res = {"status": 0, "body": f"{type(exc).__name__}: {exc}", "topic": topic, "target_url": url}
            res["source"] = "subscription"
            with shop.lock:
                shop.webhook_log.append(res)
            self._webhook_queue.task_done()

    def wait_webhooks_idle(self, timeout: float = 5.0) -> None:
        """Wait until every queued subscription delivery has been made (or ``timeout`` passed)."""
        deadline = time.monotonic() + timeout
        while self._webhook_queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self._webhook_queue.put(None)

    # ------------------------------------------------------------------------------------------------------------
    # Admin API
    # ------------------------------------------------------------------------------------------------------------
    def _shop(self, name: Any) -> st.Shop:
        if not name:
            raise st.SandboxError("missing \"shop\"")
        shop = self.shops.get(str(name))
        if shop is None:
            raise st.SandboxError(f"unknown shop {name!r}; create it with POST /_admin/shops", 404)
        return shop

    def admin(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        try:
            return self._admin(method, path, query, body)
        except st.SandboxError as exc:
            return Reply(exc.status, {"error": str(exc)})
        except (KeyError, TypeError, ValueError) as exc:
            return Reply(400, {"error": f"bad request: {type(exc).__name__}: {exc}"})

    def _admin(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        if body is not None and not isinstance(body, dict):
            raise st.SandboxError("the request body must be a JSON object")
        body = body or {}
        if path == "/_admin/health":
            return Reply(200, {"ok": True})
        if path == "/_admin/validate" and method == "POST":
            return Reply(200, self.validate(body.get("query"), body.get("variables"), body.get("operationName")))
        if path == "/_admin/shops":
            if method == "GET":
                return Reply(200, {"shops": [s.config() for s in self.shops.values()]})
            if method == "POST":
                return Reply(200, {"shop": self.upsert_shop(body)})
        if path == "/_admin/reset" and method == "POST":
            with self.lock:
                self.shops.clear()
                self.tokens.clear()
                self.token_expiry.clear()
                self.oauth.reset()
                self.unauthorized = 0
            return Reply(200, {"ok": True})
        if path == "/_admin/orders" and method == "POST":
            shop = self._shop(body.get("shop"))
            with shop.lock:
                order = shop.create_order(body.get("order"), body.get("fulfillment_orders"))
                rest = order.to_rest()
                fos = order.fo_admin()
            self.emit(shop, "orders/create", rest)
            if str(rest.get("financial_status")) == "paid":
                self.emit(shop, "orders/paid", rest)
            return Reply(200, {"order": rest, "fulfillment_orders": fos})
        m = _ORDER_PATH.match(path)
        if m:
            shop = self._shop(body.get("shop") or query.get("shop"))
            action = m.group(2)
            with shop.lock:
                order = shop.get_order(urllib.parse.unquote(m.group(1)))
                if method == "GET" and action is None:
                    return Reply(200, shop.order_admin(order))
                if method == "POST" and action == "/update":
                    changes = {k: v for k, v in body.items() if k != "shop"}
                    topics = shop.update_order(order, changes)
                    rest = order.to_rest()
                    for topic in topics:
                        self.emit(shop, topic, rest)
                    return Reply(200, {"order": rest, "fulfillment_orders": order.fo_admin()})
                if method == "POST" and action == "/fulfill":
                    created = shop.merchant_fulfill(order, body)
                    shop.stats["merchant_fulfillments"] += len(created)
                    rest = order.to_rest()
                    for f in created:
                        self.emit(shop, "fulfillments/create", f.to_rest(shop.utc_offset_minutes))
                    self.emit(shop, "orders/updated", rest)
                    fstatus = order.rest_fulfillment_status()
                    if fstatus == "fulfilled":
                        self.emit(shop, "orders/fulfilled", rest)
                    elif fstatus == "partial":
                        self.emit(shop, "orders/partially_fulfilled", rest)
                    return Reply(200, {"fulfillments": [f.to_admin() for f in created], "order": rest,
                                       "fulfillment_orders": order.fo_admin()})
        m = _FO_PATH.match(path)
        if m and method == "POST":
            shop = self._shop(body.get("shop"))
            with shop.lock:
                fo = self._admin_update_fo(shop, urllib.parse.unquote(m.group(1)), body)
                return Reply(200, {"fulfillment_orders": fo.order.fo_admin(), "order": fo.order.to_rest()})
        if path == "/_admin/stats":
            if method == "GET":
                return Reply(200, self.stats(query.get("shop")))
        if path == "/_admin/stats/reset" and method == "POST":
            name = query.get("shop") or body.get("shop")
            targets = [self._shop(name)] if name else list(self.shops.values())
            for shop in targets:
                with shop.lock:
                    shop.stats = json.loads(json.dumps(st.EMPTY_STATS))
            if not name:
                self.unauthorized = 0
            return Reply(200, {"ok": True})
        if path == "/_admin/oauth/app" and method == "POST":
            return Reply(200, self.oauth.configure_app(body))
        if path == "/_admin/oauth/revoke" and method == "POST":
            self.oauth.revoke(self._shop(body.get("shop")).domain, str(body.get("mode", "400")))
            return Reply(200, {"ok": True})
        if path == "/_admin/oauth/expire" and method == "POST":
            return Reply(200, {"expired": self.expire_tokens(self._shop(body.get("shop")))})
        if path == "/_admin/oauth/client_credentials" and method == "POST":
            self.oauth.refuse_client_credentials(self._shop(body.get("shop")).domain, body.get("refuse"))
            return Reply(200, {"ok": True})
        if path == "/_admin/oauth/stats" and method == "GET":
            return Reply(200, self.oauth.stats_for(query.get("shop")))
        if path == "/_admin/webhooks/subscriptions" and method == "POST":
            # Simulates Shopify deleting a subscription (e.g. after repeated delivery failures).
            shop = self._shop(body.get("shop"))
            with shop.lock:
                before = len(shop.webhook_subscriptions)
                shop.webhook_subscriptions = [x for x in shop.webhook_subscriptions
                                              if x.get("topic") != body.get("delete_topic")]
                return Reply(200, {"deleted": before - len(shop.webhook_subscriptions)})
        if path == "/_admin/webhooks/deliver" and method == "POST":
            return Reply(200, self.deliver_admin(body))
        if path == "/_admin/webhooks/log" and method == "GET":
            shop = self._shop(query.get("shop"))
            self.wait_webhooks_idle()
            with shop.lock:
                return Reply(200, {"deliveries": list(shop.webhook_log)})
        raise st.SandboxError(f"no admin endpoint {method} {path}", 404)

    def upsert_shop(self, cfg: dict[str, Any]) -> dict[str, Any]:
        domain = cfg.get("shop")
        if not isinstance(domain, str) or not domain:
            raise st.SandboxError("\"shop\" (e.g. \"a.myshopify.com\") is required")
        with self.lock:
            shop = self.shops.get(domain)
            created = shop is None
            if created:
                if not cfg.get("access_token"):
                    raise st.SandboxError("\"access_token\" is required when creating a shop")
                shop = st.Shop(domain)
            old_token = shop.access_token
            with shop.lock:
                shop.configure(cfg)
            if created:
                self.shops[domain] = shop
            if old_token and old_token != shop.access_token and self.tokens.get(old_token) is shop:
                del self.tokens[old_token]
            if shop.access_token:
                self.tokens[shop.access_token] = shop
            return shop.config()

    def _admin_update_fo(self, shop: st.Shop, raw: str, body: dict[str, Any]) -> st.FulfillmentOrder:
        fid = st.parse_gid(raw, "FulfillmentOrder")
        fo = shop.fos.get(fid) if fid is not None else None
        if fo is None:
            raise st.SandboxError(f"fulfillment order {raw} not found", 404)
        status = body.get("status")
        if status is not None:
            status = str(status).upper()
            if status not in st.FO_STATUSES:
                raise st.SandboxError(f"status must be one of {st.FO_STATUSES}")
            if status == "ON_HOLD":
                reason_in = body.get("hold_reason") or "OTHER"
                reason = str(reason_in).upper()
                notes = body.get("hold_reason_notes")
                if reason not in st.HOLD_REASONS:
                    notes, reason = notes or str(reason_in), "OTHER"
                if fo.status != "ON_HOLD":
                    fo.status_before_hold = fo.status
                fo.holds.append(st.Hold(reason, notes))
            else:
                fo.holds.clear()
            if status == "SCHEDULED":
                fo.fulfill_at = st.parse_time(body.get("fulfill_at")) or (time.time() + 86400)
            fo.status = status
        if body.get("request_status") is not None:
            fo.request_status = str(body["request_status"]).upper()
        if body.get("fulfillment_service") is not None:
            fo.fulfillment_service = bool(body["fulfillment_service"])
        fo.updated_ts = float(int(time.time()))
        fo.order.bump_updated()
        return fo

    def stats(self, name: str | None) -> dict[str, Any]:
        if name:
            shop = self._shop(name)
            with shop.lock:
                out = json.loads(json.dumps(shop.stats))
                shop.refill()
                out["throttle_status"] = shop.throttle_status()
                return out
        total = json.loads(json.dumps(st.EMPTY_STATS))
        for shop in list(self.shops.values()):
            with shop.lock:
                for k, v in shop.stats.items():
                    if k == "documents":
                        for dk, dv in v.items():
                            total["documents"][dk] = total["documents"].get(dk, 0) + dv
                    else:
                        total[k] += v
        total["unauthorized"] = self.unauthorized
        return total

    def validate(self, query: Any, variables: Any = None, operation_name: Any = None) -> dict[str, Any]:
        if not isinstance(query, str) or not query.strip():
            return {"valid": False, "errors": [{"message": "query is required", "extensions": {"code": "parseError"}}]}
        checked = self.validator.check(query)
        if checked.kind != "ok":
            return {"valid": False, "errors": checked.errors}
        out: dict[str, Any] = {"valid": True, "errors": []}
        op = get_operation_ast(checked.document, operation_name or None)
        if op is not None:
            vars_ = variables if isinstance(variables, dict) else None
            calc = sg.CostCalculator(self.schema, checked.document,
                                     sg.variables_with_defaults(self.schema, op, vars_))
            out["operation"] = op.operation.value
            out["requested_cost"] = calc.requested(op)
        return out

    def deliver_admin(self, body: dict[str, Any]) -> dict[str, Any]:
        shop = self._shop(body.get("shop"))
        topic = body.get("topic")
        target = body.get("target_url")
        if not topic or not target:
            raise st.SandboxError("\"topic\" and \"target_url\" are required")
        if body.get("order_id") is not None:
            with shop.lock:
                payload: Any = shop.get_order(body["order_id"]).to_rest()
        elif "body" in body:
            payload = body["body"]
            if isinstance(payload, str):
                payload = payload.encode("utf-8")  # raw bytes, sent unchanged
        else:
            raise st.SandboxError("give \"order_id\" or \"body\"")
        secret = body.get("secret")
        if secret is None and body.get("use_previous_secret"):
            secret = shop.previous_webhook_secret
            if secret is None:
                raise st.SandboxError("shop has no previous_webhook_secret")
        times = int(body.get("times") or 1)
        if times < 1 or times > 100:
            raise st.SandboxError("times must be 1..100")
        webhook_id = body.get("webhook_id") or str(uuid.uuid4())
        event_id = body.get("event_id") or str(uuid.uuid4())
        deliveries = []
        for i in range(times):
            wid = str(uuid.uuid4()) if (i > 0 and body.get("new_webhook_id_each")) else webhook_id
            res = deliver_detailed(
                target, shop, topic, payload, secret=secret, webhook_id=wid,
                lowercase=bool(body.get("lowercase_headers")), extra_headers=body.get("extra_headers"),
                event_id=event_id, api_version=body.get("api_version"),
                timeout=float(body.get("timeout_s") or 5.0), sign=not body.get("unsigned", False),
            )
            res["source"] = "admin"
            with shop.lock:
                shop.webhook_log.append(res)
            deliveries.append({"status": res["status"], "body": res["body"], "webhook_id": res["webhook_id"],
                               "event_id": res["event_id"], "hmac": res["hmac"],
                               "triggered_at": res["triggered_at"], "duration_ms": res["duration_ms"]})
        return {"deliveries": deliveries}


def _doc_name(doc: graphql.DocumentNode | None) -> str | None:
    if doc is None:
        return None
    for d in doc.definitions:
        if isinstance(d, graphql.OperationDefinitionNode) and d.name:
            return d.name.value
    return None


# ----------------------------------------------------------------------------------------------------------------
# HTTP layer
# ----------------------------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dropsync-sandbox-shopify/1"
    state: SandboxState  # set on the subclass made per server
    quiet = True

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if not self.quiet:
            super().log_message(format, *args)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: Reply) -> None:
        if reply.delay > 0:
            time.sleep(reply.delay)
        if reply.drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _route(self, method: str) -> None:
        try:
            raw = self._read_body() if method == "POST" else b""
            parts = urllib.parse.urlsplit(self.path)
            path = parts.path
            query = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
            m = _GRAPHQL_PATH.match(path)
            if path == "/admin/oauth/authorize" and method == "GET":
                # With a shared base (SHOPIFY_ADMIN_URL) the shop travels as a query parameter.
                status, headers, body = self.state.oauth.authorize(self.state.shops.get(query.get("shop", "")), query)
                reply = Reply(status, body, headers)
            elif path == "/admin/oauth/access_token" and method == "POST":
                ctype = (self.headers.get("Content-Type") or "").lower()
                if "json" in ctype:
                    form = {k: str(v) for k, v in (json.loads(raw or b"{}") or {}).items()}
                else:
                    form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode(), keep_blank_values=True).items()}
                shop = self.state.shops.get(self.headers.get("X-Shopify-Shop-Domain") or "")
                status, body = self.state.oauth.token(shop, form)
                reply = Reply(status, body)
            elif m:
                if method != "POST":
                    reply = Reply(405, {"errors": "Method Not Allowed"}, {"Allow": "POST"})
                else:
                    reply = self.state.graphql(m.group(1), self.headers.get("X-Shopify-Access-Token"), raw)
            elif path.startswith("/_admin/"):
                body = None
                if raw.strip():
                    try:
                        body = json.loads(raw)
                    except json.JSONDecodeError as exc:
                        reply = Reply(400, {"error": f"invalid JSON: {exc}"})
                        self._send(reply)
                        return
                reply = self.state.admin(method, path, query, body)
            else:
                reply = Reply(404, {"errors": "Not Found"})
        except Exception as exc:  # noqa: BLE001 - answer 500 instead of killing the connection
            reply = Reply(500, {"errors": f"sandbox internal error: {type(exc).__name__}: {exc}"})
            if not self.quiet:
                import traceback

                traceback.print_exc()
        self._send(reply)

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_GET(self) -> None:  # noqa: N802
        self._route("GET")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class ShopifySandbox:
    """The sandbox as a library: ``start()`` serves in a background thread, ``stop()`` shuts it down."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, schema_path: str | None = None,
                 schema: graphql.GraphQLSchema | None = None, quiet: bool = True):
        self.state = SandboxState(schema=schema, schema_path=schema_path)
        handler = type("Handler", (_Handler,), {"state": self.state, "quiet": quiet})
        self.httpd = _Server((host, port), handler)
        self.host = host
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    def graphql_url(self, version: str = "2026-10") -> str:
        return f"{self.url}/admin/api/{version}/graphql.json"

    def start(self) -> "ShopifySandbox":
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="sandbox-shopify", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.state.stop()

    def __enter__(self) -> "ShopifySandbox":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # Convenience for Python tests: call the admin API in-process (no HTTP).
    def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        parts = urllib.parse.urlsplit(path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
        reply = self.state.admin(method, parts.path, query, body)
        return reply.status, json.loads(reply.body) if reply.body else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dropsync_sandbox.shopify", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--schema", default=None, help=f"introspection JSON(.gz); default {DEFAULT_SCHEMA_PATH}")
    parser.add_argument("--ready-file", default=None, help="write the base URL here once listening")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    sandbox = ShopifySandbox(args.host, args.port, schema_path=args.schema, quiet=not args.verbose)
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=sandbox.httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(sandbox.url + "\n")
        os.replace(tmp, args.ready_file)
    print(f"READY {sandbox.url}", flush=True)
    try:
        sandbox.serve_forever()
    finally:
        sandbox.httpd.server_close()
        sandbox.state.stop()
    return 0


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip tearing down the 11 MB schema object graph (about a second of garbage collection).
    os._exit(exit_code)
