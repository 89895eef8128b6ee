"""The signed-in user's own account, one module per tab (each a route with its state):

- ``security.py`` (``/account``): e-mail confirmation, two-step verification and password;
- ``sessions.py`` (``/account/sessions``): where the user is signed in, and signing out;
- ``keys.py`` (``/account/keys``): API keys;
- ``data.py`` (``/account/data``): download all of one's data, delete the account;
- ``header.py``: the heading and tabs the four share.
"""

from gptstudio.pages.account import data, keys, security, sessions

__all__ = ["data", "keys", "security", "sessions"]
