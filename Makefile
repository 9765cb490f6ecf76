# Entry points: `make repro` (the pipeline on real MNIST), `make demo` (the same on 600 images, as
# a DVC experiment in a temporary folder) and `make test` (lint + tests). Each creates .venv on
# first use and installs what its job needs at the exact versions of a lock file:
# requirements.lock (the runtime) or requirements-dev.lock (runtime + dev tools + the s3 extra).
# `make lock` refreshes both from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev

.PHONY: install install-dev repro demo push test test-fast lint benchmark clean-venv lock plots-template

install: $(RUNTIME)
install-dev: $(DEV)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME): pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(DEV): pyproject.toml requirements-dev.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@ $(RUNTIME)

repro: install
	PATH="$(BIN):$$PATH" dvc repro

# Share the run: every DVC-tracked output to the default remote (docs/sharing.md); the dev lock
# holds the s3 extra (dvc-s3) for an S3 remote.
push: install-dev
	PATH="$(BIN):$$PATH" dvc push

# The whole pipeline on a stratified 600/200/300-image subset, two 1-epoch trials and a 1-epoch
# training: an experiment run in a temporary copy (`dvc exp show` lists it; the workspace and its
# committed run stay as they are).
DEMO := prepare.train_subsample=600 prepare.validation_size=200 prepare.test_subsample=300 \
	tuner.max_trials=2 tuner.num_initial_points=1 tuner.epochs_per_trial=1 \
	tuner.images_per_trial=400 train.epochs=1 train.warmup_epochs=0
demo: install
	PATH="$(BIN):$$PATH" dvc exp run --temp --force --name demo $(addprefix -S ,$(DEMO))

# Pin pyproject's dependencies at the versions installed in $(VENV) (by `make test`), so the
# locks record the environment that was tested; anything new resolves to the newest allowed
# version. To upgrade a package: `pip install -U NAME` in the venv, run the tests, `make lock`.
lock: | $(DEV)
	$(BIN)/python -m pip freeze --all --exclude-editable > $(VENV)/pins.txt
	cp $(VENV)/pins.txt $(VENV)/dev.lock.new && cp $(VENV)/pins.txt $(VENV)/runtime.lock.new
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra s3 --python $(BIN)/python \
		--custom-compile-command "make lock" --quiet -o $(VENV)/dev.lock.new
	$(BIN)/uv pip compile pyproject.toml --python $(BIN)/python \
		--custom-compile-command "make lock" --quiet -o $(VENV)/runtime.lock.new
	mv $(VENV)/dev.lock.new requirements-dev.lock && mv $(VENV)/runtime.lock.new requirements.lock

# The offline page template of `dvc plots show/diff` (Vega inlined); rerun after upgrading
# vl-convert-python. A test checks that the committed file is what this writes.
plots-template: install
	$(BIN)/python -m digits.vega_bundle

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	PATH="$(BIN):$$PATH" $(BIN)/python -m pytest

# The edit-run loop: unit tests only (no DVC project, no extra processes, no browser or network),
# on the committed MNIST subset in tests/data (tests that use all of MNIST are left out).
FAST := not e2e and not slow and not browser and not s3 and not network and not whole_mnist
test-fast: install-dev
	PATH="$(BIN):$$PATH" $(BIN)/python -m pytest -m "$(FAST)"

benchmark: install-dev
	PATH="$(BIN):$$PATH" dvc repro tune
	$(BIN)/python benchmarks/frontier.py
	$(BIN)/python benchmarks/tune_trials.py --trials 50

clean-venv:
	rm -rf $(VENV)
