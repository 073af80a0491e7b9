"""Bearer tokens: ``Authorization: Bearer <token>`` checked in constant time, never logged."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

__all__ = ["TokenAuth", "parse_tokens"]


def parse_tokens(value: str | None) -> list[str]:
    """The tokens of ``KRTC_API_TOKENS`` (comma-separated; blanks ignored)."""
    return [token.strip() for token in (value or "").split(",") if token.strip()]


class TokenAuth:
    """Accepts the requests that carry one of ``tokens``.

    Args:
        tokens: the accepted bearer tokens; empty means every request is accepted (``serve``
            allows that only with ``--insecure-no-auth``).
    """

    def __init__(self, tokens: Iterable[str]) -> None:
        self._tokens = [token.encode() for token in tokens]

    @property
    def enabled(self) -> bool:
        """Whether a token is required."""
        return bool(self._tokens)

    def allows(self, authorization: str | None) -> bool:
        """Whether the ``Authorization`` header value carries an accepted token.

        Every token is compared (no early exit), each in constant time.
        """
        if not self._tokens:
            return True
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return False
        candidate = given.strip().encode()
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(candidate, token)
        return matched
