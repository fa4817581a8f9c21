# All set-up is done by `make setup`, which every other target runs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo study test clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test,local-s3]"
	# Debian's Chromium for the summary page's browser test (best effort: the test says so if it is missing)
	command -v chromium >/dev/null || { command -v apt-get >/dev/null && \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && \
	   apt-get install -y -q chromium >/dev/null 2>&1)) ; } || echo "chromium not installed: its test will skip"
	touch $(STAMP)

demo: setup
	$(BIN)/exactcompress demo --out out/demo

study: setup
	$(BIN)/exactcompress study run examples/study.yaml
	$(BIN)/exactcompress study run examples/study_cnn.yaml

test: setup
	$(BIN)/python -X faulthandler -m pytest -q

clean:
	rm -rf out .pytest_cache
