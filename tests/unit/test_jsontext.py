"""The store's JSON texts: what the standard library writes, made by orjson, with its fallback."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.state.jsontext import compact_text, sorted_text


def _stdlib(value: Any, *, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)


VALUES: list[Any] = [
    {
        "appId": "app",
        "cname": "room-1",
        "clientRequest": {"maxIdleTime": 30, "avFileType": ["hls"]},
    },
    {"at": 1795724651.1859398, "what": "created", "why": 'café ✓ \u2028 "q" \\ \n\t\x00'},
    {"z": 1, "a": [1.5, -0.0, 0.1, 123456789012345.6, 2**63 - 1, -(2**63), True, None]},
    ["x", {"nested": {"b": 2, "a": 1}}],
]


@pytest.mark.parametrize("value", VALUES)
def test_the_text_is_the_standard_librarys(value: Any) -> None:
    assert compact_text(value) == _stdlib(value)
    assert sorted_text(value) == _stdlib(value, sort_keys=True)
    assert json.loads(compact_text(value)) == value


@pytest.mark.parametrize(
    "value",
    [{1: "an integer key"}, {"big": 2**70}, {"t": (1, 2)}, {None: 1, "a": 2}],
    ids=["int-key", "big-int", "tuple", "none-key"],
)
def test_what_orjson_refuses_is_written_by_the_standard_library(value: Any) -> None:
    assert compact_text(value) == _stdlib(value)


def test_what_neither_can_write_raises_as_before() -> None:
    with pytest.raises(TypeError):
        compact_text({"x": object()})
    with pytest.raises(TypeError):
        sorted_text({"x": {1, 2}})


def test_a_float_with_an_exponent_reads_back_the_same() -> None:
    # The one difference in the text: no padding of the exponent; the value is the same.
    assert compact_text([1e-7]) == "[1e-7]"
    assert json.loads(compact_text([1e-7, 1e300])) == [1e-7, 1e300]


def test_nan_which_json_does_not_have_is_written_as_null() -> None:
    assert compact_text([float("nan"), float("inf")]) == "[null,null]"
