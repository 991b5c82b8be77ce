# donebox: `make run` starts everything on the embedded default; `make test` runs the whole suite
# (with CI=true it first installs and starts every service the tests use: `make services`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
PORT ?= 8000

.PHONY: run test services lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	$(BIN)/donebox run --port $(PORT)

# PostgreSQL, Redis, RabbitMQ, Chromium, Dovecot: installed and started when missing (apt-get)
services:
	.ci/services

# under CI=true a missing service fails its tests, so they are provisioned first
test: $(STAMP_TEST) $(if $(filter true,$(CI)),services)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP_TEST)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP_TEST)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
