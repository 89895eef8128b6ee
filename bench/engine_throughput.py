"""Benchmark the inference engine: continuous batching of requests for several LoRA adapters,
against a baseline that serves the same requests one at a time with ``PeftModel.generate``.

Run from the repository root (``PYTHONPATH=.`` if the project is not installed); about two
minutes with the defaults on one CPU thread::

    .venv/bin/python bench/engine_throughput.py [--requests 32] [--adapters 4] [--repeats 2]
        [--hidden 64] [--layers 2] [--threads 1]

Model: a random-init Llama with the tiny local tokenizer (by default the tiny model's shape:
hidden 64, 2 layers; raise ``--hidden``/``--layers`` for compute to weigh more), and
``--adapters`` random LoRA adapters (rank 8, every projection). Workload: ``--requests`` chat
requests spread round-robin over the adapters, prompts of 10-80 words from the tiny corpus,
greedy, answers of 32-128 tokens (each request's own ``max_tokens``); both sides generate the
same tokens.

* engine: :class:`engine.core.Engine` in this process, ``max_concurrent`` = ``--requests``;
* baseline: one request at a time in arrival order, ``set_adapter(name)`` then ``generate()``
  on the same weights, first-token time taken from a streamer.

Two scenarios, each run ``--repeats`` times with the sides interleaved (best run per side
counts, so a burst of load from other processes on a shared machine does not decide):

1. burst: all requests arrive at once. Throughput = generated tokens / seconds from the
   arrival to the last token. Target: engine >= 5x baseline.
2. steady: Poisson arrivals at half the engine's burst capacity (requests/s). TTFT = first
   token minus arrival. Target: engine TTFT p95 <= 2x single-stream TTFT (one request alone
   on the idle engine, median of 5). Under a burst, TTFT is bounded below by prefilling every
   prompt, so it is reported but has no target.

Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

THROUGHPUT_TARGET = 5.0
TTFT_TARGET = 2.0
CORPUS = Path(__file__).resolve().parents[1] / "trainer" / "data" / "tiny_corpus.txt"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class Request:
    adapter: str
    messages: list[dict[str, str]]
    max_tokens: int
    arrival: float  # seconds after the start


@dataclass(frozen=True)
class Served:
    ttft: float
    tokens: int
    finished: float  # seconds after the start


@dataclass(frozen=True)
class Summary:
    tokens_per_s: float
    tokens: int
    ttft_p50: float
    ttft_p95: float

    @classmethod
    def of(cls, served: list[Served]) -> Summary:
        ttfts = sorted(s.ttft for s in served)
        tokens = sum(s.tokens for s in served)
        p95 = ttfts[min(len(ttfts) - 1, round(0.95 * (len(ttfts) - 1)))]
        return cls(tokens / max(s.finished for s in served), tokens, ttfts[len(ttfts) // 2], p95)

    def line(self, name: str) -> str:
        return (
            f"  {name:<38}{self.tokens_per_s:8.0f} tok/s {self.tokens:6d} tokens   TTFT p50 "
            f"{self.ttft_p50 * 1000:8.1f} ms  p95 {self.ttft_p95 * 1000:8.1f} ms"
        )


def make_requests(count: int, adapters: int) -> list[Request]:
    """The workload, all arriving at once (see :func:`poisson`)."""
    rng = random.Random(0)
    words = CORPUS.read_text().split()
    requests = []
    for n in range(count):
        question = " ".join(rng.choice(words) for _ in range(rng.randint(10, 80))) + "?"
        messages = [{"role": "user", "content": question}]
        requests.append(Request(f"adapter-{n % adapters}", messages, rng.randint(32, 128), 0.0))
    return requests


def poisson(requests: list[Request], rate: float) -> list[Request]:
    """The same requests arriving as a Poisson process of ``rate`` requests/s."""
    rng = random.Random(1)
    arrival, spread = 0.0, []
    for request in requests:
        spread.append(replace(request, arrival=arrival))
        arrival += rng.expovariate(rate)
    return spread


def build_model(folder: Path, args: argparse.Namespace) -> tuple[Path, list[Path]]:
    """A random-init Llama with the tiny tokenizer, and random LoRA adapters for it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from trainer.modeling import quiet_peft
    from trainer.tiny import train_tokenizer

    tokenizer = train_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 2,
        num_hidden_layers=args.layers,
        num_attention_heads=max(1, args.hidden // 16),
        num_key_value_heads=max(1, args.hidden // 32),
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    base = folder / "base"
    LlamaForCausalLM(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    adapters = []
    for n in range(args.adapters):
        model = LlamaForCausalLM.from_pretrained(base)
        lora = LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, init_lora_weights=False)
        with quiet_peft():
            get_peft_model(model, lora).save_pretrained(str(folder / f"adapter-{n}"))
        adapters.append(folder / f"adapter-{n}")
    return base, adapters


# --- the engine ------------------------------------------------------------------------------


class EngineSide:
    """One engine, started on its own event loop, serving workloads."""

    def __init__(self, base: Path, adapters: list[Path], concurrency: int):
        from engine.core import Engine, EngineConfig

        self.loop = asyncio.new_event_loop()
        config = EngineConfig(max_concurrent=concurrency, max_queue=concurrency)
        self.engine = Engine.load(str(base), name="base", config=config)
        self.loop.run_until_complete(self._start(adapters))

    async def _start(self, adapters: list[Path]) -> None:
        await self.engine.start()
        for path in adapters:
            await self.engine.load_adapter(path.name, path)

    def serve(self, requests: list[Request]) -> list[Served]:
        return self.loop.run_until_complete(self._serve(requests))

    async def _serve(self, requests: list[Request]) -> list[Served]:
        from engine.sampling import SamplingParams

        start = time.perf_counter()

        async def one(request: Request) -> Served:
            await asyncio.sleep(max(0.0, start + request.arrival - time.perf_counter()))
            params = SamplingParams(temperature=0, max_tokens=request.max_tokens)
            stream = await self.engine.submit(request.adapter, request.messages, params)
            await stream.text()
            ttft = stream.time_to_first_token or 0.0  # from submit(), called on arrival
            return Served(ttft, len(stream.token_ids), time.perf_counter() - start)

        return list(await asyncio.gather(*(one(r) for r in requests)))

    def single_stream_ttft(self, requests: list[Request]) -> float:
        alone = [[replace(r, max_tokens=1)] for r in requests[:5]]
        return statistics.median(self.serve(batch)[0].ttft for batch in alone)

    def close(self) -> None:
        self.loop.run_until_complete(self.engine.stop())
        self.loop.close()


# --- the baseline ----------------------------------------------------------------------------


class FirstToken:
    """A ``generate`` streamer that notes when the first new token arrives."""

    def __init__(self) -> None:
        self.calls = 0
        self.at: float | None = None

    def put(self, value: Any) -> None:
        self.calls += 1  # the first call carries the prompt
        if self.calls == 2:
            self.at = time.perf_counter()

    def end(self) -> None:
        return None


class BaselineSide:
    """PeftModel with every adapter; serves one request at a time with ``set_adapter``."""

    def __init__(self, base: Path, adapters: list[Path]):
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        from engine.model import eos_token_ids
        from trainer.modeling import BaseSource, load_tokenizer, pick_hardware, quiet_peft

        self.hardware = pick_hardware("auto")
        self.tokenizer = load_tokenizer(BaseSource(str(base), local_only=True))
        model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=self.hardware.dtype)
        with quiet_peft():
            model = PeftModel.from_pretrained(
                model, str(adapters[0]), adapter_name=adapters[0].name
            )
            for path in adapters[1:]:
                model.load_adapter(str(path), adapter_name=path.name)
        self.model = model.to(self.hardware.device).eval()
        self.eos = sorted(eos_token_ids(model, self.tokenizer))

    def generate(self, request: Request) -> tuple[int, float | None]:
        import torch

        from engine.text import encode_chat
        from trainer.modeling import quiet_peft

        prompt = encode_chat(request.messages, self.tokenizer)
        ids = torch.tensor([prompt], device=self.hardware.device)
        self.model.set_adapter(request.adapter)
        streamer = FirstToken()
        with torch.inference_mode(), quiet_peft():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=request.max_tokens,
                do_sample=False,
                eos_token_id=self.eos,
                pad_token_id=self.tokenizer.pad_token_id,
                streamer=streamer,
            )
        return out.shape[1] - ids.shape[1], streamer.at

    def serve(self, requests: list[Request]) -> list[Served]:
        start = time.perf_counter()
        served = []
        for request in requests:
            time.sleep(max(0.0, start + request.arrival - time.perf_counter()))
            tokens, first = self.generate(request)
            done = time.perf_counter()
            served.append(Served((first or done) - (start + request.arrival), tokens, done - start))
        return served


# --- running ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--adapters", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64, help="hidden size of the random Llama")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads on both sides")
    args = parser.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    burst = make_requests(args.requests, args.adapters)
    results: dict[str, list[Summary]] = {
        "engine": [],
        "baseline": [],
        "e-steady": [],
        "b-steady": [],
    }
    with tempfile.TemporaryDirectory() as folder:
        base, adapters = build_model(Path(folder), args)
        engine, baseline = EngineSide(base, adapters, args.requests), BaselineSide(base, adapters)
        engine.serve(burst[:4]), baseline.generate(burst[0])  # warm up
        single = engine.single_stream_ttft(burst)
        for _ in range(args.repeats):
            results["engine"].append(Summary.of(engine.serve(burst)))
            results["baseline"].append(Summary.of(baseline.serve(burst)))
        capacity = max(r.tokens_per_s for r in results["engine"])
        rate = 0.5 * capacity / (results["engine"][0].tokens / len(burst))
        steady = poisson(burst, rate)
        for _ in range(args.repeats):
            results["e-steady"].append(Summary.of(engine.serve(steady)))
            results["b-steady"].append(Summary.of(baseline.serve(steady)))
        engine.close()
    return report(args, results, single, rate)


def report(
    args: argparse.Namespace, results: dict[str, list[Summary]], single: float, rate: float
) -> int:
    def fastest(runs: list[Summary]) -> Summary:
        return max(runs, key=lambda r: r.tokens_per_s)

    def quickest(runs: list[Summary]) -> Summary:
        return min(runs, key=lambda r: r.ttft_p95)

    engine, baseline = fastest(results["engine"]), fastest(results["baseline"])
    steady, steady_baseline = quickest(results["e-steady"]), quickest(results["b-steady"])
    ratio = engine.tokens_per_s / baseline.tokens_per_s
    ttft_ratio = steady.ttft_p95 / single
    print(
        f"{args.requests} requests over {args.adapters} adapters; random Llama hidden "
        f"{args.hidden} x {args.layers} layers; {args.threads} thread(s); best of {args.repeats}"
    )
    print("burst (all at once):")
    print(engine.line("engine (continuous batching)"))
    print(baseline.line("baseline (one at a time, generate)"))
    print(f"steady (Poisson, {rate:.1f} requests/s = half the engine's burst capacity):")
    print(steady.line("engine (continuous batching)"))
    print(steady_baseline.line("baseline (one at a time, generate)"))
    print(f"single-stream TTFT (engine, idle): {single * 1000:.1f} ms")
    print(f"throughput ratio (burst): {ratio:.2f}x (target >= {THROUGHPUT_TARGET}x)")
    print(f"TTFT p95 (steady) / single-stream: {ttft_ratio:.2f}x (target <= {TTFT_TARGET}x)")
    met = ratio >= THROUGHPUT_TARGET and ttft_ratio <= TTFT_TARGET
    print("targets met" if met else "targets MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
