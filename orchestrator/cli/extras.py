"""Which extra of the package each command needs, and the stand-in run when it is missing.

The base install (``pip install krtc-orchestrator``) is what a web app that only queues
recordings needs; Flower, the sandbox's HTTP server and the HTTP API are extras. A command whose
extra is not installed still shows in ``krtc-rec --help``, and running it says what to install
(exit 2) instead of failing on an import.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec

import click

__all__ = ["DISTRIBUTION", "EXTRAS", "COMMAND_EXTRAS", "missing_extras", "needs_extras"]

#: The name to install (pyproject.toml's ``project.name``).
DISTRIBUTION = "krtc-orchestrator"
#: extra -> the modules it brings (pyproject.toml's ``project.optional-dependencies``).
EXTRAS: dict[str, tuple[str, ...]] = {
    "flower": ("flower",),
    "sandbox": ("tornado",),
    "http": ("fastapi", "uvicorn"),
}
#: command -> the extras it needs.
COMMAND_EXTRAS: dict[str, tuple[str, ...]] = {
    "flower": ("flower",),
    "sandbox": ("sandbox",),
    "demo": ("sandbox",),
    "up": ("sandbox", "flower"),
    "serve": ("http",),
}


def missing_extras(command: str) -> list[str]:
    """The extras ``command`` needs that are not installed (in the order of COMMAND_EXTRAS)."""
    return [
        extra
        for extra in COMMAND_EXTRAS.get(command, ())
        if any(find_spec(module) is None for module in EXTRAS[extra])
    ]


def needs_extras(command: str, missing: list[str]) -> click.Command:
    """A stand-in for ``command`` that says which extras to install and exits with 2."""
    spec = f"{DISTRIBUTION}[{','.join(missing)}]"
    message = (
        f"krtc-rec {command} needs the {', '.join(missing)} extra (not installed): "
        f"install {spec}, e.g. pip install '{spec}'"
    )

    def run() -> None:
        from orchestrator.cli.output import EXIT_INVALID

        click.echo(f"error: {message}", err=True)
        sys.exit(EXIT_INVALID)

    return click.Command(
        command,
        callback=run,
        help=f"Not installed: needs {spec}.",
        short_help=f"(needs {spec})",
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
