"""In-memory state of the sandbox Shopify: shops, orders, fulfillment orders (FOs), fulfillments.

Business rules follow Shopify's documented order and fulfillment-order behaviour and are shared by the GraphQL resolvers and the
``/_admin`` endpoints (a merchant fulfilling by hand obeys the same FO rules as the API).
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import random
import re
import threading
import time
import urllib.parse
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

# --------------------------------------------------------------------------------------------------------------
# Ids and times
# --------------------------------------------------------------------------------------------------------------

# Generated numeric ids start above 2^53 (f64 can't hold them exactly; consecutive ids even collapse to the same
# f64), so a client that parses ids as floating point numbers breaks visibly.
_ID_START = 1_000_000_000_000_000_001
_id_counter = itertools.count(_ID_START)
_id_lock = threading.Lock()
_used_ids: set[int] = set()


def new_id() -> int:
    with _id_lock:
        while True:
            n = next(_id_counter)
            if n not in _used_ids:
                _used_ids.add(n)
                return n


def claim_id(n: int) -> int:
    with _id_lock:
        _used_ids.add(n)
    return n


def gid(kind: str, n: int | str) -> str:
    return f"gid://shopify/{kind}/{n}"


_GID_RE = re.compile(r"^gid://shopify/([A-Za-z]+)/(\d+)(?:\?.*)?$")


def parse_gid(value: Any, kind: str | None = None) -> int | None:
    """GID (or bare number) -> numeric id; None when malformed or of another kind."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    m = _GID_RE.match(value)
    if not m:
        return None
    if kind is not None and m.group(1) != kind:
        return None
    return int(m.group(2))


def gid_kind(value: Any) -> str | None:
    m = _GID_RE.match(value) if isinstance(value, str) else None
    return m.group(1) if m else None


def iso_rest(ts: float, offset_minutes: int) -> str:
    """REST style: seconds precision, shop's UTC offset, e.g. 2026-10-31T19:00:00-05:00."""
    tz = dt.timezone(dt.timedelta(minutes=offset_minutes))
    return dt.datetime.fromtimestamp(int(ts), tz).isoformat(timespec="seconds")


def iso_utc(ts: float | None) -> str | None:
    """GraphQL DateTime style: UTC with Z, e.g. 2026-11-01T00:00:00Z."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(int(ts), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any, default_offset_minutes: int = 0) -> float | None:
    """ISO-8601 (with Z / offset / none, or a bare date) or epoch number -> epoch seconds."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if not text:
        return None
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    # Python 3.11 fromisoformat handles fractions of any length and offsets.
    try:
        d = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone(dt.timedelta(minutes=default_offset_minutes)))
    return d.timestamp()


def money(value: Any, default: str = "0.00") -> str:
    if value is None:
        return default
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return f"{d.quantize(Decimal('0.01'))}"


class SandboxError(Exception):
    """Bad admin request (HTTP 4xx)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------------------

FO_STATUSES = ("OPEN", "IN_PROGRESS", "SCHEDULED", "ON_HOLD", "INCOMPLETE", "CANCELLED", "CLOSED")
HOLD_REASONS = (
    "AWAITING_PAYMENT",
    "AWAITING_RETURN_ITEMS",
    "HIGH_RISK_OF_FRAUD",
    "INCORRECT_ADDRESS",
    "INVENTORY_OUT_OF_STOCK",
    "ONLINE_STORE_POST_PURCHASE_CROSS_SELL",
    "OTHER",
    "UNKNOWN_DELIVERY_DATE",
)


class FOLine:
    def __init__(self, line_item_id: int, quantity: int, id_: int | None = None):
        self.id = id_ if id_ is not None else new_id()
        self.line_item_id = line_item_id
        self.total = quantity
        self.remaining = quantity


class Hold:
    def __init__(self, reason: str, notes: str | None = None, handle: str | None = None):
        self.id = new_id()
        self.reason = reason
        self.notes = notes
        self.handle = handle


class FulfillmentOrder:
    def __init__(self, order: "Order", status: str, location: str, fulfillment_service: bool, lines: list[FOLine]):
        self.id = new_id()
        self.order = order
        self.status = status
        self.request_status = "UNSUBMITTED"
        self.location = location
        self.location_id = _location_id(location)
        self.fulfillment_service = fulfillment_service
        self.lines = lines
        self.holds: list[Hold] = []
        self.status_before_hold = "OPEN"
        self.created_ts = order.created_ts
        self.updated_ts = order.created_ts
        self.fulfill_at: float | None = None

    @property
    def gid(self) -> str:
        return gid("FulfillmentOrder", self.id)

    def remaining_total(self) -> int:
        return sum(line.remaining for line in self.lines)

    def fulfilled_any(self) -> bool:
        return any(line.remaining < line.total for line in self.lines)

    def supported_actions(self) -> list[str]:
        """Actions an app with merchant-managed scopes may take, consistent with the FO's state."""
        s = self.status
        if self.fulfillment_service:
            if s == "OPEN" and self.request_status in ("UNSUBMITTED", "REJECTED"):
                return ["REQUEST_FULFILLMENT", "HOLD", "MOVE"]
            if s == "IN_PROGRESS" and self.request_status in ("SUBMITTED", "ACCEPTED"):
                return ["REQUEST_CANCELLATION"]
            if s == "ON_HOLD":
                return ["RELEASE_HOLD", "HOLD"]
            if s == "SCHEDULED":
                return ["MARK_AS_OPEN"]
            return []
        if s == "OPEN":
            actions = ["CREATE_FULFILLMENT", "REPORT_PROGRESS", "MOVE", "HOLD"]
            if self.remaining_total() > 1:
                actions.append("SPLIT")
            return actions
        if s == "IN_PROGRESS":
            actions = ["CREATE_FULFILLMENT", "HOLD"]
            if self.remaining_total() > 1:
                actions.append("SPLIT")
            return actions
        if s == "ON_HOLD":
            return ["RELEASE_HOLD", "HOLD", "MOVE"]
        if s == "SCHEDULED":
            return ["MARK_AS_OPEN"]
        return []

    def can_create_fulfillment(self) -> bool:
        return "CREATE_FULFILLMENT" in self.supported_actions()


class Fulfillment:
    def __init__(self, order: "Order", fos: list[FulfillmentOrder], lines: list[tuple[FOLine, int]],
                 tracking: list[dict[str, Any]], notify: bool, created_by: str, message: str | None, ts: float):
        self.id = new_id()
        self.order = order
        self.fos = fos
        self.lines = [(new_id(), fol, qty) for fol, qty in lines]  # (FulfillmentLineItem id, FO line, qty)
        self.tracking = tracking
        self.notify_customer = notify
        self.created_by = created_by
        self.message = message
        self.status = "SUCCESS"
        self.created_ts = ts
        self.updated_ts = ts
        self.location = fos[0].location if fos else "Main"
        self.location_id = fos[0].location_id if fos else _location_id("Main")
        self.name = f"{order.data.get('name', '#?')}.{len(order.fulfillments) + 1}"

    @property
    def gid(self) -> str:
        return gid("Fulfillment", self.id)

    def to_admin(self) -> dict[str, Any]:
        first = self.tracking[0] if self.tracking else {}
        return {
            "id": self.gid,
            "legacy_id": str(self.id),
            "status": self.status,
            "tracking": {"company": first.get("company"), "number": first.get("number"), "url": first.get("url")},
            "tracking_info": copy.deepcopy(self.tracking),
            "line_items": [{"line_item_id": str(fol.line_item_id), "quantity": q} for _, fol, q in self.lines],
            "fulfillment_order_ids": [fo.gid for fo in self.fos],
            "notify_customer": self.notify_customer,
            "created_by": self.created_by,
            "message": self.message,
            "created_at": iso_utc(self.created_ts),
            "updated_at": iso_utc(self.updated_ts),
        }

    def to_rest(self, offset: int) -> dict[str, Any]:
        numbers = [t.get("number") for t in self.tracking if t.get("number")]
        urls = [t.get("url") for t in self.tracking if t.get("url")]
        first = self.tracking[0] if self.tracking else {}
        li_by_id = {li["id"]: li for li in self.order.data["line_items"]}
        items = []
        for _, fol, q in self.lines:
            li = copy.deepcopy(li_by_id.get(fol.line_item_id, {"id": fol.line_item_id}))
            li["quantity"] = q
            items.append(li)
        return {
            "id": self.id,
            "admin_graphql_api_id": self.gid,
            "order_id": self.order.id,
            "name": self.name,
            "status": "success" if self.status == "SUCCESS" else self.status.lower(),
            "created_at": iso_rest(self.created_ts, offset),
            "updated_at": iso_rest(self.updated_ts, offset),
            "service": "manual",
            "location_id": self.location_id,
            "shipment_status": None,
            "tracking_company": first.get("company"),
            "tracking_number": numbers[0] if numbers else None,
            "tracking_numbers": numbers,
            "tracking_url": urls[0] if urls else None,
            "tracking_urls": urls,
            "line_items": items,
            "notify_customer": self.notify_customer,
        }


def _location_id(name: str) -> int:
    """Stable numeric id per location name within one sandbox run."""
    with _location_lock:
        if name not in _LOCATION_IDS:
            _LOCATION_IDS[name] = new_id()
        return _LOCATION_IDS[name]


_LOCATION_IDS: dict[str, int] = {}
_location_lock = threading.Lock()


class Order:
    def __init__(self, shop: "Shop", data: dict[str, Any], created_ts: float):
        self.shop = shop
        self.data = data
        self.id: int = data["id"]
        self.created_ts = created_ts
        self.updated_ts = created_ts
        self.created_mono = time.monotonic()
        self.fo_visible_at = self.created_mono + shop.fo_delay_ms / 1000.0
        self.fos: list[FulfillmentOrder] = []
        self.fulfillments: list[Fulfillment] = []
        self.emails_sent = 0
        self.emails: list[dict[str, Any]] = []

    @property
    def gid(self) -> str:
        return gid("Order", self.id)

    def bump_updated(self) -> None:
        """updated_at moves forward by at least one second (REST timestamps have seconds precision)."""
        self.updated_ts = max(float(int(time.time())), self.updated_ts + 1)

    def visible_fos(self) -> list[FulfillmentOrder]:
        """FOs an API client sees: none before the routing delay, and only the families its scopes allow."""
        if time.monotonic() < self.fo_visible_at:
            return []
        return [fo for fo in self.fos if self.shop.fo_readable(fo)]

    def fulfilled_qty(self, line_item_id: int) -> int:
        n = 0
        for f in self.fulfillments:
            if f.status == "SUCCESS":
                n += sum(q for _, fol, q in f.lines if fol.line_item_id == line_item_id)
        return n

    def is_cancelled(self) -> bool:
        return bool(self.data.get("cancelled_at"))

    def rest_fulfillment_status(self) -> str | None:
        total = sum(int(li.get("quantity") or 0) for li in self.data["line_items"])
        done = sum(self.fulfilled_qty(li["id"]) for li in self.data["line_items"])
        if done <= 0:
            return None
        if done >= total:
            return "fulfilled"
        return "partial"

    def display_fulfillment_status(self) -> str:
        rest = self.rest_fulfillment_status()
        if rest == "fulfilled":
            return "FULFILLED"
        if rest == "partial":
            return "PARTIALLY_FULFILLED"
        live = [fo for fo in self.fos if fo.status not in ("CLOSED", "CANCELLED")]
        if any(fo.status == "ON_HOLD" for fo in live):
            return "ON_HOLD"
        if live and all(fo.status == "SCHEDULED" for fo in live):
            return "SCHEDULED"
        return "UNFULFILLED"

    def display_financial_status(self) -> str | None:
        fs = self.data.get("financial_status")
        if not fs:
            return None
        up = str(fs).upper()
        return up if up in ("AUTHORIZED", "EXPIRED", "PAID", "PARTIALLY_PAID", "PARTIALLY_REFUNDED", "PENDING",
                            "REFUNDED", "VOIDED") else None

    def to_rest(self) -> dict[str, Any]:
        off = self.shop.utc_offset_minutes
        out = copy.deepcopy(self.data)
        out["updated_at"] = iso_rest(self.updated_ts, off)
        out["fulfillment_status"] = self.rest_fulfillment_status()
        for li in out["line_items"]:
            qty = int(li.get("current_quantity", li.get("quantity")) or 0)
            done = self.fulfilled_qty(li["id"])
            li["fulfillable_quantity"] = 0 if self.is_cancelled() else max(0, qty - done)
            li["fulfillment_status"] = None if done <= 0 else ("fulfilled" if done >= qty else "partial")
        out["fulfillments"] = [f.to_rest(off) for f in self.fulfillments]
        return out

    def fo_admin(self) -> list[dict[str, Any]]:
        return [
            {
                "id": fo.gid,
                "status": fo.status,
                "request_status": fo.request_status,
                "location": fo.location,
                "fulfillment_service": fo.fulfillment_service,
                "supported_actions": fo.supported_actions(),
                "holds": [{"id": gid("FulfillmentHold", h.id), "reason": h.reason, "reason_notes": h.notes}
                          for h in fo.holds],
                "line_items": [
                    {"id": gid("FulfillmentOrderLineItem", line.id), "line_item_id": str(line.line_item_id),
                     "total_quantity": line.total, "remaining_quantity": line.remaining}
                    for line in fo.lines
                ],
            }
            for fo in self.fos
        ]


DEFAULT_FAULTS = {
    "throttled": 0.0,
    "http_429": 0.0,
    "server_error": 0.0,
    "timeout_after_success": 0.0,
    "timeout_ms": 3000,
    "timeout_mode": "drop",  # "drop": close the connection after the sleep; "late": answer after the sleep
    "latency_ms": 0,
    "retry_after": 1.0,  # Retry-After (seconds) sent with the http_429 fault
}

EMPTY_STATS = {
    "requests": 0,
    "graphql_ok": 0,
    "throttled": 0,
    "http_429": 0,
    "server_errors": 0,
    "invalid_documents": 0,
    "invalid_variables": 0,
    "max_cost_exceeded": 0,
    "timeouts_after_success": 0,
    "fulfillments_created": 0,
    "merchant_fulfillments": 0,
    "tracking_updates": 0,
    "requested_cost_total": 0,
    "actual_cost_total": 0,
    "user_errors": 0,
    "documents": {},
}


class Shop:
    def __init__(self, domain: str):
        self.domain = domain
        self.lock = threading.RLock()
        self.access_token: str | None = None
        self.webhook_secret = "shpss_sandbox_secret"
        self.previous_webhook_secret: str | None = None
        self.bucket_size = 1000.0
        self.restore_rate = 100.0
        self.throttle_mode = "200"
        self.max_query_cost = 1000
        self.faults = dict(DEFAULT_FAULTS)
        self.fo_delay_ms = 0
        self.seed = 1
        self.rng = random.Random(1)
        self.api_version: str | None = None  # when set, reported instead of the requested version (fall forward)
        self.scopes: set[str] | None = None  # None = all scopes granted
        self.access_token_expires_at: float | None = None  # epoch seconds; afterwards the token gets 401
        self.utc_offset_minutes = -300
        self.webhook_subscriptions: list[dict[str, str]] = []
        self.orders: dict[int, Order] = {}
        self.line_items: dict[int, Order] = {}
        self.fos: dict[int, FulfillmentOrder] = {}
        self.fo_lines: dict[int, FulfillmentOrder] = {}
        self.fulfillments: dict[int, Fulfillment] = {}
        self.available = self.bucket_size
        self.bucket_ts = time.monotonic()
        self.stats: dict[str, Any] = copy.deepcopy(EMPTY_STATS)
        self.webhook_log: list[dict[str, Any]] = []
        self.order_counter = 1000

    def _next_subscription_gid(self) -> str:
        self._subscription_counter = getattr(self, "_subscription_counter", 0) + 1
        return gid("WebhookSubscription", self._subscription_counter)

    def add_webhook_subscription(self, topic: str, uri: str) -> dict[str, str]:
        sub = {"id": self._next_subscription_gid(), "topic": topic, "target_url": uri}
        self.webhook_subscriptions.append(sub)
        return sub

    # ---- configuration --------------------------------------------------------------------------------------
    def configure(self, cfg: dict[str, Any]) -> None:
        if "access_token" in cfg:
            self.access_token = cfg["access_token"]
        if cfg.get("webhook_secret") is not None:
            self.webhook_secret = cfg["webhook_secret"]
        if "previous_webhook_secret" in cfg:
            self.previous_webhook_secret = cfg["previous_webhook_secret"]
        if cfg.get("bucket_size") is not None:
            self.bucket_size = float(cfg["bucket_size"])
        if cfg.get("restore_rate") is not None:
            self.restore_rate = float(cfg["restore_rate"])
        if cfg.get("throttle_mode") is not None:
            mode = str(cfg["throttle_mode"])
            if mode not in ("200", "429"):
                raise SandboxError("throttle_mode must be \"200\" or \"429\"")
            self.throttle_mode = mode
        if cfg.get("max_query_cost") is not None:
            self.max_query_cost = int(cfg["max_query_cost"])
        if cfg.get("faults") is not None:
            faults = dict(DEFAULT_FAULTS)
            for k, v in cfg["faults"].items():
                if k not in DEFAULT_FAULTS:
                    raise SandboxError(f"unknown fault {k!r}; known: {sorted(DEFAULT_FAULTS)}")
                faults[k] = v
            self.faults = faults
        if cfg.get("fo_delay_ms") is not None:
            self.fo_delay_ms = int(cfg["fo_delay_ms"])
        if cfg.get("seed") is not None:
            self.seed = int(cfg["seed"])
        # Every upsert re-seeds the fault dice, so a test's fault sequence is reproducible.
        self.rng = random.Random(self.seed)
        if "api_version" in cfg:
            self.api_version = cfg["api_version"]
        if "scopes" in cfg:
            scopes = cfg["scopes"]
            if isinstance(scopes, str):
                scopes = [x.strip() for x in scopes.split(",") if x.strip()]
            self.scopes = None if scopes is None else set(scopes)
        if "access_token_expires_at" in cfg:
            self.access_token_expires_at = parse_time(cfg["access_token_expires_at"])
        elif "access_token" in cfg:
            self.access_token_expires_at = None
        if cfg.get("utc_offset_minutes") is not None:
            self.utc_offset_minutes = int(cfg["utc_offset_minutes"])
        if cfg.get("webhook_subscriptions") is not None:
            subs = cfg["webhook_subscriptions"]
            for s in subs:
                if not s.get("topic") or not s.get("target_url"):
                    raise SandboxError("webhook_subscriptions entries need topic and target_url")
            self.webhook_subscriptions = [dict(s) for s in subs]
            for sub in self.webhook_subscriptions:
                sub.setdefault("id", self._next_subscription_gid())
        # A (re)configured bucket starts full.
        self.available = self.bucket_size
        self.bucket_ts = time.monotonic()

    def config(self) -> dict[str, Any]:
        return {
            "shop": self.domain,
            "access_token": self.access_token,
            "webhook_secret": self.webhook_secret,
            "previous_webhook_secret": self.previous_webhook_secret,
            "bucket_size": self.bucket_size,
            "restore_rate": self.restore_rate,
            "throttle_mode": self.throttle_mode,
            "max_query_cost": self.max_query_cost,
            "faults": dict(self.faults),
            "fo_delay_ms": self.fo_delay_ms,
            "seed": self.seed,
            "api_version": self.api_version,
            "scopes": None if self.scopes is None else sorted(self.scopes),
            "access_token_expires_at": iso_utc(self.access_token_expires_at),
            "utc_offset_minutes": self.utc_offset_minutes,
            "webhook_subscriptions": list(self.webhook_subscriptions),
        }

    def roll(self, fault: str) -> bool:
        p = float(self.faults.get(fault) or 0.0)
        if p <= 0:
            return False
        return self.rng.random() < p

    # ---- leaky bucket ---------------------------------------------------------------------------------------
    def refill(self) -> float:
        now = time.monotonic()
        self.available = min(self.bucket_size, self.available + (now - self.bucket_ts) * self.restore_rate)
        self.bucket_ts = now
        return self.available

    def throttle_status(self) -> dict[str, Any]:
        # Shopify sends maximumAvailable/restoreRate as floats and currentlyAvailable as an integer.
        return {
            "maximumAvailable": float(self.bucket_size),
            "currentlyAvailable": int(self.available),
            "restoreRate": float(self.restore_rate),
        }

    # ---- orders ---------------------------------------------------------------------------------------------
    def create_order(self, order_in: dict[str, Any], fos_in: list[dict[str, Any]] | None) -> Order:
        if not isinstance(order_in, dict):
            raise SandboxError("order must be an object")
        data = copy.deepcopy(order_in)
        oid = data.get("id")
        if oid is None:
            oid = new_id()
        else:
            oid = parse_gid(oid, "Order")
            if oid is None:
                raise SandboxError("order.id must be an integer")
            if oid in self.orders:
                raise SandboxError(f"order {oid} already exists in shop {self.domain}", 409)
            claim_id(oid)
        now = float(int(time.time()))
        created_ts = parse_time(data.get("created_at"), self.utc_offset_minutes) or now
        off = self.utc_offset_minutes
        self.order_counter += 1
        data["id"] = oid
        data["admin_graphql_api_id"] = gid("Order", oid)
        data.setdefault("name", f"#{self.order_counter}")
        if "order_number" not in data:
            digits = re.sub(r"\D", "", str(data["name"]))
            data["order_number"] = int(digits) if digits else self.order_counter
        data.setdefault("number", data["order_number"] - 1000 if data["order_number"] > 1000 else data["order_number"])
        data.setdefault("email", "customer@example.com")
        data.setdefault("contact_email", data.get("email"))
        data.setdefault("phone", None)
        data["created_at"] = iso_rest(created_ts, off)
        data.setdefault("processed_at", data["created_at"])
        data.setdefault("cancelled_at", None)
        data.setdefault("cancel_reason", None)
        data.setdefault("closed_at", None)
        data.setdefault("confirmed", True)
        data.setdefault("financial_status", "paid")
        data.setdefault("test", False)
        data.setdefault("currency", "USD")
        data.setdefault("presentment_currency", data["currency"])
        data.setdefault("tags", "")
        data.setdefault("note", None)
        data.setdefault("note_attributes", [])
        data.setdefault("source_name", "web")
        data.setdefault("customer", {
            "id": new_id(), "email": data.get("email"), "first_name": "Sandbox", "last_name": "Customer",
            "phone": None,
        })
        if isinstance(data.get("customer"), dict):
            cust = data["customer"]
            if cust.get("id") is None:
                cust["id"] = new_id()
            cust.setdefault("admin_graphql_api_id", gid("Customer", cust["id"]))
        data.setdefault("shipping_address", {
            "first_name": "Sandbox", "last_name": "Customer", "name": "Sandbox Customer", "company": None,
            "address1": "1 Test Street", "address2": None, "city": "Ottawa", "province": "Ontario",
            "province_code": "ON", "zip": "K2P 1L4", "country": "Canada", "country_code": "CA",
            "phone": None, "latitude": None, "longitude": None,
        })
        data.setdefault("billing_address", copy.deepcopy(data["shipping_address"]))
        for key in ("refunds", "shipping_lines", "discount_codes", "tax_lines", "discount_applications"):
            data.setdefault(key, [])
        items = data.get("line_items")
        if not isinstance(items, list) or not items:
            raise SandboxError("order.line_items must be a non-empty list")
        seen: set[int] = set()
        subtotal = Decimal("0")
        for i, li in enumerate(items):
            if not isinstance(li, dict):
                raise SandboxError(f"line_items[{i}] must be an object")
            lid = li.get("id")
            if lid is None:
                lid = new_id()
            else:
                lid = parse_gid(lid, "LineItem")
                if lid is None:
                    raise SandboxError(f"line_items[{i}].id must be an integer")
                claim_id(lid)
            if lid in seen or lid in self.line_items:
                raise SandboxError(f"line item id {lid} is not unique")
            seen.add(lid)
            li["id"] = lid
            li["admin_graphql_api_id"] = gid("LineItem", lid)
            qty = int(li.get("quantity", 1))
            if qty < 0:
                raise SandboxError(f"line_items[{i}].quantity must be >= 0")
            li["quantity"] = qty
            li.setdefault("current_quantity", qty)
            li.setdefault("sku", f"SKU-{i + 1}")
            li.setdefault("title", f"Sandbox product {i + 1}")
            li.setdefault("name", li["title"])
            li.setdefault("variant_title", None)
            li.setdefault("vendor", None)
            li.setdefault("product_id", new_id())
            li.setdefault("variant_id", new_id())
            li["price"] = money(li.get("price"), "10.00")
            li.setdefault("price_set", {
                "shop_money": {"amount": li["price"], "currency_code": data["currency"]},
                "presentment_money": {"amount": li["price"], "currency_code": data["presentment_currency"]},
            })
            li.setdefault("fulfillment_service", "manual")
            li.setdefault("requires_shipping", True)
            li.setdefault("gift_card", False)
            li.setdefault("taxable", True)
            li.setdefault("grams", 0)
            for key in ("properties", "tax_lines", "discount_allocations", "duties"):
                li.setdefault(key, [])
            li.setdefault("total_discount", "0.00")
            subtotal += Decimal(li["price"]) * qty
        for key in ("total_price", "subtotal_price", "total_line_items_price", "total_tax", "total_discounts"):
            if key in data:
                data[key] = money(data[key])
        data.setdefault("total_line_items_price", money(subtotal))
        data.setdefault("subtotal_price", money(subtotal))
        data.setdefault("total_tax", "0.00")
        data.setdefault("total_discounts", "0.00")
        data.setdefault("total_price", money(Decimal(data["subtotal_price"]) + Decimal(data["total_tax"])))
        data.setdefault("current_total_price", data["total_price"])
        cur = data["currency"]
        pcur = data["presentment_currency"]
        for key in ("total_price", "subtotal_price", "total_tax", "total_discounts", "current_total_price"):
            data.setdefault(f"{key}_set", {"shop_money": {"amount": data[key], "currency_code": cur},
                                           "presentment_money": {"amount": data[key], "currency_code": pcur}})
        data.pop("fulfillments", None)
        data.pop("updated_at", None)
        data.pop("fulfillment_status", None)
        # Key order like Shopify's payloads: ids first (cosmetic, makes dumps readable).
        data["line_items"] = [_ids_first(li) for li in items]
        items = data["line_items"]
        data = _ids_first(data)

        order = Order(self, data, created_ts)
        # FOs
        li_by_id = {li["id"]: li for li in items}
        if fos_in is None:  # absent: Shopify's routing makes one FO at the default location ([] = no FOs)
            fos_in = [{"status": "OPEN", "location": "Main", "fulfillment_service": False,
                       "line_items": [{"line_item_id": li["id"], "quantity": li["quantity"]}
                                      for li in items if li["quantity"] > 0]}]
        for j, spec in enumerate(fos_in):
            status = str(spec.get("status", "OPEN")).upper()
            if status not in FO_STATUSES:
                raise SandboxError(f"fulfillment_orders[{j}].status must be one of {FO_STATUSES}")
            lines = []
            spec_lines = spec.get("line_items")
            if spec_lines is None:
                spec_lines = [{"line_item_id": li["id"], "quantity": li["quantity"]} for li in items]
            for k, sl in enumerate(spec_lines):
                lid = parse_gid(sl.get("line_item_id"), "LineItem")
                if lid is None or lid not in li_by_id:
                    raise SandboxError(f"fulfillment_orders[{j}].line_items[{k}].line_item_id is not a line item "
                                       "of this order")
                qty = int(sl.get("quantity", li_by_id[lid]["quantity"]))
                lines.append(FOLine(lid, qty))
            fo = FulfillmentOrder(order, status, str(spec.get("location") or "Main"),
                                  bool(spec.get("fulfillment_service", False)), lines)
            if spec.get("request_status"):
                fo.request_status = str(spec["request_status"]).upper()
            if status == "ON_HOLD":
                reason_in = spec.get("hold_reason") or "OTHER"
                reason = str(reason_in).upper()
                notes = spec.get("hold_reason_notes")
                if reason not in HOLD_REASONS:
                    notes = notes or str(reason_in)
                    reason = "OTHER"
                fo.holds.append(Hold(reason, notes))
            if status == "SCHEDULED":
                fo.fulfill_at = parse_time(spec.get("fulfill_at")) or (created_ts + 86400)
            if status in ("CLOSED", "CANCELLED"):
                pass
            order.fos.append(fo)
        # Check the FO quantities do not exceed the ordered quantities.
        for lid, li in li_by_id.items():
            assigned = sum(line.total for fo in order.fos for line in fo.lines if line.line_item_id == lid)
            if assigned > li["quantity"]:
                raise SandboxError(f"line item {lid}: fulfillment orders hold {assigned} > ordered {li['quantity']}")
        # Commit.
        self.orders[oid] = order
        for lid in li_by_id:
            self.line_items[lid] = order
        for fo in order.fos:
            self.fos[fo.id] = fo
            for line in fo.lines:
                self.fo_lines[line.id] = fo
        return order

    def get_order(self, raw: Any) -> Order:
        oid = parse_gid(raw, "Order")
        if oid is None or oid not in self.orders:
            raise SandboxError(f"order {raw} not found in shop {self.domain}", 404)
        return self.orders[oid]

    def update_order(self, order: Order, changes: dict[str, Any]) -> list[str]:
        """Apply REST-shaped changes. Returns the webhook topics this change would trigger."""
        topics = ["orders/updated"]
        protected = {"id", "admin_graphql_api_id", "line_items", "fulfillments", "updated_at", "created_at",
                     "fulfillment_status", "shop"}
        was_paid = order.data.get("financial_status") == "paid"
        was_cancelled = order.is_cancelled()
        for k, v in changes.items():
            if k in protected:
                continue
            order.data[k] = v
        if "cancelled_at" in changes and changes["cancelled_at"] is True:
            order.data["cancelled_at"] = iso_rest(time.time(), self.utc_offset_minutes)
        if order.is_cancelled() and not was_cancelled:
            order.data.setdefault("cancel_reason", "other")
            if order.data.get("cancel_reason") is None:
                order.data["cancel_reason"] = "other"
            for fo in order.fos:
                if fo.status not in ("CLOSED", "CANCELLED"):
                    fo.status = "CLOSED" if fo.fulfilled_any() else "CANCELLED"
                    fo.holds.clear()
            topics.append("orders/cancelled")
        if order.data.get("financial_status") == "paid" and not was_paid:
            topics.append("orders/paid")
        order.bump_updated()
        return topics

    # ---- fulfillment rules ----------------------------------------------------------------------------------
    def create_fulfillment(
        self,
        entries: list[dict[str, Any]],
        tracking_in: dict[str, Any] | None,
        notify: bool,
        created_by: str,
        message: str | None = None,
        field_prefix: tuple[str, ...] = ("fulfillment",),
        visible_only: bool = True,
    ) -> tuple[Fulfillment | None, list[dict[str, Any]]]:
        """Shopify's fulfillmentCreate rules. ``entries`` = [{fulfillmentOrderId, fulfillmentOrderLineItems?}].
        Returns (fulfillment, userErrors); nothing changes when there is any userError."""
        errors: list[dict[str, Any]] = []
        p = list(field_prefix)

        def err(field: list[str], msg: str) -> None:
            errors.append({"field": field, "message": msg})

        if not entries:
            err(p + ["lineItemsByFulfillmentOrder"], "Line items by fulfillment order can't be blank.")
            return None, errors
        if len(entries) > 250:
            err(p + ["lineItemsByFulfillmentOrder"], "Too many fulfillment orders (maximum 250).")
            return None, errors
        plan: list[tuple[FulfillmentOrder, list[tuple[FOLine, int]]]] = []
        seen_fo: set[int] = set()
        total_items = 0
        for i, entry in enumerate(entries):
            fp = p + ["lineItemsByFulfillmentOrder", str(i)]
            raw_fo = entry.get("fulfillmentOrderId")
            fo_id = parse_gid(raw_fo, "FulfillmentOrder")
            fo = self.fos.get(fo_id) if fo_id is not None else None
            if fo is not None and visible_only and (time.monotonic() < fo.order.fo_visible_at
                                                    or not self.fo_readable(fo)):
                fo = None
            if fo is None:
                err(fp + ["fulfillmentOrderId"], f"Fulfillment order {raw_fo} does not exist.")
                continue
            if fo.id in seen_fo:
                err(fp + ["fulfillmentOrderId"], f"Fulfillment order {fo.gid} is listed more than once.")
                continue
            seen_fo.add(fo.id)
            if visible_only and not self.fo_writable(fo):
                err(fp + ["fulfillmentOrderId"], "The api_client does not have the required permission(s).")
                continue
            if fo.fulfillment_service:
                err(fp + ["fulfillmentOrderId"],
                    "The fulfillment order's assigned fulfillment service must be of api type")
                continue
            if not fo.can_create_fulfillment():
                err(fp + ["fulfillmentOrderId"],
                    f"Fulfillment order {fo.id} has an unfulfillable status= {fo.status.lower()}.")
                continue
            items_in = entry.get("fulfillmentOrderLineItems")
            lines: list[tuple[FOLine, int]] = []
            if not items_in:
                lines = [(line, line.remaining) for line in fo.lines if line.remaining > 0]
                if not lines:
                    err(fp, f"Fulfillment order {fo.id} has nothing left to fulfill.")
                    continue
            else:
                wanted: dict[int, int] = {}
                by_id = {line.id: line for line in fo.lines}
                for k, item in enumerate(items_in):
                    ip = fp + ["fulfillmentOrderLineItems", str(k)]
                    lid = parse_gid(item.get("id"), "FulfillmentOrderLineItem")
                    if lid is None or lid not in by_id:
                        err(ip + ["id"], f"Fulfillment order line item {item.get('id')} does not belong to "
                                         f"fulfillment order {fo.gid}.")
                        continue
                    q = item.get("quantity")
                    if not isinstance(q, int) or q <= 0:
                        err(ip + ["quantity"], "Quantity must be greater than 0.")
                        continue
                    wanted[lid] = wanted.get(lid, 0) + q
                for lid, q in wanted.items():
                    line = by_id[lid]
                    if q > line.remaining:
                        k = next(idx for idx, it in enumerate(items_in)
                                 if parse_gid(it.get("id"), "FulfillmentOrderLineItem") == lid)
                        err(fp + ["fulfillmentOrderLineItems", str(k), "quantity"],
                            f"Invalid fulfillment order line item quantity requested: {q} > remaining "
                            f"{line.remaining} for {gid('FulfillmentOrderLineItem', lid)}.")
                        continue
                    lines.append((line, q))
            total_items += len(lines)
            plan.append((fo, lines))
        if total_items > 512:
            err(p + ["lineItemsByFulfillmentOrder"], "A fulfillment can contain at most 512 line items.")
        if plan:
            orders = {fo.order.id for fo, _ in plan}
            if len(orders) > 1:
                err(p + ["lineItemsByFulfillmentOrder"],
                    "All fulfillment orders of one fulfillment must belong to the same order.")
            locations = {fo.location for fo, _ in plan}
            if len(locations) > 1:
                err(p + ["lineItemsByFulfillmentOrder"],
                    "All fulfillment orders of one fulfillment must be assigned to the same location.")
        tracking, terrs = validate_tracking(tracking_in, p + ["trackingInfo"])
        errors.extend(terrs)
        if errors or not plan:
            return None, errors
        # Apply.
        order = plan[0][0].order
        now = float(int(time.time()))
        all_lines: list[tuple[FOLine, int]] = []
        for fo, lines in plan:
            for line, q in lines:
                line.remaining -= q
                all_lines.append((line, q))
            fo.status = "CLOSED" if fo.remaining_total() == 0 else "IN_PROGRESS"
            if fo.status == "CLOSED":
                fo.request_status = "CLOSED" if fo.request_status != "UNSUBMITTED" else fo.request_status
            fo.updated_ts = now
        f = Fulfillment(order, [fo for fo, _ in plan], all_lines, tracking, notify, created_by, message, now)
        order.fulfillments.append(f)
        self.fulfillments[f.id] = f
        order.bump_updated()
        if notify:
            self._send_email(order, "shipping_confirmation", f)
        return f, []

    def update_tracking(self, fulfillment_raw: Any, tracking_in: dict[str, Any] | None,
                        notify: bool | None) -> tuple[Fulfillment | None, list[dict[str, Any]]]:
        fid = parse_gid(fulfillment_raw, "Fulfillment")
        f = self.fulfillments.get(fid) if fid is not None else None
        if f is None:
            return None, [{"field": ["fulfillmentId"], "message": "Fulfillment does not exist."}]
        if f.status != "SUCCESS":
            return None, [{"field": ["fulfillmentId"],
                           "message": f"Fulfillment is {f.status.lower()}; tracking can't be updated."}]
        tracking, errors = validate_tracking(tracking_in, ["trackingInfoInput"])
        if errors:
            return None, errors
        f.tracking = tracking
        f.updated_ts = max(float(int(time.time())), f.updated_ts)
        if notify is True:
            f.notify_customer = True
        if f.notify_customer and notify is not False:
            self._send_email(f.order, "shipping_update", f)
        f.order.bump_updated()
        return f, []

    def release_hold(self, fo_raw: Any, hold_ids: list[Any] | None) -> tuple[FulfillmentOrder | None,
                                                                               list[dict[str, Any]]]:
        fo = self._visible_fo(fo_raw)
        if fo is None:
            return None, [{"field": ["id"], "message": "Fulfillment order could not be found.",
                           "code": "FULFILLMENT_ORDER_NOT_FOUND"}]
        if fo.status != "ON_HOLD":
            return None, [{"field": ["id"], "message": f"The fulfillment order is not on hold (status "
                                                       f"{fo.status}).", "code": None}]
        if hold_ids:
            wanted = {parse_gid(h, "FulfillmentHold") for h in hold_ids}
            known = {h.id for h in fo.holds}
            missing = [h for h in hold_ids if parse_gid(h, "FulfillmentHold") not in known]
            if missing:
                return None, [{"field": ["holdIds"], "message": f"Unknown hold ids: {missing}", "code": None}]
            fo.holds = [h for h in fo.holds if h.id not in wanted]
        else:
            fo.holds = []
        if not fo.holds:
            fo.status = "IN_PROGRESS" if fo.fulfilled_any() else fo.status_before_hold
            if fo.status not in ("OPEN", "IN_PROGRESS"):
                fo.status = "OPEN"
        fo.updated_ts = float(int(time.time()))
        fo.order.bump_updated()
        return fo, []

    def hold(self, fo_raw: Any, reason: str, notes: str | None, handle: str | None) -> tuple[
            FulfillmentOrder | None, Hold | None, list[dict[str, Any]]]:
        fo = self._visible_fo(fo_raw)
        if fo is None:
            return None, None, [{"field": ["id"], "message": "Fulfillment order could not be found.",
                                 "code": "FULFILLMENT_ORDER_NOT_FOUND"}]
        if "HOLD" not in fo.supported_actions():
            return None, None, [{"field": ["id"], "message": f"Fulfillment order can't be put on hold from "
                                                             f"status {fo.status}.", "code": None}]
        if sum(1 for _ in fo.holds) >= 10:
            return None, None, [{"field": ["id"], "message": "At most 10 holds per app per fulfillment order.",
                                 "code": "FULFILLMENT_ORDER_HOLD_LIMIT_REACHED"}]
        h = Hold(reason, notes, handle)
        if fo.status != "ON_HOLD":
            fo.status_before_hold = fo.status
        fo.holds.append(h)
        fo.status = "ON_HOLD"
        fo.updated_ts = float(int(time.time()))
        fo.order.bump_updated()
        return fo, h, []

    def open_fo(self, fo_raw: Any) -> tuple[FulfillmentOrder | None, list[dict[str, Any]]]:
        fo = self._visible_fo(fo_raw)
        if fo is None:
            return None, [{"field": ["id"], "message": "Fulfillment order does not exist."}]
        if fo.status != "SCHEDULED":
            return None, [{"field": ["id"], "message": f"Fulfillment order is not in a scheduled state "
                                                       f"(status {fo.status})."}]
        fo.status = "OPEN"
        fo.fulfill_at = None
        fo.updated_ts = float(int(time.time()))
        fo.order.bump_updated()
        return fo, []

    def _visible_fo(self, raw: Any) -> FulfillmentOrder | None:
        fid = parse_gid(raw, "FulfillmentOrder")
        fo = self.fos.get(fid) if fid is not None else None
        if fo is None or time.monotonic() < fo.order.fo_visible_at or not self.fo_readable(fo):
            return None
        return fo

    # ---- access scopes --------------------------------------------------------------------------------------
    def has_scope(self, scope: str) -> bool:
        """None = every scope granted. A write_X scope implies read_X."""
        if self.scopes is None:
            return True
        if scope in self.scopes:
            return True
        return scope.startswith("read_") and ("write_" + scope[5:]) in self.scopes

    def fo_readable(self, fo: "FulfillmentOrder") -> bool:
        family = "third_party" if fo.fulfillment_service else "merchant_managed"
        return self.has_scope(f"read_{family}_fulfillment_orders") or self.has_scope(
            "read_assigned_fulfillment_orders")

    def fo_writable(self, fo: "FulfillmentOrder") -> bool:
        family = "third_party" if fo.fulfillment_service else "merchant_managed"
        return self.has_scope(f"write_{family}_fulfillment_orders") or self.has_scope(
            "write_assigned_fulfillment_orders")

    def _send_email(self, order: Order, kind: str, f: Fulfillment) -> None:
        order.emails_sent += 1
        order.emails.append({"kind": kind, "fulfillment_id": f.gid, "to": order.data.get("email"),
                             "tracking": copy.deepcopy(f.tracking)})

    def merchant_fulfill(self, order: Order, body: dict[str, Any]) -> list[Fulfillment]:
        """Fulfilment made by hand in the admin: allocates the requested quantities over the order's fulfillable
        FOs (one fulfillment per FO), with the same rules as fulfillmentCreate."""
        wanted = body.get("line_items")
        fos = [fo for fo in order.fos if fo.can_create_fulfillment() and fo.remaining_total() > 0]
        blocked = [fo for fo in order.fos if not fo.can_create_fulfillment() and fo.remaining_total() > 0]
        per_fo: dict[int, list[dict[str, Any]]] = {}
        if wanted is None:
            for fo in fos:
                per_fo[fo.id] = [{"id": gid("FulfillmentOrderLineItem", line.id), "quantity": line.remaining}
                                 for line in fo.lines if line.remaining > 0]
        else:
            for i, item in enumerate(wanted):
                lid = parse_gid(item.get("line_item_id"), "LineItem")
                q = int(item.get("quantity", 0))
                if lid is None or self.line_items.get(lid) is not order:
                    raise SandboxError(f"line_items[{i}].line_item_id {item.get('line_item_id')} is not a line "
                                       "item of this order", 422)
                if q <= 0:
                    raise SandboxError(f"line_items[{i}].quantity must be > 0", 422)
                left = q
                for fo in fos:
                    for line in fo.lines:
                        if line.line_item_id != lid or left == 0:
                            continue
                        already = sum(x["quantity"] for x in per_fo.get(fo.id, [])
                                      if x["id"] == gid("FulfillmentOrderLineItem", line.id))
                        take = min(line.remaining - already, left)
                        if take > 0:
                            per_fo.setdefault(fo.id, []).append(
                                {"id": gid("FulfillmentOrderLineItem", line.id), "quantity": take})
                            left -= take
                if left > 0:
                    why = ""
                    if any(line.line_item_id == lid for fo in blocked for line in fo.lines):
                        why = " (its fulfillment order is " + ", ".join(
                            sorted({fo.status for fo in blocked})) + ")"
                    raise SandboxError(f"line item {lid}: {q} requested but only {q - left} can be fulfilled{why}",
                                       422)
        if not per_fo:
            raise SandboxError("nothing to fulfil: no fulfillment order of this order supports "
                               "CREATE_FULFILLMENT with remaining quantity", 422)
        tracking = {}
        if body.get("company") is not None:
            tracking["company"] = body["company"]
        if body.get("tracking_number") is not None:
            tracking["number"] = body["tracking_number"]
        if body.get("tracking_numbers") is not None:
            tracking["numbers"] = body["tracking_numbers"]
        if body.get("tracking_url") is not None:
            tracking["url"] = body["tracking_url"]
        notify = bool(body.get("notify_customer", False))
        # Validate everything before changing anything.
        _, terrs = validate_tracking(tracking, ["tracking"])
        if terrs:
            raise SandboxError("; ".join(e["message"] for e in terrs), 422)
        created = []
        for fo_id, items in per_fo.items():
            f, errs = self.create_fulfillment([{"fulfillmentOrderId": gid("FulfillmentOrder", fo_id),
                                                "fulfillmentOrderLineItems": items}],
                                              tracking, notify, "merchant", visible_only=False)
            if errs:
                raise SandboxError("; ".join(e["message"] for e in errs), 422)
            created.append(f)
        return created

    def order_admin(self, order: Order) -> dict[str, Any]:
        return {
            "order": order.to_rest(),
            "fulfillment_orders": order.fo_admin(),
            "fulfillments": [f.to_admin() for f in order.fulfillments],
            "emails_sent": order.emails_sent,
            "emails": copy.deepcopy(order.emails),
            "display_fulfillment_status": order.display_fulfillment_status(),
            "fulfillment_orders_visible": time.monotonic() >= order.fo_visible_at,
        }


def _ids_first(d: dict[str, Any]) -> dict[str, Any]:
    out = {k: d[k] for k in ("id", "admin_graphql_api_id") if k in d}
    out.update((k, v) for k, v in d.items() if k not in out)
    return out


def _valid_url(u: Any) -> bool:
    if not isinstance(u, str) or not u.strip():
        return False
    try:
        parts = urllib.parse.urlsplit(u.strip())
    except ValueError:
        return False
    return bool(parts.scheme) and bool(parts.netloc) and bool(parts.hostname) and \
        re.match(r"^[A-Za-z][A-Za-z0-9+.-]*$", parts.scheme) is not None and " " not in u.strip()


def validate_tracking(t: dict[str, Any] | None, prefix: list[str]) -> tuple[list[dict[str, Any]],
                                                                           list[dict[str, Any]]]:
    """FulfillmentTrackingInput rules. Returns (tracking entries, userErrors)."""
    if not t:
        return [], []
    errors: list[dict[str, Any]] = []

    def present(v: Any) -> bool:
        return v is not None and v != "" and v != []

    number, numbers = t.get("number"), t.get("numbers")
    url, urls = t.get("url"), t.get("urls")
    company = t.get("company")
    if present(number) and present(numbers):
        errors.append({"field": prefix + ["numbers"], "message": "Specify either number or numbers, not both."})
    if present(url) and present(urls):
        errors.append({"field": prefix + ["urls"], "message": "Specify either url or urls, not both."})
    if (present(url) or present(urls)) and not (present(number) or present(numbers)):
        errors.append({"field": prefix + (["url"] if present(url) else ["urls"]),
                       "message": "A tracking URL requires a tracking number."})
    if present(url) and not _valid_url(url):
        errors.append({"field": prefix + ["url"], "message": f"Url {url!r} is not a valid URL (scheme and host "
                                                             "required)."})
    for i, u in enumerate(urls or []):
        if not _valid_url(u):
            errors.append({"field": prefix + ["urls", str(i)],
                           "message": f"Url {u!r} is not a valid URL (scheme and host required)."})
    nums = list(numbers) if present(numbers) else ([number] if present(number) else [])
    links = list(urls) if present(urls) else ([url] if present(url) else [])
    if len(links) > max(len(nums), 1) and not errors:
        errors.append({"field": prefix + ["urls"], "message": "More tracking urls than tracking numbers."})
    if errors:
        return [], errors
    entries = [{"company": company, "number": n, "url": links[i] if i < len(links) else None}
               for i, n in enumerate(nums)]
    if not entries and company:
        entries = [{"company": company, "number": None, "url": None}]
    return entries, []


# --------------------------------------------------------------------------------------------------------------
# Search syntax for orders(query:)
# --------------------------------------------------------------------------------------------------------------

_TERM_RE = re.compile(r"""(-|NOT\s+)?([A-Za-z_]+):(>=|<=|>|<|=)?('([^']*)'|"([^"]*)"|(\S+))""")


def parse_search(query: str | None) -> list[tuple[bool, str, str, str]]:
    """'updated_at:>'2026-01-01T00:00:00Z' financial_status:paid -test:true' -> [(negated, field, op, value)].
    Words that are not field:value terms (AND, OR, free text) are ignored."""
    if not query:
        return []
    out = []
    for m in _TERM_RE.finditer(query):
        neg = bool(m.group(1))
        value = m.group(5) if m.group(5) is not None else (m.group(6) if m.group(6) is not None else m.group(7))
        out.append((neg, m.group(2).lower(), m.group(3) or "=", value))
    return out


def order_matches(order: Order, terms: Iterable[tuple[bool, str, str, str]]) -> bool:
    for neg, field, op, value in terms:
        ok = _term_matches(order, field, op, value)
        if ok is None:
            continue  # unknown field: Shopify ignores it (with a search warning)
        if ok == neg:
            return False
    return True


def _cmp(a: float, op: str, b: float) -> bool:
    return {"=": a == b, ">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]


def _term_matches(order: Order, field: str, op: str, value: str) -> bool | None:
    off = order.shop.utc_offset_minutes
    v = value.strip()
    if field in ("updated_at", "created_at", "processed_at"):
        t = parse_time(v, off)
        if t is None:
            return None
        if field == "updated_at":
            mine = order.updated_ts
        elif field == "created_at":
            mine = order.created_ts
        else:
            mine = parse_time(order.data.get("processed_at"), off) or order.created_ts
        return _cmp(mine, op, t)
    if field == "id":
        n = parse_gid(v)
        return None if n is None else _cmp(order.id, op, n)
    if field == "financial_status":
        return str(order.data.get("financial_status") or "").lower() == v.lower()
    if field == "fulfillment_status":
        st = order.rest_fulfillment_status()
        v = v.lower()
        if v in ("unshipped", "unfulfilled"):
            return st is None
        if v in ("shipped", "fulfilled"):
            return st == "fulfilled"
        if v == "partial":
            return st == "partial"
        if v == "any":
            return True
        return None
    if field == "status":
        v = v.lower()
        if v == "open":
            return not order.is_cancelled() and not order.data.get("closed_at")
        if v == "closed":
            return bool(order.data.get("closed_at"))
        if v == "cancelled":
            return order.is_cancelled()
        if v == "any":
            return True
        return None
    if field == "test":
        return bool(order.data.get("test")) == (v.lower() == "true")
    if field == "name":
        return str(order.data.get("name", "")).lower().lstrip("#") == v.lower().lstrip("#")
    if field == "email":
        return str(order.data.get("email") or "").lower() == v.lower()
    if field == "tag":
        tags = [x.strip().lower() for x in str(order.data.get("tags") or "").split(",")]
        return v.lower() in tags
    return None
