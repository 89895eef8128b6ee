"""The job queue: the Huey instance (``queue``), the task definitions that services enqueue, and
one module per job body that a worker runs (document parsing, curation runs, training runs,
retrieval indexes, billing's periodic jobs)."""
