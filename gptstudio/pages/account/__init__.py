"""The signed-in user's own account, one module per tab (each a route with its state):

- ``security.py`` (``/account``): e-mail confirmation, two-step verification and password;
- ``sessions.py`` (``/account/sessions``): where the user is signed in, and signing out;
- ``keys.py`` (``/account/keys``): API keys;
- ``header.py``: the heading and tabs the three share.
"""

from gptstudio.pages.account import keys, security, sessions

__all__ = ["keys", "security", "sessions"]
