# Set-up and entry points of the M²IR workbook. Every target creates .venv on first use.
#   make reproduce [PROFILE=mini]   run every notebook in order with papermill
#   make test                       pytest + nbval (the command CI runs)
#   make lab                        JupyterLab on notebooks/, from the project's environment
#   make lock                       requirements.lock from environment.yml, after editing it
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= mini
export HF_HUB_OFFLINE := 1
LOCK := requirements.lock

.PHONY: setup reproduce test test-fast lab lock lint clean-venv

# Batch runs draw figures off-screen; `make lab`'s kernels keep their inline figures.
reproduce test test-fast: export MPLBACKEND := Agg

setup: $(STAMP)

# Installs the lock (every package pinned), never environment.yml's shorter list directly;
# a lock older than environment.yml's list stops here (tools/lock.py --check).
$(STAMP): $(LOCK) environment.yml pyproject.toml tools/env_requirements.py tools/lock.py
	$(PY) tools/lock.py --check environment.yml $(LOCK)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -r $(LOCK)
	$(BIN)/pip install --no-deps --no-build-isolation -e .
	touch $(STAMP)

lock:
	$(PY) tools/lock.py environment.yml $(LOCK)

reproduce: setup
	$(BIN)/python -m m2ir_lib.pipeline --profile $(PROFILE)

# Two pytest-xdist workers, one thread each; nbval runs the committed notebooks in order on
# one of them (conftest.py), beside the tests (pyproject.toml: testpaths tests and notebooks).
test: setup
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not notebook"

lab: setup
	$(BIN)/jupyter lab notebooks

lint: setup
	$(BIN)/ruff check m2ir_lib data_prep tests benchmarks tools

clean-venv:
	rm -rf $(VENV)
