"""An assistant's data page (``/assistant/data?id=N``): upload documents and web pages, curate
them, review the examples and duplicates, and snapshot versioned datasets. Long steps run on the
queue; the page follows them live and picks up where it was after a reload.

- ``state.py``: :class:`DataState`, what every card shows, loaded and followed while work is
  pending on the queue;
- ``documents.py``, ``curation.py``, ``review.py``, ``datasets.py``: one card each (two for
  review: duplicates and examples), its substate of ``DataState`` beside its components;
- ``page.py``: the route, its cards in order, and what a visit loads.
"""

from gptstudio.pages.data.page import data

__all__ = ["data"]
