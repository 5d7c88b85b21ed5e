# Two commands for a newcomer (see README.md):
#   make demo   - the whole flow on the embedded default data set (digits): search -> retrain -> RTL -> simulate -> report
#   make test   - the test suite
# Both create or refresh the local virtual environment .venv first.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test venv clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/jaq flow --config configs/tiny.yaml --out runs/demo --force

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q

clean:
	rm -rf runs/demo build .pytest_cache
