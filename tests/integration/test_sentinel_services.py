"""The asyncio producer, the HTTP API, the metrics exporter and Flower on a ``sentinel://`` URL.

One local topology for the module (``orchestrator.stack.sentinel``: a primary, one replica and
three ``redis-server --sentinel`` with quorum 2, on free ports of 127.0.0.1), and the usual
queue stack (sandbox, worker) pointed at it through ``redis_url``. The last test kills the
primary: it runs last in the module.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
import requests
from redis import Redis

from orchestrator import AsyncRecorder
from orchestrator.settings import Settings
from orchestrator.stack.redis_server import delete_prefix, free_port
from orchestrator.stack.sentinel import SentinelTopology
from orchestrator.state import Keys, Phase, StateUnavailableError
from orchestrator.state.connection import RedisOptions, close_async, connect, connect_async
from orchestrator.state.replication import AsyncReplicaAcks, ReplicaAcks
from orchestrator.tasking.app import configured_app
from tests.integration.ops_processes import (
    child_env,
    scrape,
    spawn,
    spawn_metrics,
    value,
    wait_until,
)
from tests.integration.worker_fixture import QueueStack, start_body

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        shutil.which("redis-server") is None, reason="needs redis-server (with --sentinel)"
    ),
]

T = TypeVar("T")
TOKEN = "tok-3f9b-sentinel-api"
LOGIN = ("ops", "flower-sentinel-pw")


@pytest.fixture(scope="module")
def redis_url(topology: SentinelTopology) -> str:
    """Every fixture of the module (the queue stack, its worker, the key clean-up) on Sentinels."""
    return topology.url


def _node(topology: SentinelTopology, *, primary: bool) -> Redis:
    """A plain client of the primary, or of a replica."""
    current = topology.primary_port()
    port = next(p for p in topology.data_ports if (p == current) == primary)
    return connect(topology.node_url(port))


def _run(settings: Settings, scenario: Callable[[AsyncRecorder], Awaitable[T]]) -> T:
    """``scenario`` with an AsyncRecorder of ``settings``, in a fresh event loop."""

    async def main() -> T:
        recorder = AsyncRecorder(settings)
        try:
            return await scenario(recorder)
        finally:
            await recorder.close()

    return asyncio.run(main())


def _waits(client: Redis) -> int:
    """``WAIT`` commands the server has run."""
    stats = cast("dict[str, Any]", client.info("commandstats"))
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))


@contextmanager
def _black_hole() -> Iterator[int]:
    """A port whose connection attempts time out, as a Sentinel's host that is down does: a
    listener that never accepts, with its queue full (Linux then drops further SYNs)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    queued: list[socket.socket] = []
    try:
        for _ in range(2):
            client = socket.socket()
            client.settimeout(0.2)
            with suppress(OSError):
                client.connect(("127.0.0.1", port))
            queued.append(client)
        yield port
    finally:
        for client in queued:
            client.close()
        listener.close()


def test_clients_skip_a_sentinel_whose_host_is_down_at_once(topology: SentinelTopology) -> None:
    options = RedisOptions().with_timeouts(0.3)

    async def ping_async(url: str) -> bool:
        client = connect_async(url, options)
        try:
            return bool(await client.ping())  # type: ignore[misc]
        finally:
            await close_async(client)

    # Given a URL whose first Sentinel's host does not answer (connecting times out)
    with _black_hole() as port:
        url = f"sentinel://127.0.0.1:{port};{topology.url}"
        # When the sync and the asyncio client first connect
        began = time.monotonic()
        client = connect(url, options)
        try:
            assert client.ping()
        finally:
            client.close()
        assert asyncio.run(ping_async(url))
        took_s = time.monotonic() - began
    # Then each waited one connect timeout and asked the next Sentinel: no retry with redis-py's
    # default backoff (about 6 s each here)
    assert took_s < 2.0


def test_celery_skips_a_sentinel_whose_host_is_down_at_once_and_flower_still_works(
    topology: SentinelTopology, key_prefix: str
) -> None:
    # Given the Celery configuration of workers and beat (broker and result backend) on a URL
    # whose first Sentinel's host does not answer
    with _black_hole() as port:
        settings = Settings(
            redis_url=f"sentinel://127.0.0.1:{port};{topology.url}",
            redis_prefix=key_prefix,
            redis_connect_timeout_s=0.3,
            redis_socket_timeout_s=1.5,
        )
        app = configured_app(settings)
        # When the broker's and the result backend's first connections find the primary
        began = time.monotonic()
        with app.connection_for_write() as connection:
            assert connection.default_channel.client.ping()
        backend = cast("Any", app.backend)
        assert backend.client.ping()
        took_s = time.monotonic() - began
    # Then each waited one connect timeout and asked the next Sentinel (redis-py's default
    # retry of the Sentinels' clients took about 6 s each)
    assert took_s < 2.0
    assert app.conf.broker_transport_options["sentinel_kwargs"]["retry"] is None

    # and Flower's asyncio broker client takes the same transport options
    from flower.utils.broker import Broker

    plain = configured_app(settings.model_copy(update={"redis_url": topology.url}))

    with plain.connection() as connection:  # the URL Flower gives it (flower.app)
        uri = connection.as_uri(include_password=True)

    async def lengths() -> Any:
        broker = Broker(uri, broker_options=plain.conf.broker_transport_options)
        try:
            return await broker.queues(["krtc"])  # closes its client of the primary
        finally:
            for sentinel in broker.redis.connection_pool.sentinel_manager.sentinels:
                await sentinel.aclose()

    assert asyncio.run(lengths()) == [{"name": "krtc", "messages": 0}]


def test_async_recorder_starts_and_stops_through_sentinel_waiting_for_the_replica(
    queue_stack: QueueStack, topology: SentinelTopology, key_prefix: str
) -> None:
    queue_stack.start_worker()
    keys = Keys(key_prefix)
    primary, replica = _node(topology, primary=True), _node(topology, primary=False)
    waits_before = _waits(primary)

    async def scenario(recorder: AsyncRecorder) -> tuple[Any, ...]:
        # The create script pushes the start message itself (the broker is the same primary)
        outbox = recorder.starts.outbox
        created = await recorder.start_once(start_body("ha-aio-1"))
        # start() returned after WAIT: the replica has the session and its queued start
        on_replica = replica.hget(keys.session(created.session.id), "desired")
        recording = await recorder.wait(created.session.id, "recording", timeout=20)
        await recorder.stop(created.session.id)
        stop_on_replica = replica.hget(keys.session(created.session.id), "desired")
        ended = await recorder.wait(created.session.id, Phase.STOPPED, timeout=20)
        return outbox, created, on_replica, recording, stop_on_replica, ended

    outbox, created, on_replica, recording, stop_on_replica, ended = _run(
        queue_stack.settings, scenario
    )
    assert outbox is True
    assert created.created and on_replica == "recording"
    assert recording.sid and stop_on_replica == "stopped"
    assert ended.phase == Phase.STOPPED
    # WAITs: the create and the stop request (AsyncRecorder), the sid (the worker's start job)
    assert _waits(primary) - waits_before >= 3
    assert queue_stack.sandbox.recordings(cname="ha-aio-1", active=True) == []


def test_writes_the_replicas_miss_are_logged_marked_counted_and_exported(
    queue_stack: QueueStack,
    topology: SentinelTopology,
    key_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a metrics exporter on the Sentinel URL, and producers that want two replicas'
    # acknowledgement (there is one) within 50 ms
    metrics, metrics_url = spawn_metrics(child_env(queue_stack.env), tmp_path)
    keys = Keys(key_prefix)
    primary = _node(topology, primary=True)
    strict = queue_stack.settings.model_copy(
        update={"redis_min_replicas_ack": 2, "redis_ack_timeout_ms": 50}
    )
    try:
        metrics.wait_for("metrics: serving", 30)

        async def scenario(recorder: AsyncRecorder) -> tuple[str, int]:
            created = await recorder.start_once(start_body("ha-unsure-1"))
            await recorder.stop(created.session.id)
            await recorder.start(start_body("ha-unsure-2"))  # left pending: no worker
            # By default one acknowledgement is wanted (the primary has a replica), and given
            async_acks = AsyncReplicaAcks(recorder.store.redis, keys)
            assert await async_acks.confirm("create", [created.session.id])
            return created.session.id, await async_acks.needed()

        # When the async recorder creates a session and requests its stop
        with caplog.at_level(logging.WARNING, logger="orchestrator.state"):
            session_id, needed = _run(strict, scenario)
            # and the sync acknowledgements wait for a sid with the same settings
            sync_acks = ReplicaAcks.from_settings(primary, keys, strict)
            assert sync_acks.confirm("sid", [session_id]) is False
        assert needed == 1 and ReplicaAcks(primary, keys).needed() == 1

        # Then both calls succeeded, and each write was logged, marked unsure and counted
        warned = [r.getMessage() for r in caplog.records]
        for kind in ("create", "stop", "sid"):
            assert any(
                m.startswith(f"{kind} of session(s) {session_id}: 1 of 2 replica(s)")
                and "within 50 ms" in m
                for m in warned
            ), warned
        assert primary.zscore(keys.ha_unsure(), session_id) is not None
        counters = primary.hgetall(keys.metrics_redis_ha())
        assert counters == {
            "unreplicated|create": "2",
            "unreplicated|stop": "1",
            "unreplicated|sid": "1",
        }

        # and `krtc-rec metrics` on the Sentinel URL exports them with the sessions
        samples = scrape(metrics_url)
        exported = {
            kind: value(samples, "krtc_redis_unreplicated_writes_total", kind=kind)
            for kind in ("create", "stop", "sid")
        }
        assert exported == {"create": 2, "stop": 1, "sid": 1}
        assert value(samples, "krtc_sessions", phase="pending") == 1
    finally:
        metrics.stop()
    assert "Traceback" not in metrics.log()


def test_the_http_api_and_flower_work_on_a_sentinel_url(
    queue_stack: QueueStack, tmp_path: Path
) -> None:
    # Given `krtc-rec serve` and `krtc-rec flower` on the Sentinel URL, and no worker yet
    api_port, flower_port = free_port(), free_port()
    # (starts as Celery messages, which Flower counts: the start lane is not a Celery queue)
    env = child_env(
        {
            **queue_stack.env,
            "KRTC_API_TOKENS": TOKEN,
            "FLOWER_BASIC_AUTH": ":".join(LOGIN),
            "KRTC_START_LANE": "false",
        }
    )
    serve = spawn("serve", ["serve", "--port", str(api_port)], env, tmp_path)
    flower = spawn(
        "flower",
        ["flower", "--port", str(flower_port), "--address", "127.0.0.1"],
        env,
        tmp_path,
    )
    api, dashboard = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{flower_port}"

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return requests.request(method, api + path, headers=headers, timeout=10, **kwargs)

    def flower_get(path: str) -> Any:
        response = requests.get(dashboard + path, auth=LOGIN, timeout=15)
        response.raise_for_status()
        return response.json()

    def api_up() -> bool:
        try:
            return requests.get(api + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return serve.process.poll() is not None

    try:
        wait_until(api_up, 30, "krtc-rec serve")
        assert serve.process.poll() is None, serve.log()
        flower.wait_for("Visit me at", 30)

        # When a web app starts a recording through the API
        first = call("POST", "/v1/recordings", json=start_body("ha-http-1"))
        assert first.status_code == 202, first.text
        session_id = first.json()["id"]
        # Then Flower's own broker client (Sentinel) counts its queued start
        queues = flower_get("/api/queues/length")["active_queues"]
        assert {"name": "krtc", "messages": 1} in queues, queues

        # When a worker (sending task events from the start) runs it, and the web app stops it
        queue_stack.start_worker(KRTC_TASK_EVENTS="true")

        def record_and_stop(session_id: str) -> None:
            queue_stack.wait(session_id, Phase.RECORDING, timeout=20)
            assert call("GET", "/readyz").status_code == 200
            read = call("GET", f"/v1/recordings/{session_id}")
            assert read.status_code == 200 and read.json()["sid"]
            stop = call("POST", f"/v1/recordings/{session_id}/stop")
            assert stop.status_code == 202, stop.text
            queue_stack.wait(session_id, Phase.STOPPED, timeout=20)

        record_and_stop(session_id)

        # Then Flower follows the worker over the Sentinel broker: its events and its replies
        def both_succeeded(session_id: str) -> bool:
            tasks = flower_get("/api/tasks").values()
            states = {(t["name"], t["state"]) for t in tasks if session_id in str(t["args"])}
            return {("krtc.start", "SUCCESS"), ("krtc.stop", "SUCCESS")} <= states

        # (Events are not kept: on a loaded machine Flower's receiver may connect after the
        # first tasks ran, so a later round is accepted, as in test_flower.)
        for attempt in range(3):
            try:
                wait_until(partial(both_succeeded, session_id), 10, "Flower to see the tasks")
                break
            except AssertionError:
                if attempt == 2:
                    raise AssertionError(flower.log()) from None
            again = call("POST", "/v1/recordings", json=start_body(f"ha-http-{attempt + 2}"))
            session_id = again.json()["id"]
            record_and_stop(session_id)
        workers = flower_get("/api/workers?refresh=1")
        assert workers and all(w.get("stats") for w in workers.values()), workers
    finally:
        serve.stop()
        flower.stop()
    for child in (serve, flower):
        assert "Traceback" not in child.log(), child.log()


def test_async_recorder_raises_during_a_failover_and_recovers_without_a_restart(
    queue_stack: QueueStack, topology: SentinelTopology, key_prefix: str
) -> None:
    # (Kills the primary: keep this test last in the module.)

    async def scenario(recorder: AsyncRecorder) -> tuple[Any, ...]:
        # Given a session created (and acknowledged by the replica) just before the kill
        before = await recorder.start_once(start_body("ha-failover-1"))
        old = topology.kill_primary()
        # When the producer is called while Sentinel has not promoted the replica yet
        with pytest.raises(StateUnavailableError) as caught:
            await recorder.start_once(start_body("ha-failover-2"))
        # Then it raises StateUnavailableError, and the same recorder works once the new
        # primary is known, without a restart
        deadline = time.monotonic() + 20
        while True:
            try:
                after = await recorder.start_once(start_body("ha-failover-2"))
                break
            except StateUnavailableError:
                assert time.monotonic() < deadline, "no start accepted within 20 s"
                await asyncio.sleep(0.1)
        kept = await recorder.get(before.session.id)
        stopped = await recorder.stop(before.session.id)
        return old, str(caught.value), kept, after, stopped

    old, error, kept, after, stopped = _run(queue_stack.settings, scenario)
    assert "the primary 'mymaster' (Sentinel) is unreachable" in error
    assert topology.primary_port() != old
    assert kept.id and after.created
    assert stopped.desired.value == "stopped"
    assert delete_prefix(queue_stack.settings.redis_url, key_prefix) > 0
