"""Job fixtures: the trainer's tiny local model and single-threaded torch (training jobs), and an
assistant with a finished curation run (curation jobs)."""

from tests.services.test_dataset import curated  # noqa: F401 (fixtures)
from tests.trainer.conftest import one_thread, tiny_model  # noqa: F401
