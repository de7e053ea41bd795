# The two set-up commands of the README: `make run` and `make test`.
# Both create .venv in the repository root with pip on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME := $(CURDIR)/.prefect
export BIONER_DATA_DIR ?= $(abspath $(DATA))

.PHONY: install run test test-slow lint bench clean

$(BIN)/.installed: pyproject.toml requirements/cpu-constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -c requirements/cpu-constraints.txt -e ".[llm,s3,selector,scale,dev]"
	touch $@

install: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/bioner run flows/sample/pubmed-sample.xml.gz --out out/sample

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

test-slow: $(BIN)/.installed
	$(BIN)/pytest -m slow

clean:
	rm -rf $(VENV) .prefect out .pytest_cache .ruff_cache
