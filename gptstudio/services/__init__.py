"""Domain logic: typed, keyword-only functions; no Reflex or HTTP import here."""
