"""Errors of the scheduling subsystem.

::

    OrchestratorError
    ├── RequestValidationError        a bad schedule (field-level errors; nothing stored)
    └── StateError
        ├── ScheduleNotFoundError     no such schedule or occurrence
        └── ScheduleConflictError     the occurrence's state forbids the change (it is
                                      being dispatched, or is over)
"""

from __future__ import annotations

from orchestrator.errors import StateError

__all__ = ["ScheduleNotFoundError", "ScheduleConflictError"]


class ScheduleNotFoundError(StateError):
    """There is no schedule or occurrence with this id.

    Attributes:
        what: ``"schedule"`` or ``"occurrence"``.
        id: the id looked for.
    """

    def __init__(self, what: str, id: str) -> None:
        self.what = what
        self.id = id
        super().__init__(f"no {what} {id!r}")


class ScheduleConflictError(StateError):
    """The occurrence cannot be changed now (its start is being dispatched, or it is over)."""
