"""The README's producer example runs as written against a real worker and the sandbox."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.state import Phase, Session
from tests.integration.worker_fixture import QueueStack

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_producer_example_works_when_copied(
    queue_stack: QueueStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    example = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert example is not None
    for name, value in queue_stack.env.items():
        monkeypatch.setenv(name, value)
    queue_stack.start_worker()
    namespace: dict[str, object] = {}
    exec(compile(example.group(1), "README.md", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "pending" in out
    stopped = namespace["stopped"]
    assert isinstance(stopped, Session)
    assert stopped.phase == Phase.STOPPED
    assert stopped.cname == "math-101"
