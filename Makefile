# Two commands: `make repro` (set up + dvc repro + leaderboard) and `make test`.
# Setup is idempotent: a stamp named after the hash of the requirement files marks a finished
# install, so a second run installs nothing unless a requirement file changed.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
REQ_HASH := $(shell cat requirements.txt constraints.txt requirements-nodeps.txt pyproject.toml | sha1sum | cut -c1-12)
TEST_HASH := $(shell cat requirements-test.txt requirements-test-nodeps.txt | sha1sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(REQ_HASH)
TEST_STAMP := $(VENV)/.test-installed-$(TEST_HASH)
# pip's log goes to a file; it is shown (minus the local-mirror "Location" noise) only on failure.
PIP_LOG := $(VENV)/pip-install.log
PIP = $(BIN)/python -m pip install --disable-pip-version-check -q
LOGGED = > $(PIP_LOG) 2>&1 || { grep -v "^WARNING: Location" $(PIP_LOG); exit 1; }

# No model or dataset hub at run time: backbones load from local paths only.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: repro test setup setup-test clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt requirements-nodeps.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing the pinned stack into $(VENV) (one pip run, constraints.txt)..."
	@$(PIP) -r requirements.txt -c constraints.txt $(LOGGED)
	@$(PIP) --no-deps -r requirements-nodeps.txt $(LOGGED)
	@# this clone itself, editable: the `affectbench` console script in $(BIN)
	@$(PIP) --no-deps --no-build-isolation -e . $(LOGGED)
	@rm -f $(VENV)/.installed-*
	@touch $@

setup-test: $(TEST_STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.txt requirements-test-nodeps.txt
	@$(PIP) -r requirements-test.txt -c constraints.txt $(LOGGED)
	@$(PIP) --no-deps --ignore-requires-python -r requirements-test-nodeps.txt $(LOGGED)
	@rm -f $(VENV)/.test-installed-*
	@touch $@

# The leaderboard is printed here, once: the report stage itself prints one summary line (it does not
# run at all when DVC skips it or restores it from the run-cache).
repro: $(STAMP)
	$(BIN)/dvc repro
	@echo
	@cat metrics/leaderboard.md

test: $(TEST_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
