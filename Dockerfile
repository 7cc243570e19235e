# One image for both halves of Remit: `remit operator` (the Deployment the chart installs) and
# `remit gateway` (the sidecar the operator injects). Multi-stage: build a virtualenv with
# the wheels, then copy only that venv into a slim runtime that runs as a non-root user.
#
#   docker build -t remit:dev .                               # operator + gateway
#   docker build --target demo-mcp -t remit-demo-mcp:dev .    # example MCP server (e2e)
#   kind load docker-image remit:dev --name remit-e2e
#
# The base is pinned to an exact Python and Debian release; pin the digest too in CI:
#   --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---- build: compile nothing at runtime, keep pip and build tools out of the final image ----
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/remit
WORKDIR /src
# Dependencies first (cached while only the source changes).
COPY pyproject.toml README.md ./
COPY dataplane/remit/__init__.py dataplane/remit/py.typed dataplane/remit/
COPY operator/remit_operator/__init__.py operator/remit_operator/py.typed operator/remit_operator/
RUN /opt/remit/bin/pip install '.[gateway,operator]' && /opt/remit/bin/pip uninstall -y remit
# Then the source itself, installed as a regular (non-editable) package.
COPY dataplane/ dataplane/
COPY operator/ operator/
RUN /opt/remit/bin/pip install --no-deps . \
    && /opt/remit/bin/python -m compileall -q /opt/remit/lib \
    && /opt/remit/bin/remit --help > /dev/null

# ---- the example MCP server for `make e2e`: the same venv plus the MCP SDK ----
FROM builder AS demo-builder
RUN /opt/remit/bin/pip install 'mcp>=1.9'

# ---- runtime base: no compilers, no pip cache, a fixed non-root user ----
FROM ${PYTHON_IMAGE} AS runtime-base
# 65532 is the uid the chart's securityContext and the injected sidecar run as.
RUN groupadd --system --gid 65532 remit \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin remit
ENV PATH=/opt/remit/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
WORKDIR /tmp

FROM runtime-base AS demo-mcp
COPY --from=demo-builder /opt/remit /opt/remit
# Loopback only: the gateway sidecar in the same pod is the only way in.
ENTRYPOINT ["python", "-m", "remit.demo.files_server"]
CMD ["--host", "127.0.0.1", "--port", "8080", "--path", "/mcp"]

# ---- the image (last stage: what a plain `docker build` produces) ----
FROM runtime-base AS remit
COPY --from=builder /opt/remit /opt/remit
LABEL org.opencontainers.image.title="remit" \
      org.opencontainers.image.description="Remit operator and MCP gateway sidecar" \
      org.opencontainers.image.licenses="Apache-2.0"
EXPOSE 9000 9901 9443 9090 8080
ENTRYPOINT ["remit"]
CMD ["--help"]
