"""Placement latency through the local stack (`make local`'s server, the sandboxes behind it).

Run by `make place-latency` inside `services.py --local` (moto + the sandbox Shopify and AliExpress, demo
shops provisioned). It starts the local stack exactly as `make demo` does, maps one variant, then for each of
N paid orders (N = PLACE_ORDERS, default 50): the order arrives as a signed `orders/create` webhook and
`POST /shops/{shop}/orders/{id}/place` is timed over HTTP, one order after another. It prints the latency
p50/p99 and the AliExpress calls per placed order (from the sandbox's own call counters), and exits 1 if any
order did not end in `awaiting_payment`.
"""
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import demo  # noqa: E402  (the same stack start-up and sandbox helpers as make demo)


def quantile(sorted_values, q):
    return sorted_values[max(0, math.ceil(len(sorted_values) * q) - 1)]


def main():
    n = int(os.environ.get("PLACE_ORDERS", "50"))
    proc, base = demo.start_stack()
    try:
        d = demo.Demo(base)
        shop = d.shops[0]
        sku = "LAMP-1"
        _, pid, sku_id, title, store, store_name, price = demo.CATALOG[sku]
        d.ae_product(pid, sku_id, title, store, store_name, price)
        d.map(shop, sku, pid, sku_id)
        demo.must("POST", f"{d.ae}/stats/reset", {"app_key": d.app_key})
        latencies = []
        for i in range(n):
            order = d.shopify_order(shop, f"#{5000 + i}", "paid", [(sku, title, 1, "19.90")])
            d.webhook(shop, "orders/create", order["id"])
            t = time.perf_counter()
            placed = demo.must("POST", f"{base}/shops/{shop}/orders/{order['id']}/place", None, d.auth)
            latencies.append((time.perf_counter() - t) * 1000)
            if placed["status"] != "awaiting_payment":
                raise SystemExit(f"place-latency: order {order['id']} is {placed['status']}: {placed.get('failure')}")
        stats = demo.must("GET", f"{d.ae}/stats?app_key={d.app_key}")
        latencies.sort()
        by_method = stats.get("calls_by_method", {})
        print(f"placement through the local stack: {n} orders, one mapped item each, placed one after another")
        print(f"  latency p50 {quantile(latencies, 0.50):.0f} ms, p99 {quantile(latencies, 0.99):.0f} ms, "
              f"max {latencies[-1]:.0f} ms")
        print(f"  AliExpress calls per placed order {stats['total_calls'] / n:.1f} "
              f"({', '.join(f'{k}: {v}' for k, v in sorted(by_method.items()))})")
        return 0
    finally:
        demo.stop_stack(proc)


if __name__ == "__main__":
    sys.exit(main())
