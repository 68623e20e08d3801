# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing and
# install torch (CPU wheel by default; override with TORCH_SPEC=...) before the packages.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed-$(shell printf '%s' '$(TORCH_SPEC)' | cksum | cut -d' ' -f1)

.PHONY: install test lint demo clean

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) setup.py pyproject.toml training/pyproject.toml
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[test,accel]" -e ./training
	rm -f $(VENV)/.installed-*
	touch $@

lint: install
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/echogen demo --out demo_out

clean:
	rm -rf demo_out build *.egg-info training/*.egg-info
