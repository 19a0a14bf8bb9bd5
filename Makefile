# The two front doors: `make run` (the relay on SQLite, dev mode) and `make test`.
# Both build .venv from nothing on a fresh machine. `make check` holds the code to its
# style, its types and its layering (.importlinter); CI runs it before the tests.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)

.PHONY: run test check bench profile wrk clean browser messages

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "care-relay needs Python 3.11 or newer on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@ $(VENV)/.installed

# `make run PORT=8081` listens on 8081 (so does `RELAY_PORT=8081 make run`); links, the banner and emit follow it.
run: $(VENV)/.installed
	$(BIN)/care-relay serve --dev$(if $(PORT), --port $(PORT))

# Headless Chromium for the action-link page test; skipped with a reason where it cannot install.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 || \
	    echo "note: chromium could not be installed here; the browser test will skip"; }

check: $(VENV)/.installed-test
	$(BIN)/ruff check relay receivers inbox tests bench
	$(BIN)/ruff format --check relay receivers inbox tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(VENV)/.installed-test browser
	$(BIN)/python -m pytest -q

# The words people read: extract every message (babel.cfg) into relay/locales/messages.pot and
# merge it into each catalog (relay/locales/<locale>/LC_MESSAGES/messages.po); then translate
# what is new. A new language: `$(BIN)/pybabel init -i relay/locales/messages.pot -d relay/locales -l xx`.
messages: $(VENV)/.installed-test
	$(BIN)/pybabel extract -F babel.cfg -k _ -k n_:1,2 -k N_ --no-location --sort-output -w 100 \
	  --project care-relay --copyright-holder care-relay -o relay/locales/messages.pot .
	$(BIN)/pybabel update -i relay/locales/messages.pot -d relay/locales --no-fuzzy-matching --ignore-obsolete -w 100

$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	@touch $@

wrk:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || \
	  { echo "bench needs wrk (Debian: apt-get install wrk)"; exit 1; }

# The whole benchmark (bench/__main__.py): `make bench BENCH_ARGS="--only pending,invited --seconds 2"` for a quick run.
bench: $(VENV)/.installed-bench wrk
	$(BIN)/python -m bench $(BENCH_ARGS)

# Where a served relay's CPU goes (bench/profile.py): `make profile PROFILE_ARGS="--path pending --seconds 5"`.
profile: $(VENV)/.installed-bench wrk
	$(BIN)/python -m bench.profile $(PROFILE_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
