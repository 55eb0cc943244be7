# dropsync — the commands of the README. Everything a run needs is installed by these targets.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SERVICES := $(PY) tests/tools/services.py

.PHONY: test lint deny venv clean-venv local demo bench lint-infra browser-deps

venv: $(VENV)/.installed

# The project virtualenv: moto (DynamoDB + SQS emulator), graphql-core (the sandbox Shopify's
# schema validation), pytest. Pinned in tests/requirements.txt.
$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

# The whole test suite: starts the emulator and the sandboxes on free loopback ports, runs the
# Rust tests against them (every crate's own tests, then the one integration binary), stops them;
# beside them, the sandboxes' own tests, the end-to-end tests of the local stack and the
# dashboard's browser tests (pytest, which starts its own services on their own ports; its output
# is printed when both are done). Everything is compiled first, so the two runs do not compete
# for cargo's lock. The integration binary runs TEST_THREADS tests at once: most of them wait on
# the sandboxes' injected delays, throttling and bans, not on the CPU.
TEST_THREADS ?= 6
PYTEST := PYTHONPATH=tests/sandbox:tests/tools $(PY) -m pytest -q -p no:cacheprovider tests/sandbox/tests tests/tools tests/browser
test: venv browser-deps
	cargo build --locked -p dropsync-local
	cargo test --workspace --locked --no-run
	@log=$$(mktemp); \
	$(PYTEST) >"$$log" 2>&1 & py=$$!; \
	trap 'kill $$py 2>/dev/null; rm -f "$$log"' INT TERM; \
	RUST_TEST_THREADS=$(TEST_THREADS) $(SERVICES) -- cargo test --workspace --locked --no-fail-fast; rust=$$?; \
	wait $$py; pyrc=$$?; \
	echo "---- pytest (ran beside the Rust tests) ----"; cat "$$log"; rm -f "$$log"; \
	echo "make test: cargo test exit $$rust, pytest exit $$pyrc"; \
	[ $$rust = 0 ] && [ $$pyrc = 0 ]

# The dashboard's browser tests: Debian's chromium (driven by Playwright from .venv, never a
# browser download of its own) and axe-core from npm, pinned in tests/browser/package-lock.json.
browser-deps: tests/browser/node_modules/.installed
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

tests/browser/node_modules/.installed: tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund
	touch $@

# The fast tier: every crate's unit and in-process tests, no emulator and no sandboxes (the
# integration binary in tests/ is the only target that needs them).
.PHONY: test-fast
test-fast:
	cargo test --workspace --locked --exclude dropsync-tests

# The local stack on 127.0.0.1:$${PORT:-3000}: sandbox mode unless CREDENTIALS_FILE,
# SHOPIFY_ADMIN_URL and ALIEXPRESS_API_URL are all set. Ctrl-C stops everything it started.
local: venv
	cargo build -p dropsync-local
	$(SERVICES) --local -- cargo run -q -p dropsync-local

# The story end to end on embedded defaults, no credentials: see tests/tools/demo.py.
# KEEP=1 leaves the stack running after the story so the dashboard can be explored (Ctrl-C stops it).
demo: venv
	cargo build -p dropsync-local
	$(SERVICES) --local --sandboxes shopify,aliexpress -- $(PY) tests/tools/demo.py $(if $(KEEP),--keep)

# Placement latency over HTTP through the local stack (sandboxes behind it): PLACE_ORDERS orders
# (default 50) placed one after another; prints p50/p99 and AliExpress calls per placed order.
.PHONY: place-latency
place-latency: venv
	cargo build -p dropsync-local
	$(SERVICES) --local --sandboxes shopify,aliexpress -- $(PY) tests/tools/place_latency.py

# Every benchmark; rewrites BENCHMARKS.md and target/bench/results.json (keeping the sections it does
# not write). One alone: `.venv/bin/python tests/tools/bench.py --only cold_start` (or dashboard);
# COLD_START_PROFILE=bench-harness measures the functions and their hello-world in that cheaper profile.
bench: venv
	$(PY) tests/tools/bench.py

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

# Supply chain: cargo-deny (licenses, bans, sources, and RustSec advisories). The pinned
# cargo-deny is installed by cargo when missing. The advisory database is fetched from outside the
# package registries, so it is checked only when asked (DENY_ADVISORIES=1, where that host is
# reachable); otherwise the run says that advisories were NOT checked, and the other checks gate.
CARGO_DENY_VERSION := 0.18.3
deny:
	@command -v cargo-deny >/dev/null 2>&1 && cargo deny --version | grep -q "$(CARGO_DENY_VERSION)" \
		|| cargo install cargo-deny --locked --version $(CARGO_DENY_VERSION)
	cargo deny --locked check licenses bans sources
	@if [ "$${DENY_ADVISORIES:-0}" = 1 ]; then \
		cargo deny --locked check advisories; \
	else \
		echo "cargo deny: advisories NOT checked (the RustSec database is not reachable from this network; 'make deny DENY_ADVISORIES=1' where it is). Licenses, bans and sources were." >&2; \
	fi

# Infrastructure checks: cfn-lint, sam validate --lint, checkov, then `sam build` of every
# function (cargo-lambda + zig, offline, default architecture arm64) and the zipped size of each
# bootstrap. Its own virtualenv, pinned in tests/requirements-infra.txt (checkov, whose boto3 pin
# clashes with SAM's, in .venv-infra/checkov from tests/requirements-checkov.txt).
INFRA_VENV := .venv-infra
INFRA_ENV := PATH="$(CURDIR)/$(INFRA_VENV)/bin:$$PATH" AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 \
	AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing SAM_CLI_TELEMETRY=0

$(INFRA_VENV)/.installed: tests/requirements-infra.txt tests/requirements-checkov.txt
	python3 -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements-infra.txt
	python3 -m venv $(INFRA_VENV)/checkov
	$(INFRA_VENV)/checkov/bin/pip install --quiet --disable-pip-version-check -r tests/requirements-checkov.txt
	touch $@

# CI builds for x86_64 (SAM_BUILD_FLAGS): the host's own target needs no `rustup target add`,
# which a machine without access to Rust's download server cannot do; deploys build arm64.
SAM_BUILD_FLAGS ?=
lint-infra: $(INFRA_VENV)/.installed
	$(INFRA_ENV) cfn-lint template.yaml
	$(INFRA_ENV) sam validate --lint
	$(INFRA_ENV) $(INFRA_VENV)/checkov/bin/checkov -f template.yaml --framework cloudformation --quiet --compact --skip-download
	$(INFRA_ENV) sam build $(SAM_BUILD_FLAGS)
	@for f in .aws-sam/build/*/bootstrap; do python3 -c 'import io, os, sys, zipfile; p = sys.argv[1]; b = io.BytesIO(); z = zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED, compresslevel=9); z.write(p, "bootstrap"); z.close(); print(f"{p.split(os.sep)[-2]:32} {os.path.getsize(p) / 2**20:6.1f} MiB, zipped {len(b.getvalue()) / 2**20:5.2f} MiB")' "$$f"; done

clean-venv:
	rm -rf $(VENV)

# Fuzzing: every cargo-fuzz target in fuzz/ (its own workspace, not a member of this one) for
# FUZZ_SECONDS each (default 300). libFuzzer needs nightly compiler flags; RUSTC_BOOTSTRAP=1 lets
# the stable toolchain take them. The committed seeds (fuzz/corpus/<target>) are read, new
# inputs go to fuzz/work/<target>; a crash stops the run with its input in fuzz/artifacts/.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := webhook_payload aliexpress_response
.PHONY: fuzz
fuzz:
	@cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p work/$$t && \
		RUSTC_BOOTSTRAP=1 cargo fuzz run $$t work/$$t corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
			|| exit 1; \
	done

# The chaos run: ORDERS orders over SHOPS shops through the whole lifecycle with faults injected
# everywhere, checked against the sandboxes' records; fails on any violation. The default is the
# full 1,000-order run in release; CI runs `make chaos-ci` (100 orders, short bans, the test build
# CI has already compiled) as its own step.
# Then the placement chaos run (`chaos-place`): PLACE_CHAOS_ORDERS paid, mapped orders placed through
# the place routes and the order placer with lost answers, duplicate clicks, throttling and placers
# killed between the create and the write; fails on any duplicate AliExpress order, any order left
# without an attention item, or any address in the logs.
ORDERS ?= 1000
PLACE_CHAOS_ORDERS ?= 1000
CHAOS_PROFILE ?= --release
BAN_SECONDS ?=
.PHONY: chaos chaos-ci chaos-place
chaos: chaos-lifecycle
	$(MAKE) chaos-place

chaos-place: venv
	ORDERS=$(PLACE_CHAOS_ORDERS) BAN_SECONDS=$(BAN_SECONDS) $(SERVICES) -- cargo run $(CHAOS_PROFILE) --locked -p dropsync-bench --bin chaos_place

# At CI size the two runs wait on injected bans and delays far more than they compute, so they run
# side by side (each with its own services; make prints each one's output when it is done).
.PHONY: chaos-lifecycle
chaos-lifecycle: venv
	ORDERS=$(ORDERS) BAN_SECONDS=$(BAN_SECONDS) $(SERVICES) -- cargo run $(CHAOS_PROFILE) --locked -p dropsync-bench --bin chaos

chaos-ci: venv
	cargo build --locked -p dropsync-bench --bin chaos --bin chaos_place
	$(MAKE) -j2 --output-sync=target chaos-lifecycle chaos-place ORDERS=100 PLACE_CHAOS_ORDERS=100 BAN_SECONDS=0.4 CHAOS_PROFILE=
