# The README's two commands: `make run` (the main job) and `make test` (lint, types, tests).
# Both create .venv with the machine's python3 and (re)install the project when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
WORLD  ?= worlds/mini
SEED   ?= 42

.PHONY: run test lint typecheck pytest bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/rhin generate --profile mini --seed $(SEED) --out $(WORLD) --force
	$(BIN)/rhin world stats $(WORLD)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# dciodvfy (Debian's dicom3tools) validates the DICOM files in the tests; install it when missing.
# Without root or apt this fails loudly, and so do the DICOM tests: nothing is skipped.
system-deps:
	@command -v dciodvfy >/dev/null 2>&1 || { \
	  echo "installing dicom3tools (dciodvfy) with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dicom3tools >/dev/null; }

# pytest exits 5 when it collected nothing: that is a failure here, said out loud.
pytest: $(STAMP) system-deps
	@$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_world.py

clean:
	rm -rf $(VENV) worlds reports
