# The two commands of the README: `make repro` (the pipeline) and `make test` (the suite).
# Both create the virtual environment on first use, so a clean clone needs nothing else.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
VENV ?= .venv
# VENV may be absolute (the Dockerfile's /opt/venv)
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
# Telemetry off everywhere (no network here, and nothing to report).
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PATH := $(BIN):$(PATH)

.PHONY: setup browser services repro test
setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	# torch first, pinned: the local CPU wheel satisfies it; anything else pulls GBs of CUDA packages.
	$(BIN)/pip install --quiet torch==2.13.0 $(TORCH_PIP_ARGS) 2>&1 | { grep -v '^WARNING: Location' || true; }
	$(BIN)/pip install --quiet -e '.[pipeline,orchestration,baselines,dev]' 2>&1 | { grep -v '^WARNING: Location' || true; }
	touch $(STAMP)

# `make repro PROFILE=real-small` first merges profiles/real-small.yaml into params.yaml (`git diff params.yaml`
# shows it; `git checkout params.yaml` returns to the defaults).
repro: setup
	$(if $(PROFILE),hushkit params --profile $(PROFILE))
	dvc repro

# The report's browser test needs a Chromium (Debian's chromium; GitHub's runners have google-chrome): install it
# where we can (apt as root, or with password-less sudo), else say the test will skip.
browser:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; \
	then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	elif command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "warning: no chromium and cannot apt-get it: the report browser test will skip (fail under CI)"; fi

# The team tests (tests/test_team.py, tests/services.py) start a throw-away PostgreSQL cluster and sshd on
# 127.0.0.1: Debian's postgresql and openssh-server, installed like chromium above, else the tests skip (fail under
# CI). Neither is started as a system service.
services:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && { command -v sshd || [ -x /usr/sbin/sshd ]; } >/dev/null; \
	then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			postgresql openssh-server openssh-client; \
	elif command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends postgresql openssh-server openssh-client; \
	else echo "warning: no postgresql/sshd and cannot apt-get them: the team tests will skip (fail under CI)"; fi

test: setup browser services
	python -m pytest $(PYTEST_ARGS)
