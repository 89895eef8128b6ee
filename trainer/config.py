"""Typed fine-tuning job configuration, with help per field and cross-checks at construction.

A :class:`JobConfig` is what a creator picks in the form (usually through a named preset), what
the queue carries, and what is saved next to the adapter it produced (``job_config.json``).
QLoRA is LoRA with other defaults: the method only changes how the frozen base is stored.

Imports without torch: the web process builds and validates configs to show the form.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

from trainer.errors import ConfigError, ContextLengthError
from trainer.registry import get_entry

Method = Literal["lora", "qlora-4bit", "qlora-8bit"]
Schedule = Literal["cosine", "linear", "constant"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
PresetName = Literal["quick", "balanced", "thorough"]
METHODS: tuple[str, ...] = get_args(Method)
SCHEDULES: tuple[str, ...] = get_args(Schedule)
PRECISIONS: tuple[str, ...] = get_args(Precision)
PRESETS: tuple[str, ...] = get_args(PresetName)
MAX_PROCESSES = 64  # data-parallel processes on one host


def _doc(text: str) -> dict[str, str]:
    """Field metadata carrying its help text (shown in the form and in ``--help``)."""
    return {"help": text}


@dataclass
class JobConfig:
    """Everything that decides what a fine-tuning run does. Construct with keywords."""

    base_model: str = field(metadata=_doc("Hugging Face hub id or local folder of the base model"))
    method: Method = field(
        default="lora", metadata=_doc("lora; qlora-4bit / qlora-8bit keep the base quantized")
    )
    rank: int = field(default=16, metadata=_doc("LoRA rank r: adapter capacity (8-64 is typical)"))
    alpha: int = field(default=32, metadata=_doc("LoRA alpha: updates scale by alpha / rank"))
    dropout: float = field(default=0.05, metadata=_doc("dropout on the LoRA input, 0 to <1"))
    target_modules: tuple[str, ...] = field(
        default=(),
        metadata=_doc("Linear layers to adapt; empty: registry default, else every Linear layer"),
    )
    learning_rate: float = field(default=2e-4, metadata=_doc("peak learning rate of AdamW"))
    lr_schedule: Schedule = field(
        default="cosine", metadata=_doc("cosine, linear or constant decay after warmup")
    )
    warmup_ratio: float = field(default=0.03, metadata=_doc("share of steps warming up, 0-0.5"))
    weight_decay: float = field(default=0.0, metadata=_doc("AdamW weight decay on the adapter"))
    max_grad_norm: float = field(default=1.0, metadata=_doc("gradient clipping norm; 0: off"))
    epochs: int = field(default=2, metadata=_doc("passes over the training set"))
    max_steps: int | None = field(
        default=None, metadata=_doc("stop after this many optimizer steps; empty: use epochs")
    )
    sequence_length: int = field(
        default=1024, metadata=_doc("tokens per packed row; longer examples are truncated")
    )
    batch_size: int = field(default=4, metadata=_doc("rows per micro-batch"))
    gradient_accumulation: int = field(default=1, metadata=_doc("micro-batches per step"))
    packing: bool = field(
        default=True, metadata=_doc("pack several examples per row (no cross-example attention)")
    )
    gradient_checkpointing: bool = field(
        default=False, metadata=_doc("recompute activations: less memory, ~30% slower")
    )
    precision: Precision = field(
        default="auto", metadata=_doc("auto: bf16 (or fp16) on GPU, fp32 on CPU")
    )
    num_processes: int = field(
        default=0,
        metadata=_doc(
            "data-parallel processes, one per GPU; 0: every visible GPU (1 on CPU); each step "
            "then takes batch_size x gradient_accumulation rows per process"
        ),
    )
    seed: int = field(default=42, metadata=_doc("seed for data order, adapter init and dropout"))
    eval_fraction: float = field(
        default=0.1,
        metadata=_doc("share held out for eval loss when there is no validation split, 0-0.5"),
    )
    eval_interval: int = field(
        default=50, metadata=_doc("evaluate every N steps; 0: only at the end")
    )
    checkpoint_interval: int = field(
        default=100, metadata=_doc("save a resumable checkpoint every N steps; 0: never")
    )
    keep_checkpoints: int = field(default=2, metadata=_doc("recent checkpoints kept on disk"))
    early_stopping_patience: int = field(
        default=0,
        metadata=_doc(
            "stop after N evaluations without a better eval loss; 0: never; off (noted in the "
            "report) when there are no eval examples"
        ),
    )
    preset: str = field(default="", metadata=_doc("the preset these values came from"))

    def __post_init__(self) -> None:
        self.target_modules = tuple(self.target_modules)  # JSON gives lists
        for check in (
            self._check_choices,
            self._check_lora,
            self._check_optimizer,
            self._check_length,
            self._check_schedule_of_work,
        ):
            check()

    def _check_choices(self) -> None:
        if not self.base_model.strip():
            raise ConfigError("base_model is empty: give a hub id or a local model folder")
        for name, value, allowed in (
            ("method", self.method, METHODS),
            ("lr_schedule", self.lr_schedule, SCHEDULES),
            ("precision", self.precision, PRECISIONS),
        ):
            if value not in allowed:
                raise ConfigError(f"{name} {value!r} is not one of {', '.join(allowed)}")

    def _check_lora(self) -> None:
        if not 1 <= self.rank <= 1024:
            raise ConfigError(f"rank {self.rank} must be between 1 and 1024 (8-64 is typical)")
        if self.alpha <= 0:
            raise ConfigError(f"alpha {self.alpha} must be positive (commonly 2 x rank)")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout {self.dropout} must be at least 0 and below 1")
        names = self.target_modules
        blank = any(not isinstance(n, str) or not n.strip() for n in names)
        if blank or len(set(names)) < len(names):
            raise ConfigError(f"target_modules {list(names)} must be distinct non-empty names")

    def _check_optimizer(self) -> None:
        if not 0 < self.learning_rate <= 0.1:
            raise ConfigError(
                f"learning_rate {self.learning_rate} is outside (0, 0.1]; LoRA uses 1e-4 to 3e-4"
            )
        if not 0 <= self.warmup_ratio <= 0.5:
            raise ConfigError(f"warmup_ratio {self.warmup_ratio} must be between 0 and 0.5")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ConfigError("weight_decay and max_grad_norm cannot be negative")

    def _check_length(self) -> None:
        if not 16 <= self.sequence_length <= 1_048_576:
            raise ConfigError(f"sequence_length {self.sequence_length} must be 16 to 1048576")
        entry = get_entry(self.base_model)
        if entry and self.sequence_length > entry.context_length:
            raise ContextLengthError(
                f"sequence_length {self.sequence_length} is longer than {entry.name}'s context "
                f"of {entry.context_length} tokens; lower it to at most {entry.context_length}"
            )

    def _check_schedule_of_work(self) -> None:
        positive = ("epochs", "batch_size", "gradient_accumulation", "keep_checkpoints")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.num_processes <= MAX_PROCESSES:
            raise ConfigError(
                f"num_processes {self.num_processes} must be 0 (one per GPU) to {MAX_PROCESSES}"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps {self.max_steps} must be at least 1, or left empty")
        for name in ("eval_interval", "checkpoint_interval", "early_stopping_patience"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} cannot be negative (0 turns it off)")
        if not 0 <= self.eval_fraction <= 0.5:
            raise ConfigError(f"eval_fraction {self.eval_fraction} must be between 0 and 0.5")
        if self.early_stopping_patience and not self.eval_interval:
            raise ConfigError(
                "early_stopping_patience needs periodic evaluations: set eval_interval above 0 "
                "or set early_stopping_patience to 0"
            )

    @property
    def is_quantized(self) -> bool:
        """Whether the frozen base is loaded in 4 or 8 bits (QLoRA)."""
        return self.method != "lora"

    @property
    def effective_batch_size(self) -> int:
        """Rows that contribute to one optimizer step in each process."""
        return self.batch_size * self.gradient_accumulation

    def replace(self, **changes: Any) -> JobConfig:
        """A copy with ``changes`` applied and checked again."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (what the job row stores)."""
        data = dataclasses.asdict(self)
        data["target_modules"] = list(self.target_modules)
        return data

    def to_json(self) -> str:
        """The config as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobConfig:
        """Build from plain values; unknown keys are refused by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown job config fields {unknown}; known: {sorted(known)}")
        try:
            return cls(**data)
        except TypeError as error:  # a missing required field, e.g. base_model
            raise ConfigError(f"incomplete job config: {error}") from error

    @classmethod
    def from_json(cls, text: str) -> JobConfig:
        """Parse :meth:`to_json` output."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"job config is not valid JSON: {error}") from error
        if not isinstance(data, dict):
            raise ConfigError("job config JSON must be an object")
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write the config as JSON to ``path``."""
        target = Path(path)
        target.write_text(self.to_json() + "\n")
        return target

    @classmethod
    def load(cls, path: str | Path) -> JobConfig:
        """Read a config written by :meth:`save`."""
        return cls.from_json(Path(path).read_text())

    @classmethod
    def from_preset(
        cls,
        preset: str,
        *,
        base_model: str,
        method: str = "lora",
        size: DatasetSize | None = None,
        **overrides: Any,
    ) -> JobConfig:
        """A named preset for ``method``, sized to the dataset (see :func:`sized_to`) when its
        ``size`` is known, then ``overrides`` on top."""
        if preset not in PRESET_VALUES:
            raise ConfigError(f"preset {preset!r} is not one of {', '.join(PRESETS)}")
        if method not in METHODS:
            raise ConfigError(f"method {method!r} is not one of {', '.join(METHODS)}")
        values: dict[str, Any] = {**PRESET_VALUES[preset]}
        if size is not None:
            values.update(sized_to(preset, size))
        if method != "lora":
            values.update(qlora_defaults(values))
        values.update(base_model=base_model, method=cast(Method, method), preset=preset)
        values.update(overrides)
        return cls.from_dict(values)


PRESET_VALUES: dict[str, dict[str, Any]] = {
    # One pass, small adapter: large datasets, or a first look at a new one.
    "quick": {
        "rank": 8,
        "alpha": 16,
        "learning_rate": 2e-4,
        "epochs": 1,
        "eval_interval": 100,
        "checkpoint_interval": 200,
        "early_stopping_patience": 0,
    },
    "balanced": {
        "rank": 16,
        "alpha": 32,
        "learning_rate": 2e-4,
        "epochs": 2,
        "eval_interval": 50,
        "checkpoint_interval": 100,
        "early_stopping_patience": 3,
    },
    # Small datasets need several passes to learn facts, and each pass is cheap. (1e-4 learned
    # too little in the steps a small set gives: +1.1 % held-out perplexity on bench/first_hour.)
    "thorough": {
        "rank": 32,
        "alpha": 64,
        "learning_rate": 2e-4,
        "epochs": 4,
        "eval_interval": 25,
        "checkpoint_interval": 50,
        "early_stopping_patience": 3,
    },
}
# Dataset sizes (examples) up to which each preset is chosen; above the last: quick.
PRESET_THRESHOLDS: tuple[tuple[int, PresetName], ...] = ((300, "thorough"), (3000, "balanced"))


@dataclass(frozen=True)
class PresetSizing:
    """How a preset grows its passes on a small dataset: a preset's ``epochs`` is the fewest
    passes; more are made until the run has ``min_steps`` optimizer steps, up to ``max_epochs``.
    A fixed step count gave 1 step on a 20-example set (no measurable gain)."""

    min_steps: int
    max_epochs: int


PRESET_SIZING: dict[str, PresetSizing] = {
    "quick": PresetSizing(min_steps=20, max_epochs=8),
    "balanced": PresetSizing(min_steps=40, max_epochs=16),
    "thorough": PresetSizing(min_steps=60, max_epochs=24),
}
MIN_ROW_TOKENS = 256  # shortest packed row a small dataset gets
STEPS_PER_EPOCH_WANTED = 8  # the batch shrinks (down to 1) until an epoch has this many steps


@dataclass(frozen=True)
class DatasetSize:
    """What sizing a preset needs to know of the training split: its examples, its tokens and
    its longest example's tokens (the web process estimates both from characters, see
    :func:`estimate_tokens`; exact counts work the same)."""

    examples: int
    tokens: int
    longest: int

    def __post_init__(self) -> None:
        if min(self.examples, self.tokens, self.longest) < 0:
            raise ConfigError("a dataset size cannot be negative")


def estimate_tokens(characters: int) -> int:
    """Tokens in ``characters`` of chat text, for sizing only: about 4 characters per token in
    English with a hub model's tokenizer (3.5 here, to err on more tokens)."""
    return math.ceil(max(0, characters) / 3.5)


def sized_to(preset: str, size: DatasetSize) -> dict[str, Any]:
    """The row length, batch size and epochs of ``preset`` for a dataset of ``size``.

    Rows fit the longest example (a power of two from 256 up to the preset's length, so short
    QA pairs pack into short rows); the batch shrinks until an epoch has several optimizer
    steps; epochs grow from the preset's until the run has its ``min_steps`` (at most
    ``max_epochs``). A large dataset keeps the preset's values.
    """
    values = {**_FIELD_DEFAULTS, **PRESET_VALUES[preset]}
    sizing = PRESET_SIZING[preset]
    longest = max(1, size.longest)
    row = min(int(values["sequence_length"]), max(MIN_ROW_TOKENS, 1 << (longest - 1).bit_length()))
    rows = max(1, math.ceil(size.tokens / row))
    accumulation = int(values["gradient_accumulation"])
    batch = min(int(values["batch_size"]), max(1, rows // (STEPS_PER_EPOCH_WANTED * accumulation)))
    steps_per_epoch = max(1, math.ceil(rows / (batch * accumulation)))
    wanted = math.ceil(sizing.min_steps / steps_per_epoch)
    epochs = min(sizing.max_epochs, max(int(values["epochs"]), wanted))
    return {"sequence_length": row, "batch_size": batch, "epochs": epochs}


def qlora_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """What QLoRA changes in a LoRA preset: trade speed for memory at the same effective batch."""
    batch = int(values.get("batch_size", 4))
    accumulation = int(values.get("gradient_accumulation", 1))
    micro = max(1, batch // 2)
    return {
        "gradient_checkpointing": True,
        "batch_size": micro,
        "gradient_accumulation": accumulation * batch // micro,
        "dropout": 0.1,  # the QLoRA paper's value for models up to 13B
    }


def preset_for(n_examples: int) -> PresetName:
    """The preset suited to a training set of ``n_examples`` conversations."""
    if n_examples < 0:
        raise ConfigError(f"n_examples {n_examples} cannot be negative")
    for limit, name in PRESET_THRESHOLDS:
        if n_examples <= limit:
            return name
    return "quick"


_FIELD_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(JobConfig) if f.default is not dataclasses.MISSING
}


def field_help() -> list[dict[str, Any]]:
    """Name, default and help text of every field, in order (for forms and ``--help``)."""
    rows = []
    for item in dataclasses.fields(JobConfig):
        default = None if item.default is dataclasses.MISSING else item.default
        rows.append({"name": item.name, "default": default, "help": item.metadata["help"]})
    return rows
