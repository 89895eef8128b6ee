"""Build the tiny local base model: a random-init Llama causal LM with a BPE tokenizer.

Offline and in seconds. Tests and the offline demo use it; real users name any hub id or path.

    python -m trainer.tiny OUTPUT_DIR [--force] [--head-dim 64]

``--head-dim 64`` builds it with attention heads vLLM's CPU build accepts (it refuses the
default 16): the model the vLLM integration tests serve.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CORPUS = Path(__file__).parent / "data" / "tiny_corpus.txt"
BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, IM_START, IM_END]
# ChatML: every turn is "<|im_start|>role\ncontent<|im_end|>\n"; generation opens an assistant turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
MARKER = "gptstudio-tiny.json"
CONTEXT_WINDOW = 8192
"""Tokens the tiny model takes: room for a persona, several retrieved passages, some history and
an answer. Its byte-level tokenizer, trained on a small corpus, spends a token per 1.3 to 2
bytes of unseen text, so real passages are long in tokens; the model is random-init and RoPE
has no position weights, so a longer window costs no parameters."""


def train_tokenizer(vocab_size: int = 1024):  # type: ignore[no-untyped-def]
    """A byte-level BPE tokenizer trained on the bundled corpus, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train([str(CORPUS)], trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=IM_END,  # generation stops at the end of the assistant turn
        pad_token=PAD,
        additional_special_tokens=[EOS, IM_START],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(
    output_dir: str | Path,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    layers: int = 2,
    head_dim: int | None = None,
) -> Path:
    """Write the tiny model and tokenizer to ``output_dir`` with ``save_pretrained`` (wider and
    deeper shapes are for benchmarks, where compute rather than Python should dominate;
    ``head_dim``: per attention head, default ``hidden_size`` / 4 heads)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=head_dim,
        max_position_embeddings=CONTEXT_WINDOW,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    marker = {
        "seed": seed, "hidden_size": hidden_size, "context_window": CONTEXT_WINDOW,
        "head_dim": head_dim,
    }  # fmt: skip
    (output / MARKER).write_text(json.dumps(marker))
    return output


def is_built(path: str | Path) -> bool:
    """Whether a complete tiny model of this shape is already at ``path`` (one built with an
    older, shorter window is built again: its weights and tokenizer come out the same)."""
    folder = Path(path)
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    window = marker.get("context_window") if isinstance(marker, dict) else None
    return window == CONTEXT_WINDOW and (folder / "config.json").exists()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", help="the folder to write the model and tokenizer to")
    parser.add_argument("--force", action="store_true", help="rebuild even if it exists")
    parser.add_argument(
        "--head-dim", type=int, default=None, help="per attention head (vLLM's CPU build: 64)"
    )
    args = parser.parse_args(argv)
    if is_built(args.output_dir) and not args.force:
        print(f"tiny model already at {args.output_dir}")
        return
    print(f"tiny model written to {build_tiny_model(args.output_dir, head_dim=args.head_dim)}")


if __name__ == "__main__":
    main()
