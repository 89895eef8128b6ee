"""Pure functions returning ``rx.Component``, shared by several pages:

- ``layout.py``: the page chrome (navbar, body, assistant header, tabs, link buttons) and every
  form's error callout and submit button;
- ``forms.py``: password and labelled inputs;
- ``tables.py``: header rows and full-width tables of one row per item;
- ``badges.py``: status badges coloured by value;
- ``code.py``: copy buttons, code blocks and the callout that shows a new secret once;
- ``charts.py``: KPI cards and recharts charts for the dashboards, with the data shaping they
  need;
- ``assistant_card.py``: an assistant as a card, and the row it shows.
"""
