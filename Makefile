# The two commands of the README: `make repro` (the pipeline) and `make test` (the suite).
# Both create the virtual environment on first use, so a clean clone needs nothing else.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# Telemetry off everywhere (no network here, and nothing to report).
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test
setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	# torch first, pinned: the local CPU wheel satisfies it; anything else pulls GBs of CUDA packages.
	$(BIN)/pip install --quiet torch==2.13.0 $(TORCH_PIP_ARGS) 2>&1 | { grep -v '^WARNING: Location' || true; }
	$(BIN)/pip install --quiet -e '.[dev]' 2>&1 | { grep -v '^WARNING: Location' || true; }
	touch $(STAMP)

repro: setup
	dvc repro

test: setup
	python -m pytest $(PYTEST_ARGS)
