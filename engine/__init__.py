"""GPT Studio's inference engine: one base model, many LoRA adapters, continuous batching.

Its own process (``python -m engine``), reached over HTTP with the OpenAI chat-completions
protocol (:mod:`engine.server`). Importing this package imports nothing heavy; the modules that
need torch (:mod:`engine.core`, :mod:`engine.model`, :mod:`engine.batch`, :mod:`engine.sampling`)
are imported by the engine process only.
"""
