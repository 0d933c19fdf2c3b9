# modgate: the two set-up commands are `make serve` and `make test`; both create .venv and install.
#
#   make serve                 the real gateway (EleutherAI/gpt-neo-125M + detoxify; needs the weights)
#   make serve MODEL=demo      offline trial: a tiny RANDOM-weight GPT-Neo, offline moderation, no auth
#   make serve MODEL=DIR       a local model directory
#   make test                  the default test suite (fast); make test-all adds the slow tests

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
MODEL  ?=
ARGS   ?=
DEMO_DIR := var/demo-model
TORCH_PIN := torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: install serve test test-slow test-all lint format proto bench clean browser-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The pinned CPU torch goes in first: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH_PIN)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

$(DEMO_DIR)/config.json: | $(STAMP)
	$(BIN)/modgate demo-model $(DEMO_DIR)

ifeq ($(MODEL),demo)
serve: $(STAMP) $(DEMO_DIR)/config.json
	@echo "*** DEMO MODE: tiny GPT-Neo with RANDOM weights, offline moderation (no detoxify), NO AUTH ***"
	$(BIN)/modgate serve --migrate --model $(DEMO_DIR) --offline-moderation --insecure-no-auth $(ARGS)
else ifneq ($(MODEL),)
serve: $(STAMP)
	$(BIN)/modgate serve --migrate --model $(MODEL) $(ARGS)
else
serve: $(STAMP)
	$(BIN)/modgate serve --migrate $(ARGS)
endif

# Debian's Chromium for the browser tests (tests/browser/): Playwright drives /usr/bin/chromium and never
# downloads a browser of its own. Installed only when missing (apt-get as root, else through sudo).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
		$(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
	fi

test: $(STAMP) browser-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	HF_HUB_OFFLINE=1 $(BIN)/pytest $(ARGS)

# The tests marked slow (kill -9 under load, fault injection); CI runs them after `make test`.
test-slow: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m slow $(ARGS)

test-all: test test-slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Gateway throughput vs the naive baseline, in one run (~8 min on 2 CPU cores); results belong in
# docs/benchmarks.md. ARGS="--device cuda --scale 4 --out bench.json" on a GPU machine.
bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/bench_gateway.py $(ARGS)

# Generated code is committed; tests/unit/test_proto_drift.py fails when it differs from protos/.
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. --grpc_python_out=. \
		protos/gateway/api/v1/*.proto

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
