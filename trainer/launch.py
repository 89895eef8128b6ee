"""The entry point of a fine-tune: :func:`train` runs it in this process (:mod:`trainer.train`)
or data-parallel over several (:mod:`trainer.distributed`), as the config and the host ask.

Both of those modules are below this one: ``distributed`` runs ``train``'s loop in each rank, and
neither imports this module, so the dependency runs one way.
"""

from __future__ import annotations

from pathlib import Path

from trainer import distributed
from trainer.config import JobConfig
from trainer.data import dataset_hash
from trainer.train import (
    ADAPTER_DIR,
    REPORT_FILE,
    DatasetSource,
    ProgressCallback,
    StopCallback,
    TrainResult,
    finished_result,
    load_splits,
    main,
    setup,
)


def train(
    config: JobConfig,
    *,
    dataset: DatasetSource,
    output_dir: str | Path,
    eval_dataset: DatasetSource | None = None,
    resume: bool = False,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
) -> TrainResult:
    """Fine-tune ``config.base_model`` on ``dataset`` (chat JSONL path or records).

    ``resume=True`` continues from the newest checkpoint in ``output_dir`` (or starts fresh if
    there is none; or returns the finished result if the adapter is already there).
    Raises a :class:`~trainer.errors.TrainingError` subclass for every input it refuses.
    """
    output = Path(output_dir)
    if resume and (output / ADAPTER_DIR / REPORT_FILE).is_file():
        return finished_result(output, dataset_hash(*load_splits(config, dataset, eval_dataset)))
    processes = distributed.resolve_processes(config, output, resume=resume)
    if processes > 1:
        return distributed.launch(
            config,
            processes=processes,
            dataset=dataset,
            output_dir=output,
            eval_dataset=eval_dataset,
            resume=resume,
            on_progress=on_progress,
            should_stop=should_stop,
        )
    run = setup(
        config,
        dataset=dataset,
        output_dir=output,
        eval_dataset=eval_dataset,
        resume=resume,
        on_progress=on_progress,
        should_stop=should_stop,
    )
    return main(run, resume=resume)
