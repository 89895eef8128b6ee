"""Typed errors for the curation core.

Every problem a creator can fix (a bad file, a wrong column name, an impossible setting) raises a
subclass of :class:`CurationError`, whose message is written for that creator: it says what is
wrong and what to do. Callers catch ``CurationError`` once and show ``str(error)``.
"""

from __future__ import annotations


class CurationError(ValueError):
    """Base class: the input cannot be curated as given; the message says why and what to do."""


class FileTooLargeError(CurationError):
    """The upload is larger than the configured limit."""


class EmptyFileError(CurationError):
    """The upload has no bytes, or no text could be found in it."""


class UnsupportedFileError(CurationError):
    """The content is not a format we read (binary junk, images, legacy Office files...)."""


class CorruptFileError(CurationError):
    """The content claims a format but is damaged or truncated."""


class EncryptedFileError(CurationError):
    """The document is password-protected."""


class UnsafeArchiveError(CurationError):
    """A zip container (DOCX) would expand to too much data: a zip bomb or a padded file."""


class UndecodableTextError(CurationError):
    """The bytes look like text but no encoding decodes them sensibly."""


class UnsafeFilenameError(CurationError):
    """The filename tries to leave its folder or contains control characters."""


class ColumnChoiceError(CurationError):
    """A table or JSON file has no usable column, or the chosen column does not exist.

    ``columns`` lists the columns (keys) the file does have, so the creator can choose.
    """

    def __init__(self, message: str, *, columns: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.columns = columns


class InvalidParameterError(CurationError):
    """A curation setting is out of range or inconsistent with another."""


class LeakageError(CurationError):
    """A document or a duplicate cluster appears in more than one split."""
