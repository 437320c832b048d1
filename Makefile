# Two commands do all set-up on a fresh machine with Python 3.11:
#   make run   - the collector on the embedded store, with its HTTP API
#   make test  - the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: proto run test system-deps bench bench-startup bench-instrumentation bench-query lint clean bench-runs

$(STAMP): pyproject.toml instrumentation/pyproject.toml collector/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e instrumentation -e collector -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tracehouse serve --offer-demo $(ARGS)

test: $(STAMP) system-deps
	$(BIN)/python -m pytest $(ARGS)

# Debian packages some tests drive: headless Chromium (web UI, driven by Playwright), docker-compose
# and nginx (deploy/ validation). Installed when missing and apt-get can run as root; elsewhere
# those tests skip, except in CI (CI set), where they fail.
SYSTEM_TOOLS := chromium:chromium docker-compose:docker-compose nginx:nginx
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

bench: $(STAMP)
	$(BIN)/python -m bench.ingest $(ARGS)

# Interpreter start-up with and without the tracehouse hook.
bench-startup: $(STAMP)
	$(BIN)/python -m bench.startup $(ARGS)

# Aggregates (raw vs rollup), trace lookup and traces list on 10M generated spans.
bench-query: $(STAMP)
	$(BIN)/python -m bench.query $(ARGS)

# Per-call overhead of OpenAI instrumentors; the competitors live in bench/.venv-instrumentation.
bench-instrumentation: $(STAMP)
	$(BIN)/python -m bench.instrumentation --setup
	$(BIN)/python -m bench.instrumentation $(ARGS)

# Training-loop overhead of run logging (with vs without) and end-to-end points/s into a collector.
bench-runs: $(STAMP)
	$(BIN)/python -m bench.runs $(ARGS)

# Regenerate the Python code of proto/ (the gRPC Query service) into the collector package.
proto: $(STAMP)
	$(BIN)/python proto/generate.py

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
