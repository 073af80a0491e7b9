"""A process that raises one alert and then lives on, for tests that kill it (``python -m``).

Usage: ``python -m tests.integration.alert_raiser CONFIG_JSON``, where the JSON object holds
``redis_url``, ``prefix``, ``webhook_url``, ``session_id``, ``lease_s``, and optionally ``at``
(unix seconds to raise at, so that two processes raise together) and ``then`` (``"sleep"``:
live on until killed, the default; ``"flush"``: deliver, then exit). It prints ``raised <id>``
or ``deduplicated`` once the raise returned.
"""

from __future__ import annotations

import json
import sys
import time

from pydantic import SecretStr

from orchestrator.alerts import Alerter, DeliveryPolicy
from orchestrator.settings import Settings
from orchestrator.state import SessionStore


def main(config: dict[str, object]) -> None:
    settings = Settings(
        redis_url=str(config["redis_url"]),
        redis_prefix=str(config["prefix"]),
        alert_webhook_url=SecretStr(str(config["webhook_url"])),
    )
    store = SessionStore.from_url(settings.redis_url, prefix=settings.redis_prefix)
    alerter = Alerter.from_settings(
        settings,
        store,
        policy=DeliveryPolicy(max_attempts=10, base_s=0.05, max_s=0.2),
        lease_s=float(str(config["lease_s"])),
        poll_s=0.1,
    )
    at = config.get("at")
    if at is not None:
        time.sleep(max(float(str(at)) - time.time(), 0.0))
    alert = alerter.raise_alert("lost", str(config["session_id"]), "404 from query")
    print("deduplicated" if alert is None else f"raised {alert.id}", flush=True)
    if config.get("then") == "flush":
        alerter.close(10)
        return
    time.sleep(600)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
