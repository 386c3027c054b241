# Set-up and entry points of the M²IR workbook. Every target creates .venv on first use.
#   make reproduce [PROFILE=mini]   run every notebook in order with papermill
#   make test                       pytest + nbval (the command CI runs)
#   make lab                        JupyterLab on notebooks/, from the project's environment
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= mini
export HF_HUB_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: setup reproduce test test-fast lab lint clean-venv

setup: $(STAMP)

$(STAMP): environment.yml pyproject.toml tools/env_requirements.py
	$(PY) -m venv $(VENV)
	$(PY) tools/env_requirements.py environment.yml > $(VENV)/requirements.txt
	$(BIN)/pip install -r $(VENV)/requirements.txt
	$(BIN)/pip install --no-deps --no-build-isolation -e .
	touch $(STAMP)

reproduce: setup
	$(BIN)/python -m m2ir_lib.pipeline --profile $(PROFILE)

# Two pytest-xdist workers, one thread each; the smoke workbook's notebooks stay together.
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
