"""The model files of an export bundle: a GGUF of the merged model and an Ollama ``Modelfile``.

**GGUF.** Written with llama.cpp's own Python package (``gguf``): the architecture keys, the
tokenizer (tokens, types, merges, special ids, chat template) and every tensor under llama.cpp's
name (``gguf.get_tensor_name_map``). The query and key projections are permuted exactly as
llama.cpp's ``convert_hf_to_gguf.py`` does for Llama (its RoPE pairs neighbouring dimensions;
Hugging Face pairs the two halves). The tensor table is planned from the safetensors headers,
then tensors are read, converted and written one at a time (memory: about one tensor), in their
own dtype (float32 stays float32; bfloat16 becomes float16,
which ``numpy`` and every llama.cpp build read). :func:`check_gguf` reads the file back with
``gguf.GGUFReader`` and compares every tensor to the merged model.

**Modelfile.** Ollama's ``TEMPLATE`` is a Go template; a Hugging Face chat template is Jinja.
Rather than translate Jinja, the chat template is *rendered* with marker messages, which yields
what it writes before and after each role's content and the generation prompt; those pieces
become a Go template over ``.Messages``. :func:`template_pieces` checks the pieces against the
tokenizer's own rendering of several conversations and says when they disagree (a template that
writes the date, or numbers turns, cannot be expressed this way).

Only Llama-architecture models (Llama, Mistral and their fine-tunes) get a GGUF here; for others
the bundle's Modelfile points Ollama at the merged safetensors folder instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trainer.errors import ConfigError

LLAMA_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")
Progress = Callable[[float], None]


def _config(model_dir: Path) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return config


def gguf_supported(model_dir: str | Path) -> bool:
    """Whether :func:`write_gguf` can convert this merged model (a Llama-architecture one)."""
    return any(a in LLAMA_ARCHITECTURES for a in _config(Path(model_dir)).get("architectures", []))


def _permute(weights: Any, n_head: int) -> Any:
    """llama.cpp's ``LlamaModel.permute``: Hugging Face's rotate-half RoPE layout to GGML's."""
    shape = weights.shape
    return (
        weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:])
        .swapaxes(1, 2)
        .reshape(shape)
    )


def _safetensors_files(model_dir: Path) -> list[Path]:
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ConfigError(f"{model_dir} holds no .safetensors weights to convert")
    return files


@dataclass(frozen=True)
class _Planned:
    """One tensor of the GGUF: its llama.cpp name, where it comes from, how it is stored."""

    target: str
    source: str
    file: Path
    shape: tuple[int, ...]
    dtype: str  # "float32" or "float16"


def _plan(model_dir: Path, config: dict[str, Any]) -> list[_Planned]:
    """Every tensor of the merged model, named as llama.cpp names it, from the safetensors
    headers alone (no weights read)."""
    import gguf
    from safetensors import safe_open

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, int(config["num_hidden_layers"]))
    plan = []
    for file in _safetensors_files(model_dir):
        with safe_open(str(file), framework="pt") as tensors:
            for name in tensors.keys():  # noqa: SIM118 (safe_open is not a mapping)
                if name.endswith("rotary_emb.inv_freq"):
                    continue
                target = names.get_name(name, try_suffixes=(".weight", ".bias"))
                if target is None:
                    raise ConfigError(f"llama.cpp has no name for the tensor {name}")
                view = tensors.get_slice(name)
                shape = tuple(int(n) for n in view.get_shape())
                # llama.cpp keeps norms (1-D) in float32; float16 and bfloat16 become float16.
                dtype = "float32" if view.get_dtype() == "F32" or len(shape) == 1 else "float16"
                plan.append(_Planned(target, name, file, shape, dtype))
    return plan


def _loaded(tensors: Any, planned: _Planned, config: dict[str, Any]) -> Any:
    """The tensor's data as llama.cpp wants it: in its dtype, query and key permuted."""
    import numpy as np
    import torch

    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    tensor = tensors.get_tensor(planned.source)
    wanted = torch.float32 if planned.dtype == "float32" else torch.float16
    array = tensor.to(wanted).numpy()
    if planned.source.endswith("q_proj.weight"):
        array = _permute(array, heads)
    elif planned.source.endswith("k_proj.weight"):
        array = _permute(array, kv_heads)
    return np.ascontiguousarray(array)


def _gguf_tensors(model_dir: Path, config: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(llama.cpp name, numpy array) for each tensor of the merged model, one at a time."""
    from safetensors import safe_open

    plan = _plan(model_dir, config)
    for file in dict.fromkeys(p.file for p in plan):
        with safe_open(str(file), framework="pt") as tensors:
            for planned in (p for p in plan if p.file == file):
                yield planned.target, _loaded(tensors, planned, config)


def _rope_theta(config: dict[str, Any]) -> float:
    parameters = config.get("rope_parameters") or config.get("rope_scaling") or {}
    return float(config.get("rope_theta") or parameters.get("rope_theta") or 10000.0)


def _add_architecture(writer: Any, config: dict[str, Any], name: str) -> None:
    heads = int(config["num_attention_heads"])
    head_dim = int(config.get("head_dim") or config["hidden_size"] // heads)
    writer.add_name(name)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_vocab_size(int(config["vocab_size"]))


def _add_tokenizer(writer: Any, model_dir: Path, vocab_size: int) -> None:
    """Tokens by id (unused ids padded, as llama.cpp's converter pads them), their types, BPE
    merges, special token ids and the chat template."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    special = {index for index, t in tokenizer.added_tokens_decoder.items() if t.special}
    tokens, types = [], []
    for index in range(vocab_size):
        if index not in by_id:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.CONTROL if index in special else gguf.TokenType.NORMAL)
    backend = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    if backend.get("model", {}).get("type") != "BPE" or backend["model"].get("byte_fallback"):
        raise ConfigError(
            "only byte-level BPE tokenizers (Llama 3, Mistral Nemo, GPT-2 style) are converted "
            "to GGUF here; use llama.cpp's convert_hf_to_gguf.py on the merged folder"
        )
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    vocab = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=vocab_size)
    vocab.add_to_gguf(writer, quiet=True)


def write_gguf(
    model_dir: str | Path, output: str | Path, *, name: str, progress: Progress | None = None
) -> Path:
    """Convert the merged Llama-architecture model in ``model_dir`` to one GGUF file."""
    import gguf
    import numpy as np

    folder, target = Path(model_dir), Path(output)
    if not gguf_supported(folder):
        raise ConfigError(
            f"GGUF export supports {', '.join(LLAMA_ARCHITECTURES)}; this model is "
            f"{_config(folder).get('architectures')}"
        )
    config = _config(folder)
    plan = _plan(folder, config)
    writer = gguf.GGUFWriter(str(target), arch="llama")
    _add_architecture(writer, config, name)
    all_f32 = all(p.dtype == "float32" for p in plan)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if all_f32 else gguf.LlamaFileType.MOSTLY_F16)
    _add_tokenizer(writer, folder, int(config["vocab_size"]))
    for planned in plan:
        size = int(np.prod(planned.shape)) * np.dtype(planned.dtype).itemsize
        writer.add_tensor_info(planned.target, planned.shape, np.dtype(planned.dtype), size)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    # One tensor in memory at a time: a 15 GB model converts in about one tensor's memory.
    for done, (_, array) in enumerate(_gguf_tensors(folder, config), 1):
        writer.write_tensor_data(array)
        if progress is not None:
            progress(done / len(plan))
    writer.close()
    return target


@dataclass(frozen=True)
class GgufCheck:
    """A GGUF file read back with ``gguf.GGUFReader`` against the merged model's tensors."""

    tensors: int
    max_abs_diff: float
    architecture: str
    mismatched: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatched


def check_gguf(gguf_path: str | Path, model_dir: str | Path) -> GgufCheck:
    """Read ``gguf_path`` back and compare each tensor with the merged model's (after the same
    permutation); float16 tensors are compared with the merged model's cast to float16."""
    import gguf
    import numpy as np

    folder = Path(model_dir)
    reader = gguf.GGUFReader(str(gguf_path))
    field_value = reader.fields["general.architecture"]
    architecture = bytes(field_value.parts[field_value.data[0]]).decode("utf-8")
    stored = {t.name: t for t in reader.tensors}
    plan = _plan(folder, _config(folder))
    mismatched = sorted(set(stored) ^ {p.target for p in plan})
    worst = 0.0
    for tensor_name, want in _gguf_tensors(folder, _config(folder)):
        if tensor_name not in stored:
            continue
        # GGUF lists dimensions fastest first; the data is row-major like numpy's.
        got = np.asarray(stored[tensor_name].data).reshape(want.shape)
        if got.dtype != want.dtype:
            mismatched.append(tensor_name)
            continue
        diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
        worst = max(worst, diff)
        if diff > 0:
            mismatched.append(tensor_name)
    return GgufCheck(
        tensors=len(stored), max_abs_diff=worst, architecture=architecture,
        mismatched=sorted(mismatched),
    )  # fmt: skip


# --- the Ollama Modelfile ---------------------------------------------------------------------

_MARK = "\u2063{}\u2063"  # invisible separator: never in a real template's literal text


@dataclass(frozen=True)
class TemplatePieces:
    """What a chat template writes around each role's content, and to open the answer."""

    user: tuple[str, str]
    assistant: tuple[str, str]
    generation: str
    system: tuple[str, str] | None
    checked: bool
    note: str = ""

    def render(self, messages: list[dict[str, str]], *, add_generation_prompt: bool) -> str:
        """The pieces applied in Python as the Go template applies them (for the check)."""
        out = []
        for i, message in enumerate(messages):
            last = i == len(messages) - 1
            role, content = message["role"], message["content"]
            if role == "system" and self.system is not None:
                out.append(self.system[0] + content + self.system[1])
            elif role == "user":
                out.append(self.user[0] + content + self.user[1])
                if last and add_generation_prompt:
                    out.append(self.generation)
            elif role == "assistant":
                out.append(self.assistant[0] + content + (self.assistant[1] if not last else ""))
        return "".join(out)


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def template_pieces(tokenizer: Any) -> TemplatePieces:
    """Derive :class:`TemplatePieces` from ``tokenizer.apply_chat_template`` with markers."""

    def render(messages: list[dict[str, str]], generation: bool) -> str:
        text = str(
            tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation
            )
        )
        bos = tokenizer.bos_token or ""
        # llama.cpp adds the BOS token itself when the GGUF says so; a template's own is dropped.
        return text[len(bos) :] if bos and text.startswith(bos) else text

    s, u1, a1, u2 = (_MARK.format(n) for n in ("S", "U1", "A1", "U2"))
    talk = [{"role": "user", "content": u1}, {"role": "assistant", "content": a1}]
    opened = render([*talk, {"role": "user", "content": u2}], True)
    user_prefix = opened.split(u1, 1)[0]
    assistant_and_next = _between(opened, a1, u2)
    user_suffix_and_generation = opened.split(u2, 1)[1]
    closed = render([{"role": "user", "content": u1}], False)
    user_suffix = closed.split(u1, 1)[1]
    generation = user_suffix_and_generation[len(user_suffix) :]
    assistant_prefix = _between(opened, u1, a1)[len(user_suffix) :]
    if user_prefix and assistant_and_next.endswith(user_prefix):
        assistant_suffix = assistant_and_next[: -len(user_prefix)]
    else:
        assistant_suffix = assistant_and_next
    system: tuple[str, str] | None
    try:
        with_system = render([{"role": "system", "content": s}, *talk], False)
        head = with_system.split(u1, 1)[0]
        system_suffix = head.split(s, 1)[1]
        if user_prefix and system_suffix.endswith(user_prefix):
            system_suffix = system_suffix[: -len(user_prefix)]
        system = (head.split(s, 1)[0], system_suffix)
    except Exception:  # noqa: BLE001 (a template may refuse system messages: Gemma's raises)
        system = None
    pieces = TemplatePieces(
        user=(user_prefix, user_suffix), assistant=(assistant_prefix, assistant_suffix),
        generation=generation, system=system, checked=False,
    )  # fmt: skip
    return _checked(pieces, render)


def _checked(
    pieces: TemplatePieces, render: Callable[[list[dict[str, str]], bool], str]
) -> TemplatePieces:
    samples = [
        ([{"role": "user", "content": "Hi"}], True),
        (
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is a hive?"},
                {"role": "assistant", "content": "A home for bees."},
                {"role": "user", "content": "And a queen?"},
            ],
            True,
        ),
        (
            [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"},
            ],
            False,
        ),
    ]
    for messages, generation in samples:
        if pieces.system is None and messages[0]["role"] == "system":
            continue
        if pieces.render(messages, add_generation_prompt=generation) != render(
            messages, generation
        ):
            return replace(
                pieces,
                checked=False,
                note="the chat template writes more than fixed text around each turn; "
                "check the TEMPLATE against the model's chat template before relying on it",
            )
    return replace(pieces, checked=True)


def _go_literal(text: str) -> str:
    """A Go template action printing ``text`` exactly (a quoted string: no whitespace trimming)."""
    return "{{ " + json.dumps(text, ensure_ascii=False) + " }}" if text else ""


def go_template(pieces: TemplatePieces) -> str:
    """Ollama's ``TEMPLATE``: a range over ``.Messages`` writing the pieces around each turn."""
    branches = []
    if pieces.system is not None:
        branches.append(
            '{{- if eq .Role "system" }}'
            + _go_literal(pieces.system[0]) + "{{ .Content }}" + _go_literal(pieces.system[1])
        )  # fmt: skip
    keyword = "else if" if branches else "if"
    branches.append(
        f'{{{{- {keyword} eq .Role "user" }}}}'
        + _go_literal(pieces.user[0]) + "{{ .Content }}" + _go_literal(pieces.user[1])
        + "{{- if $last }}" + _go_literal(pieces.generation) + "{{ end }}"
    )  # fmt: skip
    branches.append(
        '{{- else if eq .Role "assistant" }}'
        + _go_literal(pieces.assistant[0]) + "{{ .Content }}"
        + "{{- if not $last }}" + _go_literal(pieces.assistant[1]) + "{{ end }}"
    )  # fmt: skip
    return (
        "{{- range $i, $_ := .Messages }}"
        "{{- $last := eq (len (slice $.Messages $i)) 1 }}" + "".join(branches) + "{{- end }}"
        "{{- end }}"
    )


def _quoted(text: str) -> str:
    """A Modelfile value in triple quotes (Ollama's multi-line form)."""
    if '"""' in text:
        text = text.replace('"""', '" " "')
    return f'"""{text}"""'


@dataclass(frozen=True)
class Modelfile:
    text: str
    stops: list[str]
    template_checked: bool
    template_note: str


def modelfile(
    model_dir: str | Path, *, source: str, system: str, temperature: float, top_p: float,
    context_length: int,
) -> Modelfile:  # fmt: skip
    """The Ollama ``Modelfile`` for the merged model in ``model_dir`` (``source``: what ``FROM``
    names, relative to the Modelfile: the GGUF file, or the merged folder)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    lines = [f"FROM {source}"]
    stops: list[str] = []
    pieces: TemplatePieces | None = None
    if tokenizer.chat_template:
        pieces = template_pieces(tokenizer)
        lines.append(f"TEMPLATE {_quoted(go_template(pieces))}")
        stops.extend(p.strip() for p in (pieces.assistant[1], pieces.user[0]) if p.strip())
    if tokenizer.eos_token:
        stops.append(tokenizer.eos_token)
    if system.strip():
        lines.append(f"SYSTEM {_quoted(system.strip())}")
    lines.append(f"PARAMETER temperature {temperature:g}")
    lines.append(f"PARAMETER top_p {top_p:g}")
    lines.append(f"PARAMETER num_ctx {context_length}")
    unique = list(dict.fromkeys(stops))
    lines.extend(f"PARAMETER stop {json.dumps(stop, ensure_ascii=False)}" for stop in unique)
    return Modelfile(
        text="\n".join(lines) + "\n", stops=unique,
        template_checked=bool(pieces and pieces.checked),
        template_note=pieces.note if pieces else "the model has no chat template",
    )  # fmt: skip
