"""A torch library for fine-tuning (config, launch, train, distributed, evaluate, checkpoint,
merge, the tiny model). It imports nothing from gptstudio, which reaches it through its queue
jobs (gptstudio/jobs)."""
