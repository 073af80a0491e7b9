"""A command whose extra is not installed: listed, and says which extra to install."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from orchestrator.cli import extras as cli_extras
from orchestrator.cli import main


def test_a_command_whose_extra_is_missing_says_which_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = cli_extras.find_spec
    monkeypatch.setattr(
        cli_extras, "find_spec", lambda name: None if name == "flower" else real(name)
    )

    listed = CliRunner().invoke(main, ["--help"])
    result = CliRunner().invoke(main, ["up", "--workers", "2"])

    assert "(needs krtc-orchestrator[flower])" in listed.output
    assert result.exit_code == 2
    assert "install krtc-orchestrator[flower]" in result.output
    assert CliRunner().invoke(main, ["sandbox", "--help"]).exit_code == 0
