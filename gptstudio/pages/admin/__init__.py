"""The admin's pages, one module per route (each with its state):

- ``users.py`` (``/admin``): installation totals, the two-step verification policy, and every
  user with their role and tier;
- ``gate.py``: the publishing gate's card on ``/admin``;
- ``totals.py``: the totals section of ``/admin`` (cards and charts), loaded when it mounts;
- ``tiers.py`` (``/admin/tiers``): the installation's own tiers for creators;
- ``audit.py`` (``/admin/audit``): the audit log, filtered by action and actor;
- ``header.py``: the heading and tabs both pages open with.
"""

from gptstudio.pages.admin import audit, tiers, users

__all__ = ["audit", "tiers", "users"]
