#!/usr/bin/env python3
"""Writes the webhook function's sample events into events/ (standard library only).

    python3 events/make_webhook_events.py [--out DIR]     # DIR defaults to events/

- ``webhook-*.json``: API Gateway (HTTP API, payload v2) events of ``POST /webhooks/shopify``, one per topic, each
  body signed as Shopify signs it (base64 HMAC-SHA256 of the exact body bytes) with the test secret
  ``shpss_test_secret`` for the shop ``example.myshopify.com``. Bodies are compact JSON with Shopify's escapes
  (``/`` -> ``\\/``, ``&`` -> ``\\u0026``, ``<``, ``>`` too), so a handler that re-serialises before verifying fails on
  them as it would in production.
- ``eventbridge-*.json``: SQS events (the EventBridge rule's target) carrying Shopify's EventBridge envelope.

Everything is fixed (ids, times, webhook ids), so running it again rewrites the same files. See README.md,
"Webhook events", for what each file does when invoked.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os

SECRET = "shpss_test_secret"
SHOP = "example.myshopify.com"
HERE = os.path.dirname(os.path.abspath(__file__))

# Ids above 2^53, as in production (neighbouring ids collapse when read as a double).
ORDER = 820982911946154508
CANCELLED_ORDER = 820982911946154509
LINE_A = 866550311766439020
LINE_B = 866550311766439021
CUSTOMER = 115310627314723954

_ESCAPES = {"/": "\\/", "&": "\\u0026", "<": "\\u003c", ">": "\\u003e", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def shopify_bytes(obj) -> bytes:
    """Compact JSON as Shopify's webhook sender writes it; non-ASCII stays raw UTF-8."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for raw, escaped in _ESCAPES.items():  # JSON syntax never uses these: only strings change
        text = text.replace(raw, escaped)
    return text.encode("utf-8")


def sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


def ts(seconds: int) -> str:
    """2026-11-02T10:00:00-05:00 plus `seconds`, as REST payloads write times."""
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"2026-11-02T{10 + h:02d}:{m:02d}:{s:02d}-05:00"


def line(lid: int, sku: str, title: str, qty: int, price: str, fulfilled: int = 0) -> dict:
    return {
        "id": lid, "admin_graphql_api_id": f"gid://shopify/LineItem/{lid}",
        "variant_id": 44100000000000000 + lid % 1000, "product_id": 8100000000000000 + lid % 1000,
        "sku": sku, "title": title, "name": title, "variant_title": None, "vendor": "Acme",
        "quantity": qty, "current_quantity": qty, "fulfillable_quantity": qty - fulfilled,
        "fulfillment_status": None if fulfilled == 0 else ("fulfilled" if fulfilled == qty else "partial"),
        "fulfillment_service": "manual", "requires_shipping": True, "gift_card": False, "taxable": True,
        "price": price,
        "price_set": {"shop_money": {"amount": price, "currency_code": "USD"},
                      "presentment_money": {"amount": price, "currency_code": "USD"}},
        "properties": [], "grams": 350, "tax_lines": [], "discount_allocations": [], "duties": [],
    }


def order(oid: int, name: str, updated: int, financial: str, *, fulfilled=(0, 0), fulfillments=(),
          cancelled_at=None, test=False, tags="") -> dict:
    fa, fb = fulfilled
    lines = [line(LINE_A if oid == ORDER else LINE_A + 10, "MUG-BLUE-350", "Café mug – blue / 350 ml", 2, "12.50", fa),
             line(LINE_B if oid == ORDER else LINE_B + 10, "", "Gift wrap & card", 1, "3.00", fb)]
    total = sum(l["quantity"] for l in lines)
    done = fa + fb
    return {
        "id": oid, "admin_graphql_api_id": f"gid://shopify/Order/{oid}", "name": name,
        "order_number": int(name.strip("#")), "email": "jane.doe@example.com", "contact_email": "jane.doe@example.com",
        "phone": None, "created_at": ts(0), "updated_at": ts(updated), "processed_at": ts(0),
        "cancelled_at": cancelled_at, "cancel_reason": "customer" if cancelled_at else None, "closed_at": None,
        "financial_status": financial,
        "fulfillment_status": None if done == 0 else ("fulfilled" if done == total else "partial"),
        "test": test, "confirmed": True, "currency": "USD", "presentment_currency": "USD",
        "total_price": "28.00", "subtotal_price": "28.00", "total_tax": "0.00",
        "total_price_set": {"shop_money": {"amount": "28.00", "currency_code": "USD"},
                            "presentment_money": {"amount": "28.00", "currency_code": "USD"}},
        "tags": tags, "note": "Leave at the back door / ring twice & wait", "note_attributes": [],
        "shipping_address": {"first_name": "Jane", "last_name": "Doe", "name": "Jane Doe", "company": None,
                             "address1": "1 Rue de l'Église", "address2": None, "city": "Montréal",
                             "province": "Quebec", "province_code": "QC", "zip": "H2X 1Y4", "country": "Canada",
                             "country_code": "CA", "phone": None},
        "billing_address": None,
        "customer": {"id": CUSTOMER, "email": "jane.doe@example.com", "first_name": "Jane", "last_name": "Doe"},
        "line_items": lines, "fulfillments": list(fulfillments), "refunds": [], "shipping_lines": [],
        "discount_codes": [],
    }


def fulfillment(fid: int, tracking: str, items) -> dict:
    return {
        "id": fid, "admin_graphql_api_id": f"gid://shopify/Fulfillment/{fid}", "order_id": ORDER,
        "status": "success", "created_at": ts(3600), "service": "manual", "tracking_company": "UPS",
        "tracking_number": tracking, "tracking_numbers": [tracking],
        "tracking_url": f"https://www.ups.com/track?tracknum={tracking}&loc=en_US",
        "line_items": [{"id": lid, "quantity": q} for lid, q in items],
    }


F1 = fulfillment(4_700_000_000_000_000_001, "1Z999AA10123456784", [(LINE_A, 1)])
F2 = fulfillment(4_700_000_000_000_000_002, "1Z999AA10123456795", [(LINE_A, 1), (LINE_B, 1)])

# (file stem, topic, payload, webhook id suffix). Every one answers 200 (see README.md).
WEBHOOKS = [
    ("orders-create", "orders/create", order(ORDER, "#1001", 0, "pending")),
    ("orders-paid", "orders/paid", order(ORDER, "#1001", 60, "paid")),
    ("orders-updated", "orders/updated", order(ORDER, "#1001", 120, "paid", tags="gift, priority")),
    ("orders-partially-fulfilled", "orders/partially_fulfilled",
     order(ORDER, "#1001", 3600, "paid", fulfilled=(1, 0), fulfillments=[F1])),
    ("orders-fulfilled", "orders/fulfilled",
     order(ORDER, "#1001", 7200, "paid", fulfilled=(2, 1), fulfillments=[F1, F2])),
    ("orders-cancelled", "orders/cancelled",
     order(CANCELLED_ORDER, "#1002", 600, "refunded", cancelled_at=ts(600))),
    ("app-uninstalled", "app/uninstalled",
     {"id": 548380009, "name": "Example Shop", "email": "owner@example.com", "domain": "shop.example.com",
      "myshopify_domain": SHOP, "plan_name": "basic", "created_at": "2024-01-02T10:00:00-05:00"}),
    ("customers-data-request", "customers/data_request",
     {"shop_id": 548380009, "shop_domain": SHOP, "orders_requested": [ORDER, CANCELLED_ORDER],
      "customer": {"id": CUSTOMER, "email": "jane.doe@example.com", "phone": "555-625-1199"},
      "data_request": {"id": 9999}}),
    ("customers-redact", "customers/redact",
     {"shop_id": 548380009, "shop_domain": SHOP,
      "customer": {"id": CUSTOMER, "email": "jane.doe@example.com", "phone": "555-625-1199"},
      "orders_to_redact": [ORDER, CANCELLED_ORDER]}),
    ("shop-redact", "shop/redact", {"shop_id": 548380009, "shop_domain": SHOP}),
    ("fulfillments-create", "fulfillments/create", F1),
]


def apigw_event(topic: str, body: bytes, n: int) -> dict:
    """The event API Gateway (HTTP API, payload format 2.0) hands the function: header names lower-cased."""
    webhook_id = f"b54557e4-bdd9-4b37-8a5f-{n:012d}"
    request_id = f"Zq{n:04d}hzoAMEMb0Q="
    headers = {
        "accept": "*/*",
        "content-length": str(len(body)),
        "content-type": "application/json",
        "host": "abc123def4.execute-api.us-east-1.amazonaws.com",
        "user-agent": "Shopify-Captain-Hook",
        "x-amzn-trace-id": f"Root=1-6914b7c3-{n:024d}",
        "x-forwarded-for": "34.27.0.1",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
        "x-shopify-api-version": "2026-10",
        "x-shopify-event-id": f"98880550-7158-44d4-b7cd-{n:012d}",
        "x-shopify-hmac-sha256": sign(body),
        "x-shopify-shop-domain": SHOP,
        "x-shopify-topic": topic,
        "x-shopify-triggered-at": "2026-11-02T15:06:59.110521905Z",
        "x-shopify-webhook-id": webhook_id,
    }
    return {
        "version": "2.0",
        "routeKey": "POST /webhooks/shopify",
        "rawPath": "/webhooks/shopify",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123def4",
            "domainName": "abc123def4.execute-api.us-east-1.amazonaws.com", "domainPrefix": "abc123def4",
            "http": {"method": "POST", "path": "/webhooks/shopify", "protocol": "HTTP/1.1",
                     "sourceIp": "34.27.0.1", "userAgent": "Shopify-Captain-Hook"},
            "requestId": request_id, "routeKey": "POST /webhooks/shopify", "stage": "$default",
            "time": "02/Nov/2026:15:07:00 +0000", "timeEpoch": 1793632020000 + n,
        },
        "body": body.decode("utf-8"),
        "isBase64Encoded": False,
    }


def eventbridge_envelope(topic: str, payload: dict, n: int) -> dict:
    """Shopify's EventBridge event: metadata headers + the payload, unsigned."""
    return {
        "version": "0", "id": f"6f1c0b7e-3c1d-4f0a-9d55-{n:012d}", "detail-type": "shopifyWebhook",
        "source": "aws.partner/shopify.com/580111/dropsync-orders", "account": "123456789012",
        "time": "2026-11-02T15:15:03Z", "region": "us-east-1", "resources": [],
        "detail": {
            "metadata": {
                "Content-Type": "application/json", "X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": SHOP,
                "X-Shopify-API-Version": "2026-10", "X-Shopify-Webhook-Id": f"c64557e4-bdd9-4b37-8a5f-{n:012d}",
                "X-Shopify-Event-Id": f"a8880550-7158-44d4-b7cd-{n:012d}",
                "X-Shopify-Triggered-At": "2026-11-02T15:15:02.918273645Z",
            },
            "payload": payload,
        },
    }


def sqs_event(envelopes) -> dict:
    """The SQS event the EventBridge rule's queue hands the `shopify-eventbridge` function."""
    return {"Records": [{
        "messageId": f"059f36b4-87a3-44ab-83d2-{i:012d}",
        "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a-{i}",
        "body": json.dumps(env, separators=(",", ":")),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1793632503000",
                       "SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "1793632503100"},
        "messageAttributes": {}, "md5OfBody": hashlib.md5(json.dumps(env, separators=(",", ":")).encode()).hexdigest(),
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:dropsync-shopify-events",
        "awsRegion": "us-east-1",
    } for i, env in enumerate(envelopes)]}


OUT = HERE


def write(name: str, event: dict) -> None:
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(event, f, indent=2, ensure_ascii=False)
        f.write("\n")


def main() -> None:
    global OUT
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", default=HERE, help="directory to write into (default: events/)")
    OUT = parser.parse_args().out
    for n, (stem, topic, payload) in enumerate(WEBHOOKS, start=1):
        write(f"webhook-{stem}.json", apigw_event(topic, shopify_bytes(payload), n))
    paid = order(ORDER, "#1001", 60, "paid")
    write("eventbridge-orders-create.json", sqs_event([eventbridge_envelope("orders/create", paid, 1)]))
    # Over EventBridge's size limit Shopify sends the order id alone: the function re-fetches the order
    # through the Admin API (SHOPIFY_ADMIN_URL / the shop), or records it as needing a re-fetch.
    write("eventbridge-orders-updated-id-only.json",
          sqs_event([eventbridge_envelope("orders/updated", {"id": ORDER}, 2)]))


if __name__ == "__main__":
    main()
