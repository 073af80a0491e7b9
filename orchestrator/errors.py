"""The root of every error the orchestrator raises.

::

    OrchestratorError
    ├── ConfigError                 a setting is missing or wrong (names the variable)
    ├── RequestValidationError      a request breaks the API contract (field-level errors)
    ├── KrtcApiError                the KRTC API answered with an error (orchestrator.krtc.errors)
    └── StateError                  the stored state forbids the operation

Error messages never contain a secret (API secret key, storage ``secretKey``).
"""

from __future__ import annotations

__all__ = ["OrchestratorError", "ConfigError", "StateError"]


class OrchestratorError(Exception):
    """Base class of every error raised by this project."""


class ConfigError(OrchestratorError):
    """A setting is missing or invalid; the message names the setting."""


class StateError(OrchestratorError):
    """The stored state of a recording session forbids the operation."""
