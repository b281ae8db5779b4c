# Every target sets up what it needs on a fresh machine by itself.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Installed first so the CPU wheel is used where it is available locally.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test bench lint clean

$(VENV)/.base-installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.base-installed
	$(PIP) install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.base-installed
	$(VENV)/bin/mambajepa demo

test: $(VENV)/.dev-installed
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: $(VENV)/.dev-installed
	$(VENV)/bin/mambajepa bench all

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check mambajepa tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
