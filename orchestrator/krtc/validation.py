"""Turn pydantic's errors into field-level errors a person can act on.

Each error names the JSON path of the bad field and the rule in plain words, e.g.::

    clientRequest.recordingConfig.transcodingConfig.layoutConfig[2].alpha:
        alpha is a fraction in [0, 1] (1.0 = opaque), got 100

The value of a secret field is never echoed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from orchestrator.errors import OrchestratorError
from orchestrator.krtc.enums import Action
from orchestrator.krtc.fields import RULES_ERROR_TYPE, Violation
from orchestrator.krtc.models import REQUEST_MODELS, ApiRequest

__all__ = ["FieldError", "RequestValidationError", "parse_request", "validate_model"]

M = TypeVar("M", bound=BaseModel)

#: Fields whose value is never echoed in an error.
SECRET_FIELDS = frozenset({"secretKey", "secret_key", "KRTC_SECRET_KEY"})

_PREDICATES = {
    "missing": "is required",
    "extra_forbidden": "is not a field here (check its spelling against the API reference)",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
}


@dataclass(frozen=True)
class FieldError:
    """One broken rule: where (a JSON path with wire names) and what, in plain words."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class RequestValidationError(OrchestratorError, ValueError):
    """A request breaks the API contract; nothing was sent or queued.

    Attributes:
        errors: every broken rule found, in order.
        subject: what was validated (e.g. "CloudRecordingStart request").
    """

    def __init__(self, subject: str, errors: list[FieldError]) -> None:
        self.subject = subject
        self.errors = errors
        lines = "\n".join(f"  {e}" for e in errors)
        noun = "error" if len(errors) == 1 else "errors"
        super().__init__(f"invalid {subject}: {len(errors)} {noun}\n{lines}")


def format_path(loc: Iterable[str | int]) -> str:
    """``("a", "b", 2, "c")`` → ``a.b[2].c``; the empty path is the body itself."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(body)"


def _shows(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _got(loc: tuple[str | int, ...], value: Any) -> str:
    if any(part in SECRET_FIELDS for part in loc):
        return ""
    if isinstance(value, list) and all(_shows(v) for v in value) and len(value) <= 10:
        return f", got {json.dumps(value, ensure_ascii=False)}"
    if not _shows(value):
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f", got {value:g}"
    return f", got {json.dumps(value, ensure_ascii=False)}"


def _field_name(loc: tuple[str | int, ...]) -> str:
    names = [p for p in loc if isinstance(p, str)]
    return names[-1] if names else "body"


def _predicate(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in _PREDICATES:
        return _PREDICATES[kind]
    if kind == "json_invalid":
        return f"is not valid JSON ({ctx.get('error', 'malformed')})"
    if kind == "too_short":
        return (
            "must not be empty"
            if ctx.get("min_length") == 1
            else (f"must have at least {ctx.get('min_length')} items")
        )
    if kind == "too_long":
        most = ctx.get("max_length")
        return f"must have at most {most} item{'' if most == 1 else 's'}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return error["msg"].replace("Input should be", "must be")
    msg = error["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return msg[:1].lower() + msg[1:]


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Every error of a pydantic ``ValidationError``, as :class:`FieldError` objects."""
    out: list[FieldError] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        ctx = error.get("ctx") or {}
        if error["type"] == RULES_ERROR_TYPE:
            violations: tuple[Violation, ...] = ctx["violations"]
            for v in violations:
                full = loc + v.loc
                got = _got(full, v.input) if v.has_input else ""
                out.append(FieldError(format_path(full), f"{_field_name(full)} {v.predicate}{got}"))
            continue
        got = "" if error["type"] == "missing" else _got(loc, error.get("input"))
        if error["type"] in ("extra_forbidden", "json_invalid"):
            got = ""
        out.append(FieldError(format_path(loc), f"{_field_name(loc)} {_predicate(error)}{got}"))
    return out


def validate_model(model: type[M], data: Any, *, subject: str | None = None) -> M:
    """Validate ``data`` (a dict, or JSON text or bytes) into ``model``.

    Raises:
        RequestValidationError: with every field error found; never pydantic's own error, whose
            text would echo input values (secrets included).
    """
    what = subject or model.__name__
    try:
        if isinstance(data, str | bytes | bytearray):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
    raise RequestValidationError(what, errors)


def parse_request(action: Action, data: Any) -> ApiRequest:
    """Validate the body of ``action`` from a dict or JSON text.

    Raises:
        RequestValidationError: the field errors, all at once.
    """
    return validate_model(REQUEST_MODELS[action], data, subject=f"{action.value} request")
