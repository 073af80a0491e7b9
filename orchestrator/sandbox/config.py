"""Configuration of the sandbox: the key pair it accepts, its timings and its behaviour.

Two layers:

* :class:`Behaviour` holds what the control API may change at run time (timings, the allow-list,
  the default channel users, whether a 409 names the running sid). ``POST /_sandbox/reset`` puts it
  back to what the server started with.
* :class:`SandboxConfig` adds what is fixed for the life of a server: where it listens, the key
  pair, the signing scope, the seed, and the faults it starts with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from orchestrator.settings import DEFAULT_REGION, DEFAULT_SERVICE, Credentials

__all__ = [
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_SECRET_KEY",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_START_DURATION_S",
    "DEFAULT_STOP_DURATION_S",
    "DEFAULT_RETENTION_S",
    "DEFAULT_MAX_SKEW_S",
    "DEFAULT_MAX_IDLE_TIME_S",
    "DEFAULT_CHANNEL_USERS",
    "DEFAULT_HANG_S",
    "DEFAULT_REQUEST_LOG_SIZE",
    "Behaviour",
    "SandboxConfig",
    "default_credentials",
    "mask_secret",
]

#: The key pair a sandbox accepts when none is configured. Not a secret: it only opens the sandbox.
DEFAULT_ACCESS_KEY = "AKSANDBOX"
DEFAULT_SECRET_KEY = "sandbox-secret"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090
#: Time from start to status 5 (recording); statuses 0..4 take a fifth of it each.
DEFAULT_START_DURATION_S = 1.0
#: Time from a stop to status 8 (status 6 for the first half, 7 for the second).
DEFAULT_STOP_DURATION_S = 0.5
#: How long an exited recording still answers a query (status 8 or 20) before it is a 404.
DEFAULT_RETENTION_S = 300.0
#: A signature whose x-amz-date is further than this from the server's clock is refused.
DEFAULT_MAX_SKEW_S = 300.0
#: spec §4: maxIdleTime when a start does not set it.
DEFAULT_MAX_IDLE_TIME_S = 30
#: Every channel has these simulated users until the control API sets its users, so that a demo
#: recording is not ended by maxIdleTime. Start the server with ``--channel-users ""`` to have
#: channels start empty instead.
DEFAULT_CHANNEL_USERS: tuple[str, ...] = ("1001",)
#: How long an "apply then hang" fault holds the connection (unless the client gives up first).
DEFAULT_HANG_S = 30.0
#: Requests kept in the request log (``GET /_sandbox/requests``).
DEFAULT_REQUEST_LOG_SIZE = 1000

NonNegative = Annotated[float, Field(ge=0)]


class Behaviour(BaseModel):
    """What the control API may change while the sandbox runs (``PATCH /_sandbox/config``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_duration_s: NonNegative = DEFAULT_START_DURATION_S
    stop_duration_s: NonNegative = DEFAULT_STOP_DURATION_S
    retention_s: NonNegative = DEFAULT_RETENTION_S
    max_skew_s: NonNegative = DEFAULT_MAX_SKEW_S
    hang_s: NonNegative = DEFAULT_HANG_S
    #: The real server's 409 body is not documented to name the running sid; off by default.
    conflict_sid_in_body: bool = False
    #: Users of every channel whose users were never set.
    default_channel_users: tuple[str, ...] = DEFAULT_CHANNEL_USERS
    #: App IDs with cloud-recording permission; ``None`` allows every App ID.
    allow_app_ids: frozenset[str] | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready view."""
        data = self.model_dump(mode="json")
        if self.allow_app_ids is not None:
            data["allow_app_ids"] = sorted(self.allow_app_ids)
        return data


def default_credentials() -> Credentials:
    """The documented sandbox key pair (:data:`DEFAULT_ACCESS_KEY`, :data:`DEFAULT_SECRET_KEY`)."""
    return Credentials(DEFAULT_ACCESS_KEY, SecretStr(DEFAULT_SECRET_KEY))


def mask_secret(secret: str) -> str:
    """The first two characters of a secret and a fixed run of asterisks (length not revealed)."""
    return f"{secret[:2]}********"


@dataclass(frozen=True)
class SandboxConfig:
    """Everything a sandbox server is started with.

    Attributes:
        host, port: where to listen (port 0 picks a free one).
        credentials: the one key pair whose signatures are accepted.
        region, service: the signing scope a request's credential must name (spec D2).
        behaviour: the initial run-time behaviour.
        faults: initial faults, as a ``POST /_sandbox/faults`` body.
        seed: seeds every random choice (sids, error rates, jitter); ``None`` for a random seed.
        request_log_size: requests kept in the request log.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    credentials: Credentials = field(default_factory=default_credentials)
    region: str = DEFAULT_REGION
    service: str = DEFAULT_SERVICE
    behaviour: Behaviour = field(default_factory=Behaviour)
    faults: dict[str, object] = field(default_factory=dict)
    seed: int | None = None
    request_log_size: int = DEFAULT_REQUEST_LOG_SIZE

    @property
    def uses_default_credentials(self) -> bool:
        """True when the key pair is the documented default one."""
        return (
            self.credentials.access_key == DEFAULT_ACCESS_KEY
            and self.credentials.secret_key.get_secret_value() == DEFAULT_SECRET_KEY
        )
