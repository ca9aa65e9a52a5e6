# streamhouse: one image for every dataflow and the order API.
#   docker build -t streamhouse .
#   docker run -e STREAMHOUSE_FLOW=order_stats -e STREAMHOUSE_BOOTSTRAP_SERVERS=kafka:9092 \
#     -v lake:/data/lake -v recovery:/data/recovery streamhouse
# tests/test_deploy.py checks that what this file runs is what the README documents and
# what CI installs (scripts/install-venv); `just lint` runs hadolint on it.

# --- build: the project and its dependencies in a virtualenv --------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts/ scripts/
COPY streamhouse/ streamhouse/
COPY models/ models/
COPY dataflows/ dataflows/
COPY sinks/ sinks/
COPY warehouse/ warehouse/
RUN scripts/install-venv /opt/streamhouse .

# --- run: the virtualenv on a slim base, as a non-root user ----------------------------
FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /home/streamhouse streamhouse \
    && mkdir -p /data/lake /data/recovery \
    && chown -R streamhouse /data
COPY --from=build /opt/streamhouse /opt/streamhouse
ENV PATH=/opt/streamhouse/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    STREAMHOUSE_FLOW=land_events \
    STREAMHOUSE_LAKE_DIR=/data/lake \
    STREAMHOUSE_RECOVERY_DIR=/data/recovery \
    BYTEWAX_DATAFLOW_API_ENABLED=true \
    BYTEWAX_DATAFLOW_API_PORT=3030
# The lake and the recovery store must outlive the container: a restart resumes from them.
VOLUME ["/data/lake", "/data/recovery"]
USER 10001
WORKDIR /home/streamhouse
# 3030: a flow's /metrics (bytewax's and streamhouse's); 8000: the API (`api --port 8000`).
EXPOSE 3030 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["streamhouse", "health"]
ENTRYPOINT ["streamhouse"]
# The flow in STREAMHOUSE_FLOW; or `docker run IMAGE run order_stats`, `... api --host 0.0.0.0`.
CMD ["run"]
