"""The README stays true: its links resolve, its configuration table is complete, its quick
start commands exist, and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_relative_links_resolve() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert local, "the README links its docs"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert missing == []


def test_configuration_table_lists_every_setting() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", README, flags=re.MULTILINE))
    expected = {
        "REDIS_URL" if name == "redis_url" else f"KRTC_{name.upper()}"
        for name in Settings.model_fields
    }
    assert sorted(expected - documented) == []
    assert sorted(documented - expected) == []


def test_quick_start_commands_are_make_targets_and_ci_runs_the_tests() -> None:
    block = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE)
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_configuration_table_shows_the_real_defaults() -> None:
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", README, flags=re.MULTILINE)
    shown = {name: cell.strip().strip("`") for name, cell in rows}
    for name, field in Settings.model_fields.items():
        env = "REDIS_URL" if name == "redis_url" else f"KRTC_{name.upper()}"
        default = field.default
        if default is None:
            assert shown[env] == "–", env
        elif isinstance(default, int | float) and not isinstance(default, bool):
            assert float(shown[env]) == float(default), env
        else:
            assert shown[env] == str(default), env
