"""Loading base models and tokenizers, attaching LoRA, and the assistant-only loss.

Imported by the worker only (it imports torch at the top). Loading errors from transformers and
the hub become :class:`~trainer.errors.BaseModelError` with a message saying what to change;
hub ids are looked up in the local cache first, so a cached model loads with no network.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer.config import JobConfig
from trainer.data import IGNORE_INDEX, Batch
from trainer.errors import BaseModelError, ContextLengthError, DeviceError, OutOfMemoryError
from trainer.registry import resolve_target_modules

logger = logging.getLogger(__name__)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# For base (non-chat) models: ChatML with the model's own end-of-sequence token ending each turn,
# so generation stops where the trained answers stop.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Hardware:
    """Where and in which precision a run computes."""

    device: str  # "cuda" or "cpu"
    dtype: torch.dtype  # of the frozen base weights and of autocast
    precision: str  # "fp32", "bf16" or "fp16"
    index: int | None = None  # the GPU of this process in data-parallel runs (its local rank)

    @property
    def autocast(self) -> bool:
        return self.precision != "fp32"

    @property
    def placement(self) -> str:
        """Where tensors go: ``cuda:N`` for a data-parallel rank, else the device type."""
        return self.device if self.index is None else f"{self.device}:{self.index}"


def pick_hardware(precision: str) -> Hardware:
    """bf16 (or fp16 where bf16 is missing) on a GPU, fp32 on CPU; refuse what cannot run."""
    if not torch.cuda.is_available():
        if precision in ("bf16", "fp16"):
            raise DeviceError(
                f"precision {precision} needs a CUDA GPU and none is visible; "
                "use precision auto (fp32 on CPU) or run on a GPU worker"
            )
        return Hardware("cpu", torch.float32, "fp32")
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise DeviceError("this GPU has no bf16 support; use precision fp16 or auto")
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    return Hardware("cuda", dtypes[precision], precision)


# --- finding the base model ----------------------------------------------------------------


@dataclass(frozen=True)
class BaseSource:
    """A base model name resolved to where it loads from."""

    name: str
    local_only: bool  # True: a folder, or a hub id already in the cache


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def resolve_base(name: str) -> BaseSource:
    """Check that ``name`` can be loaded, from a folder, the cache, or (if online) the hub."""
    from transformers import AutoConfig

    path = Path(name).expanduser()
    if path.is_dir() or _looks_like_path(name):
        if not path.is_dir():
            raise BaseModelError(f"base model folder {path} does not exist; check the path")
        if not (path / "config.json").is_file():
            raise BaseModelError(f"{path} has no config.json: not a Hugging Face model folder")
        return BaseSource(str(path), local_only=True)
    if not HUB_ID.match(name):
        raise BaseModelError(
            f"base model {name!r} is neither a folder nor a hub id like 'org/model-name'"
        )
    try:
        AutoConfig.from_pretrained(name, local_files_only=True)
        return BaseSource(name, local_only=True)
    except ValueError as error:  # cached, but not a model transformers can build
        raise explain_load_error(name, error) from error
    except OSError as error:  # not cached: the hub is the only place left to look
        if _hub_offline():
            raise explain_load_error(name, error) from error
    return BaseSource(name, local_only=False)


def explain_load_error(name: str, error: BaseException) -> BaseModelError:
    """A message that says what to change, from transformers' and the hub's error types."""
    from huggingface_hub import errors as hub

    chain = [error, error.__cause__, error.__context__]
    if any(isinstance(e, hub.GatedRepoError) for e in chain):
        hint = "it is gated: accept its license on huggingface.co and set HF_TOKEN for the worker"
    elif any(isinstance(e, hub.RepositoryNotFoundError) for e in chain):
        hint = "there is no such model on the hub (or it is private): check the spelling"
    elif _hub_offline() or any(
        isinstance(e, (hub.LocalEntryNotFoundError, hub.OfflineModeIsEnabled, ConnectionError))
        for e in chain
    ):
        hint = (
            "it is not in the local cache and the hub cannot be reached (offline); download it "
            f"on a connected machine (`hf download {name}`) or point base_model at a local folder"
        )
    else:
        hint = str(error).splitlines()[0] if str(error) else type(error).__name__
    return BaseModelError(f"cannot load base model {name!r}: {hint}")


def load_model_config(source: BaseSource) -> Any:
    """The base model's transformers config."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source.name, local_files_only=source.local_only)
    except (OSError, ValueError) as error:
        raise explain_load_error(source.name, error) from error


def context_length(model_config: Any) -> int | None:
    """The longest sequence the base model was built for, if it says."""
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(model_config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_context(config: JobConfig, model_config: Any) -> None:
    """Refuse a sequence length beyond the model's context window."""
    limit = context_length(model_config)
    if limit and config.sequence_length > limit:
        raise ContextLengthError(
            f"sequence_length {config.sequence_length} is longer than the context of "
            f"{config.base_model} ({limit} tokens); set sequence_length to at most {limit}"
        )


def load_tokenizer(source: BaseSource) -> Any:
    """The base model's tokenizer, with a pad token and a chat template guaranteed."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source.name, local_files_only=source.local_only)
    except (OSError, ValueError) as error:
        raise explain_load_error(source.name, error) from error
    if tokenizer.pad_token is None:  # Llama 3 ships none; padding is never trained on
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        logger.info("%s has no chat template; using plain ChatML", source.name)
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return tokenizer


# --- loading weights -----------------------------------------------------------------------


def quantization_config(method: str, hardware: Hardware) -> Any:
    """The bitsandbytes settings for a QLoRA method (None for plain LoRA)."""
    if method == "lora":
        return None
    try:
        from transformers import BitsAndBytesConfig
    except ImportError as error:
        raise DeviceError(f"{method} needs bitsandbytes: pip install bitsandbytes") from error
    if method == "qlora-8bit":
        # bitsandbytes logs a warning per matmul on CPU (it computes int8 via fp16).
        logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=hardware.dtype,
    )


def load_base_model(source: BaseSource, *, method: str, hardware: Hardware) -> Any:
    """The frozen base model on the run's device, quantized for QLoRA methods."""
    from transformers import AutoModelForCausalLM

    quantization = quantization_config(method, hardware)
    kwargs: dict[str, Any] = {"dtype": hardware.dtype, "local_files_only": source.local_only}
    if quantization is not None:
        # Each data-parallel rank loads its own quantized copy on its own GPU: bitsandbytes
        # weights cannot be moved after loading, and DDP needs one whole model per process.
        target = hardware.device if hardware.index is None else hardware.index
        kwargs.update(quantization_config=quantization, device_map={"": target})
    try:
        model: Any = AutoModelForCausalLM.from_pretrained(source.name, **kwargs)
    except torch.OutOfMemoryError as error:
        raise OutOfMemoryError(
            f"the base model {source.name} does not fit in {hardware.device} memory; "
            "use method qlora-4bit or a smaller base model"
        ) from error
    except (OSError, ValueError) as error:
        raise explain_load_error(source.name, error) from error
    except (RuntimeError, ImportError) as error:
        if quantization is None:
            raise
        raise DeviceError(
            f"{method} could not load on {hardware.device} ({error}); use method lora"
        ) from error
    if quantization is None:
        model.to(hardware.placement)
    model.config.use_cache = False  # training never reuses a KV cache
    return model


def enable_checkpointing(model: Any) -> None:
    """Recompute activations in backward; non-reentrant, so frozen inputs need no hack."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers 5 name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def add_lora(model: Any, config: JobConfig) -> Any:
    """Freeze the base and wrap it with LoRA adapters; returns the PEFT model."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if config.is_quantized:
        # Casts norms and embeddings to fp32 for stable k-bit training; checkpointing is ours.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if config.gradient_checkpointing:
        enable_checkpointing(model)
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(resolve_target_modules(model, config.target_modules)),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with quiet_peft():
        return get_peft_model(model, lora)


@contextmanager
def quiet_peft() -> Iterator[None]:
    """peft reads transformers' deprecated ``is_gradient_checkpointing``: noise, not ours."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
        yield


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


# --- the loss ------------------------------------------------------------------------------


def loss_sum(model: Any, batch: Batch) -> torch.Tensor:
    """Summed next-token cross-entropy over assistant tokens (divide by ``batch.targets``).

    No attention mask is passed: with ``position_ids`` restarting per example, transformers
    (or :mod:`trainer.attention`) keeps examples apart itself, so the rows run as one row
    (padding restarts its positions too). The label of an example's first token would be
    predicted from the previous example, so it is dropped (collate counts targets the same way).
    Logits are formed only where there is a target (``logits_to_keep``): the prompt's positions
    never reach the vocabulary projection, the largest product of a model with a real vocabulary.
    """
    targets = batch.labels.roll(-1, dims=1)
    targets = targets.masked_fill(batch.position_ids.roll(-1, dims=1) == 0, IGNORE_INDEX)
    targets[:, -1] = IGNORE_INDEX  # the last position has no next token in this row
    targets = targets.flatten()
    keep = (targets != IGNORE_INDEX).nonzero().squeeze(1)
    logits = model(
        input_ids=batch.input_ids.view(1, -1),
        position_ids=batch.position_ids.view(1, -1),
        use_cache=False,
        logits_to_keep=keep,
    ).logits
    return torch.nn.functional.cross_entropy(logits[0].float(), targets[keep], reduction="sum")


def autocast(hardware: Hardware) -> Any:
    """The autocast context for the run's precision (a no-op in fp32)."""
    return torch.autocast(hardware.device, dtype=hardware.dtype, enabled=hardware.autocast)


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA OOM, or the CPU allocator failing (a RuntimeError with a known message)."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


def out_of_memory_message(config: JobConfig, hardware: Hardware) -> str:
    """What to change after running out of memory during training."""
    advice = [f"lower batch_size (now {config.batch_size}) and raise gradient_accumulation"]
    advice.append(f"lower sequence_length (now {config.sequence_length})")
    if not config.gradient_checkpointing:
        advice.append("turn on gradient_checkpointing")
    if config.method == "lora" and hardware.device == "cuda":
        advice.append("use method qlora-4bit")
    return f"training ran out of {hardware.device} memory: " + "; or ".join(advice)


# --- trained adapters ----------------------------------------------------------------------


def find_adapter_dir(path: str | Path) -> Path:
    """The adapter folder: ``path`` itself, or the ``adapter/`` a training run left in it."""
    folder = Path(path)
    for candidate in (folder, folder / "adapter"):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    raise BaseModelError(
        f"{folder} holds no adapter (no adapter_config.json); give the adapter folder a "
        "finished training run wrote"
    )


def adapter_job_config(adapter_dir: Path) -> JobConfig | None:
    """The job config saved next to the adapter, if the trainer wrote one."""
    path = adapter_dir / "job_config.json"
    return JobConfig.load(path) if path.is_file() else None


def adapter_base_model(adapter_dir: Path, override: str | None = None) -> str:
    """Which base model an adapter belongs to: ``override``, its job config, or peft's record."""
    if override:
        return override
    job = adapter_job_config(adapter_dir)
    if job is not None:
        return job.base_model
    recorded = json.loads((adapter_dir / "adapter_config.json").read_text())
    name = recorded.get("base_model_name_or_path")
    if not name:
        raise BaseModelError(f"{adapter_dir} does not say its base model; pass it explicitly")
    return str(name)


def load_tuned(
    adapter_dir: Path, *, base_model: str | None = None, method: str | None = None
) -> tuple[Any, Any, Hardware]:
    """(PEFT model in eval mode, tokenizer, hardware) for an adapter on its base model.

    ``method`` defaults to the one the adapter was trained with; pass ``"lora"`` to load the
    base unquantized (what merging needs).
    """
    from peft import PeftModel

    job = adapter_job_config(adapter_dir)
    hardware = pick_hardware("auto")
    source = resolve_base(adapter_base_model(adapter_dir, base_model))
    # The adapter folder's tokenizer carries the chat template the adapter was trained with.
    tokenizer = load_tokenizer(BaseSource(str(adapter_dir), local_only=True))
    base = load_base_model(
        source, method=method or (job.method if job else "lora"), hardware=hardware
    )
    with quiet_peft():
        model = PeftModel.from_pretrained(base, str(adapter_dir))
    model.eval()
    return model, tokenizer, hardware
