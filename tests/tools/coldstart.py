"""Cold-start benchmark: a small local implementation of the Lambda Runtime API.

For each release binary it measures, over N runs: the time from process start to its first
`GET /2018-06-01/runtime/invocation/next` (what Lambda reports as Init Duration, minus the
sandbox), the time to answer the first event (`POST .../response`), and peak RSS (VmHWM). The
reference is a hello-world `lambda_runtime` binary built with the same profile, measured in the
same run. Functions run against the emulator (moto) with a local credentials file.
"""
import http.server
import json
import os
import socketserver
import subprocess
import threading
import time
import uuid


class RuntimeApi:
    """One invocation at a time: hands out `event`, records when things happened."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset(None)
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status, body=b"", headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self._reply(404)
                now = time.perf_counter()
                with api.lock:
                    if api.first_next is None:
                        api.first_next = now
                        event = api.event
                    else:
                        event = None
                if event is None:
                    # Later `next` calls park until the run is torn down (the process is killed).
                    api.done.wait(30)
                    self.close_connection = True
                    return
                body = json.dumps(event).encode()
                self._reply(200, body, {
                    "Lambda-Runtime-Aws-Request-Id": api.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 900_000),
                    "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:bench",
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                    "Content-Type": "application/json",
                })

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                now = time.perf_counter()
                with api.lock:
                    if self.path.endswith("/response"):
                        api.response_at, api.response = now, body
                    elif self.path.endswith("/error") or self.path.endswith("/init/error"):
                        api.error = body.decode(errors="replace")
                    api.answered.set()
                self._reply(202, b"{}")

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass  # a killed function's connection reset: expected, not worth a traceback

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def reset(self, event):
        self.event = event
        self.request_id = str(uuid.uuid4())
        self.first_next = None
        self.response_at = None
        self.response = None
        self.error = None
        self.answered = threading.Event()
        self.done = threading.Event()


def peak_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def measure(api, binary, event, env, runs=30):
    """Returns per-run (init_ms, first_response_ms, peak_rss_kb) for one binary."""
    out = []
    for _ in range(runs):
        api.reset(event)
        full_env = dict(env, AWS_LAMBDA_RUNTIME_API=api.address, AWS_LAMBDA_FUNCTION_NAME="bench",
                        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
                        AWS_LAMBDA_LOG_LEVEL="warn")
        start = time.perf_counter()
        proc = subprocess.Popen([binary], env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            if not api.answered.wait(30):
                raise RuntimeError(f"{binary}: no answer within 30 s")
            time.sleep(0.01)  # let the runtime come back for the next event, as it would
            rss = peak_rss_kb(proc.pid)
        finally:
            api.done.set()
            proc.kill()
            _, err = proc.communicate()
        if api.error is not None or api.first_next is None or api.response_at is None:
            raise RuntimeError(f"{binary}: error {api.error!r}; stderr {err.decode(errors='replace')[-2000:]}")
        out.append(((api.first_next - start) * 1000, (api.response_at - start) * 1000, rss))
    return out
