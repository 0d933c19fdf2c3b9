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
STAMP  := $(VENV)/.installed
LOCK   := requirements.lock
PIP_PIN := pip==26.3

# Where the locked CPU torch wheel comes from: a local wheel directory when the machine has one (this
# project's machines keep it in /opt/wheels), else PyTorch's CPU index. TORCH=preinstalled installs
# everything but torch, for a venv that already holds your own torch build (CUDA; README "Installing").
TORCH ?= cpu
TORCH_FIND_LINKS ?= $(wildcard /opt/wheels)
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_SOURCE := $(if $(TORCH_FIND_LINKS),--find-links $(TORCH_FIND_LINKS),--extra-index-url $(TORCH_INDEX))

.PHONY: install lock test-latest serve test test-slow test-all typecheck lint format proto bench bench-curve bench-profile clean browser-deps nginx-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(PIP_PIN)

# The lock without torch's entry (for TORCH=preinstalled): an entry is its line and the indented hashes.
$(VENV)/requirements-no-torch.txt: $(LOCK)
	mkdir -p $(@D)
	awk '/^torch==/ {skip=1; next} /^[^ #]/ {skip=0} !skip' $(LOCK) > $@

# Installs are exactly the lock (versions and hashes; --no-deps: the lock is complete), then the project
# itself without build isolation (its build backend is in the lock too). Nothing unlocked is fetched.
ifeq ($(TORCH),preinstalled)
INSTALL_LOCK := $(VENV)/requirements-no-torch.txt
else
INSTALL_LOCK := $(LOCK)
endif

$(STAMP): $(BIN)/python $(LOCK) $(INSTALL_LOCK) pyproject.toml
	@[ "$(TORCH)" != preinstalled ] || $(BIN)/python -c "import torch" 2>/dev/null || \
		{ echo "TORCH=preinstalled: install torch into $(VENV) first (README, Installing)"; exit 1; }
	$(BIN)/pip install --quiet --no-deps --require-hashes $(TORCH_SOURCE) -r $(INSTALL_LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)

# Refreshes the lock from pyproject.toml (ranges) + requirements/lock.in (the CPU torch, the build
# backend): the newest versions the ranges allow, resolved by pip-tools in a venv of its own (.venv-lock,
# so the tool's own dependencies never touch .venv). Run `make test-latest` first (README, "The lock").
LOCK_VENV := .venv-lock
lock:
	test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && \
		$(LOCK_VENV)/bin/pip install --quiet $(PIP_PIN) "pip-tools>=7.5,<8"; }
	PIP_CONFIG_FILE=/dev/null $(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
		--strip-extras --extra dev --no-emit-find-links --no-emit-index-url $(TORCH_SOURCE) \
		--output-file $(LOCK) pyproject.toml requirements/lock.in

# The newest versions pyproject's ranges allow (not the lock), in a throwaway venv, then the fast suite.
# torch stays at the lock's CPU build: a newer one is a deliberate change of requirements/lock.in.
LATEST_VENV := .venv-latest
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/pip install --quiet $(PIP_PIN)
	grep -o '^torch==[^ ]*' $(LOCK) > $(LATEST_VENV)/torch-constraint.txt
	$(LATEST_VENV)/bin/pip install --quiet $(TORCH_SOURCE) -c $(LATEST_VENV)/torch-constraint.txt \
		--upgrade --upgrade-strategy eager -e ".[dev]"
	$(LATEST_VENV)/bin/pip list --format=freeze > $(LATEST_VENV)/versions.txt
	@echo "versions that differ from the lock:"
	@$(LATEST_VENV)/bin/python requirements/lockdiff.py $(LOCK) $(LATEST_VENV)/versions.txt
	MODGATE_TEST_LATEST=1 HF_HUB_OFFLINE=1 $(LATEST_VENV)/bin/pytest $(ARGS)

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

# Debian's nginx for the replica tests (tests/deploy/): run as the current user from a temp dir.
nginx-deps:
	@if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then \
		$(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y nginx; \
	fi

test: $(STAMP) browser-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	HF_HUB_OFFLINE=1 $(BIN)/pytest $(ARGS)

# The tests marked slow (kill -9 under load, fault injection, replicas behind nginx); CI runs them after
# `make test`.
test-slow: $(STAMP) nginx-deps
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m slow $(ARGS)

test-all: test test-slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Gateway throughput vs the naive baseline, in one run (~8 min on 2 CPU cores); results belong in
# docs/benchmarks.md. ARGS="--device cuda --scale 4 --out bench.json" on a GPU machine.
bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/bench_gateway.py $(ARGS)

# The cost curve (clients x prompt lengths, sgemm and copy roofs); writes docs/bench/curve.{json,svg}.
bench-curve: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/bench_curve.py --out-dir docs/bench $(ARGS)

# One request at one client, stage by stage, gateway vs the naive script (docs/benchmarks.md, round 2).
bench-profile: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/profile_request.py $(ARGS)

# Generated code is committed; tests/unit/gateway/test_proto_drift.py fails when it differs from protos/.
# The .proto files are copied beside it, so that the wheel ships them (package data) for clients.
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. --grpc_python_out=. \
		protos/gateway/api/v1/*.proto
	cp protos/gateway/api/v1/*.proto gateway/api/v1/

clean:
	rm -rf $(VENV) $(LATEST_VENV) $(LOCK_VENV) var .pytest_cache .ruff_cache .mypy_cache build dist
