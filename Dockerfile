# The srl-agent runtime image: train, eval and replay with everything installed.
#
#   docker build -t srl-agent .                                   # FROM python:3.11-slim, pip from PyPI
#
# Offline (no Docker registry, no package index inside the build): make the base with
# `srl-agent env build swe --offline` (it creates srl-agent/base:<suite> with debootstrap), put every
# wheel for the base's Python (bookworm: 3.11.2) into ./wheelhouse on a machine with a package index,
# then build FROM that base:
#
#   pip download -d wheelhouse --only-binary=:all: --python-version 3.11.2 --implementation cp \
#       --abi cp311 --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
#       --platform linux_x86_64 --platform any torch==2.13.0 hatchling .
#   docker build --network none --build-arg BASE=srl-agent/base:bookworm -t srl-agent .
#
# When ./wheelhouse exists, pip installs from it alone (--no-index).
ARG BASE=python:3.11-slim
FROM ${BASE} AS build
ARG TORCH=torch==2.13.0

# python3-venv and git: already in the offline base; installed on bases that lack them.
RUN if ! python3 -c "import ensurepip, venv" 2>/dev/null || ! command -v git >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3-venv git && \
      rm -rf /var/lib/apt/lists/*; \
    fi

WORKDIR /src
COPY . .
RUN python3 -m venv /opt/venv && \
    if [ -d wheelhouse ]; then \
      /opt/venv/bin/pip install --no-cache-dir --no-index --find-links wheelhouse "$TORCH" . ; \
    else \
      /opt/venv/bin/pip install --no-cache-dir "$TORCH" && /opt/venv/bin/pip install --no-cache-dir . ; \
    fi

# The runtime stage: the same base plus the virtual environment; no sources, no wheelhouse.
FROM ${BASE}
RUN if ! python3 -c "import venv" 2>/dev/null || ! command -v git >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3-venv git && \
      rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:${PATH}
ENTRYPOINT ["srl-agent"]
CMD ["--help"]
