"""``python -m orchestrator.cli`` runs ``krtc-rec``."""

from orchestrator.cli import main

main()
