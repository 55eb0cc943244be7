"""Webhook signing, serialisation and delivery, the way Shopify does it.

* The body is compact JSON. Like Shopify (Ruby/ActiveSupport), ``/`` is written as ``\\/`` and ``&``, ``<``,
  ``>``, U+2028, U+2029 as ``\\uXXXX`` escapes; other non-ASCII characters are sent raw in UTF-8. A receiver that
  parses and re-serialises the body before checking the HMAC therefore fails, as it would in production.
* ``X-Shopify-Hmac-Sha256`` = base64(HMAC-SHA256(secret, exact body bytes)).
* Test vector: secret ``shpss_test_secret``, body
  ``{"id":820982911946154508,"name":"#9999","note":"a\\/b \\u0026 c"}`` ->
  ``tcKX1/dyrUALHktowGkZMZGKdIukPqkONANSdHTJ+FE=``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import ssl
import time
import urllib.parse
import uuid
from typing import Any, Mapping

DEFAULT_API_VERSION = "2026-10"

# Characters escaped inside the signed body, and their escapes.
_ESCAPES = {
    "/": "\\/",
    "&": "\\u0026",
    "<": "\\u003c",
    ">": "\\u003e",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def serialize(obj: Any) -> bytes:
    """Serialise any JSON value the way Shopify's webhook sender does (see module docstring)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    # JSON syntax itself never uses these characters, so they only occur inside strings.
    for raw, escaped in _ESCAPES.items():
        if raw in text:
            text = text.replace(raw, escaped)
    return text.encode("utf-8")


def serialize_order(order: Mapping[str, Any]) -> bytes:
    """Body bytes of an order webhook: the REST order at the document root (no ``{"order":…}`` wrapper)."""
    if isinstance(order, Mapping) and set(order.keys()) == {"order"} and isinstance(order["order"], Mapping):
        order = order["order"]
    return serialize(order)


def sign_body(secret: str | bytes, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, body)), standard alphabet with padding."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    digest = hmac.new(key, body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(secret: str | bytes, body: bytes, header_value: str | None) -> bool:
    """Constant-time check of an ``X-Shopify-Hmac-Sha256`` value (for test receivers)."""
    if not header_value:
        return False
    try:
        given = base64.b64decode(header_value, validate=True)
    except (ValueError, TypeError):
        return False
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    expected = hmac.new(key, body, hashlib.sha256).digest()
    return hmac.compare_digest(given, expected)


def triggered_at_now() -> str:
    """ISO-8601 UTC timestamp with nanoseconds, e.g. ``2026-05-11T15:06:59.110521905Z``."""
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def build_headers(
    shop_domain: str,
    topic: str,
    body: bytes,
    secret: str | bytes | None,
    *,
    webhook_id: str | None = None,
    event_id: str | None = None,
    triggered_at: str | None = None,
    api_version: str = DEFAULT_API_VERSION,
    lowercase: bool = False,
    extra_headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop_domain,
        "X-Shopify-API-Version": api_version,
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": triggered_at or triggered_at_now(),
    }
    if secret is not None:
        headers["X-Shopify-Hmac-Sha256"] = sign_body(secret, body)
    if lowercase:
        headers = {k.lower(): v for k, v in headers.items()}
    if extra_headers:
        headers.update(extra_headers)
    return headers


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float = 5.0) -> tuple[int, str]:
    """POST without following redirects (Shopify counts 3xx as failure). Returns (status, body text);
    status 0 means no HTTP answer (connection refused, timeout…), the body then holds the error."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"target_url must be an absolute http(s) URL, got {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.putrequest("POST", path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if not any(k.lower() == "content-length" for k in headers):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data.decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return 0, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


def deliver_detailed(
    target_url: str,
    shop: Any,
    topic: str,
    body_obj: Any,
    secret: str | bytes | None = None,
    webhook_id: str | None = None,
    lowercase: bool = False,
    extra_headers: Mapping[str, str] | None = None,
    *,
    event_id: str | None = None,
    api_version: str | None = None,
    timeout: float = 5.0,
    sign: bool = True,
) -> dict[str, Any]:
    """Deliver one webhook; returns {status, body, webhook_id, event_id, triggered_at, hmac, duration_ms}.

    ``shop`` is a shop domain string or a sandbox shop object (then its secret and API version are the defaults).
    ``body_obj`` may already be bytes (sent unchanged)."""
    if isinstance(shop, str):
        shop_domain = shop
        default_secret = None
        default_version = DEFAULT_API_VERSION
    else:
        shop_domain = shop.domain
        default_secret = shop.webhook_secret
        default_version = shop.api_version or DEFAULT_API_VERSION
    if secret is None:
        secret = default_secret
    if sign and secret is None:
        raise ValueError("no webhook secret: pass secret= or a sandbox shop object")
    body = body_obj if isinstance(body_obj, (bytes, bytearray)) else serialize(body_obj)
    body = bytes(body)
    headers = build_headers(
        shop_domain,
        topic,
        body,
        secret if sign else None,
        webhook_id=webhook_id,
        event_id=event_id,
        api_version=api_version or default_version,
        lowercase=lowercase,
        extra_headers=extra_headers,
    )
    started = time.monotonic()
    status, text = post(target_url, body, headers, timeout=timeout)

    def h(name: str) -> str | None:
        for k, v in headers.items():
            if k.lower() == name.lower():
                return v
        return None

    return {
        "status": status,
        "body": text,
        "webhook_id": h("X-Shopify-Webhook-Id"),
        "event_id": h("X-Shopify-Event-Id"),
        "triggered_at": h("X-Shopify-Triggered-At"),
        "hmac": h("X-Shopify-Hmac-Sha256"),
        "topic": topic,
        "target_url": target_url,
        "ok": 200 <= status < 300,
        "duration_ms": round((time.monotonic() - started) * 1000, 1),
    }


def deliver(
    target_url: str,
    shop: Any,
    topic: str,
    body_obj: Any,
    secret: str | bytes | None = None,
    webhook_id: str | None = None,
    lowercase: bool = False,
    extra_headers: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """Deliver one signed webhook; returns (HTTP status, response body). Status 0 = no HTTP answer."""
    result = deliver_detailed(
        target_url, shop, topic, body_obj, secret, webhook_id, lowercase, extra_headers
    )
    return result["status"], result["body"]
