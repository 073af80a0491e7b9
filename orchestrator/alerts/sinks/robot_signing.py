"""The signatures that chat robots with a "signing secret" security setting ask for.

Both vendors sign a timestamp with the robot's secret using HMAC-SHA256 and base64:

- **DingTalk** (加签): ``sign = base64(HMAC-SHA256(key=secret, msg="<ms>\\n<secret>"))``, sent as
  ``&timestamp=<ms>&sign=<url-encoded sign>`` appended to the robot URL. The timestamp is in
  milliseconds and must be within an hour of DingTalk's clock.
- **Feishu / Lark** (签名校验): ``sign = base64(HMAC-SHA256(key="<s>\\n<secret>", msg=b""))``,
  sent in the JSON body as ``"timestamp": "<s>"`` (seconds, a string) and ``"sign"``.

Each attempt is signed at its own time (a retry an hour later still passes). The timestamp is this
host's clock: it is checked by the vendor's servers, not compared with another of our processes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote_plus

__all__ = ["dingtalk_sign", "dingtalk_signed_url", "feishu_sign"]


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's ``sign`` for ``timestamp_ms`` (base64, not yet URL-encoded)."""
    message = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def dingtalk_signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    """The robot ``url`` with ``&timestamp=…&sign=…`` appended."""
    separator = "&" if "?" in url else "?"
    sign = quote_plus(dingtalk_sign(secret, timestamp_ms))
    return f"{url}{separator}timestamp={timestamp_ms}&sign={sign}"


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's ``sign`` for ``timestamp_s``: the key is ``"<s>\\n<secret>"``, the message empty."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")
