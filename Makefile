# Two commands do all set-up on a fresh machine with Python 3.11:
#   make run   - the collector on the embedded store, with its web UI and the demo
#   make test  - lint (ruff), type check (mypy), then the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# What the distributions are built from: a change to any of these reinstalls.
PROJECT_FILES := VERSION instrumentation/pyproject.toml collector/pyproject.toml
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
# Wheels of every third-party package the two distributions need (with the demo), so the
# packaging test builds and installs them offline (tests/project/test_packaging.py).
WHEELHOUSE := $(VENV)/wheelhouse
ARGS   ?=

.PHONY: proto run test system-deps bench bench-ingest bench-startup bench-instrumentation bench-query bench-peers \
	lint typecheck clean bench-runs bench-client

# `make run` installs the collector, its UI and what `tracehouse demo` drives, and nothing else.
$(RUN_STAMP): $(PROJECT_FILES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e instrumentation -e 'collector[demo]'
	touch $@

# `make test` adds the development extras (LLM clients, training frameworks, browser driver, ...)
# and the wheelhouse.
$(DEV_STAMP): $(RUN_STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -rf $(WHEELHOUSE)
	$(BIN)/python -m pip wheel --quiet --wheel-dir $(WHEELHOUSE) ./instrumentation './collector[demo]' \
	    hatchling build
	rm -f $(WHEELHOUSE)/tracehouse-*.whl $(WHEELHOUSE)/tracehouse_collector-*.whl
	touch $@

run: $(RUN_STAMP)
	$(BIN)/tracehouse serve --offer-demo $(ARGS)

test: $(DEV_STAMP) system-deps lint typecheck
	$(BIN)/python -m pytest $(ARGS)

# Debian packages some tests drive: headless Chromium (web UI, driven by Playwright), docker-compose
# and nginx (deploy/ validation), curl (the docs' REST examples). Installed when missing and
# apt-get can run as root; elsewhere those tests skip, except in CI (CI set), where they fail.
SYSTEM_TOOLS := chromium:chromium docker-compose:docker-compose nginx:nginx curl:curl
system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	    tool=$${pair%%:*}; pkg=$${pair##*:}; \
	    command -v $$tool >/dev/null || [ -x /usr/sbin/$$tool ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        echo "installing:$$missing"; apt-get update -qq && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	    else \
	        echo "not installed:$$missing (their tests skip; as root on Debian, make test installs them)"; \
	    fi; \
	fi

# Every speed figure at small sizes, each beside its target or baseline: ingest, aggregates and
# trace lookup, CLI and hook start-up (a few minutes). Each part's flags: INGEST_ARGS, QUERY_ARGS,
# STARTUP_ARGS; the targets below run one part with ARGS and their full default sizes.
INGEST_ARGS  ?= --requests 100
QUERY_ARGS   ?= --spans 1000000 --repeat 5
STARTUP_ARGS ?= --runs 15
bench: $(DEV_STAMP)
	$(BIN)/python -m bench.ingest $(INGEST_ARGS)
	$(BIN)/python -m bench.query $(QUERY_ARGS)
	$(BIN)/python -m bench.startup $(STARTUP_ARGS)

# Ingest: 200 requests x 512 LLM spans into a collector, beside a parse-only receiver.
bench-ingest: $(DEV_STAMP)
	$(BIN)/python -m bench.ingest $(ARGS)

# CLI commands against a running collector (80 ms target), interpreter start-up with and without the hook.
bench-startup: $(DEV_STAMP)
	$(BIN)/python -m bench.startup $(ARGS)

# The same ingest and trace lookup against Arize Phoenix and MLflow, installed in their own venv.
bench-peers: $(DEV_STAMP)
	$(BIN)/python -m bench.peers --setup $(ARGS)

# Aggregates (raw vs rollup), trace lookup and traces list on 10M generated spans.
bench-query: $(DEV_STAMP)
	$(BIN)/python -m bench.query $(ARGS)

# Per-call overhead of OpenAI instrumentors; the competitors live in bench/.venv-instrumentation.
bench-instrumentation: $(DEV_STAMP)
	$(BIN)/python -m bench.instrumentation --setup
	$(BIN)/python -m bench.instrumentation $(ARGS)

# Training-loop overhead of run logging (with vs without) and end-to-end points/s into a collector.
bench-runs: $(DEV_STAMP)
	$(BIN)/python -m bench.runs $(ARGS)

# A 1,000,000-row SQL result into pandas: tracehouse.Client (Arrow) vs the REST JSON answer.
bench-client: $(DEV_STAMP)
	$(BIN)/python -m bench.client $(ARGS)

# Regenerate the Python code of proto/ (the gRPC Query service) into the collector package.
proto: $(DEV_STAMP)
	$(BIN)/python proto/generate.py

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

# Both packages, as configured under [tool.mypy] in pyproject.toml.
typecheck: $(DEV_STAMP)
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
