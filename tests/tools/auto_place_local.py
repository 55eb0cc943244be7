"""Automatic placing through the local stack: `make local` runs the order placer.

Run inside `services.py --local` (moto + the sandbox Shopify and AliExpress, demo shops provisioned), as
`tests/tools/test_e2e.py` does. It starts the local stack exactly as `make demo` does, switches `auto_place` on
for one shop, maps one variant, then sends a paid order as a signed `orders/create` webhook and never calls a
place route: the webhook queues the order on the local placement queue and the local consumer hands it to the
order placer's own handler. It exits 0 once the order is in `awaiting_payment` with one AliExpress order the
sandbox created for it, and 1 otherwise; an unmapped order of the same shop must stay in `awaiting_order`.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import demo  # noqa: E402  (the same stack start-up and sandbox helpers as make demo)


def wait_status(d, shop, order_id, want, timeout=60):
    deadline = time.time() + timeout
    state = None
    while time.time() < deadline:
        state = d.order_state(shop, order_id)
        if state["status"] == want:
            return state
        time.sleep(0.3)
    raise SystemExit(f"auto-place: order {order_id} is {state and state['status']}, not {want}, "
                     f"after {timeout} s (placements {state and state.get('placements')})")


def main():
    proc, base = demo.start_stack()
    try:
        d = demo.Demo(base)
        # A shop whose token is in the credentials document (the OAuth demo shop is not connected here).
        shop = next(s for s in d.shops if s in d.creds["shops"])
        demo.must("PUT", f"{base}/shops/{shop}/settings", {"notify_customer": True, "auto_place": True}, d.auth)
        sku = "LAMP-1"
        _, pid, sku_id, title, store, store_name, price = demo.CATALOG[sku]
        d.ae_product(pid, sku_id, title, store, store_name, price)
        d.map(shop, sku, pid, sku_id)
        t = time.perf_counter()
        order = d.shopify_order(shop, "#7001", "paid", [(sku, title, 1, "19.90")])
        # An item without a mapping: not due, so never placed (nor failed) by automation.
        unmapped = d.shopify_order(shop, "#7002", "paid", [("UNMAPPED-1", "Gift card", 1, "10.00")])
        d.webhook(shop, "orders/create", order["id"])
        d.webhook(shop, "orders/create", unmapped["id"])
        placed = wait_status(d, shop, order["id"], "awaiting_payment")
        ae_ids = [so["aliexpress_order_id"] for so in placed["supplier_orders"]]
        creates = [p for p in demo.must("GET", f"{d.ae}/placements")["placements"]
                   if p["out_order_id"].startswith(f"{order['id']}-") and p.get("outcome") == "created"]
        if len(ae_ids) != 1 or len(creates) != 1:
            raise SystemExit(f"auto-place: expected one AliExpress order, dropsync has {ae_ids}, "
                             f"the sandbox created {creates}")
        other = d.order_state(shop, unmapped["id"])
        if other["status"] != "awaiting_order" or other.get("placements"):
            raise SystemExit(f"auto-place: the unmapped order is {other['status']} with {other.get('placements')}")
        print(f"auto-place: order {order['id']} placed by the local order placer as AliExpress order {ae_ids[0]} "
              f"in {time.perf_counter() - t:.1f} s; the unmapped order stayed in awaiting_order")
        return 0
    finally:
        demo.stop_stack(proc)


if __name__ == "__main__":
    sys.exit(main())
