"""The end-to-end demo: what ``krtc-rec demo`` (and ``make demo``) runs.

It starts a local stack (Redis if none answers, the sandbox, a worker, beat) and walks through
what the orchestrator does, printing each step: starts enqueued as a web app would, a duplicate
start deduped, a burst of server errors retried, a layout update, a start refused for good (a
dead letter), a meeting scheduled a few seconds ahead (started and stopped on time), an
abnormal exit caught by the reconciler and alerted once, stops; it ends with tables of the
sessions, the alerts and the dead letters, and stops everything it started.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.alerts.store import AlertStore
from orchestrator.producer import Recorder
from orchestrator.sandbox.config import Behaviour
from orchestrator.schedule import Scheduler
from orchestrator.stack.local import LocalStack
from orchestrator.state import DeadLetter, Phase, Session

__all__ = ["run_demo", "DEMO_APP_ID"]

DEMO_APP_ID = "demo-app"

Echo = Callable[[str], None]


def _body(cname: str, uid: str = "9001", mode: str = "mix") -> dict[str, Any]:
    return {
        "appId": DEMO_APP_ID,
        "cname": cname,
        "uid": uid,
        "mode": mode,
        "clientRequest": {
            "recordingConfig": {"maxIdleTime": 60, "streamTypes": 2},
            "recordingFileConfig": {"avFileType": ["hls"]},
            "storageConfig": {"profile": "demo"},
        },
    }


def run_demo(echo: Echo, *, keep: Callable[[LocalStack], None] | None = None) -> int:
    """Run the scenario; returns the exit code (0 when every step behaved as expected)."""
    workdir = Path(tempfile.mkdtemp(prefix="krtc-demo-"))
    stack = LocalStack(
        workdir,
        overrides={
            "retry_backoff_base": 0.2,
            "retry_backoff_max": 1.0,
            "reconcile_interval": 2.0,
        },
        sandbox_behaviour=Behaviour(start_duration_s=0.5, stop_duration_s=0.3),
    )
    problems: list[str] = []
    try:
        settings = stack.start()
        echo(f"redis   : {stack.redis_source} (keys under {stack.prefix}:)")
        echo(f"sandbox : {settings.endpoint_url}")
        stack.start_worker()
        echo("worker  : krtc-rec worker (threads pool)")
        stack.start_beat()
        echo("beat    : krtc-rec beat (reconcile every 2 s, scheduled meetings every 1 s)")
        recorder = Recorder(settings)
        _scenario(recorder, stack, echo, problems)
        _scheduled_meeting(Scheduler(settings), recorder, echo, problems)
        _abnormal_exit(recorder, stack, echo, problems)
        _stop_all(recorder, echo, problems)
        _report(recorder, echo)
        if keep is not None:
            keep(stack)
    finally:
        stack.stop()
        echo(f"stopped everything the demo started (logs in {workdir})")
    for problem in problems:
        echo(f"UNEXPECTED: {problem}")
    return 1 if problems else 0


def _step(echo: Echo, text: str) -> None:
    echo("")
    echo(f"== {text}")


def _scenario(recorder: Recorder, stack: LocalStack, echo: Echo, problems: list[str]) -> None:
    def expect(session: Session, *phases: Phase, timeout: float = 20) -> Session:
        return _expect(recorder, echo, problems, session, *phases, timeout=timeout)

    _step(echo, "1. A web app enqueues two recordings (returns at once, the worker starts them)")
    classes = [recorder.start(_body(f"class-{n}")) for n in (1, 2)]
    for session in classes:
        echo(f"   queued {session.cname:<14} session {session.id} ({session.phase.value})")
    classes = [expect(s, Phase.RECORDING) for s in classes]

    _step(echo, "2. The same start again (a retried web request): deduped, nothing queued")
    again = recorder.start(_body("class-1"))
    echo(f"   got back session {again.id} (same: {again.id == classes[0].id})")
    if again.id != classes[0].id:
        problems.append("the duplicate start made a new session")

    _step(echo, "3. The API answers 500 three times: the worker backs off and retries")
    stack.sandbox_control(
        "POST", "faults", {"fail_next": [{"action": "start", "status": 500, "count": 3}]}
    )
    flaky = expect(recorder.start(_body("standup")), Phase.RECORDING)
    echo(f"   started after {flaky.attempts.get('start', 0)} attempts")

    _step(echo, "4. A layout update of a mix recording")
    recorder.update_layout(classes[0].id, {"mixedVideoLayout": 1})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(
            "update-layout applied" in h.what
            for h in recorder.get(classes[0].id, with_history=True).history
        ):
            echo("   update-layout applied")
            break
        time.sleep(0.1)
    else:
        problems.append("the layout update was not applied")

    _step(echo, "5. The API refuses a start for good (403): failed at once, kept as a dead letter")
    stack.sandbox_control(
        "POST", "faults", {"fail_next": [{"action": "start", "status": 403, "count": 1}]}
    )
    refused = expect(recorder.start(_body("board-meeting")), Phase.FAILED)
    if refused.last_error:
        echo(f"   last error: {refused.last_error.get('reason')}")


def _expect(
    recorder: Recorder,
    echo: Echo,
    problems: list[str],
    session: Session,
    *phases: Phase,
    timeout: float = 20,
) -> Session:
    try:
        reached = recorder.wait(session.id, list(phases), timeout=timeout)
    except TimeoutError as exc:
        problems.append(str(exc))
        return recorder.get(session.id)
    sid = f" sid={reached.sid}" if reached.sid else ""
    echo(f"   {reached.cname:<14} {reached.phase.value}{sid}")
    return reached


def _scheduled_meeting(
    scheduler: Scheduler, recorder: Recorder, echo: Echo, problems: list[str]
) -> None:
    _step(echo, "6. A meeting scheduled 3 s ahead, for 4 s: beat starts and stops it on time")
    start_at = datetime.now(UTC) + timedelta(seconds=3)
    schedule = scheduler.add(_body("weekly-review"), start_at=start_at, duration_s=4)
    echo(f"   schedule {schedule.id}: starts {start_at:%H:%M:%S} UTC, ends 4 s later")
    deadline = time.monotonic() + 30
    occurrence = None
    while time.monotonic() < deadline:
        (occurrence,) = scheduler.store.occurrences(schedule.id)
        if occurrence.outcome.value in ("completed", "missed", "failed", "cancelled"):
            break
        time.sleep(0.2)
    if occurrence is None or occurrence.outcome.value != "completed":
        problems.append(f"the scheduled meeting ended {occurrence and occurrence.outcome.value}")
        return
    started = (occurrence.dispatched_at or 0) - occurrence.start
    stopped = (occurrence.stopped_at or 0) - occurrence.end
    echo(f"   start sent {started:+.2f} s from its time, stop {stopped:+.2f} s from its end")
    if occurrence.session_id:
        _expect(recorder, echo, problems, recorder.get(occurrence.session_id), Phase.STOPPED)


def _abnormal_exit(recorder: Recorder, stack: LocalStack, echo: Echo, problems: list[str]) -> None:
    _step(echo, "7. A recording exits abnormally (status 20): the reconciler fails it, alerts once")
    session = _expect(recorder, echo, problems, recorder.start(_body("town-hall")), Phase.RECORDING)
    stack.sandbox_control("POST", "faults", {"abnormal_exit_sids": [session.sid]})
    failed = _expect(recorder, echo, problems, session, Phase.FAILED, timeout=15)
    time.sleep(2.5)  # another reconcile round: still one alert
    alerts = [
        a
        for a in AlertStore(recorder.store.redis, keys=recorder.store.keys).recent(50)
        if a.session_id == failed.id
    ]
    echo(f"   alerts for it: {', '.join(a.kind.value for a in alerts) or 'none'}")
    if [a.kind.value for a in alerts] != ["abnormal_exit"]:
        problems.append(f"expected one abnormal_exit alert, got {[a.kind for a in alerts]}")


def _stop_all(recorder: Recorder, echo: Echo, problems: list[str]) -> None:
    _step(echo, "8. Stop everything still recording; a stop is never dropped")
    running = recorder.list(active_only=True)
    for session in running:
        recorder.stop(session.id)
    for session in running:
        stopped = _expect(recorder, echo, problems, session, Phase.STOPPED)
        echo(f"   {stopped.cname:<14} files: {len(stopped.files)}")


def _report(recorder: Recorder, echo: Echo) -> None:
    _step(echo, "Sessions")
    echo(f"   {'cname':<14} {'phase':<9} {'sid':<21} {'start tries':>11} {'files':>5}")
    for s in sorted(recorder.list(), key=lambda s: s.created_at):
        tries = s.attempts.get("start", 0)
        echo(
            f"   {s.cname:<14} {s.phase.value:<9} {s.sid or '-':<21} {tries:>11} {len(s.files):>5}"
        )
    letters: list[DeadLetter] = []
    deadline = time.monotonic() + 5
    while not letters and time.monotonic() < deadline:
        letters = recorder.dead_letters.list()
        time.sleep(0.1)
    _step(echo, "Alerts")
    for alert in AlertStore(recorder.store.redis, keys=recorder.store.keys).recent(50):
        echo(
            f"   {alert.kind.value:<14} {alert.severity.value:<8} {alert.cname:<14} {alert.reason}"
        )
    _step(echo, "Dead letters")
    for letter in letters:
        reason = letter.error.get("reason")
        echo(f"   {letter.id[:18]:<18} {letter.action:<6} {letter.session_id} {reason}")
    if not letters:
        echo("   (none)")
