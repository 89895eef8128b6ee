"""The pure core of "documents to dataset": plain values in, plain values out.

No database, no Reflex, no HTTP; the only I/O is parsers reading the bytes they are given.
The worker's ingestion task loads bytes, calls these functions and stores the results.

Flow, one module per step:

- ``parsers``: :func:`parsers.parse_document` sniffs the type from the bytes and reads PDF,
  DOCX, HTML, Markdown/text, CSV, JSON and JSONL into a :class:`documents.ParsedDocument`
  (sections with page or heading provenance, and/or ready chat examples) plus a report.
- ``cleaning``: Unicode, control characters, whitespace, PDF headers/footers, short sections,
  language; every change counted.
- ``pii``: e-mails, phones, cards, IBANs, IP addresses and SSNs become typed placeholders.
- ``chunking``: overlapping chunks that keep their exact source span.
- ``quality``: drops short, repetitive, non-text or wrong-language chunks, with reasons.
- ``dedupe`` (and ``semantic``): exact and MinHash/LSH near-duplicate clusters with overrides.
- ``qa``: rule-based question/answer examples and a hook for model-written ones.
- ``splits``: train/validation/test by document without leakage, and a check for it.
- ``snapshot``: content hash, chat-format JSONL, and diffs between dataset versions.
- ``pipeline``: :func:`pipeline.curate` runs all of the above on parsed documents.

Every problem a creator can fix raises a subclass of :class:`errors.CurationError`. Import
submodules directly; this package imports nothing so the web process stays light.
"""
