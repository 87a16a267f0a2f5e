# The audio bridge (Fargate). Build from the repository root:
#   docker build -f infra/bridge.Dockerfile -t callflow-bridge .
# The image carries exactly the bridge's runtime: the locked requirements of requirements/bridge.txt
# (an export of uv.lock, every file's hash checked) and two packages, callflow (the shared library)
# and callflow_bridge. The CDK asset's build context is the same allow-list
# (infra/cdk/callflow_infra/packaging.py), so nothing else of the checkout can reach the image.
# Keep the ECS task's stopTimeout >= CALLFLOW_BRIDGE_DRAIN_SECONDS (Fargate allows 120 s), or calls
# are cut when a task is replaced.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    CALLFLOW_BRIDGE_HOST=0.0.0.0 \
    CALLFLOW_BRIDGE_PORT=8080

# Wheels exist for every locked version on slim (glibc), for amd64 and arm64.
COPY requirements/bridge.txt /tmp/requirements.txt
RUN pip install --require-hashes --no-deps --only-binary=:all: -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin bridge

WORKDIR /app
COPY src/callflow ./callflow
COPY src/callflow_bridge ./callflow_bridge
# The image's file system is writable, but every container would compile the same modules at
# start: do it once, here.
RUN python -m compileall -q /app

USER 10001
EXPOSE 8080
STOPSIGNAL SIGTERM
# No curl in slim: ask /health with the standard library. It answers 503 only while draining,
# which happens after SIGTERM, when ECS is already stopping the task.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('CALLFLOW_BRIDGE_PORT', '8080'), timeout=3)"]
CMD ["python", "-m", "callflow_bridge"]
