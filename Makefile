# Two commands for a fresh machine: `make run` (set up, build the demo, serve the app) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-nodeps.txt | cksum | cut -d' ' -f1)
DEMO_CONFIG := data/demo/pipeline_config.json

.PHONY: run test install demo lint bench clean-venv

$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# torch first, from its exact pin: a bare dependency on torch would pull a multi-GB CUDA build
	@torch_pin=$$(grep -E '^torch==' requirements.txt || true); \
	  if [ -n "$$torch_pin" ]; then $(BIN)/python -m pip install -q "$$torch_pin"; fi
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-nodeps.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)
	@bash scripts/system-deps.sh

demo: install
	$(BIN)/python -m engine demo
	$(BIN)/python -m engine extract --config $(DEMO_CONFIG)
	$(BIN)/python -m engine collect --config $(DEMO_CONFIG)

# `serve` preloads OpenBLAS itself on Linux (mlx's CPU backend is ~10x faster for generation with it, and the
# Compare page runs in the server process) and watches no files.
run: demo
	$(BIN)/python -m engine serve

lint: install
	$(BIN)/python -m ruff check .

test: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m bench extract

clean-venv:
	rm -rf $(VENV)
