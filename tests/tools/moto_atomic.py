"""moto's server, with each DynamoDB request applied atomically.

DynamoDB applies every request (a conditional write, a transaction) atomically. moto's threaded
server evaluates a condition and then writes with nothing to stop another thread's write in
between, so under load two writers conditioned on the same version can both succeed: an update
that AWS would never lose is lost on the emulator, and a test of our races fails for moto's.
Serialising the DynamoDB requests restores AWS's guarantee. SQS requests are left concurrent:
a long poll must not hold the table up.

Same command line as `moto_server`: `-H HOST -p PORT`.
"""

import argparse
import os
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class AtomicDynamoDB:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with self.lock:
                # moto answers with a complete body: drain it under the lock so the write is done.
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    # moto builds some URLs (SQS queue URLs) from it, as its own server does.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        AtomicDynamoDB(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
