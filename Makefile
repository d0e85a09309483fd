# Two entry points; each installs what it needs into .venv first.
#   make repro   install, then `dvc repro` on the embedded default (params.yaml)
#   make test    install, then run the tests (unit tests and one tiny `dvc repro`)
PYTHON ?= python3.11
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install repro test lint

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	# tests only: YOLOv5's reference code, to cross-check our port of it (its deps are not needed)
	$(VENV)/bin/pip install -q --no-deps yolov5==7.0.14
	# `dvc plots show` offline: vega's JavaScript inlined into .dvc/plots/offline.html
	$(VENV)/bin/python -m vat.plots_template
	touch $@

install: $(VENV)/.installed

repro: install
	dvc repro

test: install
	pytest -q

lint: install
	ruff check . && ruff format --check .
