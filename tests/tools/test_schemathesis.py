"""schemathesis (property-based API testing) against `openapi.yaml` and the running local stack.

The test starts `services.py --local` (moto and the sandboxes, demo shops and an AliExpress app
provisioned) around this file's `--inner` mode, which starts the local stack binary
(`cargo run -q -p dropsync-local`, as `tests/tools/demo.py` does), waits for `/health`, seeds a
real order (from the sandbox Shopify, through a signed webhook) and runs schemathesis with the
admin token from the provisioned credentials: a bounded number of generated requests per
operation, positive and negative, with the shop and order in paths pinned to ones that exist so
that the authorised code paths are exercised. Checks: no 5xx (`not_a_server_error`), responses
conform to the schema (`response_schema_conformance`), status codes and content types are ones
the description lists, and schema-invalid requests are refused (`negative_data_rejection`).

schemathesis is pinned in `tests/requirements-schemathesis.txt` and installed into `.venv` on
first use (a few seconds; it only adds packages).

    .venv/bin/python -m pytest -q tests/tools/test_schemathesis.py
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo  # noqa: E402  (the local stack's start and stop, as make demo does them)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = os.path.join(ROOT, ".venv", "bin", "python")
# Run as a module of the venv's Python, not through .venv/bin/schemathesis: pip writes that script's
# shebang from the path it was installed through, and CI's .venv is a link into a shared cache that
# clones at other paths also use, so the script can name an interpreter that no longer exists.
SCHEMATHESIS = [PY, "-m", "schemathesis.cli"]
SERVICES = os.path.join(ROOT, "tests", "tools", "services.py")
REQUIREMENTS = os.path.join(ROOT, "tests", "requirements-schemathesis.txt")
# Per operation (9 operations): about 1,000 requests, some 20 s (stack start excluded).
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "150"))
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261125")
CHECKS = os.environ.get("SCHEMATHESIS_CHECKS", ",".join([
    "not_a_server_error", "response_schema_conformance", "status_code_conformance",
    "content_type_conformance", "negative_data_rejection"]))


def ensure_schemathesis():
    """Installs the pinned schemathesis into .venv unless it is there; returns seconds spent."""
    want = None
    with open(REQUIREMENTS) as f:
        for line in f:
            if line.startswith("schemathesis=="):
                want = line.strip().split("==", 1)[1]
    assert want, "tests/requirements-schemathesis.txt pins no schemathesis"
    out = subprocess.run([*SCHEMATHESIS, "--version"], capture_output=True, text=True)
    if out.returncode == 0 and want in out.stdout:
        return 0.0
    t0 = time.time()
    subprocess.run([PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", REQUIREMENTS],
                   check=True, cwd=ROOT)
    return time.time() - t0


def http(method, url, body=None, headers=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})},
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def seed_order(base, shop):
    """One paid order in the sandbox Shopify, delivered to the stack as a signed webhook."""
    shopify = os.environ["SHOPIFY_ADMIN_URL"] + "/_admin"
    status, out = http("POST", f"{shopify}/orders", {"shop": shop, "order": {
        "financial_status": "paid",
        "line_items": [{"sku": "ST-1", "title": "Steel bottle", "quantity": 2, "price": "7.50"}]}})
    assert status == 200, out
    order_id = out["order"]["id"]
    status, out = http("POST", f"{shopify}/webhooks/deliver", {
        "shop": shop, "topic": "orders/create", "order_id": order_id, "target_url": f"{base}/webhooks/shopify"})
    assert status == 200 and out["deliveries"][0]["status"] == 200, out
    return order_id


def inner():
    """Inside services.py --local: start the stack, seed, run schemathesis; exit with its code."""
    with open(os.environ["CREDENTIALS_FILE"]) as f:
        creds = json.load(f)
    shop = sorted(creds["shops"])[0]
    logdir = tempfile.mkdtemp(prefix="dropsync-schemathesis-")
    t0 = time.time()
    proc, base = demo.start_stack(os.path.join(logdir, "local-stack.log"), who="schemathesis")
    started = time.time() - t0
    try:
        order_id = seed_order(base, shop)
        config = os.path.join(logdir, "schemathesis.toml")
        with open(config, "w") as f:
            f.write(f'[parameters]\n"path.shop" = "{shop}"\n"path.order_id" = "{order_id}"\n')
        t1 = time.time()
        cmd = [*SCHEMATHESIS, "--config-file", config, "run", os.path.join(ROOT, "openapi.yaml"),
               "--url", base, "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--seed", SEED,
               "--workers", "2", "--request-timeout", "20", "--no-color", "--mode", "all",
               "--phases", "examples,fuzzing",  # the coverage phase of this schemathesis version can crash internally
               "--header", f"Authorization: Bearer {creds['admin_token']}",
               "--report", "junit", "--report-dir", logdir]
        code = subprocess.run(cmd, cwd=logdir).returncode
        print(f"schemathesis: stack ready in {started:.1f}s, run took {time.time() - t1:.1f}s "
              f"({MAX_EXAMPLES} examples per operation); report in {logdir}", flush=True)
        status, _ = http("GET", f"{base}/health")
        if status != 200:
            print(f"schemathesis: the stack is unhealthy after the run ({status})", flush=True)
            code = code or 1
        return code
    finally:
        demo.stop_stack(proc)


def clean_env():
    env = dict(os.environ)
    for k in ("CREDENTIALS_FILE", "SHOPIFY_ADMIN_URL", "ALIEXPRESS_API_URL", "AWS_ENDPOINT_URL"):
        env.pop(k, None)
    return env


def test_generated_requests_never_get_a_5xx_and_every_answer_matches_openapi_yaml():
    installed_in = ensure_schemathesis()
    t0 = time.time()
    proc = subprocess.run([PY, SERVICES, "--local", "--", PY, os.path.abspath(__file__), "--inner"],
                          cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    print(out[-6000:])
    print(f"schemathesis: install {installed_in:.1f}s, services + stack + run {time.time() - t0:.1f}s")
    assert proc.returncode == 0, out[-8000:]
    assert "schemathesis: stack ready" in out
    # It really generated and sent requests.
    assert " passed" in out or "No issues found" in out, out[-3000:]


if __name__ == "__main__":
    if sys.argv[1:] == ["--inner"]:
        sys.exit(inner())
    import pytest
    sys.exit(pytest.main([__file__, "-q", "-s"]))
