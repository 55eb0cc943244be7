# dropsync — the commands of the README. Everything a run needs is installed by these targets.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SERVICES := $(PY) tests/tools/services.py

.PHONY: test lint venv clean-venv local demo bench

venv: $(VENV)/.installed

# The project virtualenv: moto (DynamoDB + SQS emulator), graphql-core (the sandbox Shopify's
# schema validation), pytest. Pinned in tests/requirements.txt.
$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

# The whole test suite: starts the emulator and the sandboxes on free loopback ports, runs the
# Rust tests against them, stops them; then the sandboxes' own tests.
test: venv
	$(SERVICES) -- cargo test --workspace --locked --no-fail-fast
	PYTHONPATH=tests/sandbox:tests/tools $(PY) -m pytest -q -p no:cacheprovider tests/sandbox/tests tests/tools

# The local stack on 127.0.0.1:$${PORT:-3000}: sandbox mode unless CREDENTIALS_FILE,
# SHOPIFY_ADMIN_URL and ALIEXPRESS_API_URL are all set. Ctrl-C stops everything it started.
local: venv
	cargo build -p dropsync-local
	$(SERVICES) --local -- cargo run -q -p dropsync-local

# The story end to end on embedded defaults, no credentials: see tests/tools/demo.py.
demo: venv
	cargo build -p dropsync-local
	$(SERVICES) --local --sandboxes shopify,aliexpress -- $(PY) tests/tools/demo.py

# Every benchmark; rewrites BENCHMARKS.md and target/bench/results.json.
bench: venv
	$(PY) tests/tools/bench.py

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

clean-venv:
	rm -rf $(VENV)
