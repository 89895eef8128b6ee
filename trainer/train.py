"""Fine-tune a base model with LoRA or QLoRA: :func:`setup` → :func:`main` → :func:`fit` →
:func:`validate`, in one process (the entry point is :func:`trainer.launch.train`).

A plain PyTorch loop rather than ``transformers.Trainer``, so that packing, cancellation and
checkpoints are ours: :func:`setup` checks every input and fails early with a message saying
what to change; :func:`main` resumes from the latest checkpoint if asked, runs :func:`fit`, and
publishes the adapter; :func:`fit` runs optimizer steps, calling ``should_stop`` between steps and
``on_progress`` after each; :func:`validate` computes the eval loss on assistant tokens.
Examples are packed into rows and attention runs per example (:mod:`trainer.attention`).

What a run leaves in ``output_dir``::

    job_config.json          the config, written when the run starts (resume checks it)
    checkpoints/step-N/      resumable checkpoints (removed once the adapter is published)
    training_report.json     losses, eval losses, tokens/s, wall time (every outcome)
    adapter/                 appears in one rename when training completes: save_pretrained
                             output, tokenizer, job_config.json, training_report.json

One process trains on one device (``cuda:0`` or the CPU) unless ``num_processes`` (0: one per
visible GPU) asks for more: then :mod:`trainer.distributed` starts one process per GPU (or
per share of the CPU, on gloo) that runs this same code with a :class:`Parallel` context. A step
then takes ``gradient_accumulation`` micro-batches per process, in the single-process order: the
step's micro-batches are dealt out round-robin, and each micro-batch draws its dropout from a
generator seeded by (seed, step, its index in the step), not from a per-process stream, so N
processes train exactly like one process with N times the accumulation, dropout included (up to
float summation order). Only rank 0 writes files and progress.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from trainer import checkpoint as ckpt
from trainer.attention import use_packed_attention
from trainer.config import JobConfig
from trainer.data import (
    MIN_TRAIN_EXAMPLES,
    BatchPlan,
    Conversation,
    Example,
    check_enough,
    collate,
    dataset_hash,
    load_conversations,
    split_conversations,
    tokenize_all,
)
from trainer.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    OutOfMemoryError,
    Stopped,
)
from trainer.kernels import use_cpu_kernels
from trainer.modeling import (
    Hardware,
    add_lora,
    autocast,
    check_context,
    count_parameters,
    is_out_of_memory,
    load_base_model,
    load_model_config,
    load_tokenizer,
    loss_sum,
    out_of_memory_message,
    pick_hardware,
    resolve_base,
)

logger = logging.getLogger(__name__)
Status = Literal["completed", "early_stopped", "cancelled"]
ProgressCallback = Callable[[dict[str, Any]], None]
StopCallback = Callable[[], bool]
DatasetSource = str | Path | Sequence[dict[str, Any]]
ADAPTER_DIR, CHECKPOINTS_DIR = "adapter", "checkpoints"
CONFIG_FILE, REPORT_FILE = "job_config.json", "training_report.json"
NO_EVAL_NOTE = (
    "early stopping is off: there are no eval examples (add a validation split, or use at least "
    "20 examples with eval_fraction above 0)"
)


@dataclass
class TrainResult:
    """How a run ended and what it produced (``adapter_dir`` is None when cancelled)."""

    status: Status
    output_dir: Path
    adapter_dir: Path | None
    report: dict[str, Any]

    @property
    def final_loss(self) -> float | None:
        """Training loss of the last step."""
        losses = self.report.get("losses") or []
        return float(losses[-1]["loss"]) if losses else None


@dataclass
class History:
    """The run's progress: what a checkpoint stores as JSON, and what the report shows."""

    step: int = 0
    epoch: int = 0  # data position: the next micro-batch is (epoch, micro_batch)
    micro_batch: int = 0
    losses: list[dict[str, float]] = field(default_factory=list)
    eval_losses: list[dict[str, float]] = field(default_factory=list)
    best_eval_loss: float | None = None
    evals_without_improvement: int = 0
    tokens: int = 0  # non-pad tokens trained on
    train_seconds: float = 0.0  # inside optimizer steps, all processes together
    wall_seconds: float = 0.0  # of earlier processes (a resumed run adds its own)
    resumed_from_steps: list[int] = field(default_factory=list)


@dataclass
class Parallel:
    """This process's place in a data-parallel run (built by :mod:`trainer.distributed`).

    ``accelerator`` is an :class:`accelerate.Accelerator` whose process group is up; after
    :func:`setup`, ``wrapped`` is the model as ``accelerator.prepare`` returned it (DDP), and
    ``optimizer`` / ``scheduler`` the prepared ones. ``Run.model`` stays the unwrapped PEFT model
    (its parameters are the same tensors): weights, evaluation and saving use it.
    """

    accelerator: Any
    rank: int
    processes: int
    local_rank: int
    wrapped: Any = None
    optimizer: Any = None
    scheduler: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class Run:
    """Everything :func:`setup` prepared, and the mutable state of the loop."""

    config: JobConfig
    output_dir: Path
    hardware: Hardware
    tokenizer: Any
    model: Any
    train_examples: list[Example]
    eval_examples: list[Example]
    train_plan: BatchPlan
    eval_plan: BatchPlan | None
    total_steps: int
    data_stats: dict[str, dict[str, int]]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    on_progress: ProgressCallback
    should_stop: StopCallback
    notes: list[str] = field(default_factory=list)  # shown in the report
    dataset_hash: str = ""  # of the train and eval conversations (see trainer.data)
    parallel: Parallel | None = None
    history: History = field(default_factory=History)
    best_weights: dict[str, torch.Tensor] | None = None
    started: float = field(default_factory=time.monotonic)
    session_step_seconds: float = 0.0
    session_steps: int = 0

    @property
    def processes(self) -> int:
        return self.parallel.processes if self.parallel else 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and reports progress (rank 0, or the only one)."""
        return self.parallel is None or self.parallel.is_main

    @property
    def micro_batches_per_step(self) -> int:
        """Micro-batches of the plan one optimizer step consumes, over all processes."""
        return self.config.gradient_accumulation * self.processes


def finished_result(output: Path, data_hash: str) -> TrainResult:
    """The result of a run whose adapter was already published, if it was trained on the data
    whose :func:`~trainer.data.dataset_hash` is ``data_hash``."""
    report = json.loads((output / ADAPTER_DIR / REPORT_FILE).read_text())
    check_dataset(output / ADAPTER_DIR, report.get("dataset_hash"), data_hash)
    return TrainResult(report["status"], output, output / ADAPTER_DIR, report)


# --- setup ---------------------------------------------------------------------------------


def setup(
    config: JobConfig,
    *,
    dataset: DatasetSource,
    output_dir: Path,
    eval_dataset: DatasetSource | None = None,
    resume: bool = False,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
    parallel: Parallel | None = None,
) -> Run:
    """Check inputs cheapest first (output folder, data, device, base model), then load.

    With ``parallel``, every process loads the same data and model (same seed, so the same
    adapter init), then hands model, optimizer and scheduler to ``accelerator.prepare``.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # loading bars are noise in a worker's log
    check_output_dir(output_dir, resume=resume)
    train_conversations, eval_conversations = load_splits(config, dataset, eval_dataset)
    hardware = pick_hardware(config.precision)
    if parallel is not None and hardware.device == "cuda":
        hardware = dataclasses.replace(hardware, index=parallel.local_rank)
    source = resolve_base(config.base_model)
    check_context(config, load_model_config(source))
    tokenizer = load_tokenizer(source)
    data = tokenize_splits(config, tokenizer, train_conversations, eval_conversations)
    train_examples, eval_examples, data_stats = data
    notes = []
    if config.early_stopping_patience and not eval_examples:
        # Presets turn early stopping on; a small set has nothing held out to watch.
        notes.append(NO_EVAL_NOTE)
        logger.warning(NO_EVAL_NOTE)
    seed_everything(config.seed)
    model = load_model(source, config, hardware)
    train_plan = make_plan(train_examples, config, shuffle=True)
    eval_plan = make_plan(eval_examples, config, shuffle=False) if eval_examples else None
    processes = parallel.processes if parallel else 1
    total_steps = count_steps(train_plan, config, processes=processes)
    optimizer, scheduler = make_optimizer(model, config, total_steps)
    scaler = torch.amp.GradScaler(hardware.device, enabled=hardware.precision == "fp16")
    if parallel is not None:
        scaler = prepare_parallel(parallel, model, optimizer, scheduler) or scaler
        if parallel.rank:  # rank 0 draws dropout like a single process; the others differ
            seed_everything(config.seed + 1_000_003 * parallel.rank)
    return Run(
        config=config,
        output_dir=output_dir,
        hardware=hardware,
        tokenizer=tokenizer,
        model=model,
        train_examples=train_examples,
        eval_examples=eval_examples,
        train_plan=train_plan,
        eval_plan=eval_plan,
        total_steps=total_steps,
        data_stats=data_stats,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        on_progress=on_progress or (lambda _: None),
        should_stop=should_stop or (lambda: False),
        notes=notes,
        dataset_hash=dataset_hash(train_conversations, eval_conversations),
        parallel=parallel,
    )


def prepare_parallel(
    parallel: Parallel,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
) -> torch.amp.GradScaler | None:
    """Wrap model (DDP), optimizer and scheduler with accelerate; returns its fp16 grad scaler.

    The data is not a DataLoader for ``prepare``: the plan shards itself (see
    :func:`parallel_step`), which keeps the single-process order and exact resume positions.
    """
    wrapped, prepared_optimizer, prepared_scheduler = parallel.accelerator.prepare(
        model, optimizer, scheduler
    )
    parallel.wrapped, parallel.optimizer = wrapped, prepared_optimizer
    parallel.scheduler = prepared_scheduler
    scaler: torch.amp.GradScaler | None = parallel.accelerator.scaler
    return scaler


def tokenize_splits(
    config: JobConfig,
    tokenizer: Any,
    train_conversations: Sequence[Conversation],
    eval_conversations: Sequence[Conversation],
) -> tuple[list[Example], list[Example], dict[str, dict[str, int]]]:
    """Tokenised train and eval examples, and what tokenisation kept and dropped."""
    length = config.sequence_length
    train_examples, train_stats = tokenize_all(tokenizer, train_conversations, max_length=length)
    check_enough(train_examples, train_stats, length=length)
    eval_examples, eval_stats = tokenize_all(tokenizer, eval_conversations, max_length=length)
    stats = {"train": train_stats.to_dict(), "eval": eval_stats.to_dict()}
    return train_examples, eval_examples, stats


def check_output_dir(output: Path, *, resume: bool) -> None:
    """Refuse to mix a new run with an earlier one's files."""
    if (output / ADAPTER_DIR).exists():
        raise ConfigError(f"{output} already holds a trained adapter; choose a new output folder")
    if not resume and ckpt.list_checkpoints(output / CHECKPOINTS_DIR):
        raise CheckpointError(
            f"{output} has checkpoints of an earlier run: resume it (resume=True, --resume) "
            "or choose an empty output folder"
        )


def load_splits(
    config: JobConfig, dataset: DatasetSource, eval_dataset: DatasetSource | None
) -> tuple[list[Conversation], list[Conversation]]:
    """Train and eval conversations; a too-small set fails here, before any model loads."""
    conversations = load_conversations(dataset)
    train_set, eval_set = split_conversations(
        conversations, eval_fraction=config.eval_fraction, seed=config.seed
    )
    if eval_dataset is not None:
        eval_set = [c for c in load_conversations(eval_dataset) if c.split != "test"]
    check_enough_conversations(train_set)
    return train_set, eval_set


def check_enough_conversations(conversations: Sequence[Conversation]) -> None:
    if len(conversations) < MIN_TRAIN_EXAMPLES:
        raise DatasetError(
            f"the training set has {len(conversations)} conversations; add at least "
            f"{MIN_TRAIN_EXAMPLES} (a few hundred teach facts reliably)"
        )


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) for adapter init and dropout."""
    random.seed(seed)
    np.random.seed(seed)  # some libraries draw from numpy's global generator
    torch.manual_seed(seed)


def load_model(source: Any, config: JobConfig, hardware: Hardware) -> Any:
    """The base model with LoRA attached; running out of memory says what to change."""
    try:
        base = load_base_model(source, method=config.method, hardware=hardware)
        use_packed_attention(base)  # per-example causal attention: no mask, no wasted work
        model = add_lora(base, config)
        if hardware.device == "cpu":
            use_cpu_kernels(model)  # the same arithmetic, without two CPU-only costs
        return model
    except (torch.OutOfMemoryError, RuntimeError) as error:
        if is_out_of_memory(error):
            raise OutOfMemoryError(
                f"{config.base_model} does not fit in {hardware.device} memory; use method "
                "qlora-4bit or a smaller base model"
            ) from error
        raise


def make_plan(examples: Sequence[Example], config: JobConfig, *, shuffle: bool) -> BatchPlan:
    return BatchPlan(
        examples,
        capacity=config.sequence_length,
        batch_size=config.batch_size,
        seed=config.seed,
        packing=config.packing,
        shuffle=shuffle,
    )


def count_steps(plan: BatchPlan, config: JobConfig, *, processes: int = 1) -> int:
    """Optimizer steps in the run: ``max_steps``, or every step of every epoch.

    A step takes ``gradient_accumulation`` micro-batches in each of ``processes`` processes.
    """
    if config.max_steps is not None:
        return config.max_steps
    per_step = config.gradient_accumulation * processes
    return sum(plan.steps_in_epoch(e, per_step) for e in range(config.epochs))


def lr_factor(step: int, *, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based)."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(
    model: Any, config: JobConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW on the adapter weights, with warmup then the configured decay."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        parameters, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    warmup = round(config.warmup_ratio * total_steps)

    def factor(step: int) -> float:
        return lr_factor(step, total=total_steps, warmup=warmup, schedule=config.lr_schedule)

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# --- main ----------------------------------------------------------------------------------


def main(run: Run, *, resume: bool = False) -> TrainResult:
    """Resume if asked, fit, evaluate, and publish the adapter atomically."""
    checkpoints = run.output_dir / CHECKPOINTS_DIR
    if run.is_main:
        run.output_dir.mkdir(parents=True, exist_ok=True)
        ckpt.remove_stale_temps(checkpoints)
        ckpt.remove_stale_temps(run.output_dir)
    if resume:
        resume_latest(run, checkpoints)
    if run.is_main:
        run.config.save(run.output_dir / CONFIG_FILE)
    emit(run, "started", loss=None, data=run.data_stats)
    status = fit(run)
    if status != "cancelled":
        try:
            final_eval(run)
        except Stopped:
            status = cancel(run)
    if status != "cancelled" and run.config.early_stopping_patience and run.best_weights:
        load_weights(run.model, run.best_weights)  # early stopping keeps the best adapter
    report = build_report(run, status)
    adapter = None
    if run.is_main:  # the other ranks hold the same weights and history: rank 0 writes
        (run.output_dir / REPORT_FILE).write_text(json.dumps(report, indent=2))
        adapter = None if status == "cancelled" else save_adapter(run, report)
        if adapter is not None:
            shutil.rmtree(checkpoints, ignore_errors=True)
    emit(run, status if status == "cancelled" else "done", loss=report["final_loss"])
    return TrainResult(status, run.output_dir, adapter, report)


def trainable_weights(model: Any) -> dict[str, torch.Tensor]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def load_weights(model: Any, weights: dict[str, torch.Tensor]) -> None:
    """Copy saved adapter weights into the model; every trainable tensor must be there."""
    missing = sorted(set(trainable_weights(model)) - set(weights))
    result = model.load_state_dict(weights, strict=False)
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"checkpoint weights do not match this model (missing {missing[:3]}, unexpected "
            f"{list(result.unexpected_keys)[:3]}); it was written by a different job"
        )


def resume_latest(run: Run, root: Path) -> None:
    """Continue from the newest checkpoint: weights, optimizer, scheduler, RNG, data position."""
    saved = newest_readable(run, root)
    if saved is None:
        logger.info("no checkpoint in %s; starting from step 0", root)
        return
    latest = saved.path
    saved_config = {**FIELDS_ADDED_SINCE, **saved.state.get("config", {})}
    if saved_config != run.config.to_dict():
        changed = sorted(k for k, v in run.config.to_dict().items() if saved_config.get(k) != v)
        raise CheckpointError(
            f"{latest} was written with a different job config (changed: {changed}); "
            "resume with the original config or start in a new output folder"
        )
    check_dataset(latest, saved.state.get("dataset_hash"), run.dataset_hash)
    check_processes(latest, int(saved.state.get("processes", 1)), run.processes)
    load_weights(run.model, saved.weights)
    run.best_weights = saved.best_weights
    run.optimizer.load_state_dict(saved.tensors["optimizer"])
    run.scheduler.load_state_dict(saved.tensors["scheduler"])
    run.scaler.load_state_dict(saved.tensors["scaler"])
    run.history = History(**saved.state["history"])
    run.history.resumed_from_steps.append(saved.step)
    # Last: loading above must not consume randomness. Every rank has its own dropout stream.
    rng = saved.tensors["rng_ranks"][run.parallel.rank] if run.parallel else saved.tensors["rng"]
    ckpt.restore_rng(rng)
    logger.info("resumed from %s", latest)


def newest_readable(run: Run, root: Path) -> ckpt.Checkpoint | None:
    """The newest checkpoint that loads; an unreadable one (a disk that lost a file) is skipped
    for the one before it, with a note in the report. None when there is none at all."""
    found = ckpt.list_checkpoints(root)
    for index, path in enumerate(reversed(found)):
        try:
            return ckpt.load_checkpoint(path)
        except CheckpointError as error:
            if index == len(found) - 1:
                raise
            note = (
                f"skipped unreadable checkpoint {path.name} ({error}); resumed from the one before"
            )
            logger.warning(note)
            run.notes.append(note)
    return None


def check_dataset(path: Path, saved: str | None, current: str) -> None:
    """A checkpoint continues only on the data it was trained on."""
    if saved is not None and saved != current:
        raise CheckpointError(
            f"{path} was trained on a different dataset (its hash {saved[:12]}…, this one "
            f"{current[:12]}…); resume with the original dataset or start in a new output folder"
        )


# Fields a checkpoint written before they existed lacks, with the value that run had.
FIELDS_ADDED_SINCE: dict[str, Any] = {"num_processes": 0}


def check_processes(path: Path, saved: int, current: int) -> None:
    """A checkpoint continues only with the process count that wrote it (the global batch)."""
    if saved != current:
        raise CheckpointError(
            f"{path} was written by a run with {saved} training process(es) and this one has "
            f"{current}; the global batch would change. Resume with num_processes {saved} "
            "(on a host with that many GPUs) or start in a new output folder"
        )


def save_checkpoint(run: Run) -> Path | None:
    """Write a checkpoint (rank 0; every rank must call this, to hand over its RNG state)."""
    h = run.history
    rng = ckpt.capture_rng()
    rng_ranks = gather_objects(run, rng)
    if not run.is_main:
        return None
    state = {
        "config": run.config.to_dict(),
        "history": {**asdict(h), "wall_seconds": h.wall_seconds + elapsed(run)},
        "processes": run.processes,
        "dataset_hash": run.dataset_hash,
    }
    tensors = {
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "rng": rng,
        "rng_ranks": rng_ranks,
    }
    return ckpt.save_checkpoint(
        run.output_dir / CHECKPOINTS_DIR,
        step=h.step,
        weights=trainable_weights(run.model),
        best_weights=run.best_weights,
        state=state,
        tensors=tensors,
        keep=run.config.keep_checkpoints,
    )


def gather_objects(run: Run, value: Any) -> list[Any]:
    """``value`` of every rank, in rank order (just ``[value]`` in a single process)."""
    if run.parallel is None:
        return [value]
    import torch.distributed as dist

    gathered: list[Any] = [None] * run.processes
    dist.all_gather_object(gathered, value)
    return gathered


def save_adapter(run: Run, report: dict[str, Any]) -> Path:
    """Write the adapter into a hidden folder and rename it into place: never half-written."""
    temp = ckpt.temp_folder(run.output_dir, ADAPTER_DIR)
    run.model.save_pretrained(temp)
    run.tokenizer.save_pretrained(temp)
    run.config.save(temp / CONFIG_FILE)
    (temp / REPORT_FILE).write_text(json.dumps(report, indent=2))
    return ckpt.publish(temp, run.output_dir / ADAPTER_DIR)


def final_eval(run: Run) -> None:
    """Evaluate the finished weights unless the last step was just evaluated."""
    h = run.history
    if run.eval_plan is None or (h.eval_losses and h.eval_losses[-1]["step"] == h.step):
        return
    h.eval_losses.append({"step": h.step, "eval_loss": validate(run)})


def build_report(run: Run, status: Status) -> dict[str, Any]:
    h = run.history
    trainable, total = count_parameters(run.model)
    return {
        "status": status,
        "base_model": run.config.base_model,
        "method": run.config.method,
        "steps": h.step,
        "total_steps": run.total_steps,
        "epochs_completed": round(epoch_progress(run), 4),
        "final_loss": h.losses[-1]["loss"] if h.losses else None,
        "losses": h.losses,
        "eval_losses": h.eval_losses,
        "best_eval_loss": h.best_eval_loss,
        "train_tokens": h.tokens,
        "tokens_per_second": h.tokens / h.train_seconds if h.train_seconds else None,
        "wall_time_seconds": h.wall_seconds + elapsed(run),
        "resumed_from_steps": h.resumed_from_steps,
        "device": run.hardware.device,
        "processes": run.processes,
        "precision": run.hardware.precision,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "data": run.data_stats,
        "dataset_hash": run.dataset_hash,
        "notes": run.notes,
    }


# --- fit and validate ----------------------------------------------------------------------


def fit(run: Run) -> Status:
    """Optimizer steps until done, early-stopped, or ``should_stop()`` says so.

    A cancelled run saves a checkpoint of where it stopped (even with ``checkpoint_interval``
    0), so that a cancelled job or a worker shutting down loses nothing: resuming continues from
    the exact step. A stop asked during validation ends it early (the step itself is kept).
    """
    run.model.train()
    for position, group in step_groups(run):
        if run.should_stop():
            return cancel(run)
        try:
            step = train_step(run, group)
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if is_out_of_memory(error):
                raise OutOfMemoryError(out_of_memory_message(run.config, run.hardware)) from error
            raise
        try:
            stop_early = record_step(run, position, step)
        except Stopped:
            return cancel(run)
        saved = due(run.history.step, run.config.checkpoint_interval) and not (
            stop_early or run.history.step == run.total_steps
        )
        if saved:
            save_checkpoint(run)
        emit(run, "step", loss=step.loss, checkpoint=saved)
        if stop_early:
            return "early_stopped"
    return "completed"


def cancel(run: Run) -> Status:
    """Save where the run stopped (every rank calls it: ranks hand over their RNG state)."""
    if run.history.step:
        save_checkpoint(run)
    return "cancelled"


def step_groups(run: Run) -> Iterator[tuple[tuple[int, int], list[list[list[int]]]]]:
    """From the saved data position: (position after the step, micro-batches of the step)."""
    epoch, index = run.history.epoch, run.history.micro_batch
    accumulation = run.micro_batches_per_step
    while run.history.step < run.total_steps:
        batches = run.train_plan.batches(epoch)
        if index >= len(batches):
            epoch, index = epoch + 1, 0
            continue
        group = batches[index : index + accumulation]
        index += len(group)
        yield (epoch, index), group


@dataclass(frozen=True)
class Step:
    """What one optimizer step did."""

    loss: float  # mean over the step's assistant tokens
    tokens: int  # non-pad tokens
    seconds: float
    learning_rate: float  # the rate this step used


def train_step(run: Run, group: list[list[list[int]]]) -> Step:
    """One optimizer step over ``group`` (``gradient_accumulation`` micro-batches)."""
    if run.parallel is not None:
        return parallel_step(run, run.parallel, group)
    started = time.perf_counter()
    learning_rate = float(run.optimizer.param_groups[0]["lr"])
    pad_id = int(run.tokenizer.pad_token_id)
    batches = [collate(rows_of(run.train_examples, rows), pad_id=pad_id) for rows in group]
    targets = sum(b.targets for b in batches)
    total = 0.0
    for index, batch in enumerate(batches):
        seed_micro_batch(run, index)
        with autocast(run.hardware):
            summed = loss_sum(run.model, batch.to(run.hardware.placement))
        # Dividing by the step's target count makes accumulation equal one big batch.
        run.scaler.scale(summed / targets).backward()
        total += summed.item()
    if run.config.max_grad_norm:
        run.scaler.unscale_(run.optimizer)
        parameters = run.optimizer.param_groups[0]["params"]  # the adapter weights
        torch.nn.utils.clip_grad_norm_(parameters, run.config.max_grad_norm)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    tokens = sum(b.tokens for b in batches)
    return Step(total / targets, tokens, time.perf_counter() - started, learning_rate)


def parallel_step(run: Run, parallel: Parallel, group: list[list[list[int]]]) -> Step:
    """One data-parallel optimizer step: this rank's share of ``group``, then DDP's all-reduce.

    Micro-batch ``j`` of the step goes to rank ``j % processes``. Each rank scales its summed
    loss by ``processes / targets`` (the step's targets over every rank, known from the plan),
    so DDP's gradient mean equals the single-process gradient of the whole group. Every rank
    runs the same number of backward passes (a short last step of an epoch is padded with
    zero-weight repeats), and only the last one syncs gradients (``accelerator.no_sync``
    before it): a rank that skipped a backward would leave the others waiting in all-reduce.
    """
    started = time.perf_counter()
    accelerator, optimizer = parallel.accelerator, parallel.optimizer
    learning_rate = float(optimizer.param_groups[0]["lr"])
    pad_id = int(run.tokenizer.pad_token_id)
    targets = sum(run.train_examples[i].n_targets for batch in group for row in batch for i in row)
    mine = [(rows, 1.0) for rows in group[parallel.rank :: parallel.processes]]
    passes = math.ceil(len(group) / parallel.processes)
    mine += [(group[0], 0.0)] * (passes - len(mine))
    scale = parallel.processes / targets
    total, tokens = 0.0, 0
    for number, (rows, weight) in enumerate(mine):
        batch = collate(rows_of(run.train_examples, rows), pad_id=pad_id)
        seed_micro_batch(run, parallel.rank + number * parallel.processes)
        last = number == passes - 1
        with nullcontext() if last else accelerator.no_sync(parallel.wrapped):
            with autocast(run.hardware):
                summed = loss_sum(parallel.wrapped, batch.to(run.hardware.placement))
            accelerator.backward(summed * (scale * weight))
        if weight:
            total += summed.item()
            tokens += batch.tokens
    if run.config.max_grad_norm:
        parameters = optimizer.param_groups[0]["params"]  # the adapter weights
        accelerator.clip_grad_norm_(parameters, run.config.max_grad_norm)
    optimizer.step()
    parallel.scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    total, summed_tokens = all_sum(run, [total, float(tokens)])
    return Step(total / targets, int(summed_tokens), time.perf_counter() - started, learning_rate)


def seed_micro_batch(run: Run, index: int) -> None:
    """Seed the dropout of micro-batch ``index`` of the coming step from (seed, step, index):
    whichever process runs it draws the same masks, and a resumed run draws them again."""
    if run.config.dropout:
        torch.manual_seed((run.config.seed * 1_000_003 + run.history.step) * 4_099 + index)


def all_sum(run: Run, values: list[float]) -> list[float]:
    """Element-wise sums over the ranks (the values themselves in a single process)."""
    if run.parallel is None:
        return values
    accelerator = run.parallel.accelerator
    tensor = torch.tensor(values, dtype=torch.float64, device=accelerator.device)
    return [float(v) for v in accelerator.reduce(tensor, reduction="sum").tolist()]


def rows_of(examples: Sequence[Example], rows: list[list[int]]) -> list[list[Example]]:
    return [[examples[i] for i in row] for row in rows]


def record_step(run: Run, position: tuple[int, int], step: Step) -> bool:
    """Book the step; evaluate when due. Returns True when early stopping says stop."""
    h = run.history
    h.step += 1
    h.epoch, h.micro_batch = position
    h.tokens += step.tokens
    h.train_seconds += step.seconds
    run.session_step_seconds += step.seconds
    run.session_steps += 1
    h.losses.append({"step": h.step, "loss": step.loss, "learning_rate": step.learning_rate})
    if run.eval_plan is None or not due(h.step, run.config.eval_interval):
        return False
    eval_loss = validate(run)
    h.eval_losses.append({"step": h.step, "eval_loss": eval_loss})
    if h.best_eval_loss is None or eval_loss < h.best_eval_loss:
        h.best_eval_loss, h.evals_without_improvement = eval_loss, 0
        if run.config.early_stopping_patience:
            weights = trainable_weights(run.model).items()
            run.best_weights = {k: v.detach().cpu().clone() for k, v in weights}
        return False
    h.evals_without_improvement += 1
    patience = run.config.early_stopping_patience
    return bool(patience) and h.evals_without_improvement >= patience


def due(step: int, interval: int) -> bool:
    return interval > 0 and step % interval == 0


@torch.no_grad()
def validate(run: Run) -> float:
    """Mean loss per assistant token on the eval set (no dropout).

    In a data-parallel run each rank evaluates every ``processes``-th micro-batch and the sums
    are added up, so every rank gets the same loss (early stopping decides alike everywhere).
    """
    if run.eval_plan is None:
        raise DatasetError("there is no eval set to validate on")
    run.model.eval()
    total, targets = 0.0, 0
    pad_id = int(run.tokenizer.pad_token_id)
    rank = run.parallel.rank if run.parallel else 0
    for index, rows in run.eval_plan.micro_batches(0):
        if index % run.processes != rank:
            continue
        if run.parallel is None and run.should_stop():  # ranks agree on stops only per step
            run.model.train()
            raise Stopped
        batch = collate(rows_of(run.eval_examples, rows), pad_id=pad_id)
        with autocast(run.hardware):
            total += loss_sum(run.model, batch.to(run.hardware.placement)).item()
        targets += batch.targets
    run.model.train()
    total, all_targets = all_sum(run, [total, float(targets)])
    return total / all_targets


# --- progress ------------------------------------------------------------------------------


def elapsed(run: Run) -> float:
    return time.monotonic() - run.started


def epoch_progress(run: Run) -> float:
    h = run.history
    in_epoch = len(run.train_plan.batches(h.epoch)) or 1
    return h.epoch + h.micro_batch / in_epoch


def emit(
    run: Run, event: str, *, loss: float | None, checkpoint: bool = False, **extra: Any
) -> None:
    """Tell ``on_progress`` where the run is; ``event`` is started (with the ``data`` stats:
    examples kept, truncated, dropped), step, done or cancelled."""
    h = run.history
    if not run.is_main:
        return
    per_step = run.session_step_seconds / run.session_steps if run.session_steps else None
    run.on_progress(
        {
            "event": event,
            "step": h.step,
            "total_steps": run.total_steps,
            "epoch": round(epoch_progress(run), 4),
            "loss": loss,
            "eval_loss": h.eval_losses[-1]["eval_loss"] if h.eval_losses else None,
            "learning_rate": h.losses[-1]["learning_rate"] if h.losses else None,
            "tokens_per_second": h.tokens / h.train_seconds if h.train_seconds else None,
            "eta_seconds": per_step * (run.total_steps - h.step) if per_step else None,
            "elapsed_seconds": h.wall_seconds + elapsed(run),
            "checkpoint": checkpoint,
            **extra,
        }
    )
