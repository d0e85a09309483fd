# Two entry points; each installs what it needs into .venv first.
#   make repro   install, then `dvc repro` on the embedded default (params.yaml)
#   make test    install, then run the tests (unit tests and one tiny `dvc repro`)
PYTHON ?= python3.11
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install repro test lint

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

repro: install
	dvc repro

test: install
	pytest -q

lint: install
	ruff check . && ruff format --check .
