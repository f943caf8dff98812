# One image for every subcommand (modeljob run | extender | estimate | simulate | crd).
# Build: make image   (docker build -t modeljob-operator:dev .)
# syntax=docker/dockerfile:1

# --- build: resolve pinned dependencies and build the wheel in a throwaway stage ---------------
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/modeljob
COPY requirements/runtime.lock requirements/runtime.lock
# --require-hashes: every byte that enters the image is pinned by the lock.
RUN /opt/modeljob/bin/pip install --no-deps --require-hashes -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN /opt/modeljob/bin/pip install --no-deps .

# --- runtime: the venv only, as a non-root user, read-only friendly -------------------------------
FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="modeljob-operator" \
      org.opencontainers.image.description="Sizes, queues and gang-places AI model jobs on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/modeljob/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/modeljob /opt/modeljob
# A fixed numeric UID so Kubernetes' runAsNonRoot can verify it without /etc/passwd lookups.
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["modeljob"]
CMD ["run"]
