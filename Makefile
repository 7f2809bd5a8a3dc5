# Two commands for a fresh machine: `make run` (set up, build the demo, serve the app) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-nodeps.txt | cksum | cut -d' ' -f1)

.PHONY: run test install demo lint bench clean-venv

# pip's own output goes to a log (shown when it fails): `make run` prints a few lines before the app's URL.
$(STAMP): requirements.txt requirements-nodeps.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing the Python packages into $(VENV) (once; pip's log: $(VENV)/install.log) ..."
	@# torch first, from its exact pin: a bare dependency on torch would pull a multi-GB CUDA build
	@{ $(BIN)/python -m pip install -q --upgrade pip && \
	  torch_pin=$$(grep -E '^torch==' requirements.txt || true) && \
	  if [ -n "$$torch_pin" ]; then $(BIN)/python -m pip install -q "$$torch_pin"; fi && \
	  $(BIN)/python -m pip install -q -r requirements.txt && \
	  $(BIN)/python -m pip install -q --no-deps -r requirements-nodeps.txt; } > $(VENV)/install.log 2>&1 \
	  || { tail -n 20 $(VENV)/install.log; echo "pip failed; the whole log is in $(VENV)/install.log"; exit 1; }
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)
	@bash scripts/system-deps.sh

# The demo world, extracted, linked and collected, and the default base model converted: every page has
# something to show. Each step reads only what is new, so a second `make run` takes seconds.
demo: install
	@$(BIN)/python -m engine demo --prepare

# `serve` preloads OpenBLAS itself on Linux (mlx's CPU backend is ~10x faster for generation with it, and the
# Compare page runs in the server process) and watches no files.
PORT ?= 8501
run: demo
	@$(BIN)/python -m engine serve --port $(PORT)

lint: install
	$(BIN)/python -m ruff check .

test: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m bench extract

clean-venv:
	rm -rf $(VENV)
