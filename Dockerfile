# rhin's one image: every role by command (`rhin hub`, `rhin gateway`, `rhin run`, `rhin load`, ...).
# Worlds are volumes (mount one at /world); nothing of a world is baked in.
#
#   online:  docker build -t rhin .                        (wheels built from the package registry)
#   offline: pip wheel -w build/wheels . setuptools wheel   (on a machine with the registry, or a mirror)
#            docker build --build-arg OFFLINE=1 -t rhin .   (the build then reaches no network at all)
# BASE must provide python3 3.11 (with venv and pip); python:3.11-slim by default. Where no registry is
# reachable, containers/base.sh makes one from Debian's packages (localhost/debian-python:bookworm).
ARG BASE=python:3.11-slim

# ---- stage 1: wheels, then a virtual environment with rhin and its dependencies --------------------------
FROM ${BASE} AS wheels
ARG OFFLINE=0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY build/wheels/ /wheels/
COPY pyproject.toml README.md ./
COPY hl7wire/ hl7wire/
COPY synthetic/ synthetic/
COPY simulator/ simulator/
COPY harness/ harness/
COPY loadtests/ loadtests/
RUN set -eu; \
    if [ "$OFFLINE" = 1 ]; then \
      ls /wheels/rhin_testbed-*.whl >/dev/null 2>&1 || { echo "OFFLINE=1 needs build/wheels (see the top of this file)" >&2; exit 1; }; \
    else \
      rm -rf /wheels/* && python3 -m pip wheel --quiet -w /wheels . ; \
    fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/pip install --quiet --no-index --find-links /wheels rhin-testbed

# ---- stage 2: the runtime ----------------------------------------------------------------------------------
FROM ${BASE}
ARG VERSION=0.1.0
ARG SOURCE=https://github.com/rhin-testbed/rhin
LABEL org.opencontainers.image.title="rhin" \
      org.opencontainers.image.description="A test-bed for Japanese regional health information networks" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=wheels /opt/venv /opt/venv
# The scenario suites are files the harness reads from ./scenarios, not package data.
COPY scenarios/ /app/scenarios/
RUN useradd --uid 10001 --user-group --home-dir /app --no-create-home --shell /usr/sbin/nologin rhin \
 && mkdir -p /world /data /app/reports && chown rhin:rhin /data /app/reports
# The bytecode pip compiled is kept (a faster start); nothing new is written at run time.
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MPLCONFIGDIR=/tmp/matplotlib
USER rhin
WORKDIR /app
# Mount points, not VOLUME instructions: a VOLUME would leave an anonymous volume behind every container
# started without one (`rhin --help`, the one-shot roles). Mount the world at /world (read-only) and the
# hub's data at /data.
LABEL org.rhin.mounts="/world (the world, read-only), /data (the hub's data)"
# Hub: RHIN_HEALTH_URL=http://127.0.0.1:8080/health; gateway shard: its admin port's /health. Roles without
# a server (run, load, bootstrap) leave it unset and are healthy while they run (simulator.containers.health).
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-m", "simulator.containers.health"]
ENTRYPOINT ["rhin"]
CMD ["--help"]
