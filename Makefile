# `make test` is the whole test suite (README, second command; CI runs it too).
PYTHON ?= python

.PHONY: install test lint bench demo

install:
	$(PYTHON) -m pip install -q -e ".[dev]"

test:
	bash scripts/prepare-services.sh
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

bench:
	$(PYTHON) -m bench
