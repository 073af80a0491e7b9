"""Which role a container runs (the image's HEALTHCHECK), and the worker name it pings."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from orchestrator.health import container_role, local_worker_name, role_of


@pytest.mark.parametrize(
    ("cmdline", "role"),
    [
        (["/sbin/docker-init", "--", "krtc-rec", "worker"], "worker"),
        (["/usr/local/bin/python", "/usr/local/bin/krtc-rec", "beat", "-l", "INFO"], "beat"),
        (["krtc-rec", "metrics", "--port", "9808"], "metrics"),
        (["krtc-rec"], None),
        (["redis-server", "--appendonly", "yes"], None),
        ([], None),
    ],
)
def test_role_of_finds_the_krtc_rec_subcommand(cmdline: list[str], role: str | None) -> None:
    assert role_of(cmdline) == role


def test_container_role_reads_the_first_process(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "cmdline").write_bytes(b"/sbin/docker-init\0--\0krtc-rec\0beat\0")

    assert container_role(tmp_path) == "beat"
    assert container_role(tmp_path / "nowhere") is None


def test_the_default_worker_name_is_celery_at_this_host() -> None:
    import socket

    assert local_worker_name() == f"celery@{socket.gethostname()}"


def test_healthcheck_auto_passes_a_role_without_a_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("orchestrator.health.container_role", lambda: "sandbox")

    result = CliRunner().invoke(main, ["healthcheck"])

    assert result.exit_code == 0
    assert result.output == "healthy: no health check for role sandbox\n"
