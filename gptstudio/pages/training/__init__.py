"""Fine-tuning an assistant (``/assistant/training?id=N``): launch a job on a dataset version,
follow it live (loss chart, progress, tokens/s, ETA), cancel it, compare base and tuned
answers, chat with a version and the base side by side (preview), and publish a version (or be
stopped by the knowledge-gain gate, with the numbers).

- ``state.py``: :class:`TrainingState`, what every card shows, loaded and followed while a job
  is queued or running;
- ``launch.py``, ``jobs.py`` (jobs and the live job), ``versions.py`` (versions and their
  sample answers), ``preview.py`` (a version and the base answering side by side): the cards,
  each with its substate of ``TrainingState`` (its handlers);
- ``page.py``: the route and its cards in order.
"""

from gptstudio.pages.training.page import training_page

__all__ = ["training_page"]
