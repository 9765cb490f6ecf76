# Two entry points: `make repro` (the pipeline on real MNIST) and `make test` (lint + tests).
# Both create .venv and install the project on first use, with the exact versions of
# requirements.lock (extras dev and s3 included); `make lock` refreshes that file.
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
INSTALLED := $(VENV)/.installed
LOCK := requirements.lock

.PHONY: install repro push test test-fast lint benchmark clean-venv lock plots-template

install: $(INSTALLED)

$(INSTALLED): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

repro: install
	PATH="$(BIN):$$PATH" dvc repro

# Share the run: every DVC-tracked output to the default remote (README: Sharing runs).
push: install
	PATH="$(BIN):$$PATH" dvc push

# Pin pyproject's dependencies (extras dev, s3) at the versions installed in $(VENV), so the lock
# records the environment that was tested; anything new resolves to the newest allowed version.
# To upgrade a package: `pip install -U NAME` in the venv, run the tests, then `make lock`.
# (The installed versions go in as uv's preferred versions: the pins of the file it rewrites.)
lock: | $(INSTALLED)
	$(BIN)/python -m pip freeze --all --exclude-editable > $(VENV)/$(LOCK).new
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra s3 --python $(BIN)/python \
		--custom-compile-command "make lock" --quiet -o $(VENV)/$(LOCK).new
	mv $(VENV)/$(LOCK).new $(LOCK)

# The offline page template of `dvc plots show/diff` (Vega inlined); rerun after upgrading
# vl-convert-python. A test checks that the committed file is what this writes.
plots-template: install
	$(BIN)/python -m digits.vega_bundle

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	PATH="$(BIN):$$PATH" $(BIN)/python -m pytest

# The edit-run loop: unit tests only (no DVC project, no extra processes, no browser or network).
FAST := not e2e and not slow and not browser and not s3 and not network
test-fast: install
	PATH="$(BIN):$$PATH" $(BIN)/python -m pytest -m "$(FAST)"

benchmark: install
	PATH="$(BIN):$$PATH" dvc repro tune
	$(BIN)/python benchmarks/frontier.py
	$(BIN)/python benchmarks/tune_trials.py --trials 50

clean-venv:
	rm -rf $(VENV)
