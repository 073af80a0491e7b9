"""constraints.txt pins every dependency of pyproject.toml within its range; pyproject pins none."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _declared() -> list[Requirement]:
    requirements = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in PROJECT["optional-dependencies"].values():
        requirements += [Requirement(r) for r in extra]
    return [r for r in requirements if canonicalize_name(r.name) != "krtc-orchestrator"]


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line.strip())
            assert match, f"constraints.txt: not an exact pin: {line!r}"
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_every_dependency_is_pinned_within_its_range() -> None:
    pins = _pins()

    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in constraints.txt: run make constraints"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside {requirement}: make constraints"
        )


def test_package_metadata_keeps_ranges_not_pins() -> None:
    for requirement in _declared():
        assert not any(spec.operator in ("==", "===") for spec in requirement.specifier), (
            f"{requirement}: exact pins belong in constraints.txt"
        )


def test_celery_stays_below_the_release_that_crashes_on_a_redis_restart() -> None:
    celery = next(r for r in _declared() if r.name == "celery")

    assert not celery.specifier.contains("5.7.0")
    assert celery.specifier.contains("5.6.3")
