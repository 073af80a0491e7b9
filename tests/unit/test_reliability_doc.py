"""docs/reliability.md stays true: every test it names as proof exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_REFERENCE = re.compile(
    r"`((?:integration|unit|soak)/[\w/]+\.py)?::(\w+)`|`((?:integration|unit|soak)/[\w/]+\.py)`"
)


def test_every_test_the_reliability_page_names_exists() -> None:
    text = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    current: str | None = None
    named = 0
    missing: list[str] = []
    for match in _REFERENCE.finditer(text):
        if match.group(3):
            current = match.group(3)
            continue
        current = match.group(1) or current
        assert current is not None, f"::{match.group(2)} names no file before it"
        path = ROOT / "tests" / current
        named += 1
        if not path.exists() or f"def {match.group(2)}(" not in path.read_text(encoding="utf-8"):
            missing.append(f"{current}::{match.group(2)}")
    assert named > 20
    assert missing == []
