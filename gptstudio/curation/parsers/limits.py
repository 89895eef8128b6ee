"""Size limits that bound how much work one upload can cause."""

from __future__ import annotations

from dataclasses import dataclass

from gptstudio.curation.errors import InvalidParameterError


@dataclass(frozen=True)
class ParseLimits:
    """Limits checked before and while parsing; pass the deployment's values from Settings."""

    max_bytes: int = 50 * 1024 * 1024
    """Largest upload accepted, in bytes."""
    max_pages: int = 2_000
    """PDF pages read at most; later pages are skipped with a note."""
    max_uncompressed_bytes: int = 200 * 1024 * 1024
    """Largest total a DOCX zip may declare once expanded."""
    max_compression_ratio: float = 100.0
    """Largest expansion factor for a DOCX part of 1 MiB or more."""
    max_records: int = 1_000_000
    """Rows or JSON records read at most from one file."""

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pages", "max_uncompressed_bytes", "max_records"):
            if getattr(self, name) <= 0:
                raise InvalidParameterError(f"ParseLimits.{name} must be positive.")
        if self.max_compression_ratio < 1:
            raise InvalidParameterError("ParseLimits.max_compression_ratio must be at least 1.")
