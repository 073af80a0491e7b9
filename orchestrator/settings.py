"""Configuration, read once from the environment (prefix ``KRTC_``; ``REDIS_URL`` as is).

Settings objects are built at the edges (CLI, Celery app, producer factory) and passed into
constructors; nothing deeper in the code reads ``os.environ``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field, HttpUrl, SecretStr, UrlConstraints, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.errors import ConfigError

__all__ = [
    "DEFAULT_RECONCILE_INTERVAL_S",
    "DEFAULT_RECONCILE_BATCH_SIZE",
    "DEFAULT_RECONCILE_BATCH_CONCURRENCY",
    "DEFAULT_STUCK_AFTER_S",
    "DEFAULT_SCHEDULE_TICK_INTERVAL_S",
    "DEFAULT_SCHEDULE_LEASE_S",
    "settings_env",
    "DEFAULT_ENDPOINT",
    "DEFAULT_REGION",
    "DEFAULT_SERVICE",
    "DEFAULT_CONNECT_TIMEOUT_S",
    "DEFAULT_READ_TIMEOUT_S",
    "DEFAULT_REDIS_URL",
    "DEFAULT_REDIS_CONNECT_TIMEOUT_S",
    "DEFAULT_REDIS_SOCKET_TIMEOUT_S",
    "DEFAULT_REDIS_HEALTH_CHECK_INTERVAL_S",
    "DEFAULT_REDIS_READ_RETRIES",
    "DEFAULT_REDIS_MASTER_NAME",
    "DEFAULT_REDIS_ACK_TIMEOUT_MS",
    "DEFAULT_HTTP_POOL_SIZE",
    "DEFAULT_ALERT_REMIND_AFTER_S",
    "DEFAULT_SID_WAIT_S",
    "DEFAULT_STOP_CONFIRM_S",
    "DEFAULT_RATE_LIMIT_BURST",
    "DEFAULT_SESSION_RETENTION_S",
    "DEFAULT_DEAD_LETTER_RETENTION_S",
    "DEFAULT_ALERT_RETENTION_S",
    "DEFAULT_SCHEDULE_RETENTION_S",
    "DEFAULT_GC_INTERVAL_S",
    "DEFAULT_EVENTS_RETRY_FOR_S",
    "Credentials",
    "Settings",
    "load_settings",
]

#: spec §1, D1: https by default; plain http only when configured explicitly.
DEFAULT_ENDPOINT = "https://krtc.api.ksyun.com/cloud"
#: spec D2
DEFAULT_REGION = "cn-beijing-6"
DEFAULT_SERVICE = "krtc"
DEFAULT_CONNECT_TIMEOUT_S = 3.05
DEFAULT_READ_TIMEOUT_S = 10.0
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: Connections kept open to the API per process (one per concurrent call).
DEFAULT_HTTP_POOL_SIZE = 64
DEFAULT_REDIS_PREFIX = "krtc"
#: Seconds to open a TCP connection to Redis before giving up.
DEFAULT_REDIS_CONNECT_TIMEOUT_S = 2.0
#: Seconds to wait for one answer of Redis (every command is short; none blocks for long).
DEFAULT_REDIS_SOCKET_TIMEOUT_S = 2.0
#: Seconds a pooled Redis connection may sit idle before it is checked with a PING (0: never).
DEFAULT_REDIS_HEALTH_CHECK_INTERVAL_S = 15
#: Times a read of the session store is sent again after a connection error (never a write).
DEFAULT_REDIS_READ_RETRIES = 2
#: The primary Sentinel monitors, when REDIS_URL is a ``sentinel://`` URL.
DEFAULT_REDIS_MASTER_NAME = "mymaster"
#: Milliseconds a write the caller relies on waits for its replicas' acknowledgement (WAIT).
DEFAULT_REDIS_ACK_TIMEOUT_MS = 500
#: Seconds before the broker hands an unacknowledged task to another worker (after a crash).
#: Must exceed the longest task run plus the largest retry delay (checked at start-up).
DEFAULT_VISIBILITY_TIMEOUT_S = 300
DEFAULT_RETRY_BACKOFF_BASE_S = 1.0
DEFAULT_RETRY_BACKOFF_MAX_S = 60.0
DEFAULT_START_MAX_ATTEMPTS = 6
DEFAULT_UPDATE_MAX_ATTEMPTS = 5
#: spec D13: a stop keeps trying far longer than a start (about 3 hours at the maximum backoff).
DEFAULT_STOP_MAX_ATTEMPTS = 200
#: Seconds an update or a stop waits for the sid of a start still under way, counted on Redis'
#: clock from the job's first look (a start's whole budget takes about two minutes at most).
DEFAULT_SID_WAIT_S = 300.0
#: Seconds a stop job queries for the end (status 8) after the server accepted the stop; then
#: it raises ``stop_unconfirmed`` and leaves the session to the reconciler.
DEFAULT_STOP_CONFIRM_S = 300.0
DEFAULT_WORKER_CONCURRENCY = 32
#: Calls per appId that may go at once before the rate limit spaces them out.
DEFAULT_RATE_LIMIT_BURST = 5
#: Seconds between reconcile rounds (every active session with a sid is queried once a round).
DEFAULT_RECONCILE_INTERVAL_S = 30.0
#: Sessions queried per reconcile task (a round fans out in batches over the workers).
DEFAULT_RECONCILE_BATCH_SIZE = 50
#: Queries a reconcile task keeps in flight at once over its batch.
DEFAULT_RECONCILE_BATCH_CONCURRENCY = 2
#: Seconds below status 5 (or stopping) after which a recording counts as stuck.
DEFAULT_STUCK_AFTER_S = 300.0
#: Seconds between dispatch ticks of scheduled recordings (starts and stops are sent within a
#: tick of their time).
DEFAULT_SCHEDULE_TICK_INTERVAL_S = 1.0
#: Seconds a tick holds a claimed scheduled start or stop before another tick may take it over.
DEFAULT_SCHEDULE_LEASE_S = 30.0
#: Seconds between reminders of an alert whose condition persists; None: alert once only.
DEFAULT_ALERT_REMIND_AFTER_S: float | None = None
#: Retention (orchestrator.retention; Redis runs with noeviction, so nothing may only grow).
#: Seconds a finished session (stopped, failed) is kept after it finished, with its history;
#: an idempotency key is remembered this long after the start it made.
DEFAULT_SESSION_RETENTION_S = 30 * 86400
#: Seconds a dead letter is kept after its latest failure.
DEFAULT_DEAD_LETTER_RETENTION_S = 14 * 86400
#: Seconds an alert is kept (the recent list, and the markers of sessions that are gone).
DEFAULT_ALERT_RETENTION_S = 30 * 86400
#: Seconds past occurrences, and schedules that ended or were cancelled, are kept.
DEFAULT_SCHEDULE_RETENTION_S = 30 * 86400
#: Seconds between two runs of the collector (beat's ``krtc.gc``).
DEFAULT_GC_INTERVAL_S = 300
#: Seconds a lifecycle event is retried (from when it happened) before it becomes a dead letter.
DEFAULT_EVENTS_RETRY_FOR_S = 86400

EndpointUrl = Annotated[HttpUrl, UrlConstraints(allowed_schemes=["https", "http"])]


class Credentials:
    """An API key pair. The secret is a :class:`SecretStr` and never shows in ``repr``."""

    __slots__ = ("access_key", "secret_key")

    def __init__(self, access_key: str, secret_key: SecretStr) -> None:
        self.access_key = access_key
        self.secret_key = secret_key

    def __repr__(self) -> str:
        return f"Credentials(access_key={self.access_key!r}, secret_key='**********')"


class Settings(BaseSettings):
    """Every setting of the orchestrator, with its environment variable and default."""

    model_config = SettingsConfigDict(
        env_prefix="KRTC_", extra="ignore", frozen=True, env_ignore_empty=True
    )

    endpoint: EndpointUrl = Field(
        default=HttpUrl(DEFAULT_ENDPOINT),
        description="KRTC cloud-recording API URL (KRTC_ENDPOINT)",
    )
    access_key: str | None = Field(default=None, description="API access key id (KRTC_ACCESS_KEY)")
    secret_key: SecretStr | None = Field(
        default=None, description="API secret key (KRTC_SECRET_KEY); never printed"
    )
    region: str = Field(default=DEFAULT_REGION, min_length=1, description="signing region")
    service: str = Field(default=DEFAULT_SERVICE, min_length=1, description="signing service")
    connect_timeout_s: float = Field(default=DEFAULT_CONNECT_TIMEOUT_S, gt=0)
    read_timeout_s: float = Field(default=DEFAULT_READ_TIMEOUT_S, gt=0)
    http_pool_size: int = Field(default=DEFAULT_HTTP_POOL_SIZE, ge=1)
    redis_prefix: str = Field(default=DEFAULT_REDIS_PREFIX, min_length=1)
    #: Redis clients (orchestrator.state.connection): every process's, the broker's included.
    redis_connect_timeout_s: float = Field(default=DEFAULT_REDIS_CONNECT_TIMEOUT_S, gt=0, le=60)
    redis_socket_timeout_s: float = Field(default=DEFAULT_REDIS_SOCKET_TIMEOUT_S, gt=0, le=60)
    redis_health_check_interval_s: int = Field(default=DEFAULT_REDIS_HEALTH_CHECK_INTERVAL_S, ge=0)
    redis_read_retries: int = Field(default=DEFAULT_REDIS_READ_RETRIES, ge=0, le=10)
    #: High availability (REDIS_URL ``sentinel://...``; docs/operations.md).
    redis_master_name: str = Field(
        default=DEFAULT_REDIS_MASTER_NAME,
        min_length=1,
        description="the primary Sentinel monitors (KRTC_REDIS_MASTER_NAME)",
    )
    redis_sentinel_password: SecretStr | None = Field(
        default=None,
        description="the Sentinels' password if it differs from the data nodes'; never printed",
    )
    redis_min_replicas_ack: int | None = Field(
        default=None,
        ge=0,
        description="replicas that must acknowledge a relied-on write (unset: 1 when the "
        "primary has replicas, else 0)",
    )
    redis_ack_timeout_ms: int = Field(
        default=DEFAULT_REDIS_ACK_TIMEOUT_MS,
        ge=1,
        le=60_000,
        description="milliseconds a relied-on write waits for its replicas (WAIT)",
    )
    visibility_timeout: int = Field(default=DEFAULT_VISIBILITY_TIMEOUT_S, ge=5)
    #: Workers send Celery task events from the start (each costs Redis round trips per task).
    #: Off by default: Flower turns them on in the workers it watches (its ``enable_events``).
    task_events: bool = False
    #: Starts wait in the start lane (Redis structures the workers take them from outside
    #: Celery: orchestrator.state.lane) instead of as ``krtc.start`` Celery messages.
    start_lane: bool = True
    retry_backoff_base: float = Field(default=DEFAULT_RETRY_BACKOFF_BASE_S, gt=0)
    retry_backoff_max: float = Field(default=DEFAULT_RETRY_BACKOFF_MAX_S, gt=0)
    start_max_attempts: int = Field(default=DEFAULT_START_MAX_ATTEMPTS, ge=1)
    update_max_attempts: int = Field(default=DEFAULT_UPDATE_MAX_ATTEMPTS, ge=1)
    stop_max_attempts: int = Field(default=DEFAULT_STOP_MAX_ATTEMPTS, ge=1)
    #: Attempt budgets belong to one run of a job (one task message and its retries); these
    #: two bound a run's waits in time, on Redis' clock.
    sid_wait_s: float = Field(
        default=DEFAULT_SID_WAIT_S,
        gt=0,
        description="seconds an update or stop waits for a start's sid (KRTC_SID_WAIT_S)",
    )
    stop_confirm_s: float = Field(
        default=DEFAULT_STOP_CONFIRM_S,
        gt=0,
        description="seconds a stop job waits for status 8 after the stop (KRTC_STOP_CONFIRM_S)",
    )
    #: A JSON file of named storage configs: {"NAME": {"vendor": 4, ..., "secretKey": "..."}}.
    storage_profiles: str | None = None
    #: API calls per second allowed per appId across all workers; 0 turns the limit off.
    rate_limit_per_app: float = Field(default=0.0, ge=0)
    #: Calls per appId that may go at once (the bucket's size) when the rate limit is on.
    rate_limit_burst: int = Field(default=DEFAULT_RATE_LIMIT_BURST, ge=1)
    worker_concurrency: int = Field(default=DEFAULT_WORKER_CONCURRENCY, ge=1)
    reconcile_interval: float = Field(default=DEFAULT_RECONCILE_INTERVAL_S, ge=1)
    reconcile_batch_size: int = Field(default=DEFAULT_RECONCILE_BATCH_SIZE, ge=1)
    reconcile_batch_concurrency: int = Field(default=DEFAULT_RECONCILE_BATCH_CONCURRENCY, ge=1)
    stuck_after: float = Field(default=DEFAULT_STUCK_AFTER_S, gt=0)
    #: Scheduled recordings (orchestrator.schedule): beat's dispatch tick, and the claim lease.
    schedule_tick_interval: float = Field(default=DEFAULT_SCHEDULE_TICK_INTERVAL_S, gt=0, le=60)
    schedule_lease: float = Field(default=DEFAULT_SCHEDULE_LEASE_S, ge=1)
    #: Default upper bound on a recording's length in seconds (None: no limit); a start's
    #: max_duration wins.
    max_duration: int | None = Field(default=None, ge=1)
    #: Alerts (orchestrator.alerts): the log sink is always on, each URL adds a sink. The URLs
    #: are secrets too (chat robots carry their access token in them), so never printed.
    alert_webhook_url: SecretStr | None = Field(
        default=None, description="generic JSON webhook for alerts (KRTC_ALERT_WEBHOOK_URL)"
    )
    alert_webhook_secret: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key signing the generic webhook's body; never printed",
    )
    alert_dingtalk_url: SecretStr | None = Field(default=None, description="DingTalk robot URL")
    alert_dingtalk_secret: SecretStr | None = Field(
        default=None, description="DingTalk robot signing secret (加签); never printed"
    )
    alert_feishu_url: SecretStr | None = Field(default=None, description="Feishu / Lark bot URL")
    alert_feishu_secret: SecretStr | None = Field(
        default=None, description="Feishu / Lark bot signature-verification secret; never printed"
    )
    alert_wecom_url: SecretStr | None = Field(default=None, description="WeCom group robot URL")
    alert_slack_url: SecretStr | None = Field(default=None, description="Slack incoming webhook")
    #: The HTTP API (``krtc-rec serve``): bearer tokens that may call it, comma-separated.
    api_tokens: SecretStr | None = Field(
        default=None,
        description="bearer tokens of the HTTP API, comma-separated; never printed",
    )
    #: Lifecycle webhooks (orchestrator.events): unset URL = no event is recorded at all.
    events_webhook_url: SecretStr | None = Field(
        default=None,
        description="receiver of lifecycle events, Standard Webhooks (KRTC_EVENTS_WEBHOOK_URL)",
    )
    events_webhook_secret: SecretStr | None = Field(
        default=None,
        description="whsec_<base64 key> signing every event (webhook-signature); never printed",
    )
    events_retry_for_s: int = Field(default=DEFAULT_EVENTS_RETRY_FOR_S, ge=1)
    alert_remind_after: float | None = Field(
        default=DEFAULT_ALERT_REMIND_AFTER_S,
        gt=0,
        description="seconds between reminders of a persisting alert; unset: alert once only",
    )
    session_retention_s: int = Field(
        default=DEFAULT_SESSION_RETENTION_S,
        ge=1,
        description="seconds a finished session is kept (KRTC_SESSION_RETENTION_S)",
    )
    dead_letter_retention_s: int = Field(default=DEFAULT_DEAD_LETTER_RETENTION_S, ge=1)
    alert_retention_s: int = Field(default=DEFAULT_ALERT_RETENTION_S, ge=1)
    schedule_retention_s: int = Field(default=DEFAULT_SCHEDULE_RETENTION_S, ge=1)
    gc_interval_s: int = Field(default=DEFAULT_GC_INTERVAL_S, ge=1)
    redis_url: str = Field(
        default=DEFAULT_REDIS_URL,
        validation_alias=AliasChoices("REDIS_URL", "redis_url"),
        description="Redis for the broker, results and state (REDIS_URL)",
    )

    @field_validator("access_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    def credentials(self) -> Credentials:
        """The API key pair.

        Raises:
            ConfigError: naming the environment variable that is missing.
        """
        missing = [
            name
            for name, value in (
                ("KRTC_ACCESS_KEY", self.access_key),
                ("KRTC_SECRET_KEY", self.secret_key and self.secret_key.get_secret_value()),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"missing API credentials: set {' and '.join(missing)} "
                "(the KRTC cloud-recording key pair of your Kingsoft Cloud account)"
            )
        assert self.access_key is not None and self.secret_key is not None
        return Credentials(self.access_key, self.secret_key)

    @property
    def endpoint_url(self) -> str:
        """The endpoint as a string."""
        return str(self.endpoint)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with ``overrides`` (e.g. CLI options) winning.

    Raises:
        ConfigError: naming each bad variable and what is wrong with it (secret values are never
            echoed).
    """
    from pydantic import ValidationError

    from orchestrator.krtc.validation import field_errors

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in field_errors(exc):
            name = error.path
            env = "REDIS_URL" if name == "redis_url" else f"KRTC_{name.upper()}"
            problems.append(f"{env}: {error.message.removeprefix(name).strip()}")
    raise ConfigError("invalid configuration: " + "; ".join(problems))


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that give a child process ``settings`` (secrets included).

    For starting workers and other processes of a local stack; never print the result.
    """
    env: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env["REDIS_URL" if name == "redis_url" else f"KRTC_{name.upper()}"] = str(value)
    return env
