"""The package as a web app installs it: ``pip install krtc-orchestrator`` with no extra.

Builds the wheel (its output must hold no deprecation warning), installs it into a fresh venv at
the versions of constraints.txt (so pip's cache serves them), and uses it there. About 30 s with
a warm cache; pip needs its index (or cache) for the base dependencies.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _run(*argv: str | Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def wheel_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The wheel built from the work tree, and the build's whole output."""
    out = tmp_path_factory.mktemp("wheel")
    result = _run(sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", out, ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = out.glob("krtc_orchestrator-*.whl")
    return wheel, result.stdout + result.stderr


@pytest.fixture(scope="module")
def base_env(tmp_path_factory: pytest.TempPathFactory, wheel_build: tuple[Path, str]) -> Path:
    """A fresh venv holding the wheel with no extra; its bin directory."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=True)
    bin_dir = home / "bin"
    result = _run(
        bin_dir / "python",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--constraint",
        ROOT / "constraints.txt",
        wheel_build[0],
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return bin_dir


def test_the_build_prints_no_deprecation_warning(wheel_build: tuple[Path, str]) -> None:
    _, output = wheel_build

    noted = [line for line in output.splitlines() if "deprecat" in line.lower()]
    assert noted == []


def test_the_base_install_gives_the_recorder_without_flower_or_tornado(base_env: Path) -> None:
    code = (
        "import importlib.util as u\n"
        "from orchestrator import Recorder\n"
        "print(Recorder.__name__)\n"
        "print(sorted(m for m in ('flower', 'tornado', 'fastapi') if u.find_spec(m)))\n"
    )

    result = _run(base_env / "python", "-c", code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["Recorder", "[]"]


@pytest.mark.parametrize(
    ("command", "extra"),
    [("flower", "flower"), ("sandbox", "sandbox"), ("demo", "sandbox"), ("up", "sandbox,flower")],
)
def test_a_command_of_a_missing_extra_says_what_to_install(
    base_env: Path, command: str, extra: str
) -> None:
    result = _run(base_env / "krtc-rec", command, "--help")

    assert result.returncode == 2
    assert f"install krtc-orchestrator[{extra}]" in result.stderr


def test_the_base_install_ships_type_hints_and_its_license(base_env: Path) -> None:
    code = (
        "import importlib.metadata as m, importlib.resources as r\n"
        "meta = m.metadata('krtc-orchestrator')\n"
        "print(meta['License-Expression'])\n"
        "print(r.files('orchestrator').joinpath('py.typed').is_file())\n"
        "print(any(f.name == 'LICENSE' for f in m.files('krtc-orchestrator')))\n"
    )

    result = _run(base_env / "python", "-c", code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["Apache-2.0", "True", "True"]
