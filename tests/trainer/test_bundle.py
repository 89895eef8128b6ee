"""The bundle's model files on their own: the Ollama TEMPLATE derived from chat templates other
than the tiny model's ChatML (Llama 3's headers, Gemma's refusal of a system role, one that
numbers its turns and cannot be expressed), and a GGUF refused for a non-Llama model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trainer import bundle
from trainer.errors import ConfigError

LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
GEMMA = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% set role = 'model' if message['role'] == "
    "'assistant' else message['role'] %}{{ '<start_of_turn>' + role + '\n' + message['content'] "
    "| trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<start_of_turn>model\n' }}{% endif %}"
)
NUMBERED = (
    "{% for message in messages %}{{ loop.index|string + '. ' + message['role'] + ': ' + "
    "message['content'] + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ 'assistant: ' }}"
    "{% endif %}"
)


def _tokenizer(tiny_model: Path, template: str):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.chat_template = template
    return tokenizer


def test_llama3_headers_become_a_checked_go_template(tiny_model: Path) -> None:
    pieces = bundle.template_pieces(_tokenizer(tiny_model, LLAMA3))
    assert pieces.checked, pieces.note
    assert pieces.user == ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>")
    assert pieces.generation == "<|start_header_id|>assistant<|end_header_id|>\n\n"
    assert pieces.system == ("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>")
    template = bundle.go_template(pieces)
    assert '{{ "<|start_header_id|>user<|end_header_id|>\\n\\n" }}{{ .Content }}' in template
    assert "<|begin_of_text|>" not in template  # llama.cpp adds BOS itself


def test_a_template_refusing_system_messages_gets_no_system_branch(tiny_model: Path) -> None:
    pieces = bundle.template_pieces(_tokenizer(tiny_model, GEMMA))
    assert pieces.checked and pieces.system is None
    assert pieces.assistant == ("<start_of_turn>model\n", "<end_of_turn>\n")
    assert '.Role "system"' not in bundle.go_template(pieces)


def test_a_template_that_numbers_turns_is_flagged(tiny_model: Path, tmp_path: Path) -> None:
    pieces = bundle.template_pieces(_tokenizer(tiny_model, NUMBERED))
    assert not pieces.checked
    assert "check the TEMPLATE" in pieces.note
    folder = tmp_path / "numbered"
    shutil.copytree(tiny_model, folder)
    _tokenizer(tiny_model, NUMBERED).save_pretrained(folder)
    made = bundle.modelfile(
        folder, source="./model.gguf", system="", temperature=0.2, top_p=0.9, context_length=512
    )
    assert not made.template_checked and "SYSTEM" not in made.text
    assert "PARAMETER temperature 0.2" in made.text.splitlines()


def test_gguf_is_refused_for_other_architectures(tiny_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "gpt2ish"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(
        json.dumps({**config, "architectures": ["GPT2LMHeadModel"]})
    )
    assert not bundle.gguf_supported(folder)
    with pytest.raises(ConfigError, match="GGUF export supports"):
        bundle.write_gguf(folder, tmp_path / "x.gguf", name="x")
