# The two commands of the README: `make demo` and `make test`. Both create and reuse .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_TOOLS := flite espeak-ng ffmpeg chromium
APT_PACKAGES := flite espeak-ng ffmpeg chromium
DEMO_DIR ?= demo-out

.PHONY: demo test lint format system venv clean benchmarks

demo: system venv
	$(BIN)/speechgpt demo --out $(DEMO_DIR)

test: system venv lint
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

benchmarks: system venv
	$(BIN)/python benchmarks/run.py

# System tools come from apt: installed here when root, otherwise we say what to run.
system:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages:$(APT_PACKAGES)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  else \
	    echo "missing system tools:$$missing"; \
	    echo "install them with: sudo apt-get install -y $(APT_PACKAGES)"; exit 1; \
	  fi; \
	fi

venv: $(STAMP)

# torch first, from the CPU wheel; then the project with the same pin as a constraint.
$(STAMP): setup.cfg constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache
