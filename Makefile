# mlgate — the two commands a new machine needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
HOST ?= 127.0.0.1
PORT ?= 5080
DATA_DIR ?= .mlgate

ODAHU_VENV := .venv-odahu

.PHONY: install run test lint fmt lock docs demo-models clean odahu-cli bench bench-tools bench-profile \
	bench-scaling bench-storage bench-triton test-tools

# The development virtualenv (every extra and the test tools), rebuilt whenever its lock changes.
$(BIN)/.installed: requirements/dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements/dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@# Replicas start faster with byte code compiled once (PYTHONDONTWRITEBYTECODE may be set).
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	touch $@

install: $(BIN)/.installed

# The real ODAHU CLI (odahuflowctl), for the compatibility tests: its dependencies are
# old and unbounded, so it gets its own virtualenv with pinned versions.
$(ODAHU_VENV)/.installed: tests/e2e/odahu-requirements.txt | install
	rm -rf $(ODAHU_VENV)
	$(PYTHON) -m venv --without-pip $(ODAHU_VENV)
	$(BIN)/uv pip install --quiet --python $(ODAHU_VENV)/bin/python \
	  -r tests/e2e/odahu-requirements.txt
	touch $@

odahu-cli: $(ODAHU_VENV)/.installed

# Re-resolve pinned dependencies after editing pyproject.toml (existing pins are kept unless
# they must move; LOCK_ARGS=--upgrade to move them). runtime.lock holds every runtime extra;
# the images install its subsets (gateway, predictor, triton); dev.lock adds the test tools.
LOCK = $(BIN)/uv pip compile pyproject.toml --python-version 3.11 --quiet $(LOCK_ARGS)
lock: install
	$(LOCK) --extra predictor --extra triton --extra k8s --extra sdk --extra parquet \
	  --extra dataset --extra spark --extra analysis -o requirements/runtime.lock
	$(LOCK) --extra k8s --extra dataset --extra analysis -c requirements/runtime.lock \
	  -o requirements/gateway.lock
	$(LOCK) --extra predictor -c requirements/runtime.lock -o requirements/predictor.lock
	$(LOCK) --extra triton -c requirements/runtime.lock -o requirements/triton.lock
	$(LOCK) --extra dev -c requirements/runtime.lock -o requirements/dev.lock

demo-models: install
	@test -f examples/wine/models/wine-v1/MLmodel -a -f examples/wine/models/wine-v2/MLmodel \
	  || $(BIN)/python examples/wine/train.py --out examples/wine/models

run: demo-models
	$(BIN)/python -m deploy.serve.demo --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

# Debian packages the monitoring and browser tests run for real, installed when missing:
# Prometheus (+ promtool) scrapes a running stack; Chromium opens the pages; Java runs Spark
# (the data set export's --engine spark).
test-tools:
	@command -v java >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends default-jre-headless >/dev/null; }
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@command -v chromium >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; }

test: install demo-models odahu-cli test-tools
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

# What `make bench` drives, from Debian when missing: wrk (load), nginx (the baseline proxy),
# gcc (bench/openloop.c, the open-loop load generator).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
bench-tools:
	@if ! command -v wrk >/dev/null || ! { command -v nginx >/dev/null || test -x /usr/sbin/nginx; } \
	  || ! command -v gcc >/dev/null; then \
	  $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    wrk nginx-light gcc libc6-dev; fi

# Gateway vs. nginx (throughput, added latency at 1,000 req/s open loop), predictor vs.
# `mlflow models serve`, durable feedback/s, gateway memory over 1M requests: ratios against
# baselines of the same run -> bench/results.json, bench/RESULTS.md, bench/results.png.
# About 10 minutes; BENCH_ARGS="--runs 1 --duration 3 --memory-requests 100000" for a quick look.
bench: demo-models bench-tools
	MLGATE_BENCH_MAKE=1 $(BIN)/python bench/run.py $(BENCH_ARGS)

# What a saturated gateway spends its time on: py-spy over every mlgate process under wrk.
bench-profile: demo-models bench-tools
	$(BIN)/python bench/hotspots.py

# Records/s into moto S3 and the local backend with the spool on; feedback latency vs. no spool.
bench-storage: install
	$(BIN)/python bench/storage.py

# Triton directly vs. through the gateway: req/s, p50, p99 (3 runs, 8 connections).
bench-triton: demo-models
	$(BIN)/python bench/triton.py

# The Python SDK's API reference, generated from its docstrings (a test checks it is current).
docs: install
	$(BIN)/pdoc mlgate --docformat restructuredtext --no-search --no-show-source -o docs/sdk

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Cold start from zero and scale-up times, medians over several runs.
bench-scaling: demo-models
	$(BIN)/python bench/scaling.py

clean:
	rm -rf $(VENV) $(ODAHU_VENV) $(DATA_DIR) examples/wine/models .pytest_cache .ruff_cache
