"""Reflex states and helpers shared by several pages:

- ``auth.py``: :class:`AuthState`, the signed-in user, which every page state subclasses, and
  the app-wide handler for errors no page shows;
- ``owned_assistant.py``: :class:`AssistantPageState`, for pages about one of the creator's own
  assistants (``?id=N``);
- ``live.py``: following work on the queue (refresh while something is pending);
- ``errors.py``: the decorators that show a handler's domain error on the page or as a toast.
"""
