"""The schema version of a stored session: which layout of the hash a record was written in.

Every session hash written by this code holds ``schema`` = :data:`SCHEMA_VERSION`. A hash without
the field was written before versions existed, in the layout of version 1 (the same as today's).

A version above :data:`SCHEMA_VERSION` was written by a newer release of the orchestrator. Such a
record is never decoded, rewritten or "fixed" by this code: its jobs are dead-lettered and the
reconciler skips it, exactly as for a corrupt record, until a newer worker (or a person, with
``krtc-rec repair``) deals with it. Fields merely added by a newer release do not need a new
version (they are ignored on reading); a version is for changes an older reader would misread.
"""

from __future__ import annotations

__all__ = ["SCHEMA_FIELD", "SCHEMA_VERSION", "LEGACY_SCHEMA_VERSION", "schema_of"]

#: The hash field that holds the version.
SCHEMA_FIELD = "schema"
#: The version this code writes, and the highest it reads.
SCHEMA_VERSION = 1
#: The version of a hash without :data:`SCHEMA_FIELD` (written before versions existed).
LEGACY_SCHEMA_VERSION = 1


def schema_of(value: str | None) -> int:
    """The schema version a hash's ``schema`` field names (``None``: the field is absent).

    Raises:
        ValueError: the value is not a positive integer (the message never holds the value).
    """
    if value is None or value == "":
        return LEGACY_SCHEMA_VERSION
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise ValueError(f"{SCHEMA_FIELD}: not a positive integer")
    return int(value)
