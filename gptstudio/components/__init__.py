"""Pure functions returning ``rx.Component``."""
