"""The job queue: the Huey instance (``queue``), the task definitions that services enqueue
(``tasks``), one module per job body that a worker runs (``documents``, ``curation``,
``training``, ``retrieval``, ``billing``, ``mail``), and ``worker``, what a consumer loads."""
