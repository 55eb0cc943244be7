"""The dashboard in a real browser: headless Chromium (Debian's package) driven by Playwright,
against the local stack with the sandboxes, the same way a merchant uses it.

Run inside `services.py --local --sandboxes shopify,aliexpress` (tests/browser/test_dashboard.py
does). It starts the local stack, drives orders into it through signed Shopify webhooks and the
sandbox AliExpress (tests/tools/demo.py's helpers), then signs in and checks the tabs and their
counts against the JSON API, links an AliExpress order, syncs and sees the new tracking, places an
order, fixes a failed one (its product was taken down: a new mapping through the mappings page's
product lookup, then Re-place), changes a setting, is refused a CSRF-less POST, signs out and finds
the old cookie dead. axe-core runs on
every main page. Screenshots (1280 px and 390 px) go to target/browser/. Exits 0, or 1 with the
failures.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
import demo  # noqa: E402

from playwright.sync_api import sync_playwright  # noqa: E402

SHOTS = os.path.join(ROOT, "target", "browser")
AXE = os.path.join(ROOT, "tests", "browser", "node_modules", "axe-core", "axe.min.js")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
# The tent's old AliExpress listing: product and SKU.
OLD_TENT = ("1005001000000099", "12001000000000099")
TAB_LABELS = {"pending": "Pending", "awaiting_order": "Awaiting order", "awaiting_payment": "Awaiting payment",
              "awaiting_shipment": "Awaiting shipment", "awaiting_fulfillment": "Awaiting fulfillment",
              "fulfilled": "Fulfilled", "canceled": "Canceled", "failed": "Failed"}


class Checks:
    def __init__(self):
        self.failures = []

    def ok(self, cond, what):
        print(("  ok    " if cond else "  FAIL  ") + what, flush=True)
        if not cond:
            self.failures.append(what)
        return cond


def seed(d):
    """Orders in several tabs of the first demo shop; returns what the browser steps need."""
    shop, other = d.shops
    # The demo's OAuth shops are connected the way a merchant does it (Connect, consent, callback).
    for s in d.oauth_shops:
        d.connect(s)
    made = {}
    for name, fin, lines in (
        ("#1001", "pending", [("LAMP-1", "Camping lamp", 1, "19.90")]),
        ("#1002", "paid", [("BOTTLE-500", "Steel bottle", 2, "7.50"), ("TENT-2P", "Two-person tent", 1, "89.00")]),
        ("#1003", "paid", [("MAT-1", "Sleeping mat", 1, "24.00")]),
        ("#1004", "paid", [("STOVE-1", "Camping stove", 1, "39.00")]),
        ("#1005", "paid", [("CHAIR-1", "Folding chair", 2, "29.00")]),
        ("#1006", "paid", [("TORCH-1", "Head torch", 1, "14.00")]),
        ("#1007", "paid", [("LAMP-1", "Camping lamp", 1, "19.90")]),
        ("#1008", "paid", [("TENT-2P", "Two-person tent", 1, "89.00")]),
    ):
        made[name] = d.shopify_order(shop, name, fin, lines)
        d.webhook(shop, "orders/create", made[name]["id"])
    # #1003 is already on its way: linked, paid and shipped, its tracking pushed.
    mat = made["#1003"]
    ae_mat = d.ae_order([("1005001000000010", "MAT-SKU", 1, "Sleeping mat")])
    d.link(shop, mat, ae_mat, mat["line_items"], [])
    d.ae_status(ae_mat, "WAIT_BUYER_ACCEPT_GOODS", "SELLER_SEND_GOODS")
    d.ae_package(ae_mat, "YT2601000000000077", "YunExpress", [("1005001000000010", "MAT-SKU", 1)])
    # #1004 is linked and paid, waiting for the supplier to ship.
    stove = made["#1004"]
    ae_stove = d.ae_order([("1005001000000011", "STOVE-SKU", 1, "Camping stove")])
    d.link(shop, stove, ae_stove, stove["line_items"], [])
    d.ae_status(ae_stove, "WAIT_SELLER_SEND_GOODS", "WAIT_SELLER_SEND_GOODS")
    d.sync_shop(shop)
    d.wait_pushed([(shop, mat["id"])])
    # #1006 is canceled by the customer.
    d.update(shop, made["#1006"]["id"], cancelled_at=True, cancel_reason="customer", financial_status="refunded")
    d.webhook(shop, "orders/cancelled", made["#1006"]["id"])
    # The supplier catalog. The lamp is mapped to its product; the tent was mapped to a listing its
    # seller has since taken down, so placing #1008 fails until the merchant maps another product.
    for sku in ("LAMP-1", "TENT-2P"):
        _, pid, sku_id, title, store, store_name, price = demo.CATALOG[sku]
        d.ae_product(pid, sku_id, title, store, store_name, price)
    d.map(shop, "LAMP-1", demo.CATALOG["LAMP-1"][1], demo.CATALOG["LAMP-1"][2])
    old_tent = dict(product_id=OLD_TENT[0], title="Two-person tent (old listing)", store_id=3309,
                    store_name="Old Tents", skus=[{"sku_id": OLD_TENT[1], "sku_attr": "", "price": "39.00",
                                                   "stock": 50}])
    demo.must("POST", f"{d.ae}/products", old_tent)
    d.map(shop, "TENT-2P", *OLD_TENT)
    demo.must("POST", f"{d.ae}/products", {**old_tent, "status": "offline"})
    # The other shop has an order too (a shop token must not see it).
    k = d.shopify_order(other, "#2001", "paid", [("KNIFE-8", "Chef knife", 1, "35.00")])
    d.webhook(other, "orders/create", k["id"])
    return shop, made


def axe(page, c, what):
    with open(AXE) as f:
        page.evaluate(f.read() + "\n;0")
    res = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length,
                                       target: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    bad = [v for v in res if v["impact"] in ("serious", "critical")]
    for v in res:
        print(f"        axe {what}: {v['impact']} {v['id']} x{v['nodes']} {v['target']}")
    c.ok(not bad, f"axe-core: no serious or critical violation on {what}")


def shoot(page, name):
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def run(d, c):
    shop, made = seed(d)
    base, creds = d.base, d.creds
    secrets = [creds["admin_token"], creds["aliexpress"]["app_secret"], creds["aliexpress"]["access_token"],
               creds["aliexpress"]["refresh_token"]]
    for sc in creds["shops"].values():
        secrets += [sc["access_token"], *sc["webhook_secrets"]]
    if "shopify_app" in creds:
        secrets.append(creds["shopify_app"]["client_secret"])

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        csp_errors = []
        page.on("console", lambda m: csp_errors.append(m.text)
                if "Content Security Policy" in m.text or "Refused to" in m.text else None)
        seen_html = []

        def visit(url):
            r = page.goto(url)
            seen_html.append(page.content())
            return r

        # Sign-in page: headers, form, accessibility.
        r = visit(f"{base}/app")
        h = r.headers
        c.ok(r.status == 200 and page.locator("input[name=token][type=password]").count() == 1,
             "GET /app signed out shows a password field named token")
        c.ok(h.get("content-security-policy", "").startswith("default-src 'self'; script-src 'self'")
             and "unsafe-inline" not in h.get("content-security-policy", ""), "a strict CSP without unsafe-inline")
        c.ok(h.get("x-content-type-options") == "nosniff" and h.get("cache-control") == "no-store"
             and "frame-ancestors 'none'" in h.get("content-security-policy", ""),
             "nosniff, no-store and frame-ancestors 'none'")
        axe(page, c, "sign-in")
        shoot(page, "signin-desktop")

        page.fill("#token", "not-the-token-at-all")
        page.click("button[type=submit]")
        c.ok(page.get_by_role("alert").count() == 1 and not ctx.cookies(), "a wrong token is refused with no cookie")

        page.fill("#token", creds["admin_token"])
        page.click("button[type=submit]")
        c.ok(page.get_by_role("heading", name="Shops and connections").count() == 1, "the admin signs in to the shops page")
        cookie = next((k for k in ctx.cookies() if k["name"] == "ds_session"), None)
        c.ok(cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["expires"] > time.time(),
             "the session cookie is HttpOnly, SameSite=Lax and expiring")
        c.ok(page.get_by_role("link", name="Reconnect").count() >= 2
             and page.locator(f"a[href='/app/connect/shopify?shop={shop}']").count() == 1,
             "each shop has a Reconnect button to /app/connect/shopify")
        c.ok(page.get_by_role("link", name="Re-authorize").count() == 1
             and page.locator("#ae-h + .row .muted").count() >= 1,
             "AliExpress shows its re-authorize button and reminder")
        seen_html.append(page.content())
        shoot(page, "shops-desktop")

        # Orders: tabs and counts against the JSON API.
        visit(f"{base}/app/shops/{shop}/orders")
        api = demo.must("GET", f"{base}/shops/{shop}/orders?status=pending&limit=1", None, d.auth)["counts"]
        tabs = page.locator("nav[aria-label='Order tabs'] a")
        shown = {}
        for i in range(tabs.count()):
            text = tabs.nth(i).inner_text()
            m = re.match(r"(.+?)\s+(\d+)$", text.strip())
            if m:
                shown[m.group(1)] = int(m.group(2))
        expected = {TAB_LABELS[k]: api.get(k, 0) for k in TAB_LABELS}
        c.ok(shown == expected, f"the eight DSers tabs show the API's counts ({shown})")
        c.ok(expected["Awaiting order"] == 4 and expected["Awaiting shipment"] == 1 and expected["Fulfilled"] == 1 and expected["Canceled"] == 1,
             "the seeded orders are where they should be")
        c.ok(page.locator("table.orders tbody tr").count() == 4, "Awaiting order lists its four orders")
        axe(page, c, "orders")
        shoot(page, "orders-desktop")
        page.set_viewport_size({"width": 390, "height": 844})
        shoot(page, "orders-phone")
        page.set_viewport_size({"width": 1280, "height": 900})

        # Search by order name.
        page.fill("#q", "#1003")
        page.click("form[role=search] button")
        rows = page.locator("table.orders tbody tr")
        c.ok(rows.count() == 1 and "#1003" in rows.first.inner_text() and "Fulfilled" in rows.first.inner_text(),
             "searching #1003 finds it in the Fulfilled tab")
        seen_html.append(page.content())

        # Bulk place from Awaiting order: #1005 has no mapping, so it fails and the answer says where to look.
        visit(f"{base}/app/shops/{shop}/orders?tab=awaiting_order")
        page.check(f"#pick-{made['#1005']['id']}")
        page.click("#bulk button[type=submit]")
        c.ok(page.locator(".flash").count() == 1, "bulk place answers with a flash message")
        seen_html.append(page.content())

        # The order page: link an AliExpress order, then Sync now shows the new tracking.
        duo = made["#1002"]
        visit(f"{base}/app/shops/{shop}/orders/{duo['id']}")
        c.ok(page.get_by_role("heading", level=1).inner_text().startswith("Order #1002"), "the order page opens")
        ae = d.ae_order([("1005001000000002", "BOTTLE-SKU", 2, "Steel bottle"),
                         ("1005001000000003", "TENT-SKU", 1, "Tent")])
        page.fill("#ae-id", str(ae))
        page.click("form[action$='/link'] button[type=submit]")
        c.ok("Linked AliExpress order" in page.locator(".flash").inner_text(), "Link an AliExpress order says it linked")
        after = d.order_state(shop, duo["id"])
        c.ok([so["aliexpress_order_id"] for so in after["supplier_orders"]] == [str(ae)],
             "the link is stored (JSON API)")
        seen_html.append(page.content())
        d.ae_status(ae, "WAIT_BUYER_ACCEPT_GOODS", "SELLER_SEND_GOODS")
        d.ae_package(ae, "4PX3000123456789CN", "4PX", [("1005001000000002", "BOTTLE-SKU", 2),
                                                       ("1005001000000003", "TENT-SKU", 1)])
        page.click("form[action$='/sync'] button[type=submit]")
        flash = page.locator(".flash").inner_text()
        c.ok("1 new tracking number" in flash, f"Sync now reports the new tracking ({flash})")
        link = page.get_by_role("link", name=re.compile("4PX3000123456789CN"))
        c.ok(link.count() == 1 and "4PX3000123456789CN" in (link.get_attribute("href") or ""),
             "the tracking number links to the carrier page")
        seen_html.append(page.content())
        d.wait_pushed([(shop, duo["id"])])
        visit(f"{base}/app/shops/{shop}/orders/{duo['id']}")
        c.ok(page.get_by_text("Sent to Shopify").count() == 1, "the package shows as pushed to Shopify")
        axe(page, c, "order")
        shoot(page, "order-desktop")
        page.set_viewport_size({"width": 390, "height": 844})
        shoot(page, "order-phone")
        page.set_viewport_size({"width": 1280, "height": 900})

        # A fulfilled order shows each line's fulfilled quantity from its pushed packages.
        visit(f"{base}/app/shops/{shop}/orders/{made['#1003']['id']}")
        cell = page.locator("table.lines tbody tr").first.locator("td[data-label=Fulfilled]")
        c.ok(cell.inner_text().strip() == "1", f"a fulfilled order's line shows 1 fulfilled ({cell.inner_text()!r})")

        # Place an order: a mapped, paid order goes to AliExpress and waits for payment there.
        lamp = made["#1007"]
        visit(f"{base}/app/shops/{shop}/orders/{lamp['id']}")
        page.get_by_role("button", name="Place order", exact=True).click()
        flash = page.locator(".flash").inner_text()
        c.ok(flash.startswith("Placed 1 order on AliExpress"), f"Place order says it placed ({flash})")
        c.ok(page.get_by_role("heading", level=1).locator(".badge").inner_text() == "Awaiting payment"
             and d.order_state(shop, lamp["id"])["status"] == "awaiting_payment",
             "the placed order moves to Awaiting payment (page and JSON API)")
        seen_html.append(page.content())

        # Fix a failed order: the tent's listing is offline, so placing fails with advice; the
        # merchant maps the tent to the seller's current listing and presses Re-place.
        tent = made["#1008"]
        visit(f"{base}/app/shops/{shop}/orders/{tent['id']}")
        page.get_by_role("button", name="Place order", exact=True).click()
        c.ok("could not be placed" in page.locator(".flash").inner_text(), "a failed placement says so")
        failed = page.locator("section[aria-labelledby=fail-h]")
        c.ok(failed.count() == 1 and "not on sale" in failed.inner_text()
             and "Map the variant to another AliExpress product" in failed.inner_text(),
             "the order page shows why it failed and what to do")
        c.ok(d.order_state(shop, tent["id"])["status"] == "failed", "the order is in Failed (JSON API)")
        axe(page, c, "order (failed)")
        shoot(page, "order-failed-desktop")
        seen_html.append(page.content())
        page.get_by_role("link", name="Change the mapping of Two-person tent").click()
        c.ok(page.get_by_role("heading", name="Product mappings").count() == 1
             and page.input_value("#product") == "" , "the mappings page opens from the failed order")
        page.fill("#product", f"https://www.aliexpress.com/item/{demo.CATALOG['TENT-2P'][1]}.html")
        page.get_by_role("button", name="Look up on AliExpress").click()
        found = page.locator("form.lookup-result")
        c.ok(found.count() == 1 and "Two-person tent" in found.inner_text() and "Tent Factory" in found.inner_text()
             and demo.CATALOG["TENT-2P"][2] in found.inner_text(),
             "the lookup (ds.product.get) shows the product, its seller and its SKUs")
        c.ok(page.input_value("#variant") == str(demo.VARIANTS["TENT-2P"]),
             "the variant to map is filled in from the order")
        axe(page, c, "mappings")
        shoot(page, "mappings-desktop")
        page.set_viewport_size({"width": 390, "height": 844})
        shoot(page, "mappings-phone")
        page.set_viewport_size({"width": 1280, "height": 900})
        seen_html.append(page.content())
        page.get_by_role("button", name="Save mapping").click()
        flash = page.locator(".flash").inner_text()
        c.ok(flash.startswith(f"Mapped variant {demo.VARIANTS['TENT-2P']}") and "Re-place" in flash,
             f"saving the mapping says so and leads back to the order ({flash})")
        stored = demo.must("GET", f"{base}/shops/{shop}/mappings", None, d.auth)["mappings"]
        c.ok(any(m["variant_id"] == str(demo.VARIANTS["TENT-2P"])
                 and m["aliexpress_product_id"] == demo.CATALOG["TENT-2P"][1] for m in stored),
             "the new mapping is stored (JSON API)")
        page.get_by_role("button", name="Re-place order").click()
        flash = page.locator(".flash").inner_text()
        c.ok(flash.startswith("Placed 1 order on AliExpress"), f"Re-place says it placed ({flash})")
        c.ok(page.get_by_role("heading", level=1).locator(".badge").inner_text() == "Awaiting payment"
             and d.order_state(shop, tent["id"])["status"] == "awaiting_payment"
             and page.locator("section[aria-labelledby=fail-h]").count() == 0,
             "the fixed order moves to Awaiting payment and the failure is gone")
        seen_html.append(page.content())

        # The mappings page lists both mappings; a lookup of an unknown product says so in words.
        visit(f"{base}/app/shops/{shop}/mappings")
        c.ok(page.locator("table.maps tbody tr").count() == 2, "the mappings page lists the two mappings")
        page.fill("#product", "1005009999999999")
        page.get_by_role("button", name="Look up on AliExpress").click()
        c.ok(page.get_by_role("alert").count() == 1 and "1005009999999999" in page.get_by_role("alert").inner_text(),
             "an unknown product is answered in plain words")
        r = page.request.post(f"{base}/app/shops/{shop}/mappings",
                              form={"product_id": demo.CATALOG["LAMP-1"][1], "sku_id": demo.CATALOG["LAMP-1"][2],
                                    "variant_id": str(demo.VARIANTS["TENT-2P"])}, max_redirects=0)
        c.ok(r.status == 403, "a CSRF-less mapping save is refused")

        # Settings: change one, see it in the JSON API.
        before = demo.must("GET", f"{base}/shops/{shop}/settings", None, d.auth)
        visit(f"{base}/app/shops/{shop}/settings")
        axe(page, c, "settings")
        shoot(page, "settings-desktop")
        page.set_checked("#notify", not before["notify_customer"])
        page.click("form button[type=submit].primary")
        c.ok(page.locator(".flash").inner_text().startswith("Settings saved"), "saving settings says so")
        now = demo.must("GET", f"{base}/shops/{shop}/settings", None, d.auth)
        c.ok(now["notify_customer"] == (not before["notify_customer"]), "the setting changed (JSON API)")

        # A POST without (or with a wrong) CSRF token: 403, nothing changes.
        for body in ({"notify_customer": "on"} if not now["notify_customer"] else {},
                     {"csrf": "0" * 64, "tracking_url_template": "https://evil.example/{number}"}):
            r = page.request.post(f"{base}/app/shops/{shop}/settings", form=body, max_redirects=0)
            c.ok(r.status == 403, f"a POST without a valid CSRF token is refused with 403 ({sorted(body)})")
        c.ok(demo.must("GET", f"{base}/shops/{shop}/settings", None, d.auth) == now, "and nothing changed")
        r = page.request.post(f"{base}/app/shops/{shop}/orders/{made['#1005']['id']}/link",
                              form={"aliexpress_order_id": "123", "line_item_id": str(made['#1005']['line_items'][0]['id'])},
                              max_redirects=0)
        c.ok(r.status == 403 and not d.order_state(shop, made["#1005"]["id"])["supplier_orders"],
             "a CSRF-less link is refused and links nothing")

        # Attention.
        visit(f"{base}/app/shops/{shop}/attention")
        c.ok(page.get_by_role("heading", name="Needs attention").count() == 1, "the attention page opens")
        axe(page, c, "attention")

        # Nothing secret on any page.
        leaked = [s for s in secrets if any(s in h for h in seen_html)]
        c.ok(not leaked and all("unsafe-inline" not in h for h in seen_html), "no token or secret in any page")
        c.ok(not csp_errors, f"no Content-Security-Policy violation in the console {csp_errors[:2]}")

        # Sign out: the old cookie stops working.
        old = [k for k in ctx.cookies() if k["name"] == "ds_session"]
        visit(f"{base}/app")
        page.get_by_role("button", name="Sign out").click()
        c.ok("signed out" in page.locator(".flash").inner_text(), "sign out says so")
        replay = browser.new_context()
        replay.add_cookies(old)
        rp = replay.new_page()
        rp.goto(f"{base}/app/shops/{shop}/orders")
        c.ok(rp.locator("input[name=token]").count() == 1 and "#1002" not in rp.content(),
             "the old cookie no longer opens any page")
        replay.close()
        browser.close()


def main():
    proc, base = demo.start_stack()
    c = Checks()
    try:
        d = demo.Demo(base)
        print(f"dashboard: {base}/app")
        run(d, c)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    if c.failures:
        print("dashboard: FAILED:\n  " + "\n  ".join(c.failures))
        return 1
    print(f"dashboard: every check passed; screenshots in {SHOTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
