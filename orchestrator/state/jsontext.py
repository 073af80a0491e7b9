"""Compact JSON text of what the store writes, made by orjson.

A start's create writes three JSON texts (the request in the session hash, the first history
entry, and the script's one argument around them); with the standard library's encoder they
cost about 8 us of a producer's ``start``, with orjson under 1 us.

The text is what ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` writes
(``sort_keys`` for :func:`sorted_text`) but for two things: a float with an exponent is written
without its padding (``1e-7``, not ``1e-07``: the same number), and NaN and the infinities,
which JSON does not have, as ``null`` where the standard library writes its own ``NaN`` (a
request's floats are fractions checked to lie in [0, 1], so it never carries one).
What orjson refuses (a key that is not a string, an integer beyond 64 bits, a type it does not
know) goes to the standard library's encoder, which writes it as before or raises as before.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["compact_text", "sorted_text"]

_STDLIB = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_STDLIB_SORTED = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode
_SORTED = orjson.OPT_SORT_KEYS


def compact_text(value: Any) -> str:
    """``value`` as compact JSON text, keys in their order."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return _STDLIB(value)


def sorted_text(value: Any) -> str:
    """``value`` as compact JSON text, keys sorted."""
    try:
        return orjson.dumps(value, option=_SORTED).decode()
    except TypeError:
        return _STDLIB_SORTED(value)
