# The README's two commands: `make run` (the main job) and `make test` (lint, types, tests).
# Both create .venv with the machine's python3 and (re)install the project when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
WORLD  ?= worlds/mini
SEED   ?= 42

.PHONY: run test lint typecheck pytest bench clean system-deps container-deps image test-containers

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job: every default scenario suite (conformance, consent, distributed, latency) against the live
# reference network for $(WORLD), generated first if missing; reports in reports/<time>/ (exit 1 on any
# failed, errored or skipped assertion).
run: $(STAMP)
	@test -f $(WORLD)/world.json || $(BIN)/rhin generate --profile mini --seed $(SEED) --out $(WORLD) --force
	$(BIN)/rhin run --world $(WORLD)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# dciodvfy (Debian's dicom3tools) validates the DICOM files in the tests; chromium and chromedriver render
# the HTML run report in a browser test. Installed when missing; without root or apt this fails loudly, and
# so do those tests: nothing is skipped, and no test installs anything itself.
system-deps:
	@missing=""; \
	command -v dciodvfy >/dev/null 2>&1 || missing="$$missing dicom3tools"; \
	{ command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# pytest exits 5 when it collected nothing: that is a failure here, said out loud.
pytest: $(STAMP) system-deps
	@$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_world.py

clean:
	rm -rf $(VENV) worlds reports

# ---- containers (issue 17; README "Containers") ----------------------------------------------------------
# podman serves the Docker Engine API here (no Docker Engine, no registry): the base image comes from
# Debian's packages (containers/base.sh, cached in $(RHIN_CACHE)), the rhin image is built offline from wheels
# made on the host, and the container tests talk to `podman system service` on a socket of their own.
IMAGE          ?= localhost/rhin:latest
BASE_IMAGE     ?= localhost/debian-python:bookworm
RHIN_CACHE     ?= /var/cache/rhin
CONTAINERS_ENV := CONTAINERS_CONF=$(CURDIR)/containers/containers.conf RHIN_CACHE=$(RHIN_CACHE)

container-deps:
	@command -v podman >/dev/null 2>&1 && command -v runc >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1 || { \
	  echo "installing podman runc debootstrap with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null; }

# Wheels for every dependency (build/wheels, remade when pyproject.toml changes), the project's own every time.
build/wheels/.deps: pyproject.toml | $(STAMP)
	@mkdir -p build/wheels
	$(BIN)/python -m pip wheel -q -w build/wheels . setuptools wheel
	touch $@

image: $(STAMP) container-deps build/wheels/.deps
	$(CONTAINERS_ENV) containers/base.sh
	rm -f build/wheels/rhin_testbed-*.whl
	$(BIN)/python -m pip wheel -q --no-deps -w build/wheels .
	$(CONTAINERS_ENV) podman build -q --format docker --build-arg BASE=$(BASE_IMAGE) --build-arg OFFLINE=1 -t $(IMAGE) .
	@$(CONTAINERS_ENV) podman image prune -f >/dev/null
	@$(CONTAINERS_ENV) podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' $(IMAGE)

# The container tests (tests/containers, not in the default run): fail loudly without podman.
test-containers: image
	$(CONTAINERS_ENV) RHIN_IMAGE=$(IMAGE) $(BIN)/python -m pytest -q -p no:cacheprovider tests/containers
