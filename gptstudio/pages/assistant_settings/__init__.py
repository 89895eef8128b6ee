"""Settings of one of the creator's assistants (``/assistant/settings?id=N``): name, description
and persona; retrieval (on/off, passages per answer, rebuild the sources index); versioned
rollout (current version, an A/B split with a candidate, promote, one-click rollback, feedback
and latency per version); and the subscribers' recent feedback.

- ``state.py``: :class:`SettingsState`, what every card shows, loaded on each visit;
- ``profile.py``, ``retrieval.py``, ``rollout.py``, ``feedback.py``, ``deletion.py``: one card
  each, with its
  substate of ``SettingsState`` (its handlers) beside its components;
- ``page.py``: the route and its cards in order.
"""

from gptstudio.pages.assistant_settings.page import settings_page

__all__ = ["settings_page"]
