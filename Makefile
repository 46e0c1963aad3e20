# `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: demo test install clean notebooks docs dist wheel-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and alone: the pin selects the CPU wheel, never a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet -c constraints.txt torch
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m sk_l2rw.demo

test: $(STAMP)
	$(BIN)/python -m pytest

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[docs]"
	touch $(DOCS_STAMP)

# the documentation site, warnings as errors, into docs/_build/html
docs: $(DOCS_STAMP)
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html
	$(BIN)/python docs/check_api.py

# sdist and wheel into dist/, checked by twine
dist: $(DOCS_STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/python -m twine check --strict dist/*

# the wheel in a fresh venv with only the runtime dependencies, fitting the README example
wheel-check: dist
	rm -rf build/wheel-venv
	$(PYTHON) -m venv build/wheel-venv
	build/wheel-venv/bin/python -m pip install --quiet -c constraints.txt torch
	build/wheel-venv/bin/python -m pip install --quiet -c constraints.txt dist/*.whl
	cd build && wheel-venv/bin/python ../tests/wheel_example.py

# re-run the notebooks on the real data sets and store their outputs
notebooks: $(STAMP)
	$(BIN)/python notebooks/execute.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache docs/_build docs/examples
