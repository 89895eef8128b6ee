"""The project's engine against vLLM's CPU build, over HTTP, on the same model, adapters and
workload, in one run: aggregate tokens/s and time to first token (p50/p95) for each, and the
ratios.

Run from the repository root after ``make vllm-venv`` (a few minutes; vLLM's start is most of it)::

    .venv/bin/python bench/engine_vs_vllm.py [--streams 32] [--adapters 4] [--tokens 64]
        [--hidden 512] [--layers 8] [--repeats 2]

Model: a random-init Llama (the tiny tokenizer, head_dim 64 because vLLM's CPU attention refuses
16; hidden 512 and 8 layers: 25 M parameters), fp32, and ``--adapters`` random LoRA adapters
(rank 8, every projection). Workload: ``--streams`` concurrent streamed chat requests, round-robin
over the adapters, prompts of 10-60 words from the tiny corpus, greedy, ``max_tokens`` =
``--tokens`` (the random model rarely ends a turn early; each side's generated-token count is
printed). Each server runs alone (the other is stopped), is warmed up with one pass, then the burst
runs ``--repeats`` times; the best run per side counts (a burst of load from other processes on
a shared machine should not decide). Tokens/s = generated tokens / seconds from sending the
burst to the last token; TTFT = first content chunk minus sending.

* engine: ``python -m engine --max-concurrent STREAMS`` (adapters loaded with
  ``/v1/load_lora_adapter``, as the app does);
* vLLM: ``python -m vllm.entrypoints.openai.api_server --enable-lora --max-loras ADAPTERS
  --dtype float32`` from ``.venv-vllm``, ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "trainer" / "data" / "tiny_corpus.txt"
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class Result:
    tokens: int
    seconds: float
    ttfts: list[float]

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds

    def ttft(self, fraction: float) -> float:
        ordered = sorted(self.ttfts)
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def build_model(
    folder: Path, *, hidden: int, layers: int, adapters: int
) -> tuple[Path, list[Path]]:
    """The base model (head_dim 64) and ``adapters`` random LoRA adapters beside it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from trainer.tiny import train_tokenizer

    tokenizer = train_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 3,
        num_hidden_layers=layers, num_attention_heads=hidden // 64, num_key_value_heads=2,
        head_dim=64, max_position_embeddings=1024, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    base = folder / "base"
    LlamaForCausalLM(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    paths = []
    for n in range(adapters):
        torch.manual_seed(100 + n)
        model = LlamaForCausalLM.from_pretrained(base)
        lora = LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, init_lora_weights=False)
        get_peft_model(model, lora).save_pretrained(str(folder / "adapters" / f"a{n}"))
        paths.append(folder / "adapters" / f"a{n}")
    return base, paths


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(
    command: list[str], env: dict[str, str], health: str, log: Path
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 900
    while True:
        try:
            urllib.request.urlopen(health, timeout=2)
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"{command[2]} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(1)


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def prompts(streams: int) -> list[str]:
    words = CORPUS.read_text().split()
    rng = random.Random(7)
    out = []
    for _ in range(streams):
        start_at = rng.randrange(len(words) - 60)
        out.append(" ".join(words[start_at : start_at + rng.randint(10, 60)]))
    return out


async def one(client: httpx.AsyncClient, model: str, text: str, tokens: int, sent: float
              ) -> tuple[int, float]:  # fmt: skip
    body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": True,
            "stream_options": {"include_usage": True}, "max_tokens": tokens,
            "temperature": 0}  # fmt: skip
    first, generated = 0.0, 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and chunk["choices"][0]["delta"].get("content") and not first:
                first = time.perf_counter() - sent
            if chunk.get("usage"):
                generated = int(chunk["usage"]["completion_tokens"])
    return generated, first


async def burst(url: str, names: list[str], texts: list[str], tokens: int) -> Result:
    limits = httpx.Limits(max_connections=len(texts) + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        sent = time.perf_counter()
        done = await asyncio.gather(*(one(client, names[i % len(names)], text, tokens, sent)
                                      for i, text in enumerate(texts)))  # fmt: skip
        seconds = time.perf_counter() - sent
    return Result(sum(d[0] for d in done), seconds, [d[1] for d in done])


def measure(url: str, adapters: list[Path], args: argparse.Namespace) -> Result:
    names = [f"a{n}" for n in range(len(adapters))]
    for name, path in zip(names, adapters, strict=True):
        body = {"lora_name": name, "lora_path": str(path)}
        loaded = httpx.post(f"{url}/v1/load_lora_adapter", json=body, timeout=300)
        loaded.raise_for_status()
    texts = prompts(args.streams)
    asyncio.run(burst(url, names, texts, args.tokens))  # warm-up
    runs = [asyncio.run(burst(url, names, texts, args.tokens)) for _ in range(args.repeats)]
    return max(runs, key=lambda r: r.tokens_per_second)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--adapters", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if not VLLM_PYTHON.exists():
        sys.exit(f"{VLLM_PYTHON} is missing: run `make vllm-venv` first")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        base, adapters = build_model(folder, hidden=args.hidden, layers=args.layers,
                                     adapters=args.adapters)  # fmt: skip
        import torch
        from transformers import AutoModelForCausalLM

        params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(base).parameters())
        threads = str(torch.get_num_threads())
        print(f"model: hidden {args.hidden}, {args.layers} layers, head_dim 64, "
              f"{params / 1e6:.1f} M parameters, fp32; {args.adapters} adapters rank 8; "
              f"{args.streams} streams x "
              f"{args.tokens} tokens; {threads} threads", flush=True)  # fmt: skip
        results = {}
        port = free_port()
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        engine = start([sys.executable, "-m", "engine", "--base", str(base), "--adapters-dir",
                        str(folder), "--port", str(port), "--max-concurrent", str(args.streams),
                        "--max-queue", str(args.streams * 2), "--no-embeddings",
                        "--log-level", "warning"],
                       env, f"http://127.0.0.1:{port}/healthz", folder / "engine.log")  # fmt: skip
        try:
            results["engine"] = measure(f"http://127.0.0.1:{port}", adapters, args)
        finally:
            stop(engine)
        port = free_port()
        vllm_env = {
            **env,
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
            "VLLM_CPU_KVCACHE_SPACE": "2",
        }
        vllm = start([str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model",
                      str(base), "--port", str(port), "--host", "127.0.0.1", "--dtype", "float32",
                      "--enable-lora", "--max-lora-rank", "8", "--max-loras", str(args.adapters),
                      "--max-num-seqs", str(args.streams), "--max-model-len", "1024"],
                     vllm_env, f"http://127.0.0.1:{port}/health", folder / "vllm.log")  # fmt: skip
        try:
            results["vllm"] = measure(f"http://127.0.0.1:{port}", adapters, args)
        finally:
            stop(vllm)
    print(
        f"{'server':8} {'tokens':>7} {'seconds':>8} {'tokens/s':>9} {'TTFT p50':>9} {'TTFT p95':>9}"
    )
    for name, r in results.items():
        print(f"{name:8} {r.tokens:7d} {r.seconds:8.2f} {r.tokens_per_second:9.1f} "
              f"{r.ttft(0.5):8.2f}s {r.ttft(0.95):8.2f}s")  # fmt: skip
    engine_r, vllm_r = results["engine"], results["vllm"]
    print(f"engine / vLLM: {engine_r.tokens_per_second / vllm_r.tokens_per_second:.2f}x tokens/s, "
          f"TTFT p50 {vllm_r.ttft(0.5) / engine_r.ttft(0.5):.2f}x lower, "
          f"p95 {vllm_r.ttft(0.95) / engine_r.ttft(0.95):.2f}x lower")  # fmt: skip


if __name__ == "__main__":
    main()
