# The README's two commands: `make demo` (the main job on the embedded benchmark) and `make test`.
# Both set up a virtual environment in .venv first (CPU torch 2.13.0; never a CUDA build).
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint
$(BIN)/harness: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/harness

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/harness bench --trainer rslora --augmenter noise_rotate

test: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/lint-imports
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/lint-imports
