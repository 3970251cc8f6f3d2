# Two entry points a new user needs: `make demo` and `make test`.
# Each creates .venv (Python 3.12) and installs what it needs.
PY ?= $(shell command -v python3.12 2>/dev/null || echo $$HOME/.pyenv/versions/3.12.1/bin/python)
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench docs reference clean

$(VPY):
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q -U pip

$(STAMP): $(VPY) pyproject.toml
	$(VPY) -m pip install -q -e ".[test,fast,bambi,jax,scale]"
	touch $(STAMP)

demo: $(STAMP)
	$(VPY) -m bayesmixed.demo --out demo_output

test: $(STAMP)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(VPY) -m pytest -n 2 -q

test-all: $(STAMP)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(VPY) -m pytest -n 2 -q --runslow

bench: $(STAMP)
	$(VPY) benchmarks/run.py

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

reference:
	Rscript tests/reference/make_reference.R
	Rscript tests/reference/make_reference_round2.R

clean:
	rm -rf $(VENV) demo_output
