"""The signed start POST that the peers of ``bench/peers.py`` make, and nothing else.

``PEER_CLIENT=requests`` (the default): a pooled ``requests.Session`` signed with
``requests-aws4auth`` (what a team writing its own worker would reach for, and what Kingsoft's own
SDK signs with), the JSON body encoded once. ``PEER_CLIENT=project``: the project's own
:class:`KrtcClient` (the same client as the project's workers, so that the ratio measures only
the orchestration around the call).

Configured by the environment the bench gives: ``KRTC_ENDPOINT``, ``KRTC_ACCESS_KEY``,
``KRTC_SECRET_KEY`` and ``PEER_CLIENT``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from typing import Any

__all__ = ["signed_start"]


def _requests_start() -> Callable[[dict[str, Any]], str]:
    import requests
    from requests.adapters import HTTPAdapter
    from requests_aws4auth import AWS4Auth

    url = os.environ["KRTC_ENDPOINT"]
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", HTTPAdapter(pool_maxsize=64, max_retries=0))
    keys = (os.environ["KRTC_ACCESS_KEY"], os.environ["KRTC_SECRET_KEY"])
    signers: dict[str, AWS4Auth] = {}
    hdrs = {"host", "content-type", "x-amz-*", "x-action", "x-version"}
    headers = {"content-type": "application/json;charset=UTF-8", "x-action": "CloudRecordingStart"}
    headers["x-version"] = "v1"

    def start(body: dict[str, Any]) -> str:
        now = dt.datetime.now(dt.UTC)
        day = now.strftime("%Y%m%d")
        auth = signers.get(day)
        if auth is None:
            auth = signers[day] = AWS4Auth(
                *keys, "cn-beijing-6", "krtc", date=day, include_hdrs=hdrs
            )
        sent = {**headers, "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ")}
        response = session.post(url, data=json.dumps(body), headers=sent, auth=auth, timeout=10)
        response.raise_for_status()
        return str(response.json()["sid"])

    return start


def _project_start() -> Callable[[dict[str, Any]], str]:
    from orchestrator.krtc.client import KrtcClient
    from orchestrator.settings import Settings

    client = KrtcClient(Settings(http_pool_size=64))

    def start(body: dict[str, Any]) -> str:
        return client.start(body).sid

    return start


def signed_start() -> Callable[[dict[str, Any]], str]:
    """A function that makes one signed start call and returns the sid (``PEER_CLIENT``)."""
    kind = os.environ.get("PEER_CLIENT", "requests")
    if kind == "project":
        return _project_start()
    if kind == "requests":
        return _requests_start()
    raise ValueError(f"PEER_CLIENT must be requests or project, not {kind!r}")
