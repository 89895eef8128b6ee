# The project's model server (`python -m engine`): base model + LoRA adapters, continuous batching,
# /v1/embeddings (MiniLM, which retrieval needs). Serves chat on CPU hosts and small models; on GPU
# hosts with large models vLLM (k8s/vllm.yaml) is the engine and this one serves embeddings only
# (GPTSTUDIO_EMBEDDINGS_URL). Not built or run on the development machine: see deploy/README.md.
FROM python:3.11-slim-bookworm
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 GPTSTUDIO_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY gptstudio gptstudio
COPY trainer trainer
COPY engine engine
RUN pip install -c constraints.txt --index-url "$TORCH_INDEX" torch==2.13.0 \
 && pip install -c constraints.txt -e .
EXPOSE 8100
# --base: a hub id or a folder on the shared volume; --adapters-dir: the shared artifacts folder.
ENTRYPOINT ["python", "-m", "engine", "--host", "0.0.0.0", "--port", "8100"]
CMD ["--base", "/data/models/tiny-llama", "--adapters-dir", "/data/artifacts"]
