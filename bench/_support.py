"""What the benches share: Redis, the sandbox and workers in their own processes, and clean-up.

Import it as ``bench._support`` once the project's root is on ``sys.path`` (each bench puts it
there itself).

* :func:`redis_for_bench`: ``REDIS_URL`` if set, else 127.0.0.1:6379 if it answers, else an
  embedded ``redis-server`` (which the caller stops).
* :func:`redis_options` and :func:`connect_redis`: a client of any ``REDIS_URL`` the project
  takes (``sentinel://`` included, with ``KRTC_REDIS_MASTER_NAME`` and the other
  ``KRTC_REDIS_*`` settings of the environment), built by
  :func:`orchestrator.state.connection.connect` like every client of the project.
* :func:`spawn`: ``python ARGV`` from the repository's root in its own process group, its
  output in a log file (not waited for: e.g. ``krtc-rec beat``).
* :func:`start_sandbox`: ``krtc-rec sandbox`` in its own process group, with the benches' key
  pair (:data:`ACCESS_KEY`, :data:`SECRET_KEY`); :func:`bench_settings`: the settings that go
  with it.
* :func:`start_worker`: ``krtc-rec worker`` (or any ``python -m`` command) in its own process
  group, waited for until it consumes; :func:`start_workers`: several (threads pool).
* :func:`delete_prefix`: delete every key under a bench's own prefix (Celery's included: the
  workers' broker keys live under ``{prefix}:celery:``).
* :func:`clean_up`: stop the children, delete the keys, stop the embedded Redis.
* :func:`percentile`: the nearest-rank quantile of a list of figures.
* :func:`tree_cpu_s`: the CPU seconds used so far by processes and their children (psutil).
* :func:`terminate_on_sigterm`: a SIGTERM unwinds like a Ctrl-C, so ``finally`` blocks still
  stop the children and delete the keys.

Children are started with ``start_new_session``: a Ctrl-C in the terminal reaches only the
bench, which then stops them with SIGTERM (SIGKILL after a grace period).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import SecretStr
from redis import Redis

from orchestrator.settings import DEFAULT_REDIS_URL, Settings, load_settings, settings_env
from orchestrator.stack.local import ChildProcess
from orchestrator.stack.redis_server import EmbeddedRedis, delete_prefix, redis_answers
from orchestrator.state.connection import RedisOptions, connect

__all__ = [
    "ROOT",
    "ACCESS_KEY",
    "SECRET_KEY",
    "bench_settings",
    "start_body",
    "redis_for_bench",
    "redis_options",
    "connect_redis",
    "spawn",
    "start_sandbox",
    "start_worker",
    "start_workers",
    "delete_prefix",
    "clean_up",
    "percentile",
    "tree_cpu_s",
    "terminate_on_sigterm",
]

ROOT = Path(__file__).resolve().parent.parent
#: The key pair of the sandboxes the benches start (only they and the bench know it).
ACCESS_KEY = "AKBENCH"
SECRET_KEY = "bench-secret-not-printed"


def start_body(cname: str, *, app_id: str = "bench-app", max_idle_s: int = 30) -> dict[str, Any]:
    """A valid start request (wire form) for channel ``cname``, recorder uid ``rec``."""
    return {
        "appId": app_id,
        "cname": cname,
        "uid": "rec",
        "mode": "mix",
        "clientRequest": {
            "recordingConfig": {"maxIdleTime": max_idle_s},
            "recordingFileConfig": {"avFileType": ["hls"]},
        },
    }


def redis_for_bench() -> tuple[str, EmbeddedRedis | None]:
    """The Redis URL to use, and the embedded server started for it (``None`` if none was)."""
    url = os.environ.get("REDIS_URL")
    if url:
        return url, None
    if redis_answers(DEFAULT_REDIS_URL):
        return DEFAULT_REDIS_URL, None
    embedded = EmbeddedRedis()
    return embedded.start(), embedded


def redis_options(**overrides: Any) -> RedisOptions:
    """The Redis options of the environment's settings (``KRTC_REDIS_MASTER_NAME``,
    ``KRTC_REDIS_SENTINEL_PASSWORD``, the timeouts), with ``overrides`` (``RedisOptions``
    fields) on top."""
    return replace(RedisOptions.from_settings(load_settings()), **overrides)


def connect_redis(
    url: str, options: RedisOptions | None = None, *, decode_responses: bool = True, **kwargs: Any
) -> Redis:
    """A client of ``url``, a ``REDIS_URL`` of the user's (Sentinels included), with
    ``options`` (default: :func:`redis_options`) and more ``redis.Redis`` arguments."""
    return connect(url, options or redis_options(), decode_responses=decode_responses, **kwargs)


def spawn(
    name: str,
    argv: list[str],
    env: dict[str, str],
    log_path: Path,
    *,
    wrapper: Sequence[str] = (),
) -> ChildProcess:
    """``python ARGV`` from the repository's root, in its own process group; not waited for.

    Args:
        name: names the child (in its errors).
        argv: what follows ``python``, e.g. ``["-m", "orchestrator.cli", "beat"]``.
        env: its whole environment.
        log_path: where its output (stdout and stderr) goes.
        wrapper: a command to run it under, e.g. ``["faketime", "-f", "+3s"]``.
    """
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*wrapper, sys.executable, *argv],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ChildProcess(name, process, log_path)


def start_sandbox(
    workdir: Path,
    *,
    latency_ms: float | None = None,
    retention_s: float = 60,
    extra: Sequence[str] = (),
) -> tuple[ChildProcess, str]:
    """``krtc-rec sandbox`` in its own process group; returns it and its API endpoint.

    Recordings start and stop at once (0 s durations); ``latency_ms`` (if given) is injected on
    every call from the start, and comes back after a ``/_sandbox/reset``. ``extra`` flags come
    last (a flag given again there wins, e.g. ``["--start-duration", "0.3"]``).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRTC_")}
    env |= {"KRTC_ACCESS_KEY": ACCESS_KEY, "KRTC_SECRET_KEY": SECRET_KEY, "PYTHONUNBUFFERED": "1"}
    argv = ["-m", "orchestrator.cli", "sandbox", "--port", "0"]
    if latency_ms is not None:
        argv += ["--latency-ms", f"{latency_ms:g}"]
    argv += ["--start-duration", "0", "--stop-duration", "0", "--retention", f"{retention_s:g}"]
    argv += ["--log-level", "warning", *extra]
    child = spawn("sandbox", argv, env, workdir / "sandbox.log")
    try:
        child.wait_for("listening on ", timeout_s=30)
    except BaseException:
        child.stop()
        raise
    line = next(x for x in child.log().splitlines() if "listening on " in x)
    return child, line.split("listening on ", 1)[1].strip()


def bench_settings(endpoint: str, redis_url: str, prefix: str, **overrides: Any) -> Settings:
    """Settings for a :func:`start_sandbox` sandbox, a Redis and a key prefix, and overrides."""
    return Settings(
        endpoint=endpoint,
        access_key=ACCESS_KEY,
        secret_key=SecretStr(SECRET_KEY),
        redis_url=redis_url,
        redis_prefix=prefix,
        **overrides,
    )


def start_worker(
    name: str,
    settings: Settings,
    workdir: Path,
    argv: list[str] | None = None,
    *,
    timeout_s: float = 60.0,
) -> ChildProcess:
    """A worker for ``settings`` in its own process group, once it is ready to consume.

    Args:
        name: names the child and its log file (``worker-NAME.log`` in ``workdir``).
        settings: passed to the worker through its environment.
        workdir: where the log goes.
        argv: what follows ``python``; default ``-m orchestrator.cli worker``.
        timeout_s: how long it may take to print ``ready.``.
    """
    child = spawn(
        name,
        argv or ["-m", "orchestrator.cli", "worker"],
        {**os.environ, **settings_env(settings)},
        workdir / f"worker-{name.replace(' ', '-')}.log",
    )
    try:
        child.wait_for("ready.", timeout_s=timeout_s)
    except BaseException:
        child.stop()
        raise
    return child


def start_workers(
    count: int,
    settings: Settings,
    workdir: Path,
    children: list[ChildProcess],
    *,
    concurrency: int,
    hostname: str,
) -> None:
    """``count`` ``krtc-rec worker`` processes (threads pool), one after the other.

    Each is appended to ``children`` once it is ready, so that the caller's clean-up stops the
    ones already started if a later one fails. Worker ``n`` is named ``n`` (log
    ``worker-n.log``) and has the Celery node name ``{hostname}-{n}@%h``.
    """
    for n in range(count):
        argv = ["-m", "orchestrator.cli", "worker", f"--concurrency={concurrency}"]
        argv += [f"--hostname={hostname}-{n}@%h", "--loglevel=INFO"]
        children.append(start_worker(f"{n}", settings, workdir, argv))


def clean_up(
    children: list[ChildProcess],
    url: str,
    prefixes: list[str],
    embedded: EmbeddedRedis | None,
    options: RedisOptions | None = None,
) -> None:
    """Stop ``children`` (the last started first), delete the keys under ``prefixes`` from
    ``url`` (:func:`delete_prefix`, with ``options``, default :func:`redis_options`: a
    Sentinel URL's primary name), then stop ``embedded`` (if any) even if that failed."""
    try:
        for child in reversed(children):
            child.stop()
        for prefix in prefixes:
            delete_prefix(url, prefix, options or redis_options())
    finally:
        if embedded is not None:
            embedded.stop()


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by the nearest rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
    return ordered[index]


def tree_cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of the processes ``pids`` and their live descendants.

    Needs psutil (the ``bench`` extra); imported here so that the benches that do not measure
    CPU run without it.
    """
    import psutil

    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def terminate_on_sigterm() -> None:
    """Turn SIGTERM into :class:`KeyboardInterrupt`, so clean-up runs as on Ctrl-C."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
