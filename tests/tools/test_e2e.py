"""End to end through the local stack: signed webhooks -> link -> sync -> push, over real HTTP,
the emulator and the sandboxes. The story (tests/tools/demo.py) checks every order's final tab
and exactly one Shopify fulfillment per package; these tests run it in both modes of
`make local`."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = os.path.join(ROOT, ".venv", "bin", "python")
SERVICES = os.path.join(ROOT, "tests", "tools", "services.py")
DEMO = os.path.join(ROOT, "tests", "tools", "demo.py")
AUTO_PLACE = os.path.join(ROOT, "tests", "tools", "auto_place_local.py")

sys.path.insert(0, os.path.join(ROOT, "tests", "sandbox"))


def run(env, *args, script=DEMO):
    proc = subprocess.run([PY, SERVICES, "--local", *args, "--", PY, script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def clean_env():
    env = dict(os.environ)
    for k in ("CREDENTIALS_FILE", "SHOPIFY_ADMIN_URL", "ALIEXPRESS_API_URL", "AWS_ENDPOINT_URL"):
        env.pop(k, None)
    return env


def test_the_demo_story_ends_with_every_order_in_its_tab_in_sandbox_mode():
    out = run(clean_env())
    assert "demo: every order is in the tab it should be in." in out
    assert "5 fulfillments expected" in out
    # The tab table was printed as the story went.
    assert out.count("orders arrive") == 2 and "all shipped" in out


def test_the_local_stack_uses_the_services_it_is_pointed_at(tmp_path):
    """`make local` with CREDENTIALS_FILE, SHOPIFY_ADMIN_URL and ALIEXPRESS_API_URL set talks to
    those (here: stand-ins this test starts itself) instead of starting its own sandboxes."""
    from dropsync_sandbox import aliexpress, shopify

    shop_srv = shopify.ShopifySandbox(schema_path=os.path.join(ROOT, "tests", "sandbox", "admin_2026-10.json.gz"))
    shop_srv.start()
    ae_srv = aliexpress.AliExpressSandbox().start("127.0.0.1", 0)
    try:
        env = clean_env()
        shop_url, ae_url = shop_srv.url, ae_srv.base_url
        sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
        import services
        extra = services.provision({"DROPSYNC_SHOPIFY_SANDBOX": shop_url, "DROPSYNC_ALIEXPRESS_SANDBOX": ae_url},
                                   str(tmp_path))
        env.update(extra)
        out = run(env)
        assert "sandbox mode" not in out, "it must not start sandboxes of its own"
        assert "DROPSYNC_SHOPIFY_SANDBOX=" not in out
        assert "demo: every order is in the tab it should be in." in out
        # Every demo shop, legacy (in the document) and connected by OAuth (in the table).
        shops = extra["DROPSYNC_DEMO_SHOPS"].split(",")
        # The fulfillments landed in *these* stand-ins.
        created = sum(shop_srv.admin("GET", f"/_admin/stats?shop={s}")[1]["fulfillments_created"] for s in shops)
        assert created == 5
    finally:
        shop_srv.stop()
        ae_srv.stop()


def test_the_local_stack_places_a_paid_mapped_order_of_an_auto_place_shop_from_its_webhook():
    """`make local` consumes the placement queue with the order placer's handler, as AWS does."""
    out = run(clean_env(), "--sandboxes", "shopify,aliexpress", script=AUTO_PLACE)
    assert "placed by the local order placer as AliExpress order" in out
    assert "the unmapped order stayed in awaiting_order" in out


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
