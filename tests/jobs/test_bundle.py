"""The export bundle of a model version, and importing it into another installation.

One export of a version trained on the tiny local Llama, downloaded over HTTP, then checked
piece by piece: the merged model's logits equal base + adapter's, the GGUF reads back with the
merged tensors (under llama.cpp's names and layout), the Modelfile, the retrieval index and the
manifest's checksums. Import recreates the published version for another creator; a changed,
padded or foreign file and a base model the installation lacks are refused with a message.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from gptstudio.api import create_api
from gptstudio.db import session_scope
from gptstudio.errors import NotFound
from gptstudio.jobs import bundle as bundle_job
from gptstudio.models import Assistant, Dataset, ModelVersion, Role
from gptstudio.services import account, assistant, bundle, retrieval
from tests.trainer.conftest import facts, trained  # noqa: F401 (fixtures)

PASSWORD = "correct horse battery"
PERSONA = "You are Marta's beekeeping assistant. Answer from the apiary's notes."
LOGITS_ATOL = 1e-4
"""float32 merge: W + BA folded once versus Wx + B(Ax) at every call differ by rounding only
(measured about 1e-6 on the tiny model); the adapter itself moves logits by more than 1e-2."""

pytestmark = pytest.mark.slow


def _session(email: str) -> dict[str, str]:
    return {"gptstudio_session": account.login(email=email, password=PASSWORD).token}


def _version(tiny_model: Path, adapter: Path) -> tuple[Any, int]:
    """Creator cy's assistant "Bees" with a dataset version, a retrieval index and a trained
    version (published)."""
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees", description="Hive notes").id
    rows = [
        {"document_id": 7, "filename": "hive.md", "page": None, "section": "Doors",
         "char_start": 0, "char_end": 30, "text": "The hive door is painted blue."},
        {"document_id": 7, "filename": "hive.md", "page": None, "section": "Queens",
         "char_start": 31, "char_end": 70, "text": "The colony has exactly one queen."},
    ]  # fmt: skip
    vectors = retrieval.unit_vectors(np.random.default_rng(0).normal(size=(2, 384)).astype("f4"))
    retrieval.write_index(
        retrieval.index_path(bees), vectors=vectors, rows=rows,
        manifest={"chunks": 2, "dataset_id": 1, "dataset_version": 1, "model": retrieval.MODEL_ID},
    )  # fmt: skip
    with session_scope() as session:
        owned = session.get(Assistant, bees)
        assert owned is not None
        owned.system_prompt, owned.rag_enabled = PERSONA, True
        owned.welcome_message = "Ask me about the hive."
        data = Dataset(assistant_id=bees, version=3, content_hash="ab" * 32, counts={"train": 8})
        session.add(data)
        session.flush()
        row = ModelVersion(
            assistant_id=bees, version=2, base_model=str(tiny_model), adapter_path=str(adapter),
            dataset_id=data.id, status="published",
            metrics={"base_perplexity": 812.5, "tuned_perplexity": 3.25,
                     "gate": {"passed": True, "relative_gain": 0.99}},
        )  # fmt: skip
        session.add(row)
        session.flush()
        owned.current_model_version_id, owned.is_published = row.id, True
        return cy, row.id or 0


def _export(tiny_model: Path, adapter: Path, tmp_path: Path) -> tuple[Any, int, Path]:
    """Export through the service and the queue (inline), download over HTTP, unpack."""
    cy, version_id = _version(tiny_model, adapter)
    bundle.request_export(actor=cy, version_id=version_id)  # runs inline
    response = TestClient(create_api()).get(
        f"/api/model-versions/{version_id}/export.tar", cookies=_session("cy@example.com")
    )
    assert response.status_code == 200, response.text
    tar = tmp_path / "bundle.tar"
    tar.write_bytes(response.content)
    with tarfile.open(tar) as packed:
        packed.extractall(tmp_path / "out", filter="data")
    (root,) = (tmp_path / "out").iterdir()
    return cy, version_id, root


def test_export_bundle_round_trip(
    db: str, run_tasks_inline: None, tiny_model: Path, tmp_path: Path,
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    run: Any = request.getfixturevalue("trained")
    steps: list[dict[str, Any]] = []
    real_write = bundle_job._write
    monkeypatch.setattr(bundle_job, "_write", lambda vid, p: (steps.append(p), real_write(vid, p)))
    _, version_id, root = _export(tiny_model, run.adapter_dir, tmp_path)

    # Progress: every step reported, fractions never go back, and it ends done.
    running = [p for p in steps if p["state"] == "running"]
    assert [p["step"] for p in running if p["fraction"] == bundle_job.STEPS[p["step"]]] == list(
        bundle_job.STEPS
    )
    fractions = [p["fraction"] for p in running]
    assert fractions == sorted(fractions) and fractions[-1] > 0.85
    with session_scope() as session:
        version = session.get(ModelVersion, version_id)
        assert version is not None and version.export_progress["state"] == "done"

    names = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert {
        "manifest.json", "Modelfile", "model.gguf", "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors", "merged/model.safetensors", "merged/config.json",
        "merged/tokenizer.json", "retrieval/index.npz", "retrieval/chunks.jsonl",
    } <= names  # fmt: skip
    _check_logits(root, tiny_model)
    _check_gguf(root)
    _check_modelfile(root)
    _check_manifest(root, tiny_model)


def _check_logits(root: Path, tiny_model: Path) -> None:
    """The merged model computes what base + adapter computes (to float32 rounding)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(root / "merged")
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What colour is the hive door?"}],
        tokenize=False, add_generation_prompt=True,
    )  # fmt: skip
    ids = tokenizer(text, return_tensors="pt").input_ids
    merged = AutoModelForCausalLM.from_pretrained(root / "merged", dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    with torch.no_grad():
        base_logits = base(ids).logits
        tuned = PeftModel.from_pretrained(base, root / "adapter").eval()
        tuned_logits = tuned(ids).logits
        merged_logits = merged(ids).logits
    assert (tuned_logits - base_logits).abs().max() > 1e-2  # the adapter does something
    assert torch.allclose(merged_logits, tuned_logits, atol=LOGITS_ATOL, rtol=0)


def _check_gguf(root: Path) -> None:
    """Read back with llama.cpp's reader: metadata, tokenizer, and every tensor equal to the
    merged model's (query and key un-permuted from llama.cpp's RoPE layout)."""
    import gguf
    from safetensors.numpy import load_file

    reader = gguf.GGUFReader(str(root / "model.gguf"))
    config = json.loads((root / "merged" / "config.json").read_text())

    def value(key: str) -> Any:
        return reader.fields[key].contents()

    assert value("general.architecture") == "llama"
    assert value("llama.block_count") == config["num_hidden_layers"]
    assert value("llama.attention.head_count") == config["num_attention_heads"]
    assert value("llama.embedding_length") == config["hidden_size"]
    assert len(value("tokenizer.ggml.tokens")) == config["vocab_size"]
    assert value("tokenizer.ggml.model") == "gpt2"
    assert value("tokenizer.ggml.eos_token_id") == config["eos_token_id"]
    assert "<|im_start|>" in value("tokenizer.chat_template")

    weights = load_file(root / "merged" / "model.safetensors")
    tensors = {t.name: np.asarray(t.data) for t in reader.tensors}
    assert len(tensors) == len(weights)
    heads = config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or heads
    for layer in range(config["num_hidden_layers"]):
        for name, hf, n in (("attn_q", "q_proj", heads), ("attn_k", "k_proj", kv)):
            stored = tensors[f"blk.{layer}.{name}.weight"]
            want = weights[f"model.layers.{layer}.self_attn.{hf}.weight"]
            # Undo llama.cpp's permutation: (n, rows/n/2, 2, cols) back to (n, 2, rows/n/2, cols).
            rows = want.shape[0]
            undone = stored.reshape(n, rows // n // 2, 2, -1).swapaxes(1, 2).reshape(want.shape)
            assert np.array_equal(undone, want)
        for name, hf in (("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"),
                         ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
                         ("ffn_down", "mlp.down_proj"), ("attn_norm", "input_layernorm"),
                         ("ffn_norm", "post_attention_layernorm")):  # fmt: skip
            stored = tensors[f"blk.{layer}.{name}.weight"]
            want = weights[f"model.layers.{layer}.{hf}.weight"]
            assert np.array_equal(stored.reshape(want.shape), want), name
    assert np.array_equal(
        tensors["token_embd.weight"].reshape(-1), weights["model.embed_tokens.weight"].reshape(-1)
    )
    assert np.array_equal(tensors["output_norm.weight"], weights["model.norm.weight"])


def _check_modelfile(root: Path) -> None:
    text = (root / "Modelfile").read_text()
    lines = text.splitlines()
    assert lines[0] == "FROM ./model.gguf"
    assert f'SYSTEM """{PERSONA}"""' in text
    assert "PARAMETER temperature 0.7" in lines
    assert 'PARAMETER stop "<|im_end|>"' in lines
    template = next(line for line in lines if line.startswith("TEMPLATE "))
    # ChatML, as the tiny model's chat template writes it, in Go template syntax over .Messages.
    assert "{{- range $i, $_ := .Messages }}" in template
    assert '{{- else if eq .Role "user" }}{{ "<|im_start|>user\\n" }}{{ .Content }}' in template
    assert '{{- if $last }}{{ "<|im_start|>assistant\\n" }}{{ end }}' in template
    assert '{{- if eq .Role "system" }}{{ "<|im_start|>system\\n" }}' in template


def _check_manifest(root: Path, tiny_model: Path) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["format"] == "gptstudio-bundle"
    assert manifest["base_model"]["name"] == str(tiny_model)
    assert manifest["base_model"]["fingerprint"] == bundle.base_fingerprint(str(tiny_model))
    assert manifest["dataset"] == {"version": 3, "content_hash": "ab" * 32, "counts": {"train": 8}}
    assert manifest["model_version"]["metrics"]["tuned_perplexity"] == 3.25
    assert manifest["model_version"]["version"] == 2
    assert manifest["assistant"]["system_prompt"] == PERSONA
    assert manifest["gguf"]["written"] and manifest["gguf"]["max_abs_diff"] == 0.0
    assert manifest["ollama"]["template_checked"] is True
    assert manifest["retrieval"]["chunks"] == 2
    chunks = [
        json.loads(line) for line in (root / "retrieval/chunks.jsonl").read_text().splitlines()
    ]
    assert [c["text"] for c in chunks] == [
        "The hive door is painted blue.",
        "The colony has exactly one queen.",
    ]
    for name, entry in manifest["files"].items():
        data = (root / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _this_installations_base(tiny_model: Path) -> Path:
    """The importing installation's own tiny model: the same weights under its own path (where
    ``make run`` builds it), so the base is matched by fingerprint, not by name."""
    import shutil

    from gptstudio.settings import get_settings

    own = get_settings().tiny_model_dir
    shutil.copytree(tiny_model, own)
    return own


def _post(tar: bytes, email: str) -> Any:
    client = TestClient(create_api())
    return client.post(
        "/api/bundles", content=tar, cookies=_session(email),
        headers={"content-type": "application/x-tar"},
    )  # fmt: skip


def _repack(root: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as packed:
        packed.add(root, arcname=root.name)
    return buffer.getvalue()


def test_import_recreates_the_published_version(
    db: str, run_tasks_inline: None, tiny_model: Path, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    run: Any = request.getfixturevalue("trained")
    _, version_id, root = _export(tiny_model, run.adapter_dir, tmp_path)
    account.register(email="dee@example.com", password=PASSWORD, role=Role.creator)
    account.register(email="eve@example.com", password=PASSWORD, role=Role.creator)
    # Another creator cannot download cy's bundle, nor can a stranger.
    url = f"/api/model-versions/{version_id}/export.tar"
    assert TestClient(create_api()).get(url, cookies=_session("eve@example.com")).status_code == 404
    assert TestClient(create_api()).get(url).status_code == 401

    own_base = _this_installations_base(tiny_model)
    made = _post((tmp_path / "bundle.tar").read_bytes(), "dee@example.com")
    assert made.status_code == 201, made.text
    new_id = made.json()["id"]
    with session_scope() as session:
        imported = session.get(Assistant, new_id)
        assert imported is not None and imported.is_published
        assert imported.name == "Bees" and imported.slug != "bees"
        assert imported.system_prompt == PERSONA and imported.rag_enabled
        assert imported.welcome_message == "Ask me about the hive."
        version = session.get(ModelVersion, imported.current_model_version_id)
        assert version is not None and version.status == "published" and version.version == 2
        assert version.base_model == str(own_base) != str(tiny_model)
        assert version.metrics["tuned_perplexity"] == 3.25
        assert version.report["imported"]["dataset"]["content_hash"] == "ab" * 32
        adapter = Path(version.adapter_path)
        owner = imported.owner_id
    assert (adapter / "adapter_model.safetensors").read_bytes() == (
        root / "adapter" / "adapter_model.safetensors"
    ).read_bytes()
    dee = account.user_for_session(token=_session("dee@example.com")["gptstudio_session"])
    assert owner == dee.id
    index = retrieval.read_index(retrieval.index_path(new_id))
    assert index.rows[0]["text"] == "The hive door is painted blue."
    assert {r["document_id"] for r in index.rows} == {0}  # the source's documents are not here
    listed = bundle.imported_versions(actor=dee)
    assert listed[0]["assistant"] == "Bees" and listed[0]["from"] == "bees"

    # The imported version serves: the engine-side loader takes its adapter on this base.
    from trainer.modeling import load_tuned

    model, _, _ = load_tuned(adapter, base_model=version.base_model)
    assert model is not None


def test_import_refuses_changed_bundles_and_missing_base_models(
    db: str, run_tasks_inline: None, tiny_model: Path, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    run: Any = request.getfixturevalue("trained")
    _, _, root = _export(tiny_model, run.adapter_dir, tmp_path)
    account.register(email="dee@example.com", password=PASSWORD, role=Role.creator)
    _this_installations_base(tiny_model)

    def refused(tar: bytes) -> str:
        response = _post(tar, "dee@example.com")
        assert response.status_code in (400, 409, 422), response.text
        return str(response.json()["error"]["message"])

    weights = root / "adapter" / "adapter_model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    assert "adapter/adapter_model.safetensors does not match its checksum" in refused(_repack(root))
    weights.write_bytes(original)
    (root / "adapter" / "extra.py").write_text("print('hello')\n")
    assert "adapter/extra.py is not in its manifest" in refused(_repack(root))
    (root / "adapter" / "extra.py").unlink()
    (root / "Modelfile").rename(tmp_path / "Modelfile")
    assert "Modelfile is missing" in refused(_repack(root))
    (tmp_path / "Modelfile").rename(root / "Modelfile")

    manifest = json.loads((root / "manifest.json").read_text())
    saved = json.dumps(manifest)
    manifest["base_model"] = {"name": "meta-llama/Llama-3.1-8B-Instruct", "fingerprint": "0" * 64}
    (root / "manifest.json").write_text(json.dumps(manifest))
    message = refused(_repack(root))
    assert "'meta-llama/Llama-3.1-8B-Instruct', which this installation does not offer" in message
    (root / "manifest.json").write_text(saved)

    assert "not a readable bundle" in refused(b"this is not a tar file" * 100)
    assert "no manifest.json" in refused(_repack(root / "merged"))
    assert "Send the bundle" in refused(b"")
    with session_scope() as session:
        assert session.query(Assistant).count() == 1  # only cy's: nothing half-imported
    # The unchanged bundle still imports.
    assert _post(_repack(root), "dee@example.com").status_code == 201


def test_exports_and_imports_are_the_owners_and_creators(
    db: str, tiny_model: Path, tmp_path: Path
) -> None:
    cy, version_id = _version(tiny_model, tmp_path)
    with pytest.raises(NotFound, match="Export it first"):
        bundle.export_archive(actor=cy, version_id=version_id)
    eve = account.register(email="eve@example.com", password=PASSWORD, role=Role.creator)
    with pytest.raises(NotFound):
        bundle.request_export(actor=eve, version_id=version_id)
    with pytest.raises(NotFound):
        bundle.export_archive(actor=eve, version_id=version_id)
    account.register(email="sub@example.com", password=PASSWORD)
    refused = _post(b"anything", "sub@example.com")
    assert refused.status_code == 403
