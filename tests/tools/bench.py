"""`make bench`: runs every benchmark and rewrites BENCHMARKS.md and target/bench/results.json.

    python tests/tools/bench.py              # build, run everything, write the report
    python tests/tools/bench.py --report     # rewrite BENCHMARKS.md from target/bench/results.json
    python tests/tools/bench.py --only dashboard   # run one benchmark, rewrite only its section (or push)
    python tests/tools/bench.py --only cold_start  # every deployed function's cold start (see COLD_START_PROFILE)

Each benchmark binary (bench/src/bin/{lifecycle,poll,push,reconcile,dashboard}.rs) prints one `BENCH {json}` line per
benchmark: what it measured, how, and its metrics with goals and references. This script builds
every Lambda function template.yaml deploys and the hello-world reference in the release profile
(fat LTO, one codegen unit: what is deployed; COLD_START_PROFILE=bench-harness, say, builds and
measures both in that profile instead, and the report names it) and the benchmark harness in
`bench-harness` (release without LTO, cheaper to build), starts the emulator and the sandboxes (tests/tools/services.py), runs the cold-start
measurement (tests/tools/coldstart.py) and each binary, runs the webhook criterion benchmark, and
writes the report. bench/NOTES.md holds the analysis written after a run: its `## <bench>` sections
are placed under that benchmark's table, the other sections at the end. Every other `## ` section
of BENCHMARKS.md (figures measured by hand or by a partial run) is kept word for word where it is;
each section the run writes replaces the one of the same name where it stands.

Sizes (the issue's by default): COLDSTART_RUNS (30), LOAD_WEBHOOKS (2000), ORDERS (1000),
LATENCY_ORDERS (200), POLL_ORDERS (5000), PUSH_PACKAGES (2000), RECONCILE_ORDERS (1000),
DASHBOARD_ORDERS (10000).
"""
import glob
import io
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import coldstart  # noqa: E402
import services  # noqa: E402



def template_binaries(path=None):
    """The binary of every function template.yaml deploys (`BuildProperties: Binary:`), in order."""
    with open(path or os.path.join(ROOT, "template.yaml")) as f:
        return re.findall(r"(?m)^\s+Binary:\s*([A-Za-z0-9_-]+)\s*$", f.read())


# Every deployed function is measured: the list comes from the template, and each binary's package.
FUNCTIONS = template_binaries()
PACKAGE_OF = {"shopify-webhook": "dropsync-shopify-webhook", "shopify-eventbridge": "dropsync-shopify-webhook",
              "aliexpress-poller": "dropsync-aliexpress-poller", "shopify-reconciler": "dropsync-shopify-reconciler",
              "tracking-pusher": "dropsync-tracking-pusher", "order-placer": "dropsync-order-placer",
              "api": "dropsync-api", "hello": "dropsync-bench"}
# The functions' and the hello-world reference's profile: `release` (what is deployed: fat LTO, one
# codegen unit) unless COLD_START_PROFILE names another (e.g. bench-harness, much cheaper to build on
# a small machine); the ratio is always against a hello-world built with the same profile in the same run.
PROFILES = {"release": "fat LTO, one codegen unit, panic abort, stripped: what is deployed",
            "bench-harness": "release without LTO, 16 codegen units, panic abort, stripped: not what is deployed"}
HARNESS_PROFILE = "bench-harness"
ORDER = ["cold_start", "webhook_cpu", "webhook_http", "poll", "push", "dynamodb_lifecycle", "dynamodb_steady_poll",
         "sync_latency", "reconcile", "dashboard"]
# The headline table: (bench, metric name).
HEADLINES = [
    ("cold_start", "slowest function init (start -> first next)"),
    ("cold_start", "slowest function init ÷ hello-world init"),
    ("cold_start", "largest peak RSS"),
    ("cold_start", "largest zipped binary"),
    ("webhook_cpu", "10 line items: verify + parse + build the write"),
    ("webhook_http", "DynamoDB calls per webhook"),
    ("webhook_http", "DynamoDB order writes per webhook"),
    ("webhook_http", "requests per second"),
    ("webhook_http", "latency p99"),
    ("poll", "achieved calls/s ÷ limit"),
    ("poll", "bans per 1,000 calls"),
    ("poll", "wall time ÷ ideal (calls ÷ limit)"),
    ("poll", "AliExpress calls per order"),
    ("reconcile", "in sync: orders/s"),
    ("reconcile", "in sync: Shopify cost per 1,000 orders"),
    ("reconcile", "extra cost of one recovered order"),
    ("push", "fulfillments/s ÷ what the buckets allow"),
    ("push", "GraphQL calls per fulfillment (every attempt)"),
    ("push", "throttled responses"),
    ("dynamodb_lifecycle", "DynamoDB writes per order"),
    ("dynamodb_lifecycle", "DynamoDB reads per order"),
    ("dynamodb_lifecycle", "total $ per 1,000 orders"),
    ("dynamodb_steady_poll", "DynamoDB writes per order"),
    ("dynamodb_steady_poll", "$ per 1,000 orders per poll"),
    ("sync_latency", "tracking -> fulfillment p99"),
    ("sync_latency", "webhook -> visible in API p99"),
    ("dashboard", "orders page (8 tab counts + 50 orders)"),
    ("dashboard", "order page"),
]


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")


def log(msg):
    sys.stderr.write(f"bench [{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def run(cmd, env=None, timeout=3600):
    """Runs a command from the repository root; its stderr streams through, stdout is returned."""
    t = time.time()
    log(" ".join(cmd))
    p = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, timeout=timeout)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:])
        raise SystemExit(f"bench: {' '.join(cmd)} failed ({p.returncode})")
    return p.stdout, time.time() - t


def run_together(cmds, env, timeout=1800):
    """Runs commands at the same time; returns (stdout, seconds, cmd) of each, failing if any fails."""
    return wait_procs(start_procs(cmds, env), timeout)


def start_procs(cmds, env):
    procs = []
    started = time.time()
    for cmd in cmds:
        log(" ".join(cmd))
        out = tempfile.TemporaryFile("w+")
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, text=True)
        # Each process's own finish time, even while the caller is busy with something else.
        p.finished_after = None

        def watch(p=p):
            p.wait()
            p.finished_after = time.time() - started
        threading.Thread(target=watch, daemon=True).start()
        procs.append((cmd, p, out))
    return started, procs


def wait_procs(handle, timeout=1800):
    started, procs = handle
    finished = {}
    try:
        while len(finished) < len(procs):
            if time.time() - started > timeout:
                raise SystemExit(f"bench: {[c for c, _, _ in procs]} did not finish within {timeout} s")
            for i, (cmd, p, out) in enumerate(procs):
                if i in finished or p.poll() is None:
                    continue
                finished[i] = p.finished_after or (time.time() - started)
                if p.returncode != 0:
                    out.seek(0)
                    sys.stderr.write(out.read()[-3000:])
                    raise SystemExit(f"bench: {' '.join(cmd)} failed ({p.returncode})")
            time.sleep(0.2)
        done = []
        for i, (cmd, p, out) in enumerate(procs):
            out.seek(0)
            done.append((out.read(), finished[i], cmd))
    finally:
        for _, p, _ in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return done


def bench_lines(out):
    return [json.loads(line[6:]) for line in out.splitlines() if line.startswith("BENCH ")]


def zipped_size(path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(path, "bootstrap")
    return len(buf.getvalue())


def metric(name, value, unit, goal=None, spread=None, reference=None):
    return {"name": name, "value": value, "unit": unit, "goal": goal, "spread": spread, "reference": reference}


class LoadSampler:
    """Samples the load average every 5 s while the benchmarks run."""

    def __init__(self):
        self.samples = []
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self.stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self.stop.wait(5)

    def summary(self):
        s = self.samples or [os.getloadavg()[0]]
        return {"mean_1min": round(statistics.mean(s), 2), "max_1min": round(max(s), 2), "samples": len(s)}


# ---- builds --------------------------------------------------------------------------------------

def cold_start_profile():
    return os.environ.get("COLD_START_PROFILE") or "release"


def build_functions(profile):
    """Every deployed function and the hello-world reference, in one profile."""
    t = time.time()
    bins = FUNCTIONS + ["hello"]
    missing = [b for b in bins if b not in PACKAGE_OF]
    if missing:
        raise SystemExit(f"bench: no package known for {missing} (PACKAGE_OF in tests/tools/bench.py)")
    packages = sorted({PACKAGE_OF[b] for b in bins})
    run(["cargo", "build", "--profile", profile, "--locked", *[f"-p={p}" for p in packages],
         *[f"--bin={b}" for b in bins]])
    return round(time.time() - t, 1)


def build_harness():
    t = time.time()
    # One invocation for the harness and the criterion benchmark: one feature resolution, so their
    # dependencies are compiled once (`cargo bench -p ...` alone would resolve them differently).
    out, _ = run(["cargo", "build", "--profile", HARNESS_PROFILE, "--locked", "--message-format=json-render-diagnostics",
                  "-p=dropsync-bench", "-p=dropsync-shopify-webhook", "--bin=lifecycle", "--bin=poll", "--bin=push", "--bin=reconcile",
                  "--bin=dashboard", "--bench=webhook"])
    criterion_exe = None
    for line in out.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "webhook" \
                and "bench" in msg["target"].get("kind", []):
            criterion_exe = msg.get("executable")
    if not criterion_exe:
        log("the criterion benchmark's executable was not found in cargo's messages")
    return {"seconds": round(time.time() - t, 1), "criterion_exe": criterion_exe}


# ---- 1. cold start -------------------------------------------------------------------------------

def sign(secret, body):
    import base64
    import hashlib
    import hmac
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def services_post(base, path, doc):
    import urllib.request
    req = urllib.request.Request(base.rstrip("/") + path, data=json.dumps(doc).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def cold_start_events(shop, secret):
    body = json.dumps({"id": 820982911946154508, "name": "#1", "financial_status": "paid",
                       "created_at": "2026-11-25T10:00:00-05:00", "updated_at": "2026-11-25T10:00:00-05:00",
                       "line_items": [{"id": 1, "quantity": 1, "sku": "A"}]}, separators=(",", ":")).encode()

    def apigw(method, path, headers, body=b""):
        return {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "", "headers": headers,
                "requestContext": {"accountId": "0", "apiId": "bench", "domainName": "localhost",
                                   "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                            "sourceIp": "127.0.0.1", "userAgent": "bench"},
                                   "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "",
                                   "timeEpoch": 0},
                "body": body.decode() if body else None, "isBase64Encoded": False}

    def sqs(bodies):
        return {"Records": [{"messageId": str(i), "receiptHandle": f"h{i}", "attributes": {}, "messageAttributes": {},
                             "eventSource": "aws:sqs", "body": b} for i, b in enumerate(bodies)]}

    scheduled = {"version": "0", "id": "s", "detail-type": "Scheduled Event", "source": "aws.events",
                 "account": "0", "time": "2026-11-25T02:00:00Z", "region": "us-east-1", "resources": [], "detail": {}}
    # Each function's first event is what its trigger in template.yaml delivers.
    return {
        "shopify-webhook": apigw("POST", "/webhooks/shopify", {
            "content-type": "application/json", "x-shopify-topic": "orders/create",
            "x-shopify-shop-domain": shop, "x-shopify-hmac-sha256": sign(secret, body)}, body),
        "shopify-eventbridge": sqs([json.dumps({
            "version": "0", "id": "e", "detail-type": "shopifyWebhook", "source": "aws.partner/shopify.com/1/src",
            "account": "0", "time": "2026-11-25T10:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"metadata": {"X-Shopify-Topic": "orders/updated", "X-Shopify-Shop-Domain": shop},
                       "payload": json.loads(body)}})]),
        "aliexpress-poller": scheduled,
        # The hourly schedule: lists the shop's orders updated since its watermark in the sandbox Shopify.
        "shopify-reconciler": scheduled,
        "tracking-pusher": sqs([json.dumps({"v": 1, "shop": shop, "order_id": "1", "aliexpress_order_id": "2",
                                            "tracking_number": "T"})]),
        # A placement message as the webhook queues it, for the order the webhook's run wrote: the
        # placer reads it back from the table and finds it not due (the shop does not place automatically).
        "order-placer": sqs([json.dumps({"shop": shop, "order_id": "820982911946154508"})]),
        "api": apigw("GET", "/health", {}),
        "hello": {"hello": "world"},
    }


def cold_start(env, runs, profile):
    """Cold start of every function against the running emulator, plus the hello-world reference,
    all built with `profile`."""
    import boto3
    kw = dict(endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1", aws_access_key_id="testing",
              aws_secret_access_key="testing")
    ddb, sqs = boto3.client("dynamodb", **kw), boto3.client("sqs", **kw)
    with open(env["DROPSYNC_INFRA"]) as f:
        table = json.load(f)["tables"]["OrdersTable"]
    name = f"coldstart-{os.getpid()}"
    ddb.create_table(TableName=name, **{k: v for k, v in table.items() if k != "TimeToLiveAttribute"})
    queue = sqs.create_queue(QueueName=f"coldstart-{os.getpid()}")["QueueUrl"]
    secret, shop = "shpss_test_secret", f"coldstart-{os.getpid()}.myshopify.com"
    # The shop exists in the sandbox Shopify, so the reconciler's first run lists its orders there.
    services_post(env["DROPSYNC_SHOPIFY_SANDBOX"], "/_admin/shops",
                  {"shop": shop, "access_token": "shpat_x", "webhook_secret": secret})
    creds = {"admin_token": "coldstart-admin-token-0123",
             "shops": {shop: {"access_token": "shpat_x", "webhook_secrets": [secret]}},
             "aliexpress": {"app_key": "12345678", "app_secret": "s", "access_token": "t", "refresh_token": "r",
                            "expire_time": int(time.time() * 1000) + 86_400_000}}
    cred_path = os.path.join(tempfile.mkdtemp(), "credentials.json")
    with open(cred_path, "w") as f:
        json.dump(creds, f)
    fenv = dict(os.environ, **env, TABLE_NAME=name, TRACKING_QUEUE_URL=queue, CREDENTIALS_FILE=cred_path,
                SHOPIFY_ADMIN_URL=env["DROPSYNC_SHOPIFY_SANDBOX"], ALIEXPRESS_API_URL=env["DROPSYNC_ALIEXPRESS_SANDBOX"])
    events = cold_start_events(shop, secret)
    missing = [n for n in FUNCTIONS if n not in events]
    if missing:
        raise SystemExit(f"bench: no cold-start event for {missing} (cold_start_events in tests/tools/bench.py)")
    api = coldstart.RuntimeApi()
    rel = os.path.join(target_dir(), profile)
    raw = {n: [] for n in ["hello"] + FUNCTIONS}
    # Interleaved (one run of each binary per round) so that a change in the machine's load hits
    # every binary alike, the reference included.
    for _ in range(runs):
        for n in raw:
            raw[n] += coldstart.measure(api, os.path.join(rel, n), events[n], fenv, runs=1)
    # Diagnostic, same run: the functions again with a one-certificate root store (SSL_CERT_FILE,
    # and an empty SSL_CERT_DIR; they only speak plain HTTP to the emulator and sandboxes here),
    # to measure what loading the system's root certificates costs their init.
    tiny = tempfile.mkdtemp()
    with open("/etc/ssl/certs/ca-certificates.crt") as f:
        pem = f.read()
    first = pem[:pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")] + "\n"
    os.makedirs(os.path.join(tiny, "dir"))
    with open(os.path.join(tiny, "one.pem"), "w") as f:
        f.write(first[first.index("-----BEGIN"):])
    tenv = dict(fenv, SSL_CERT_FILE=os.path.join(tiny, "one.pem"), SSL_CERT_DIR=os.path.join(tiny, "dir"))
    diag_runs = max(5, runs // 3)
    diag = {n: [] for n in ["hello"] + FUNCTIONS}
    for _ in range(diag_runs):
        for n in diag:
            diag[n] += coldstart.measure(api, os.path.join(rel, n), events[n], tenv, runs=1)
    rows = {}
    for n, rs in raw.items():
        inits = [r[0] for r in rs]
        firsts = [r[1] for r in rs]
        path = os.path.join(rel, n)
        rows[n] = {"init_ms": pct(inits), "first_response_ms": pct(firsts),
                   "peak_rss_mb": max((r[2] or 0) for r in rs) / 1024,
                   "binary_bytes": os.path.getsize(path), "zipped_bytes": zipped_size(path), "runs": len(rs),
                   "init_ms_all": [round(x, 3) for x in inits]}
    hello = rows["hello"]["init_ms"]["p50"]
    # The size goal is the deployed package's: only a release build is what `sam build` ships.
    zip_goal, zip_ref = ("< 5", None) if profile == "release" else (None, f"`{profile}` build, not the deployed size")
    metrics = [metric("hello-world reference: init (start -> first next)", hello, "ms",
                      spread=spread(rows["hello"]["init_ms"])),
               metric("hello-world reference: first event answered", rows["hello"]["first_response_ms"]["p50"], "ms",
                      spread=spread(rows["hello"]["first_response_ms"])),
               metric("hello-world reference: peak RSS", rows["hello"]["peak_rss_mb"], "MB")]
    for n in FUNCTIONS:
        r = rows[n]
        metrics += [
            metric(f"{n}: init (start -> first next)", r["init_ms"]["p50"], "ms", goal="< 20", spread=spread(r["init_ms"]),
                   reference=f"hello-world {hello:.2f} ms"),
            metric(f"{n}: init ÷ hello-world init", r["init_ms"]["p50"] / hello, "ratio", goal="<= 1.5",
                   reference=f"hello-world (`{profile}`) = 1"),
            metric(f"{n}: first event answered (start -> response)", r["first_response_ms"]["p50"], "ms",
                   spread=spread(r["first_response_ms"]),
                   reference=f"hello-world {rows['hello']['first_response_ms']['p50']:.2f} ms"),
            metric(f"{n}: peak RSS", r["peak_rss_mb"], "MB", goal="< 40", spread="max over runs",
                   reference=f"hello-world {rows['hello']['peak_rss_mb']:.1f} MB"),
            metric(f"{n}: stripped binary", r["binary_bytes"] / 2**20, "MiB"),
            metric(f"{n}: zipped binary", r["zipped_bytes"] / 2**20, "MiB", goal=zip_goal, reference=zip_ref),
        ]
    dh = pct([r[0] for r in diag["hello"]])
    for n in FUNCTIONS:
        d = pct([r[0] for r in diag[n]])
        rows[n]["init_ms_one_root_cert"] = d
        metrics.append(metric(f"diagnostic — {n}: init with a one-certificate root store", d["p50"], "ms",
                              spread=f"{len(diag[n])} runs; {spread(d)}",
                              reference=f"÷ hello-world ({dh['p50']:.2f} ms, same rounds) = {d['p50'] / dh['p50']:.2f}; "
                                        f"with the system store {rows[n]['init_ms']['p50']:.2f} ms"))
    rows["hello"]["init_ms_diagnostic_rounds"] = dh
    worst = max(FUNCTIONS, key=lambda n: rows[n]["init_ms"]["p50"])
    big_rss = max(FUNCTIONS, key=lambda n: rows[n]["peak_rss_mb"])
    big_zip = max(FUNCTIONS, key=lambda n: rows[n]["zipped_bytes"])
    metrics += [
        metric("slowest function init (start -> first next)", rows[worst]["init_ms"]["p50"], "ms", goal="< 20",
               spread=f"{worst}; {spread(rows[worst]['init_ms'])}", reference=f"hello-world {hello:.2f} ms"),
        metric("slowest function init ÷ hello-world init", rows[worst]["init_ms"]["p50"] / hello, "ratio",
               goal="<= 1.5", spread=worst, reference=f"hello-world (`{profile}`) = 1"),
        metric("largest peak RSS", rows[big_rss]["peak_rss_mb"], "MB", goal="< 40", spread=big_rss,
               reference=f"hello-world {rows['hello']['peak_rss_mb']:.1f} MB"),
        metric("largest zipped binary", rows[big_zip]["zipped_bytes"] / 2**20, "MiB", goal=zip_goal, reference=zip_ref,
               spread=f"{big_zip} (x86_64)"),
    ]
    what = PROFILES.get(profile, "a profile of the workspace's Cargo.toml")
    return {"bench": "cold_start",
            "how": f"Profile `{profile}` ({what}; x86_64 host): every function template.yaml deploys "
                   f"({', '.join(FUNCTIONS)}) and the reference, {runs} runs of each, interleaved round by round, "
                   "against a local Lambda Runtime API (tests/tools/coldstart.py): init = process start -> its first "
                   "GET /2018-06-01/runtime/invocation/next (Init Duration minus the sandbox); first event answered = "
                   "process start -> POST .../response; peak RSS = VmHWM after the answer. The functions read a "
                   "credentials file and reach the moto emulator and the sandboxes; each first event is its "
                   "trigger's: a signed orders/create (webhook), an EventBridge delivery in SQS (eventbridge), a "
                   "scheduled event (poller, reconciler: lists the shop's orders in the sandbox Shopify), a tracking "
                   "message (pusher), a placement message for the order the webhook wrote (placer: reads it, finds "
                   "it not due), GET /health (api). Reference: a hello-world lambda_runtime binary "
                   f"(bench/src/bin/hello.rs) built with the same profile (`{profile}`) in the same run. Zipped = "
                   "the bootstrap deflated at level 9, as `sam build` packages it.",
            "metrics": metrics, "extra": dict(rows, profile=profile, functions=FUNCTIONS)}


def pct(xs):
    xs = sorted(xs)

    def at(p):
        return xs[min(len(xs) - 1, round((len(xs) - 1) * p))]
    return {"p50": statistics.median(xs), "p10": at(0.1), "p90": at(0.9), "min": xs[0], "max": xs[-1]}


def spread(p):
    return f"p10–p90 {p['p10']:.2f}–{p['p90']:.2f}"


# ---- 2a. webhook CPU (criterion) -----------------------------------------------------------------

def criterion_webhook(exe):
    """The webhook's in-process CPU cost (criterion): per webhook for 1/10/100 line items."""
    started = time.time()
    home = os.path.join(target_dir(), "criterion")
    # What `cargo bench` does: the benchmark executable with --bench, from its package's directory.
    t = time.time()
    log(f"{exe} --bench")
    p = subprocess.run([exe, "--bench", "--warm-up-time", "1", "--measurement-time", "3"],
                       cwd=os.path.join(ROOT, "functions", "shopify-webhook"), env=dict(os.environ, CRITERION_HOME=home),
                       stdout=subprocess.DEVNULL, timeout=1200)
    if p.returncode != 0:
        raise SystemExit(f"bench: criterion benchmark failed ({p.returncode})")
    log(f"criterion done in {time.time() - t:.0f} s")
    found = {}
    for est in glob.glob(os.path.join(home, "**", "new", "estimates.json"), recursive=True):
        if os.path.getmtime(est) < started - 1:
            continue
        with open(os.path.join(os.path.dirname(est), "benchmark.json")) as f:
            full_id = json.load(f)["full_id"]
        with open(est) as f:
            e = json.load(f)
        found[full_id] = {"median_ns": e["median"]["point_estimate"],
                          "ci_ns": [e["median"]["confidence_interval"]["lower_bound"],
                                    e["median"]["confidence_interval"]["upper_bound"]],
                          "mad_ns": e["median_abs_dev"]["point_estimate"]}
    if not found:
        raise SystemExit("bench: criterion wrote no estimates")
    metrics = []

    def us(ns):
        return ns / 1000.0
    for full_id in sorted(found, key=lambda k: (not k.startswith("webhook/"), int(re.search(r"(\d+)", k.split("/")[-1]).group(1)), k)):
        e = found[full_id]
        group, fn, param = (full_id.split("/") + ["", ""])[:3]
        lines = re.match(r"(\d+)", param).group(1)
        if group == "webhook" and fn == "verify+parse+build":
            name = f"{lines} line item{'s' if lines != '1' else ''}: verify + parse + build the write"
        elif fn == "verify+parse+build_rotation":
            name = f"{lines} line items, secret rotation (two secrets tried)"
        else:
            name = f"{lines} line item{'s' if lines != '1' else ''}: {fn.replace('_', ' ')} alone"
        metrics.append(metric(name, us(e["median_ns"]), "µs",
                              spread=f"95% CI {us(e['ci_ns'][0]):.2f}–{us(e['ci_ns'][1]):.2f}; MAD {us(e['mad_ns']):.2f}"))
    return {"bench": "webhook_cpu",
            "how": "criterion (functions/shopify-webhook/benches/webhook.rs, bench-harness profile: release "
                   "without LTO), in process: HMAC verify + headers + parse + building the order (Order::from_shopify) "
                   "and the JSON of its line items, everything up to the DynamoDB call; median of 100 samples, 3 s "
                   "each benchmark",
            "metrics": metrics, "extra": found}


# ---- the report ----------------------------------------------------------------------------------

def verdict(m):
    g = m.get("goal")
    if not g:
        return ""
    v = m["value"]
    mm = re.match(r"^\s*(<=|>=|<|>|=)\s*([0-9.,]+)", g)
    if not mm:
        return ""
    op, x = mm.group(1), float(mm.group(2).replace(",", ""))
    ok = {"<=": v <= x, ">=": v >= x, "<": v < x, ">": v > x, "=": abs(v - x) < 1e-9}[op]
    return "met" if ok else "**missed**"


def fmt(v, unit=""):
    if unit == "USD":
        return f"${v:.5f}" if v < 0.01 else f"${v:.4f}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    if v == 0:
        return "0"
    return f"{v:.3g}"


def figure(m):
    unit = "" if m["unit"] in ("ratio", "USD") else f" {m['unit']}"
    return f"{fmt(m['value'], m['unit'])}{unit}"


def parse_notes(text):
    """(head, {title: body}) of bench/NOTES.md's text."""
    parts = re.split(r"(?m)^## ", text)
    head, sections = parts[0], {}
    for p in parts[1:]:
        title, _, body = p.partition("\n")
        sections[title.strip()] = body.strip("\n")
    return head, sections


def read_text(path):
    """A file's text, or "" when there is none."""
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        return f.read()


def notes_sections():
    return parse_notes(read_text(os.path.join(ROOT, "bench", "NOTES.md")))


def environment():
    def sh(*cmd):
        try:
            return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
        except Exception:
            return ""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release(),
            "rustc": sh("rustc", "--version"), "python": platform.python_version(),
            "commit": sh("git", "rev-parse", "--short=12", "HEAD"),
            "dirty": bool(sh("git", "status", "--porcelain", "--untracked-files=no")),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def wall_text(t):
    total, rel = t["total_seconds"] / 60, t.get("release_build_seconds", 0) / 60
    if "harness_build_seconds" not in t:  # an older results.json
        build = t.get("build_seconds", 0) / 60
        return (f"{total:.1f} min in all: {build:.1f} min building ({rel:.1f} of them the release functions), "
                f"{total - build:.1f} min measuring")
    harness = t["harness_build_seconds"] / 60
    during = " (the push benchmark ran meanwhile)" if t.get("push_during_release_build") else ""
    prof = t.get("cold_start_profile", "release")
    return (f"{total:.1f} min in all (bench.py; `make bench` adds the virtualenv when it is new): harness build "
            f"{harness:.1f} min, `{prof}` build of the functions {rel:.1f} min{during}, then "
            f"{total - harness - rel:.1f} min measuring")


def section(r, notes):
    """One benchmark's `## <bench>` section: how, the metrics table, and its notes (popped)."""
    extra = r.get("extra") if isinstance(r.get("extra"), dict) else {}
    wall, alongside = extra.get("wall_seconds"), extra.get("ran_alongside") or []
    when = f" (this step: {wall:.0f} s wall)" if wall else ""
    if alongside:
        when = f" (ran alongside {' and '.join(alongside)})"
    lines = [f"## {r['bench']}", "", r["how"] + when, ""]
    if extra.get("run_alone"):
        lines += [extra["run_alone"], ""]
    lines += ["| what | median | spread | goal | reference | verdict |", "|---|---|---|---|---|---|"]
    for m in r["metrics"]:
        if r["bench"] == "dynamodb_lifecycle" and "PutItem" in (m.get("spread") or ""):
            m = dict(m, spread=f"all operations, per order: {m['spread']}")
        lines.append(f"| {m['name']} | {figure(m)} | {m.get('spread') or ''} | {m.get('goal') or ''} | "
                     f"{m.get('reference') or ''} | {verdict(m)} |")
    lines.append("")
    if r["bench"] in notes:
        lines += [notes.pop(r["bench"]), ""]
    return lines


def split_sections(text):
    """(what precedes the first `## ` heading, [(title, block)]): each block is its `## ` line and
    everything up to the next one, verbatim."""
    heads = list(re.finditer(r"(?m)^## (.+)$", text))
    if not heads:
        return text, []
    blocks = []
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        blocks.append((m.group(1).strip(), text[m.start():end]))
    return text[:heads[0].start()], blocks


def base_title(title):
    """A section's name without its parenthesised remark: `reconcile (measured …)` is `reconcile`."""
    return title.split(" (")[0].strip()


def join_blocks(preamble, blocks):
    parts = [preamble.rstrip("\n") + "\n\n"] if preamble.strip() else []
    parts += [b.rstrip("\n") + "\n\n" for b in blocks]
    return "".join(parts).rstrip() + "\n"


def keep_unowned_sections(new_text, old_text):
    """`new_text`'s sections laid into `old_text`: each replaces the old section of the same name
    where it stands, every other old section (hand-measured figures, partial re-runs) is kept
    verbatim where it is, and a section `old_text` lacks goes after the one it follows in
    `new_text` (first when it follows none). The preamble is `new_text`'s."""
    preamble, new = split_sections(new_text)
    _, old = split_sections(old_text)
    fresh = {}
    for title, block in new:
        fresh.setdefault(base_title(title), block)
    out, placed = [], set()  # (base title or None when kept, block)
    for title, block in old:
        b = base_title(title)
        if b not in fresh:
            out.append((None, block))
        elif b not in placed:
            out.append((b, fresh[b]))
            placed.add(b)
    prev = None
    for title, block in new:
        b = base_title(title)
        if b not in placed:
            at = next((i + 1 for i, (t, _) in enumerate(out) if t == prev), 0) if prev else 0
            out.insert(at, (b, block))
            placed.add(b)
        prev = b
    return join_blocks(preamble, [block for _, block in out])


def splice(text, bench, new_block):
    """`text` with its `## <bench>` section replaced by `new_block` (or `new_block` added after the
    last benchmark section), every other section left as it was."""
    preamble, blocks = split_sections(text)
    mine = next((i for i, (title, _) in enumerate(blocks) if base_title(title) == bench), None)
    if mine is not None:
        blocks[mine] = (bench, new_block)
    else:
        # After the last section of a benchmark the full run orders (the notes' sections follow).
        after = [i for i, (title, _) in enumerate(blocks) if base_title(title) in ORDER]
        at = after[-1] + 1 if after else len(blocks)
        blocks.insert(at, (bench, new_block))
    return join_blocks(preamble, [b for _, b in blocks])


def splice_section(r):
    """Replaces (or adds) one `## <bench>` section of BENCHMARKS.md, leaving the rest of the report
    as the last full run (and whoever measured by hand since) wrote it."""
    _, notes = notes_sections()
    path = os.path.join(ROOT, "BENCHMARKS.md")
    text = splice(read_text(path), r["bench"], "\n".join(section(r, notes)))
    with open(path, "w") as f:
        f.write(text)


# The benchmarks `--only` can run: a harness binary with its command line (after the binary), or
# None for the cold start (this script's own measurement of the functions).
ONLY = {"dashboard": lambda sizes: [str(sizes["DASHBOARD_ORDERS"])],
        "push": lambda sizes: ["--packages", str(sizes["PUSH_PACKAGES"])],
        "cold_start": None}


def run_only(name, sizes):
    """Builds and runs one benchmark against fresh services and rewrites only its section of
    BENCHMARKS.md (and its entry in results.json, when there is one)."""
    t0 = time.time()
    profile = cold_start_profile()
    if ONLY[name] is None:
        build_s = build_functions(profile)
        log(f"functions built ({profile}) in {build_s:.0f} s")
    else:
        run(["cargo", "build", "--profile", HARNESS_PROFILE, "--locked", "-p=dropsync-bench", f"--bin={name}"])
    logdir = tempfile.mkdtemp(prefix="dropsync-bench-")
    svc = services.Services(logdir)
    try:
        env = services.start(svc)
        if ONLY[name] is None:
            t = time.time()
            found = [cold_start(env, sizes["COLDSTART_RUNS"], profile)]
            secs = time.time() - t
        else:
            benv = dict(os.environ, **env, **{k: str(v) for k, v in sizes.items()})
            cmd = [os.path.join(target_dir(), HARNESS_PROFILE, name), *ONLY[name](sizes)]
            [(out, secs, _)] = run_together([cmd], benv, timeout=3600)
            found = bench_lines(out)
    finally:
        svc.stop()
    if not found:
        raise SystemExit(f"bench: {name} printed no BENCH line")
    env = environment()
    load = os.getloadavg()[0]
    command = f".venv/bin/python tests/tools/bench.py --only {name}"
    if name == "cold_start" and profile != "release":
        command = f"COLD_START_PROFILE={profile} {command}"
    for r in found:
        r.setdefault("extra", {})["wall_seconds"] = round(secs, 1)
        r["extra"]["run_alone"] = (
            f"Run alone on {env['date']}, commit `{env['commit']}`{' (with uncommitted changes)' if env['dirty'] else ''}, "
            f"load average {load:.2f} on {env['cores']} cores: `{command}` "
            f"(`make bench` runs it with the others).")
        splice_section(r)
        if os.path.exists(results_path()):
            with open(results_path()) as f:
                doc = json.load(f)
            doc["results"] = [x for x in doc["results"] if x.get("bench") != r["bench"]] + [r]
            with open(results_path(), "w") as f:
                json.dump(doc, f, indent=2)
    log(f"{name} done in {time.time() - t0:.0f} s; its section of BENCHMARKS.md rewritten")


def render(doc, notes_text):
    """The report bench.py owns, from a results document and bench/NOTES.md's text."""
    results = sorted(doc["results"], key=lambda r: ORDER.index(r["bench"]) if r["bench"] in ORDER else 99)
    head, notes = parse_notes(notes_text)
    env, load, t = doc["environment"], doc["load"], doc["timing"]
    prof = doc.get("cold_start_profile", "release")
    lines = ["# Benchmarks", "",
             "Written by `make bench` (tests/tools/bench.py): the benchmarks' sections are rewritten from each run, "
             "with the analysis from `bench/NOTES.md`; any other `## ` section (figures measured by hand or "
             "by a partial run) is kept as it is, where it is. Machine-readable: `target/bench/results.json`.", "",
             "## Environment", "",
             "| | |", "|---|---|",
             f"| run | {env['date']}, commit `{env['commit']}`{' (with uncommitted changes)' if env['dirty'] else ''} |",
             f"| machine | {env['cpu']}, {env['cores']} cores, {env['memory']}, Linux {env['kernel']} |",
             f"| load average (1 min) | {load['at_start']:.2f} at start; during the run mean {load['mean_1min']:.2f}, "
             f"max {load['max_1min']:.2f} (on {env['cores']} cores) |",
             f"| toolchain | {env['rustc']}; Python {env['python']} (moto, sandboxes) |",
             f"| profiles | functions + hello-world reference: `{prof}` ({PROFILES.get(prof, 'see Cargo.toml')}); "
             "harness binaries and criterion: `bench-harness` (release without LTO, 16 codegen units) |",
             f"| wall time | {wall_text(t)} |",
             f"| sizes | {doc.get('sizes_text', '')} |", ""]
    if head.strip():
        lines += [head.strip().removeprefix("# Bench notes").strip(), ""]
    by = {r["bench"]: r for r in results}
    lines += ["## Headline figures", "", "| benchmark | what | figure | goal | reference | verdict |",
              "|---|---|---|---|---|---|"]
    for b, name in HEADLINES:
        m = next((m for m in by.get(b, {}).get("metrics", []) if m["name"] == name), None)
        if m:
            lines.append(f"| {b} | {name} | {figure(m)} | {m.get('goal') or '—'} | {m.get('reference') or ''} | "
                         f"{verdict(m)} |")
        else:
            lines.append(f"| {b} | {name} | not measured | | | |")
    lines.append("")
    for r in results:
        lines += section(r, notes)
    for title, body in notes.items():
        lines += [f"## {title}", "", body, ""]
    return "\n".join(lines).rstrip() + "\n"


def write(doc):
    """Rewrites BENCHMARKS.md: the sections this run owns, and every other section of the file as
    it was."""
    path = os.path.join(ROOT, "BENCHMARKS.md")
    text = keep_unowned_sections(render(doc, read_text(os.path.join(ROOT, "bench", "NOTES.md"))), read_text(path))
    with open(path, "w") as f:
        f.write(text)
    return text


def results_path():
    return os.path.join(target_dir(), "bench", "results.json")


def main():
    if "--report" in sys.argv[1:]:
        with open(results_path()) as f:
            write(json.load(f))
        log("BENCHMARKS.md rewritten from " + results_path())
        return
    sizes = {k: int(os.environ.get(k, d)) for k, d in [("COLDSTART_RUNS", 30), ("LOAD_WEBHOOKS", 2000),
                                                       ("ORDERS", 1000), ("LATENCY_ORDERS", 200),
                                                       ("POLL_ORDERS", 5000), ("PUSH_PACKAGES", 2000),
                                                       ("RECONCILE_ORDERS", 1000), ("DASHBOARD_ORDERS", 10000)]}
    if "--only" in sys.argv[1:]:
        args = sys.argv[1:]
        name = args[args.index("--only") + 1] if args.index("--only") + 1 < len(args) else ""
        if name not in ONLY:
            raise SystemExit(f"bench: --only takes one of {sorted(ONLY)}")
        run_only(name, sizes)
        return
    t0 = time.time()
    cold_profile = cold_start_profile()
    load0 = os.getloadavg()[0]
    sampler = LoadSampler()
    b = build_harness()
    log(f"harness built in {b['seconds']:.0f} s")
    results = []
    logdir = tempfile.mkdtemp(prefix="dropsync-bench-")
    svc = services.Services(logdir)
    hbin = os.path.join(target_dir(), HARNESS_PROFILE)
    try:
        env = services.start(svc)
        benv = dict(os.environ, **env, **{k: str(v) for k, v in sizes.items()})
        poll = [os.path.join(hbin, "poll"), str(sizes["POLL_ORDERS"]), "4"]
        push = [os.path.join(hbin, "push"), "--packages", str(sizes["PUSH_PACKAGES"])]

        def collect(done, alongside):
            for out, secs, cmd in done:
                log(f"{os.path.basename(cmd[0])} done in {secs:.0f} s")
                for r in bench_lines(out):
                    r.setdefault("extra", {})["wall_seconds"] = round(secs, 1)
                    r["extra"]["ran_alongside"] = [os.path.basename(d[2][0]) for d in done
                                                   if d[2] is not cmd] + alongside
                    results.append(r)
        # Every benchmark runs after the functions are built, alone. The poll and the push pace
        # themselves to the second (the push from each answer's throttleStatus), and two fat-LTO
        # links on two cores starve the sandboxes and the pacers alike: alongside the build the
        # poll saw 1.4 bans per 1,000 calls and the push 2.7 % THROTTLED answers, alone 0 and 0.
        release_s = build_functions(cold_profile)
        log(f"functions built ({cold_profile}) in {release_s:.0f} s")
        t = time.time()
        results.append(cold_start(env, sizes["COLDSTART_RUNS"], cold_profile))
        results[-1]["extra"]["wall_seconds"] = round(time.time() - t, 1)
        log(f"cold start done in {time.time() - t:.0f} s")
        collect(run_together([[os.path.join(hbin, "lifecycle")]], benv), [])
        collect(run_together([poll], benv), [])
        collect(run_together([[os.path.join(hbin, "reconcile")]], benv), [])
        collect(run_together([[os.path.join(hbin, "dashboard"), str(sizes["DASHBOARD_ORDERS"])]], benv,
                             timeout=3600), [])
        collect(run_together([push], benv), [])
    finally:
        svc.stop()
    t = time.time()
    try:
        results.append(criterion_webhook(b["criterion_exe"]))
    except (SystemExit, OSError, TypeError, ValueError, KeyError) as e:
        log(f"criterion: {e}")
        results.append({"bench": "webhook_cpu", "how": f"criterion benchmark did not run: {e}", "metrics": [],
                        "extra": {}})
    results[-1]["extra"]["wall_seconds"] = round(time.time() - t, 1)
    sampler.stop.set()
    total = time.time() - t0
    doc = {"results": results, "environment": environment(),
           "load": dict(sampler.summary(), at_start=load0),
           "timing": {"total_seconds": round(total, 1), "harness_build_seconds": b["seconds"],
                      "release_build_seconds": release_s, "push_during_release_build": False,
                      "cold_start_profile": cold_profile},
           "sizes": sizes, "cold_start_profile": cold_profile,
           "sizes_text": f"{sizes['COLDSTART_RUNS']} cold starts per binary; {sizes['LOAD_WEBHOOKS']:,} webhooks under "
                         f"load; {sizes['POLL_ORDERS']:,} polled orders; {sizes['PUSH_PACKAGES']:,} packages; "
                         f"{sizes['ORDERS']:,} lifecycle orders; {sizes['LATENCY_ORDERS']} latency orders; "
                         f"{sizes['RECONCILE_ORDERS']:,} reconciled orders; {sizes['DASHBOARD_ORDERS']:,} orders in "
                         f"the dashboard's shop"}
    os.makedirs(os.path.dirname(results_path()), exist_ok=True)
    with open(results_path(), "w") as f:
        json.dump(doc, f, indent=2)
    write(doc)
    log(f"done in {total / 60:.1f} min; BENCHMARKS.md and {results_path()} written")


if __name__ == "__main__":
    main()
