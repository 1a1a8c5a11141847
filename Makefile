# Set-up and entry points. `make demo` and `make test` each do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCORER_PYTHON ?= $(PYTHON)
SCORER_VENV := .venv-scorer
SCORER_STAMP := $(SCORER_VENV)/.installed
SCORER_REQUIREMENTS := tools/isic-scoring/requirements.txt
export DAGSTER_HOME := $(CURDIR)/.dagster
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup scorer-env browser demo test test-fast full-size-smoke ui lint dvc-repro

setup: $(STAMP)

# The venv is rebuilt only when pyproject.toml or constraints.txt change (idempotent).
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing the environment into $(VENV) (first time: ~5 min)…"
	@$(BIN)/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	@set -o pipefail; $(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || test $${PIPESTATUS[0]} -eq 0
	@$(BIN)/python -c "import dagster, dvc, great_expectations, torch, diffusers, timm" \
		|| { echo "environment check failed"; exit 1; }
	@touch $(STAMP)

scorer-env: $(SCORER_STAMP)

# ISIC's official scorer in its own venv (it needs pandas<2.2 and numpy<2; the project has pandas 3):
# tests/test_fairness_report.py runs its CLI on the report's ISIC CSVs. Rebuilt when the pins change.
# The pins are for Python 3.11 (e.g. zipfile-deflate64 0.2.0 has no newer wheel): SCORER_PYTHON=python3.11.
$(SCORER_STAMP): $(SCORER_REQUIREMENTS)
	@test -x $(SCORER_VENV)/bin/python || $(SCORER_PYTHON) -m venv $(SCORER_VENV)
	@echo "installing ISIC's scorer into $(SCORER_VENV) (first time: ~30 s)…"
	@set -o pipefail; $(SCORER_VENV)/bin/python -m pip install -q --disable-pip-version-check -r $(SCORER_REQUIREMENTS) 2>&1 | grep -v "^WARNING: Location" || test $${PIPESTATUS[0]} -eq 0
	@$(SCORER_VENV)/bin/isic-challenge-scoring --help >/dev/null \
		|| { echo "scorer environment check failed"; exit 1; }
	@touch $(SCORER_STAMP)

# The main job: the whole asset graph on the embedded demo data, then where everything is.
# A blocking check that fails (synthetic_quality, fairness_within_threshold) stops the graph there: the summary
# still prints what was measured, then make reports the failure.
demo: setup
	@status=0; $(BIN)/dagster asset materialize --select '*' -m assets.definitions || status=$$?; \
	$(BIN)/fairskin summary; \
	if [ $$status -ne 0 ]; then echo "the run stopped at a failed step or blocking check (see the log above and the summary)"; fi; \
	exit $$status

test: setup scorer-env browser
	@$(BIN)/python -m pytest -q

# Debian's Chromium for the UI test (tests/test_ui.py), installed when missing and this user may.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the UI test…"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is not installed (needs root and apt-get): the UI screenshot test will be skipped"; fi; }

test-fast: setup scorer-env
	@$(BIN)/python -m pytest -q -m "not slow"

# The real profile at the papers' model sizes (SD-VAE config, DiT-L/4 both modes, ResNet-101, resnet50 at 224 px) on a
# handful of 256-px images, each stage in its own process, with its wall time and peak memory (~13 min, ~11 GiB,
# ~22 GB of disk while it runs; docs/benchmarks.md "Real profile at paper size, CPU"); docs/cost_model.md scales it to
# one GPU. The same run with its values asserted is tests/test_full_size.py (marker full_size, left out of `make test`:
# `.venv/bin/python -m pytest -m full_size`).
full-size-smoke: setup
	@$(BIN)/python scripts/full_size_smoke.py

ui: setup
	@$(BIN)/dagster dev -h 127.0.0.1 -p 3000

dvc-repro: setup
	@$(BIN)/dvc repro

lint: setup
	@$(BIN)/ruff check pipelines assets training tests
