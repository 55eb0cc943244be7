"""Starts the services dropsync's tests and local runs need, runs a command, stops them.

    python tests/tools/services.py [--no-sandboxes] -- COMMAND ARGS...

Starts moto (DynamoDB + SQS) on a free loopback port and, unless told otherwise, the sandbox
Shopify and AliExpress; exports where they are; runs COMMAND; and stops everything it started
(by PID) whatever the command's outcome. A service that does not come up is a loud failure.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"services: {what} exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"services: {what} did not answer {url} within {timeout}s")


def wait_ready_file(path, proc, what, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"services: {what} exited with {proc.returncode} before it was ready")
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path) as f:
                return f.read().strip()
        time.sleep(0.1)
    raise SystemExit(f"services: {what} was not ready within {timeout}s")


class Services:
    def __init__(self, logdir):
        self.procs = []
        self.logdir = logdir

    def spawn(self, name, argv, env=None):
        log = open(os.path.join(self.logdir, f"{name}.log"), "wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def stop(self):
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


ALL_SANDBOXES = ("shopify", "aliexpress")


def start(services, sandboxes=ALL_SANDBOXES):
    env = {}
    port = free_port()
    # moto's own server lets two conditional writes race (see moto_atomic.py): DynamoDB does not.
    moto = services.spawn("moto", [os.path.join(VENV_BIN, "python"), os.path.join(HERE, "moto_atomic.py"),
                                   "-H", "127.0.0.1", "-p", str(port)])
    endpoint = f"http://127.0.0.1:{port}"
    wait_http(f"{endpoint}/moto-api/", moto, "moto_server")
    env.update({
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    })
    infra = os.path.join(services.logdir, "infra.json")
    with open(infra, "w") as f:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import infra as infra_mod  # noqa: E402 (the venv's yaml is needed, so import late)
        json.dump(infra_mod.extract(os.path.join(ROOT, "template.yaml")), f)
    env["DROPSYNC_INFRA"] = infra
    if sandboxes:
        py = os.path.join(VENV_BIN, "python")
        penv = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "tests", "sandbox"))
        for name in sandboxes:
            var = f"DROPSYNC_{name.upper()}_SANDBOX"
            ready = os.path.join(services.logdir, f"{name}.ready")
            proc = services.spawn(name, [py, "-m", f"dropsync_sandbox.{name}", "--host", "127.0.0.1",
                                         "--port", "0", "--ready-file", ready], env=penv)
            env[var] = wait_ready_file(ready, proc, f"sandbox {name}")
    return env


def _post(base, path, body):
    req = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


DEMO_SHOPS = ("demo-outdoor.myshopify.com", "demo-kitchen.myshopify.com")
# Shops the demo connects by OAuth, as a merchant of a Dev Dashboard app does (the others keep a
# legacy pasted token, which still works).
DEMO_OAUTH_SHOPS = ("demo-outdoor.myshopify.com",)
DEMO_SCOPES = "read_orders,write_orders,read_merchant_managed_fulfillment_orders,write_merchant_managed_fulfillment_orders"


def provision(env, logdir):
    """Sandbox mode of the local stack: registers a Dev Dashboard app, demo shops and an
    AliExpress app in the sandboxes with fresh random secrets, and writes the credentials document
    for them. OAuth shops get no token here: they are connected through /connect/shopify."""
    import secrets as rnd
    shop_base = env["DROPSYNC_SHOPIFY_SANDBOX"] + "/_admin"
    ae_base = env["DROPSYNC_ALIEXPRESS_SANDBOX"] + "/_admin"
    client_id, client_secret = rnd.token_hex(16), "shpss_" + rnd.token_hex(16)
    _post(shop_base, "/oauth/app", {"client_id": client_id, "client_secret": client_secret})
    doc = {"admin_token": "adm_" + rnd.token_hex(16), "shops": {},
           "shopify_app": {"client_id": client_id, "client_secret": client_secret, "scopes": DEMO_SCOPES}}
    for shop in DEMO_SHOPS:
        token, secret = "shpat_" + rnd.token_hex(16), "shpss_" + rnd.token_hex(16)
        if shop in DEMO_OAUTH_SHOPS:
            # Shopify signs an app's webhooks with its client secret; the shop's own token is never handed out.
            _post(shop_base, "/shops", {"shop": shop, "access_token": token, "webhook_secret": client_secret})
            continue
        _post(shop_base, "/shops", {"shop": shop, "access_token": token, "webhook_secret": secret})
        doc["shops"][shop] = {"access_token": token, "webhook_secrets": [secret]}
    app_key = str(30_000_000 + rnd.randbelow(9_000_000))
    app_secret, access, refresh = rnd.token_hex(16), "ae_" + rnd.token_hex(16), "aer_" + rnd.token_hex(16)
    _post(ae_base, "/apps", {"app_key": app_key, "app_secret": app_secret, "calls_per_second": 20})
    _post(ae_base, "/tokens", {"app_key": app_key, "access_token": access, "refresh_token": refresh,
                               "account": "demo-buyer", "expires_in": 30 * 86400, "refresh_expires_in": 60 * 86400})
    doc["aliexpress"] = {"app_key": app_key, "app_secret": app_secret, "access_token": access,
                         "refresh_token": refresh}
    path = os.path.join(logdir, "credentials.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    os.chmod(path, 0o600)
    return {
        "CREDENTIALS_FILE": path,
        "SHOPIFY_ADMIN_URL": env["DROPSYNC_SHOPIFY_SANDBOX"],
        "ALIEXPRESS_API_URL": env["DROPSYNC_ALIEXPRESS_SANDBOX"],
        "DROPSYNC_AE_ACCOUNT": "demo-buyer",
        "DROPSYNC_AE_APP_KEY": app_key,
        "DROPSYNC_DEMO_SHOPS": ",".join(DEMO_SHOPS),
        "DROPSYNC_DEMO_OAUTH_SHOPS": ",".join(DEMO_OAUTH_SHOPS),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-sandboxes", action="store_true")
    ap.add_argument("--local", action="store_true",
                    help="for the local stack: use CREDENTIALS_FILE, SHOPIFY_ADMIN_URL and ALIEXPRESS_API_URL "
                         "when all three are set, else start the sandboxes and provision demo credentials")
    ap.add_argument("--sandboxes", default=",".join(ALL_SANDBOXES),
                    help="comma-separated sandboxes to start (default: all)")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no command given")
    logdir = tempfile.mkdtemp(prefix="dropsync-services-")
    services = Services(logdir)
    code = 1
    try:
        wanted = () if args.no_sandboxes else tuple(x for x in args.sandboxes.split(",") if x)
        real = all(os.environ.get(k) for k in ("CREDENTIALS_FILE", "SHOPIFY_ADMIN_URL", "ALIEXPRESS_API_URL"))
        if args.local and real:
            wanted = ()
        unknown = set(wanted) - set(ALL_SANDBOXES)
        if unknown:
            ap.error(f"unknown sandboxes: {sorted(unknown)}")
        env = start(services, sandboxes=wanted)
        if args.local:
            env.setdefault("TABLE_NAME", os.environ.get("TABLE_NAME", "dropsync-local"))
            if not real:
                env.update(provision(env, logdir))
                with open(env["CREDENTIALS_FILE"]) as f:
                    print(f"services: sandbox mode; merchant API admin token: {json.load(f)['admin_token']}",
                          flush=True)
        print(f"services: up ({', '.join(f'{k}={v}' for k, v in env.items() if 'SECRET' not in k)}); logs in {logdir}",
              flush=True)
        child = subprocess.Popen(cmd, env=dict(os.environ, **env), cwd=os.getcwd())

        def forward(signum, _frame):
            child.send_signal(signum)
        signal.signal(signal.SIGINT, forward)
        signal.signal(signal.SIGTERM, forward)
        code = child.wait()
    finally:
        services.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()
