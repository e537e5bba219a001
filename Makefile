# `make demo` runs the main job on bundled data (`make demo-v3`: the same on a small NT v3 model); `make test`
# runs the whole test suite.
# Both create or reuse .venv. TORCH_SPEC picks the torch build (default: the CPU wheel pinned for these
# machines); GPU users: `make test TORCH_SPEC="torch==2.9.1"` or any CUDA build they prefer.
PYTHON ?= python3.11
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo demo-v3 test lint venv clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or make PYTHON=/path/to/python3.11)"; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q "$(TORCH_SPEC)"
	$(VENV)/bin/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/nt demo

demo-v3: $(STAMP)
	$(VENV)/bin/nt demo --generation v3

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean-venv:
	rm -rf $(VENV)
