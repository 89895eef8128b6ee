"""The tiny local base model: builds offline, loads with Auto classes, chats with its template."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.tiny import build_tiny_model, is_built, main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def test_tiny_model_loads_and_generates(tiny: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny)
    assert model.config.model_type == "llama"
    assert is_built(tiny)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "How often should varroa be monitored?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert prompt.endswith("<|im_start|>assistant\n")
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 5 or tokenizer.eos_token_id in out[0]


def test_tokenizer_round_trips_any_text(tiny: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    text = "Bonjour, été! 日本語 and emoji 🐝 — user@example.com"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text


def test_build_is_deterministic(tiny: Path, tmp_path: Path) -> None:
    again = build_tiny_model(tmp_path / "again")
    assert (again / "model.safetensors").read_bytes() == (tiny / "model.safetensors").read_bytes()


def test_command_leaves_a_built_model_alone(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (tiny / "model.safetensors").stat().st_mtime_ns
    main([str(tiny)])
    assert f"tiny model already at {tiny}" in capsys.readouterr().out
    assert (tiny / "model.safetensors").stat().st_mtime_ns == before


def test_the_window_fits_real_documents_and_an_older_build_is_rebuilt(tiny: Path) -> None:
    """8,192 tokens (it was 1,024: a persona and the default passages did not fit); a model built
    with the old window is not taken as built, so `make run` builds it again."""
    import json

    from trainer.tiny import CONTEXT_WINDOW, MARKER

    config = json.loads((tiny / "config.json").read_text())
    assert config["max_position_embeddings"] == CONTEXT_WINDOW == 8192
    marker = tiny / MARKER
    current = marker.read_text()
    try:
        marker.write_text(json.dumps({"seed": 0, "hidden_size": 64}))  # an older build's marker
        assert not is_built(tiny)
    finally:
        marker.write_text(current)
    assert is_built(tiny)


def test_head_dim_is_a_parameter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """vLLM's CPU attention refuses the default head_dim 16; head_dim 64 is a build option."""
    import torch
    from transformers import AutoModelForCausalLM

    main([str(tmp_path / "wide"), "--head-dim", "64"])
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "wide")
    assert model.config.head_dim == 64 and model.config.hidden_size == 64
    assert model.model.layers[0].self_attn.q_proj.out_features == 64 * 4
    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, model.config.vocab_size)
    default = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "narrow"))
    assert default.config.head_dim == 16
