"""Session ids (orchestrator/state/ids.py)."""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from orchestrator.state import ids
from orchestrator.state.ids import SESSION_ID_LENGTH, is_session_id, new_session_id

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def timestamp_ms(session_id: str) -> int:
    """The milliseconds encoded in the first 10 characters (48 bits)."""
    value = 0
    for char in session_id[:10]:
        value = value * 32 + ALPHABET.index(char)
    return value


def test_an_id_is_26_characters_of_crockford_base32() -> None:
    session_id = new_session_id()

    assert len(session_id) == SESSION_ID_LENGTH == 26
    assert set(session_id) <= set(ALPHABET)
    assert not set(session_id) & set("ILOU")
    assert is_session_id(session_id)


def test_the_id_starts_with_its_creation_time_in_milliseconds() -> None:
    assert timestamp_ms(new_session_id(1700000000.1234)) == 1700000000123
    assert new_session_id(0.0).startswith("0000000000")


def test_the_default_time_is_now() -> None:
    before = int(time.time() * 1000)
    session_id = new_session_id()
    after = int(time.time() * 1000)

    assert before <= timestamp_ms(session_id) <= after


def test_ids_sort_in_creation_order_across_milliseconds() -> None:
    times = [1700000000 + i * 0.001 + 0.0004 for i in range(500)]
    ids = [new_session_id(t) for t in times]
    shuffled = ids[:]
    random.Random(7).shuffle(shuffled)

    assert sorted(shuffled) == ids


def test_ids_sort_in_creation_order_across_years() -> None:
    times = [0.0, 1.0, 86400.0, 1700000000.0, 1700000000.001, 2500000000.0, 281474976710.0]

    ids = [new_session_id(t) for t in times]

    assert sorted(ids) == ids


def test_ids_of_the_same_millisecond_are_distinct() -> None:
    ids = {new_session_id(1700000000.0) for _ in range(2000)}

    assert len(ids) == 2000
    assert len({i[:10] for i in ids}) == 1


@pytest.mark.parametrize(
    "value",
    [
        "",
        "01hzzzzzzzzzzzzzzzzzzzzzzz",
        "01HZZZZZZZZZZZZZZZZZZZZZZ",
        "01HZZZZZZZZZZZZZZZZZZZZZZZZ",
        "01HZZZZZZZZZZZZZZZZZZZZZZI",
        "01HZZZZZZZZZZZZZZZZZZZZZZU",
        "81HZZZZZZZZZZZZZZZZZZZZZZZ",
        "01HZZZZZZZZZZZZZZZZZZZZZ:Z",
        " 01HZZZZZZZZZZZZZZZZZZZZZZ",
    ],
)
def test_values_of_another_shape_are_not_session_ids(value: str) -> None:
    assert not is_session_id(value)


def test_the_largest_id_still_has_the_shape() -> None:
    assert is_session_id("7ZZZZZZZZZZZZZZZZZZZZZZZZZ")


def reference_id(value: int) -> str:
    """The 26 digits of a 128-bit value, one at a time (the layout's definition)."""
    digits = []
    for _ in range(SESSION_ID_LENGTH):
        value, digit = divmod(value, 32)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


@pytest.mark.parametrize("seed", range(5))
def test_the_id_is_the_time_then_the_random_bits_in_base32(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    for randbits in (0, (1 << 80) - 1, *(rng.getrandbits(80) for _ in range(200))):
        now_s = rng.choice([0.0, 1.0, 1700000000.123, (2**48 - 1) / 1000, rng.uniform(0, 4e9)])
        monkeypatch.setattr(ids._RANDOM, "draw", lambda value=randbits: value)  # noqa: SLF001
        ms = int(now_s * 1000) & ((1 << 48) - 1)

        assert new_session_id(now_s) == reference_id((ms << 80) | randbits)


def test_ids_drawn_across_buffer_refills_and_threads_are_distinct() -> None:
    # Random bits come from a buffer refilled every 400 draws: 8 threads x 1,000 ids in one
    # millisecond cross it many times, concurrently.
    def draw() -> list[str]:
        return [new_session_id(1700000000.0) for _ in range(1000)]

    with ThreadPoolExecutor(8) as pool:
        drawn = [i for batch in pool.map(lambda _: draw(), range(8)) for i in batch]

    assert len(set(drawn)) == len(drawn) == 8000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_draws_the_bits_its_parent_draws_next() -> None:
    new_session_id(1700000000.0)  # the buffer is filled before the fork
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then leave at once
        code = 1
        try:
            os.write(write_end, " ".join(new_session_id(1700000000.0) for _ in range(50)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        child = set(reader.read().split())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    parent = {new_session_id(1700000000.0) for _ in range(50)}
    assert len(child) == 50 and not child & parent
