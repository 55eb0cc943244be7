"""`make bench`: runs every benchmark and rewrites BENCHMARKS.md and target/bench/results.json.

Each benchmark binary (bench/src/bin/*.rs) prints one `BENCH {json}` line: what it measured, how,
and its metrics with goals. This script builds the release binaries, starts the emulator and the
sandboxes (tests/tools/services.py), runs the cold-start measurement (tests/tools/coldstart.py)
and each binary, runs the webhook criterion benchmark, and writes the report. Sizes can be reduced
with the environment variables the binaries document (e.g. ORDERS=200) for a quick look.
"""
import gzip
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import coldstart  # noqa: E402
import services  # noqa: E402

FUNCTIONS = ["shopify-webhook", "shopify-eventbridge", "aliexpress-poller", "tracking-pusher", "api"]
PACKAGES = ["dropsync-shopify-webhook", "dropsync-aliexpress-poller", "dropsync-tracking-pusher", "dropsync-api",
            "dropsync-bench"]
BENCH_BINS = ["lifecycle", "poll", "push"]


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")


def run(cmd, env=None, timeout=3600):
    t = time.time()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:])
        raise SystemExit(f"bench: {' '.join(cmd)} failed ({p.returncode})")
    return p.stdout, time.time() - t


def bench_lines(out):
    return [json.loads(line[6:]) for line in out.splitlines() if line.startswith("BENCH ")]


def zipped_size(path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(path, "bootstrap")
    return len(buf.getvalue())


def sign(secret, body):
    import base64
    import hashlib
    import hmac
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def cold_start(env, runs):
    """Cold start of every function against the running emulator, plus the hello-world reference."""
    import boto3
    ddb = boto3.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    with open(env["DROPSYNC_INFRA"]) as f:
        table = json.load(f)["tables"]["OrdersTable"]
    name = f"coldstart-{os.getpid()}"
    ddb.create_table(TableName=name, **{k: v for k, v in table.items() if k != "TimeToLiveAttribute"})
    sqs = boto3.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    queue = sqs.create_queue(QueueName=f"coldstart-{os.getpid()}")["QueueUrl"]
    secret, shop = "shpss_test_secret", "example.myshopify.com"
    creds = {"admin_token": "coldstart-admin-token-0123", "shops": {shop: {"access_token": "shpat_x", "webhook_secrets": [secret]}},
             "aliexpress": {"app_key": "12345678", "app_secret": "s", "access_token": "t", "refresh_token": "r",
                            "expire_time": int(time.time() * 1000) + 86_400_000}}
    tmp = tempfile.mkdtemp()
    cred_path = os.path.join(tmp, "credentials.json")
    with open(cred_path, "w") as f:
        json.dump(creds, f)
    fenv = dict(os.environ, **env, TABLE_NAME=name, TRACKING_QUEUE_URL=queue, CREDENTIALS_FILE=cred_path,
                SHOPIFY_ADMIN_URL=env["DROPSYNC_SHOPIFY_SANDBOX"], ALIEXPRESS_API_URL=env["DROPSYNC_ALIEXPRESS_SANDBOX"])
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

    events = {
        "shopify-webhook": apigw("POST", "/webhooks/shopify", {
            "content-type": "application/json", "x-shopify-topic": "orders/create",
            "x-shopify-shop-domain": shop, "x-shopify-hmac-sha256": sign(secret, body)}, body),
        "shopify-eventbridge": {"Records": [{"messageId": "1", "receiptHandle": "h", "attributes": {},
                                             "messageAttributes": {}, "eventSource": "aws:sqs",
                                             "body": json.dumps({"version": "0", "id": "e", "detail-type": "shopifyWebhook",
                                                                 "source": "aws.partner/shopify.com/1/src", "account": "0",
                                                                 "time": "2026-11-25T10:00:00Z", "region": "us-east-1",
                                                                 "resources": [], "detail": {"metadata": {
                                                                     "X-Shopify-Topic": "orders/updated",
                                                                     "X-Shopify-Shop-Domain": shop},
                                                                     "payload": json.loads(body)}})}]},
        "aliexpress-poller": {"version": "0", "id": "s", "detail-type": "Scheduled Event", "source": "aws.events",
                              "account": "0", "time": "2026-11-25T02:00:00Z", "region": "us-east-1",
                              "resources": [], "detail": {}},
        "tracking-pusher": {"Records": [{"messageId": "1", "receiptHandle": "h", "attributes": {},
                                         "messageAttributes": {}, "eventSource": "aws:sqs",
                                         "body": json.dumps({"v": 1, "shop": shop, "order_id": "1",
                                                             "aliexpress_order_id": "2", "tracking_number": "T"})}]},
        "api": apigw("GET", "/health", {}),
        "hello": {"hello": "world"},
    }
    api = coldstart.RuntimeApi()
    rel = os.path.join(target_dir(), "release")
    results = {}
    for name in ["hello"] + FUNCTIONS:
        runs_out = coldstart.measure(api, os.path.join(rel, name), events[name], fenv, runs=runs)
        results[name] = runs_out
    return results


def criterion_webhook():
    """The webhook's in-process CPU cost (criterion): µs per webhook for 1/10/100 line items."""
    out, _ = run(["cargo", "bench", "-q", "-p", "dropsync-shopify-webhook", "--bench", "webhook", "--", "--noplot"])
    found = {}
    name = None
    for line in out.splitlines():
        m = re.match(r"^(\S.*?)\s+time:\s+\[(\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\]", line)
        if not m:
            n = re.match(r"^(\S+(?:/\S+)*)\s*$", line.strip())
            if n and "time:" not in line:
                name = n.group(1)
            m2 = re.match(r"^\s+time:\s+\[(\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\]", line)
            if m2 and name:
                found[name] = m2.groups()
            continue
        found[m.group(1)] = m.groups()[1:]
    return found


def to_us(v, unit):
    return float(v) * {"ns": 0.001, "µs": 1.0, "us": 1.0, "ms": 1000.0, "s": 1e6}[unit]


def main():
    results = []
    t0 = time.time()
    _, build_s = run(["cargo", "build", "--release", "--locked", *[f"-p={p}" for p in PACKAGES],
                      *[f"--bin={b}" for b in FUNCTIONS + ["hello"] + BENCH_BINS]])
    runs = int(os.environ.get("COLDSTART_RUNS", "30"))
    logdir = tempfile.mkdtemp(prefix="dropsync-bench-")
    svc = services.Services(logdir)
    try:
        env = services.start(svc)
        cs = cold_start(env, runs)
        import statistics
        hello_init = statistics.median(r[0] for r in cs["hello"])
        metrics = []
        rows = {}
        for name, rs in cs.items():
            inits = sorted(r[0] for r in rs)
            firsts = sorted(r[1] for r in rs)
            rss = max((r[2] or 0) for r in rs) / 1024
            med = statistics.median(inits)
            size = os.path.getsize(os.path.join(target_dir(), "release", name))
            rows[name] = {"init_ms_p50": med, "init_ms_p10": inits[len(inits) // 10],
                          "init_ms_p90": inits[(len(inits) * 9) // 10], "first_response_ms_p50": statistics.median(firsts),
                          "peak_rss_mb": rss, "binary_bytes": size,
                          "zipped_bytes": zipped_size(os.path.join(target_dir(), "release", name))}
            if name == "hello":
                continue
            metrics += [
                {"name": f"{name}: init (start -> first next)", "value": med, "unit": "ms", "goal": "< 20",
                 "spread": f"p10–p90 {rows[name]['init_ms_p10']:.1f}–{rows[name]['init_ms_p90']:.1f}"},
                {"name": f"{name}: init ÷ hello-world init", "value": med / hello_init, "unit": "ratio", "goal": "<= 1.5"},
                {"name": f"{name}: first event answered", "value": rows[name]["first_response_ms_p50"], "unit": "ms",
                 "goal": None},
                {"name": f"{name}: peak RSS", "value": rss, "unit": "MB", "goal": "< 40"},
                {"name": f"{name}: zipped size (x86_64 release)", "value": rows[name]["zipped_bytes"] / 1e6, "unit": "MB",
                 "goal": "< 5"},
            ]
        metrics.insert(0, {"name": "hello-world reference: init", "value": hello_init, "unit": "ms", "goal": None,
                           "spread": None})
        results.append({"bench": "cold_start", "how": f"{runs} runs per release binary against a local Lambda "
                        "Runtime API (tests/tools/coldstart.py); init = process start -> first "
                        "/invocation/next; the first event hits the moto emulator; reference: a hello-world "
                        "lambda_runtime binary, same profile, same run", "metrics": metrics, "extra": rows})
        for b in BENCH_BINS:
            out, secs = run([os.path.join(target_dir(), "release", b)], env=dict(os.environ, **env), timeout=1800)
            for r in bench_lines(out):
                r.setdefault("extra", {})["wall_seconds"] = round(secs, 1)
                results.append(r)
    finally:
        svc.stop()
    try:
        crit = criterion_webhook()
        metrics = []
        for name, vals in sorted(crit.items()):
            lo, lo_u, mid, mid_u, hi, hi_u = vals
            metrics.append({"name": f"{name}: verify + parse + build the write", "value": to_us(mid, mid_u), "unit": "µs",
                            "goal": None, "spread": f"{to_us(lo, lo_u):.2f}–{to_us(hi, hi_u):.2f} µs (95% CI)"})
        results.append({"bench": "webhook_cpu", "how": "criterion, in process: HMAC verify + headers + parse + "
                        "building the order and its write, per webhook", "metrics": metrics, "extra": {}})
    except SystemExit as e:
        results.append({"bench": "webhook_cpu", "how": f"criterion benchmark did not run: {e}", "metrics": [], "extra": {}})
    write(results, build_s, time.time() - t0)


def verdict(m):
    g = m.get("goal")
    if not g:
        return ""
    v = m["value"]
    mm = re.match(r"^\s*(<=|>=|<|>|=)\s*([0-9.]+)", g)
    if not mm:
        return ""
    op, x = mm.group(1), float(mm.group(2))
    ok = {"<=": v <= x, ">=": v >= x, "<": v < x, ">": v > x, "=": abs(v - x) < 1e-9}[op]
    return "met" if ok else "**missed**"


def fmt(v):
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.4g}"


def write(results, build_s, total_s):
    os.makedirs(os.path.join(target_dir(), "bench"), exist_ok=True)
    with open(os.path.join(target_dir(), "bench", "results.json"), "w") as f:
        json.dump({"results": results, "build_seconds": build_s, "total_seconds": total_s}, f, indent=2)
    lines = ["# Benchmarks", "",
             f"Written by `make bench` ({time.strftime('%Y-%m-%d', time.gmtime())}; {total_s / 60:.1f} min in all, "
             f"{build_s / 60:.1f} of them building release binaries) on this project's 2-core CI machine. Timings on a shared "
             "2-core machine are noisy: medians, with spreads and same-run references where they exist. "
             "The machine-readable results are in `target/bench/results.json`.", ""]
    with open(os.path.join(ROOT, "bench", "NOTES.md")) as f:
        notes = f.read()
    for r in results:
        lines += [f"## {r['bench']}", "", r["how"], "", "| what | median | unit | spread | goal | verdict |",
                  "|---|---|---|---|---|---|"]
        for m in r["metrics"]:
            lines.append(f"| {m['name']} | {fmt(m['value'])} | {m['unit']} | {m.get('spread') or ''} | "
                         f"{m.get('goal') or ''} | {verdict(m)} |")
        lines.append("")
    lines += [notes]
    with open(os.path.join(ROOT, "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
