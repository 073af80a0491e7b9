"""Webhook URLs are secrets: keep them out of logs and error messages.

Chat robots carry their access token in the URL: DingTalk and WeCom in the query
(``?access_token=…``, ``?key=…``), Feishu and Slack in the path (``/hook/<token>``,
``/services/T…/B…/<token>``). A :class:`RedactedUrl` shows the scheme, host and the harmless
parts of the path, and scrubs every secret part of the URL out of any text (an exception message
of the HTTP library quotes the URL it failed on).

urllib3 logs every request line at DEBUG (``"POST /robot/send?access_token=… HTTP/1.1" 200``);
:func:`protect_http_logs` puts a filter on its logger that masks the secrets of every webhook URL
in use, so turning on debug logging does not leak them.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

__all__ = ["MASK", "RedactedUrl", "is_secret_segment", "protect_http_logs"]

#: What a secret is replaced with.
MASK = "***"

#: Shorter query values are masked in the display form but not scrubbed out of texts.
_MIN_SECRET = 4
#: A path segment at least this long is taken for a token.
_TOKEN_LENGTH = 16
#: A path segment at least this long that contains a digit is taken for an id or token.
_ID_LENGTH = 6


def is_secret_segment(segment: str) -> bool:
    """Whether a path segment may be a token or an id (``v2``, ``hook``, ``send`` are not)."""
    return len(segment) >= _TOKEN_LENGTH or (
        len(segment) >= _ID_LENGTH and any(c.isdigit() for c in segment)
    )


class RedactedUrl:
    """A URL that prints without its secrets.

    Args:
        url: the webhook URL, secrets included.

    Attributes:
        display: the URL for logs: no user info, every query value and token-like path segment
            replaced by ``***``, no fragment.
    """

    __slots__ = ("_secrets", "display")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        secrets: set[str] = set()
        if parts.username:
            secrets.add(parts.username)
        if parts.password:
            secrets.add(parts.password)
        segments = []
        for segment in parts.path.split("/"):
            if is_secret_segment(segment):
                secrets.add(segment)
                segments.append(MASK)
            else:
                segments.append(segment)
        query = []
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if value:
                secrets.add(value)
            query.append(f"{name}={MASK}")
        # The values as written, too: parse_qsl decodes them ('+' becomes a space).
        for raw in (p.partition("=")[2] for p in parts.query.split("&") if "=" in p):
            secrets.update((raw, unquote(raw)))
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        self.display = f"{parts.scheme}://{host}{'/'.join(segments)}"
        if query:
            self.display += "?" + "&".join(query)
        # Longest first: a secret that contains another is replaced whole.
        forms = {form for s in secrets for form in (s, quote(s, safe=""), quote_plus(s))}
        # Very short values (``?v=1``) are no secret, and masking them would garble every text.
        self._secrets = sorted((f for f in forms if len(f) >= _MIN_SECRET), key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` with every secret part of the URL (raw or percent-encoded) masked."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def __str__(self) -> str:
        return self.display

    def __repr__(self) -> str:
        return f"RedactedUrl({self.display!r})"


class _SecretsFilter(logging.Filter):
    """Masks registered secrets in the records of one logger."""

    def __init__(self) -> None:
        super().__init__()
        self._urls: dict[str, RedactedUrl] = {}
        self._lock = threading.Lock()

    def add(self, url: RedactedUrl) -> None:
        with self._lock:
            self._urls[url.display + "|" + "|".join(url._secrets)] = url

    def filter(self, record: logging.LogRecord) -> bool:
        urls = list(self._urls.values())
        if not urls:
            return True
        message = original = record.getMessage()
        for url in urls:
            message = url.scrub(message)
        if message != original:
            record.msg, record.args = message, None
        return True


#: The one filter on urllib3's request logger (a logger is process-wide, so is its filter).
_HTTP_LOG_FILTER = _SecretsFilter()
_HTTP_LOGGERS = ("urllib3.connectionpool",)


def protect_http_logs(url: RedactedUrl) -> None:
    """Mask ``url``'s secrets in urllib3's request logs from now on."""
    _HTTP_LOG_FILTER.add(url)
    for name in _HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _HTTP_LOG_FILTER not in logger.filters:
            logger.addFilter(_HTTP_LOG_FILTER)
