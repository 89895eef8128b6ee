"""Resumable checkpoints, written atomically, and atomic publication of finished folders.

A checkpoint is a folder ``step-00000040/`` holding everything a run needs to continue exactly
where it was: the trainable (adapter) weights, the best-so-far weights for early stopping, the
optimizer, scheduler and grad-scaler state, the python/numpy/torch RNG states, and ``state.json``
(step, data position, loss history, the job config). It is written into a hidden temporary
folder, flushed to disk, and renamed into place, so a run killed at any moment (even SIGKILL)
leaves either a complete checkpoint or none.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from trainer.errors import CheckpointError

PREFIX = "step-"
TEMP_PREFIX = ".tmp-"
WEIGHTS, BEST, STATE, TENSORS = (
    "trainable.safetensors",
    "best.safetensors",
    "state.json",
    "optim.pt",
)


@dataclass
class Checkpoint:
    """A loaded checkpoint."""

    path: Path
    step: int
    weights: dict[str, torch.Tensor]
    best_weights: dict[str, torch.Tensor] | None
    state: dict[str, Any]  # JSON: positions, history, config
    tensors: dict[str, Any]  # optimizer, scheduler, scaler, rng


# --- RNG -----------------------------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    """Every RNG state that dropout, init or sampling may draw from, as tensors and ints."""
    version, state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    captured: dict[str, Any] = {
        "python": [version, list(state), gauss],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        captured["cuda"] = torch.cuda.get_rng_state_all()
    return captured


def restore_rng(captured: Mapping[str, Any]) -> None:
    """Put back the states :func:`capture_rng` took."""
    version, state, gauss = captured["python"]
    random.setstate((version, tuple(state), gauss))
    kind, keys, pos, has_gauss, cached = captured["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(captured["torch"])
    if "cuda" in captured and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(captured["cuda"])


# --- atomic folders ------------------------------------------------------------------------


def _fsync_tree(folder: Path) -> None:
    """Flush every file, then the folder itself, so a rename never exposes unwritten data."""
    for path in folder.iterdir():
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def temp_folder(parent: Path, name: str) -> Path:
    """A fresh hidden folder next to where ``name`` will appear."""
    parent.mkdir(parents=True, exist_ok=True)
    temp = parent / f"{TEMP_PREFIX}{name}-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    return temp


def publish(temp: Path, final: Path) -> Path:
    """Move a fully written folder into place in one rename. An existing ``final`` is never
    replaced (deleting it first would leave a window with neither): callers decide before."""
    _fsync_tree(temp)
    if final.exists():
        shutil.rmtree(temp, ignore_errors=True)
        raise CheckpointError(f"{final} already exists; it is kept as it is")
    os.replace(temp, final)
    _fsync_tree(final.parent)
    return final


def remove_stale_temps(parent: Path) -> None:
    """Delete half-written folders a killed run left behind."""
    if parent.is_dir():
        for path in parent.glob(f"{TEMP_PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)


# --- checkpoints ---------------------------------------------------------------------------


def step_of(path: Path) -> int:
    return int(path.name.removeprefix(PREFIX))


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.glob(f"{PREFIX}*") if p.is_dir() and (p / STATE).is_file()]
    return sorted(found, key=step_of)


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    found = list_checkpoints(root)
    return found[-1] if found else None


def save_checkpoint(
    root: Path,
    *,
    step: int,
    weights: Mapping[str, torch.Tensor],
    best_weights: Mapping[str, torch.Tensor] | None,
    state: dict[str, Any],
    tensors: dict[str, Any],
    keep: int,
) -> Path:
    """Write a checkpoint atomically and keep only the ``keep`` newest.

    A complete checkpoint of the same step is kept rather than rewritten (a run cancelled right
    after resuming from it holds the same state); an incomplete one is worthless and replaced.
    """
    name = f"{PREFIX}{step:08d}"
    existing = root / name
    if is_complete(existing):
        return existing
    shutil.rmtree(existing, ignore_errors=True)
    temp = temp_folder(root, name)
    save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, temp / WEIGHTS)
    if best_weights is not None:
        save_file({k: v.contiguous() for k, v in best_weights.items()}, temp / BEST)
    torch.save(tensors, temp / TENSORS)
    (temp / STATE).write_text(json.dumps({**state, "step": step}))  # last: marks completeness
    final = publish(temp, root / name)
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def is_complete(path: Path) -> bool:
    """Whether every file a checkpoint needs is there (not whether each one reads)."""
    return all((path / name).is_file() for name in (STATE, WEIGHTS, TENSORS))


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    try:
        state = json.loads((path / STATE).read_text())
        weights = load_file(path / WEIGHTS)
        best = load_file(path / BEST) if (path / BEST).is_file() else None
        # weights_only: only tensors and plain containers are unpickled (no code).
        tensors = torch.load(path / TENSORS, weights_only=True)
    except (OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"checkpoint {path} cannot be read ({error})") from error
    return Checkpoint(path, int(state["step"]), weights, best, state, tensors)
