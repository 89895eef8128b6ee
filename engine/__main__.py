"""Run the inference engine: ``python -m engine --base PATH [--adapters-dir DIR] [--port N]``.

    python -m engine --base data/models/tiny-llama --adapters-dir data/artifacts/adapters \\
        --port 8100 --max-concurrent 16 [--api-key KEY | ENGINE_API_KEY=KEY]

Loads the base model, then every adapter folder in ``--adapters-dir`` under its folder name,
and serves the OpenAI-compatible API (:mod:`engine.server`) until interrupted. ``/v1/embeddings``
serves MiniLM as ``--embedding-model`` (default ``minilm``), loaded on its first request;
``--no-embeddings`` turns it off.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from engine.core import EngineConfig
from engine.embeddings import DEFAULT_NAME


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = EngineConfig()
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="base model: hub id or local folder")
    parser.add_argument("--adapters-dir", type=Path, help="adapters load from (and only from) here")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--served-model-name", help="the base model's name in the API (--base)")
    parser.add_argument("--max-model-len", type=int, help="context window (the model's)")
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=defaults.max_concurrent,
        help="sequences decoded together",
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=defaults.max_queue,
        help="requests waiting for a slot before 503 busy",
    )
    parser.add_argument("--max-adapters", type=int, default=defaults.max_adapters)
    parser.add_argument("--threads", type=int, help="torch CPU threads (torch's default)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("ENGINE_API_KEY"),
        help="bearer token every /v1 call must send (env ENGINE_API_KEY)",
    )
    parser.add_argument(
        "--embedding-model",
        default=DEFAULT_NAME,
        help="name /v1/embeddings serves MiniLM under (GPTSTUDIO_EMBEDDING_MODEL in the app)",
    )
    parser.add_argument("--no-embeddings", action="store_true", help="do not serve /v1/embeddings")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import torch
    import uvicorn

    from engine.core import Engine
    from engine.embeddings import Embedder
    from engine.errors import BaseModelLoadError
    from engine.server import create_app

    args = parse_args(argv)
    if args.adapters_dir is not None and not args.adapters_dir.is_dir():
        raise SystemExit(f"--adapters-dir {args.adapters_dir} is not a folder")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        config = EngineConfig(
            max_concurrent=args.max_concurrent,
            max_queue=args.max_queue,
            max_adapters=args.max_adapters,
            adapters_dir=args.adapters_dir,
        )
        engine = Engine.load(
            args.base, name=args.served_model_name, config=config, max_model_len=args.max_model_len
        )
    except (ValueError, BaseModelLoadError) as error:
        raise SystemExit(f"cannot start the engine: {error}") from error
    embedder = None if args.no_embeddings else Embedder(name=args.embedding_model)
    app = create_app(
        engine, api_key=args.api_key, adapters_dir=args.adapters_dir, embedder=embedder
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
