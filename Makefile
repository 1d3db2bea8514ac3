# Two commands do all set-up: `make demo` (install + run the main job) and `make test`.
# TORCH_SPEC picks the torch build; CI sets the CPU wheel (torch==2.13.0+cpu) to stay fast.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -n 2

.PHONY: install demo test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) scripts/demo.py

# one BLAS/torch thread per pytest worker: oversubscribed threads made the suite 15x slower
test: install
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) demo_out *.egg-info
