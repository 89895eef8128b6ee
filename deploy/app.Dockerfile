# GPT Studio's web and worker processes: one image, two commands (see compose.yaml, k8s/).
# CPU torch by default; for GPU workers build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
# Not built or run on the development machine (no container runtime there): see deploy/README.md.
FROM python:3.11-slim-bookworm
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    REFLEX_USE_SYSTEM_BUN=1 \
    REFLEX_TELEMETRY_ENABLED=false \
    REFLEX_CHECK_LATEST_VERSION=false \
    REFLEX_SSR=false \
    GPTSTUDIO_DATA_DIR=/data
# REFLEX_SSR=false: a web replica starting while another answers at GPTSTUDIO_PUBLIC_URL timed
# out prerendering "/" in its frontend export (tests/test_replicas.py runs replicas this way).
# Node.js for Reflex's JS build; bun as the Makefile pins it.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends nodejs npm \
 && npm install -g --no-audit --no-fund bun@1.4.4 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY gptstudio gptstudio
COPY trainer trainer
COPY engine engine
COPY alembic alembic
COPY alembic.ini rxconfig.py ./
COPY assets assets
RUN pip install -c constraints.txt --index-url "$TORCH_INDEX" torch==2.13.0 \
 && pip install -c constraints.txt -e .
# The adapters, uploads and indexes live on a volume shared by web, workers and the engine,
# mounted at the same path everywhere (adapter paths are stored in the database).
VOLUME /data
EXPOSE 3000
# web (several replicas; Redis holds Reflex state, the queue and the quota counters):
CMD ["python", "-m", "gptstudio.run", "--no-worker", "--no-engine", "--no-migrate"]
# worker: python -m huey.bin.huey_consumer gptstudio.jobs.worker.huey -w 1
# migrate (once per release): alembic upgrade head
