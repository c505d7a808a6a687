# Fresh machine: `make demo` and `make test` create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -q --disable-pip-version-check
BASE   := $(VENV)/.installed-base
TESTS  := $(VENV)/.installed-test

.PHONY: demo test bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(BASE): pyproject.toml | $(PY)
	$(PIP) -e '.[datasets]'
	touch $@

$(TESTS): pyproject.toml | $(PY)
	$(PIP) -e '.[test]'
	touch $(BASE) $@

demo: $(BASE)
	$(PY) examples/demo.py

test: $(TESTS)
	$(PY) -m pytest -n 2 -q

bench: $(TESTS)
	$(PY) benchmarks/run.py

lint: $(TESTS)
	$(VENV)/bin/ruff check danlu tests benchmarks examples

clean:
	rm -rf $(VENV) build *.egg-info
