"""Key names of the session store (orchestrator/state/keys.py)."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from orchestrator.state import Keys
from orchestrator.state.keys import DEFAULT_PREFIX

# Values built from the characters that could break a naive "a:b:c" join.
PARTS = ["", "a", ":", "a:", ":a", "a:b", "%", "%3A", "%25", "a%3Ab", "*", " ", "é"]


def every_key(keys: Keys, value: str) -> list[str]:
    return [
        keys.session(value),
        keys.history(value),
        keys.idempotency(value),
        keys.dead_letter(value),
    ]


def test_the_default_prefix_is_krtc() -> None:
    keys = Keys()

    assert keys.prefix == DEFAULT_PREFIX == "krtc"
    assert keys.session("01ABC") == "krtc:session:01ABC"
    assert keys.history("01ABC") == "krtc:session:01ABC:history"
    assert keys.identity("app", "room", "7") == "krtc:identity:app:room:7"
    assert keys.idempotency("k1") == "krtc:idem:k1"
    assert keys.active() == "krtc:active"
    assert keys.sessions() == "krtc:sessions"
    assert keys.dead_letters() == "krtc:dlq"
    assert keys.dead_letter("t-1") == "krtc:dlq:t-1"


def test_every_key_starts_with_the_prefix_and_a_colon() -> None:
    keys = Keys("app:rec")

    names = [
        *every_key(keys, "x"),
        keys.identity("a", "b", "c"),
        keys.active(),
        keys.sessions(),
        keys.dead_letters(),
    ]

    assert all(name.startswith("app:rec:") for name in names)


def test_a_colon_in_the_channel_name_cannot_make_two_identities_collide() -> None:
    keys = Keys()

    assert keys.identity("a", "b:c", "d") != keys.identity("a:b", "c", "d")
    assert keys.identity("a", "b:c", "d") != keys.identity("a", "b", "c:d")
    assert keys.identity("app", "room:1", "u") == "krtc:identity:app:room%3A1:u"


def test_identity_keys_are_injective_over_awkward_values() -> None:
    keys = Keys()
    triples = list(itertools.product(PARTS, repeat=3))

    names = {keys.identity(*t) for t in triples}

    assert len(names) == len(triples)


def test_an_already_encoded_value_does_not_collide_with_its_decoded_form() -> None:
    keys = Keys()

    assert keys.identity("a", "%3A", "u") != keys.identity("a", ":", "u")
    assert keys.session("%3A") != keys.session(":")


@pytest.mark.parametrize("template", ["session", "history", "idempotency", "dead_letter"])
def test_single_value_keys_are_injective(template: str) -> None:
    keys = Keys()
    build = getattr(keys, template)

    assert len({build(v) for v in PARTS}) == len(PARTS)


def test_no_key_of_one_kind_equals_a_key_of_another_kind() -> None:
    keys = Keys()
    names = [name for v in PARTS for name in every_key(keys, v)]
    names += [keys.identity(*t) for t in itertools.product(PARTS[:6], repeat=3)]
    names += [keys.dead_letter_live(*t) for t in itertools.product(PARTS, repeat=2)]
    names += [keys.active(), keys.sessions(), keys.dead_letters()]

    assert len(set(names)) == len(names)


def test_live_dead_letter_keys_are_one_per_session_and_action() -> None:
    keys = Keys()

    assert keys.dead_letter_live("s-1", "stop") == "krtc:dlq-live:s-1:stop"
    assert keys.dead_letter_live("a:b", "c") != keys.dead_letter_live("a", "b:c")


def test_a_history_key_never_names_the_session_of_another_id() -> None:
    keys = Keys()

    # Without encoding, the session "x:history" would be the history list of "x".
    assert keys.session("x:history") != keys.history("x")


@pytest.mark.parametrize("prefix", ["", " ", "krtc ", "a b", "a\tb", "a\nb"])
def test_an_empty_prefix_or_one_with_whitespace_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="invalid Redis key prefix"):
        Keys(prefix)


@pytest.mark.parametrize("prefix", ["krtc", "app:krtc", "test-0123abcd", "a.b_c", "ü"])
def test_reasonable_prefixes_are_accepted(prefix: str) -> None:
    assert Keys(prefix).active() == f"{prefix}:active"


def test_the_pattern_matches_everything_under_the_prefix() -> None:
    assert Keys().pattern() == "krtc:*"
    assert Keys("app:krtc").pattern() == "app:krtc:*"


def test_the_pattern_escapes_glob_characters_of_the_prefix() -> None:
    assert Keys("a*b").pattern() == r"a\*b:*"
    assert Keys("q?[x]").pattern() == r"q\?\[x\]:*"
    assert Keys("back\\slash").pattern() == r"back\\slash:*"


def test_keys_are_frozen_and_comparable() -> None:
    keys = Keys("p")

    with pytest.raises(dataclasses.FrozenInstanceError):
        keys.prefix = "q"  # type: ignore[misc]
    assert keys == Keys("p")
    assert hash(keys) == hash(Keys("p"))


def test_the_identities_pattern_matches_every_identity_key_and_escapes_the_prefix() -> None:
    from fnmatch import fnmatchcase

    assert fnmatchcase(Keys().identity("app", "room:1", "7"), Keys().identities())
    assert not fnmatchcase(Keys().session("01X"), Keys().identities())
    assert Keys("a*b").identities() == r"a\*b:identity:*"
