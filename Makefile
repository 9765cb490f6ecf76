# Two entry points: `make repro` (the pipeline on real MNIST) and `make test` (lint + tests).
# Both create .venv and install the project on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install repro test lint benchmark clean-venv

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

repro: install
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

benchmark: install
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro tune
	$(BIN)/python benchmarks/train_speed.py
	$(BIN)/python benchmarks/tune_trials.py --trials 50

clean-venv:
	rm -rf $(VENV)
