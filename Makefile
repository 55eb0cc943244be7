# dropsync — the commands of the README. Everything a run needs is installed by these targets.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SERVICES := $(PY) tests/tools/services.py

.PHONY: test lint venv clean-venv

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

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

clean-venv:
	rm -rf $(VENV)
