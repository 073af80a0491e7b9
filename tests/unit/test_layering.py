"""The library stays below the app: nothing outside ``orchestrator/cli`` imports ``workers``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_cli_imports_the_workers() -> None:
    offenders = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "orchestrator").rglob("*.py")
        if "cli" not in path.relative_to(ROOT / "orchestrator").parts
        and any(n == "workers" or n.startswith("workers.") for n in _imports(path))
    )
    assert offenders == []


def test_sending_needs_no_worker_code() -> None:
    tasking = ROOT / "orchestrator" / "tasking"
    for path in tasking.glob("*.py"):
        imported = _imports(path)
        assert not any(n.startswith(("workers", "orchestrator.jobs")) for n in imported), path
