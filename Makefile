# biornn: two commands do everything.
#   make test     unit tests + ruff + every notebook under nbval (quick mode)
#   make figures  execute every notebook (paper mode, from the cached results) and write figures/
# Both create .venv/ (Python 3.11) on first use. Other targets: bench, student, html, sync, clean.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Wheels lying on this kind of machine (the CPU build of torch); harmless where the folder does not exist.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
PIP := $(PY) -m pip install --disable-pip-version-check $(FIND_LINKS)
# NN_name.ipynb and its appendix NNb_name.ipynb, in reading order (06, 06b, 07).
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb notebooks/[0-9][0-9][a-z]_*.ipynb))
# Notebooks (by number) whose paper-mode results are in the committed cache (all of them today): `make figures` runs
# these in paper mode and any others in quick mode. Override with
# `make figures PAPER_READY="01 02 ..."`.
PAPER_READY ?= 00 01 02 03 04 05 06 07

.PHONY: venv test unit nbval lint figures bench student html sync clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"biornn needs Python 3.11, found {sys.version.split()[0]}: set PYTHON=/path/to/python3.11"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) "torch==2.13.0"
	$(PIP) -e .
	touch $(STAMP)

lint: venv
	$(PY) -m ruff check biornn tests benchmarks docs notebooks/src notebooks/*.py

unit: venv
	BIORNN_MODE=quick $(PY) -m pytest tests

nbval: venv
	@tmp=$$(mktemp -d); BIORNN_MODE=quick BIORNN_FIGURES=$$tmp BIORNN_PROGRESS=0 $(PY) -m pytest -p no:cacheprovider \
	  --nbval-lax --nbval-current-env --sanitize-with tests/nbval_sanitize.cfg $(NOTEBOOKS); rc=$$?; rm -rf $$tmp; exit $$rc

test: lint unit nbval

figures: venv
	@mkdir -p figures
	@for nb in $(NOTEBOOKS); do \
	  num=$$(basename $$nb | cut -c1-2); mode=quick; \
	  for r in $(PAPER_READY); do [ "$$r" = "$$num" ] && mode=paper; done; \
	  echo "== $$nb (BIORNN_MODE=$$mode)"; \
	  BIORNN_MODE=$$mode BIORNN_PROGRESS=0 $(PY) -m jupyter nbconvert --to notebook --execute \
	    --ExecutePreprocessor.timeout=-1 --output-dir $${TMPDIR:-/tmp}/biornn-executed "$$nb" || exit 1; \
	done
	@ls figures

bench: venv
	$(PY) benchmarks/run.py

student: venv
	$(PY) notebooks/src/make_student.py --out notebooks/student $(NOTEBOOKS)

html: venv
	BIORNN_MODE=quick BIORNN_FIGURES=site/figures BIORNN_PROGRESS=0 $(PY) notebooks/src/make_html.py --out site $(NOTEBOOKS)
	@echo "open site/index.html (screenshot: notebooks/src/screenshot.sh)"

# Notebooks are text: bring every notebooks/NN_name.ipynb (and NNb_name.ipynb) in line with its jupytext
# source NN_name.py (or back).
sync: venv
	$(PY) -m jupytext --sync $(NOTEBOOKS:.ipynb=.py)

clean:
	rm -rf $(VENV) site notebooks/student
