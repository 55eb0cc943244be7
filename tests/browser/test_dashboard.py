"""The dashboard in headless Chromium against the local stack and the sandboxes (see
dashboard.py): sign-in, tabs and counts against the JSON API, link, Sync now, place an order, fix
a failed one through the mappings page's product lookup, settings, CSRF, sign-out, axe-core.
Screenshots land in target/browser/."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def clean_env():
    env = dict(os.environ)
    for k in ("CREDENTIALS_FILE", "SHOPIFY_ADMIN_URL", "ALIEXPRESS_API_URL", "AWS_ENDPOINT_URL"):
        env.pop(k, None)
    return env


def test_a_merchant_signs_in_reads_the_tabs_links_syncs_changes_a_setting_and_signs_out():
    assert os.path.exists("/usr/bin/chromium") or os.environ.get("CHROMIUM"), \
        "chromium is missing: `make test` installs Debian's package"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "tools", "services.py"), "--local",
         "--sandboxes", "shopify,aliexpress", "--",
         sys.executable, os.path.join(ROOT, "tests", "browser", "dashboard.py")],
        cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    print(out[-6000:])
    assert proc.returncode == 0, out[-6000:]
    assert "dashboard: every check passed" in out
    for shot in ("orders-desktop", "orders-phone", "order-desktop", "order-phone", "signin-desktop",
                 "mappings-desktop", "mappings-phone", "order-failed-desktop"):
        assert os.path.getsize(os.path.join(ROOT, "target", "browser", f"{shot}.png")) > 10_000
