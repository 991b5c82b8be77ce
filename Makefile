# donebox: `make run` starts everything on the embedded default; `make test` runs the whole suite
# (with CI=true it first installs and starts every service the tests use: `make services`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
PORT ?= 8000
# the suite's processes (pytest-xdist); each has its own PostgreSQL and SQLite database and Redis db.
# Three on two cores: the end-to-end tests spend most of their time waiting on the processes they start
PYTEST_WORKERS ?= 3

.PHONY: run test services lint format bench clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# the first `donebox` run writes flanker's parser tables into site-packages: done once here, so
# that processes starting together (the suite's, uvicorn's) never read a table another is writing
$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	$(BIN)/donebox --version
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	$(BIN)/donebox --version
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
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(STAMP_TEST)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP_TEST)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# the README's and docs/web.md's pictures, taken by the browser test that walks every page
SHOTS := var/screenshots
DESKTOP_SHOTS := team-day search-results my-schedule team-settings members chat chat-post participation message-timeline inbound-message dev-inbox
PHONE_SHOTS := team-day team-settings participation email-digest email-digest-dark email-reminder-standup email-digest-standup
screenshots: $(STAMP_TEST)
	DONEBOX_SCREENSHOTS=$(SHOTS) $(BIN)/pytest -q -p no:cacheprovider tests/app/web/pages/test_phone.py
	for n in $(DESKTOP_SHOTS); do cp $(SHOTS)/1280/$$n.png docs/screenshots/$${n%-results}.png; done
	for n in $(PHONE_SHOTS); do cp $(SHOTS)/390/$$n.png docs/screenshots/phone-$$n.png; done

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
