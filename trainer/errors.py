"""Typed training errors: each message says what to change. Imports nothing heavy.

Every failure the trainer expects is a :class:`TrainingError`; a task can store ``str(error)`` on
the job and show it to the creator as is.
"""

from __future__ import annotations


class Stopped(Exception):
    """``should_stop`` said stop inside validation or evaluation (a cancel, not a failure)."""


class TrainingError(Exception):
    """Base of every error the trainer raises on purpose."""


class ConfigError(TrainingError, ValueError):
    """A job configuration that cannot work (bad value, or values that contradict each other)."""


class ContextLengthError(ConfigError):
    """The sequence length is longer than the base model's context window."""


class DatasetError(TrainingError, ValueError):
    """A dataset that is missing, malformed, too small, or has nothing to learn from."""


class BaseModelError(TrainingError):
    """The base model (or an adapter's base model) cannot be found or loaded."""


class DeviceError(TrainingError):
    """The requested method or precision needs hardware this machine does not have."""


class OutOfMemoryError(TrainingError):
    """Training ran out of accelerator or host memory."""


class CheckpointError(TrainingError):
    """A checkpoint to resume from is missing, unreadable, or from a different job."""
