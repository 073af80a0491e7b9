"""Session ids: 26 characters, sortable by creation time (ULID layout).

48 bits of milliseconds since the epoch, then 80 random bits, in Crockford's base 32. Ids
created in a later millisecond sort after earlier ones, so ``sorted(ids)`` is creation order;
within one millisecond the order is random.
"""

from __future__ import annotations

import os
import re
import threading
import time

__all__ = ["SESSION_ID_LENGTH", "new_session_id", "is_session_id"]

SESSION_ID_LENGTH = 26
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PATTERN = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
_MS_MASK = (1 << 48) - 1
#: Every pair of digits, indexed by the 10 bits it encodes.
_DIGIT_PAIRS = tuple(high + low for high in _ALPHABET for low in _ALPHABET)
#: Where each pair's bits start in the 130-bit value (26 digits; its top 2 bits are zero).
_PAIR_SHIFTS = tuple(range(5 * SESSION_ID_LENGTH - 10, -1, -10))


class _RandomBits:
    """80-bit numbers from the system's random source (``os.urandom``), read 4,000 bytes at a
    time.

    One ``getrandom`` call per id was 2–3 % of a producer's ``start`` (py-spy, in the loop: a
    system call costs far more there than alone). The bytes are the same source's; each is used
    once. A forked child drops what its parent had read (and the lock, which a thread of the
    parent may have held), so two processes never draw the same bits.
    """

    _CHUNK = 4000
    _DRAW = 10  # bytes: 80 bits

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._next = 0

    def draw(self) -> int:
        """The next 80 random bits, as a number."""
        with self._lock:
            at = self._next
            if at + self._DRAW > len(self._buffer):
                self._buffer = os.urandom(self._CHUNK)
                at = 0
            self._next = at + self._DRAW
            return int.from_bytes(self._buffer[at : at + self._DRAW], "big")


_RANDOM = _RandomBits()
os.register_at_fork(after_in_child=_RANDOM._reset)


def new_session_id(now_s: float | None = None) -> str:
    """A new, time-sortable session id.

    Args:
        now_s: the creation time in unix seconds (default: now).

    Returns:
        26 characters of ``0-9A-Z`` without ``I L O U``.
    """
    ms = int((time.time() if now_s is None else now_s) * 1000) & _MS_MASK
    value = (ms << 80) | _RANDOM.draw()
    # Two digits (10 bits) at a time, most significant first: 13 look-ups.
    return "".join([_DIGIT_PAIRS[(value >> shift) & 1023] for shift in _PAIR_SHIFTS])


def is_session_id(value: str) -> bool:
    """Whether ``value`` has the shape of an id made by :func:`new_session_id`."""
    return _PATTERN.fullmatch(value) is not None
