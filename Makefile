# The whole set-up on a fresh machine: `make study` runs the study, `make test` runs the tests.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PRESET  ?= quick
OUT     ?= runs
ONLY    ?=
STAMP   := $(VENV)/.vitkd-installed
DIST    := $(VENV)/.vitkd-dist-installed

.PHONY: study test report publish docs export clean-venv gpu-rehearsal

$(STAMP): settings.ini setup.py constraints.txt Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,detection]"
	touch $@

$(DIST): $(STAMP)  ## the tests also need the dist extra (Accelerate, Ray); the study does not
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,detection,dist]"
	touch $@

study: $(STAMP)  ## run the study (PRESET=quick|smoke|full, ONLY="a b") and write $(OUT)/$(PRESET)/REPORT.md
	$(VENV)/bin/vitkd-study run --preset $(PRESET) --out $(OUT) $(if $(ONLY),--only $(ONLY)); \
	  status=$$?; $(VENV)/bin/vitkd-study report $(OUT)/$(PRESET); exit $$status

test: $(DIST)  ## notebook tests, library tests and the smoke study
	$(PY) -m pytest -q tests --durations=15

publish: $(STAMP)  ## copy the finished run into results/$(PRESET) and its claims table into README.md
	$(VENV)/bin/vitkd-study publish $(OUT)/$(PRESET) results/$(PRESET) --readme README.md

docs: $(DIST)  ## execute the library notebooks in place (slow/gpu cells skipped), so their outputs are committed
	$(PY) tools/execute_notebooks.py && $(VENV)/bin/nbdev_clean

gpu-rehearsal: $(STAMP)  ## rehearse the GPU run on this CPU: Python 3.12 image imitation, bundle, gpu_run.sh --dry-run 1 from /tmp (tens of minutes; not in CI)
	bash tools/gpu_rehearsal.sh

export: $(STAMP)
	$(VENV)/bin/nbdev_export

clean-venv:
	rm -rf $(VENV)
