"""Named storage profiles (orchestrator/storage_profiles.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ConfigError
from orchestrator.storage_profiles import (
    StorageProfiles,
    UnknownProfileError,
    profile_name,
)
from tests.conftest import SENTINEL_STORAGE_SECRET

RECORDINGS = {
    "vendor": 4,
    "region": 0,
    "bucket": "meetings",
    "accessKey": "AKLTstorage",
    "secretKey": SENTINEL_STORAGE_SECRET,
    "filenamePrefix": ["meetings", "2024"],
}
ARCHIVE = {
    "vendor": 1,
    "region": 3,
    "bucket": "archive",
    "accessKey": "AKIAarchive",
    "secretKey": SENTINEL_STORAGE_SECRET + "-2",
}


def start_body(storage: dict[str, Any]) -> dict[str, Any]:
    return {
        "appId": "lee1234",
        "cname": "krtc2",
        "uid": "xxx",
        "mode": "mix",
        "clientRequest": {
            "recordingConfig": {"maxIdleTime": 30},
            "recordingFileConfig": {"avFileType": ["hls"]},
            "storageConfig": storage,
        },
    }


def write(tmp_path: Path, content: Any, *, raw: bool = False) -> Path:
    path = tmp_path / "profiles.json"
    path.write_text(content if raw else json.dumps(content), encoding="utf-8")
    return path


@pytest.fixture
def profiles(tmp_path: Path) -> StorageProfiles:
    return StorageProfiles.from_file(
        write(tmp_path, {"recordings": RECORDINGS, "archive": ARCHIVE})
    )


def assert_no_secret(text: str) -> None:
    assert SENTINEL_STORAGE_SECRET not in text


# -- loading -------------------------------------------------------------------------------------


def test_a_file_of_profiles_loads_every_profile(profiles: StorageProfiles, tmp_path: Path) -> None:
    assert profiles.names() == ["archive", "recordings"]
    assert "recordings" in profiles
    assert "nope" not in profiles
    assert profiles.source == str(tmp_path / "profiles.json")
    config = profiles.get("recordings")
    assert config.bucket == "meetings"
    assert config.secret_key.get_secret_value() == SENTINEL_STORAGE_SECRET


def test_no_setting_means_no_profiles() -> None:
    profiles = StorageProfiles.from_setting(None)

    assert profiles.names() == []


def test_the_setting_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"recordings": RECORDINGS})

    assert StorageProfiles.from_setting(str(path)).names() == ["recordings"]


def test_an_empty_object_is_a_valid_file_without_profiles(tmp_path: Path) -> None:
    assert StorageProfiles.from_file(write(tmp_path, {})).names() == []


# -- bad files -----------------------------------------------------------------------------------


def test_a_missing_file_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"

    with pytest.raises(ConfigError) as info:
        StorageProfiles.from_file(path)

    assert str(path) in str(info.value)
    assert "KRTC_STORAGE_PROFILES" in str(info.value)
    assert "cannot read" in str(info.value)


def test_a_file_that_is_not_json_is_a_config_error_without_its_content(tmp_path: Path) -> None:
    path = write(tmp_path, '{"recordings": {"secretKey": "' + SENTINEL_STORAGE_SECRET, raw=True)

    with pytest.raises(ConfigError, match="not valid JSON") as info:
        StorageProfiles.from_file(path)

    assert str(path) in str(info.value)
    assert_no_secret(str(info.value))
    assert info.value.__cause__ is None


@pytest.mark.parametrize("content", [[RECORDINGS], "recordings", 42, None])
def test_a_file_that_is_not_an_object_is_a_config_error(tmp_path: Path, content: Any) -> None:
    path = write(tmp_path, content)

    with pytest.raises(ConfigError, match="must be a JSON object") as info:
        StorageProfiles.from_file(path)

    assert str(path) in str(info.value)
    assert_no_secret(str(info.value))


@pytest.mark.parametrize(
    ("profile", "field"),
    [
        ({**RECORDINGS, "vendor": 99}, "vendor"),
        ({k: v for k, v in RECORDINGS.items() if k != "bucket"}, "bucket"),
        ({**RECORDINGS, "secretKey": ""}, "secretKey"),
        ({**RECORDINGS, "secretKey": 12345}, "secretKey"),
        ({**RECORDINGS, "secretkey": SENTINEL_STORAGE_SECRET}, "secretkey"),
    ],
)
def test_an_invalid_profile_is_a_config_error_naming_it_and_the_field(
    tmp_path: Path, profile: dict[str, Any], field: str
) -> None:
    path = write(tmp_path, {"archive": ARCHIVE, "broken": profile})

    with pytest.raises(ConfigError) as info:
        StorageProfiles.from_file(path)

    message = str(info.value)
    assert str(path) in message
    assert "'broken'" in message
    assert field in message
    assert_no_secret(message)
    assert_no_secret(repr(info.value))
    assert info.value.__cause__ is None


@pytest.mark.parametrize("value", [json.dumps(RECORDINGS), "x", 7, [RECORDINGS], None])
def test_a_profile_that_is_not_an_object_is_a_config_error(tmp_path: Path, value: Any) -> None:
    path = write(tmp_path, {"broken": value})

    with pytest.raises(ConfigError, match="'broken' must be a JSON object") as info:
        StorageProfiles.from_file(path)

    assert str(path) in str(info.value)
    assert_no_secret(str(info.value))


# -- lookup and resolution -----------------------------------------------------------------------


def test_an_unknown_profile_is_an_error_naming_the_known_ones(profiles: StorageProfiles) -> None:
    with pytest.raises(UnknownProfileError) as info:
        profiles.get("recrodings")

    message = str(info.value)
    assert "'recrodings'" in message
    assert "archive, recordings" in message
    assert isinstance(info.value, ConfigError)
    assert_no_secret(message)


def test_an_unknown_profile_without_any_configured_says_how_to_configure() -> None:
    with pytest.raises(UnknownProfileError, match="KRTC_STORAGE_PROFILES"):
        StorageProfiles({}).get("recordings")


def test_resolve_replaces_the_profile_by_the_stored_config(profiles: StorageProfiles) -> None:
    body = start_body({"profile": "recordings"})
    before = copy.deepcopy(body)

    resolved = profiles.resolve(body)

    assert resolved["clientRequest"]["storageConfig"] == RECORDINGS
    assert resolved["clientRequest"]["recordingConfig"] == {"maxIdleTime": 30}
    assert {k: v for k, v in resolved.items() if k != "clientRequest"} == {
        k: v for k, v in body.items() if k != "clientRequest"
    }
    assert body == before, "the caller's body must not be changed"


def test_resolve_leaves_optional_absent_fields_out(profiles: StorageProfiles) -> None:
    resolved = profiles.resolve(start_body({"profile": "archive"}))

    assert resolved["clientRequest"]["storageConfig"] == ARCHIVE
    assert "filenamePrefix" not in resolved["clientRequest"]["storageConfig"]


def test_resolve_leaves_an_inline_storage_config_alone(profiles: StorageProfiles) -> None:
    body = start_body(dict(ARCHIVE))

    assert profiles.resolve(body) == body


def test_resolve_leaves_a_body_without_storage_alone(profiles: StorageProfiles) -> None:
    body = {"appId": "a", "cname": "c", "uid": "u", "clientRequest": {}}

    assert profiles.resolve(body) == body
    assert profiles.resolve({"appId": "a"}) == {"appId": "a"}


def test_resolve_of_an_unknown_profile_raises(profiles: StorageProfiles) -> None:
    with pytest.raises(UnknownProfileError, match="'missing'"):
        profiles.resolve(start_body({"profile": "missing"}))


@pytest.mark.parametrize(
    ("body", "name"),
    [
        (start_body({"profile": "recordings"}), "recordings"),
        (start_body({"profile": 7}), "7"),
        (start_body(dict(RECORDINGS)), None),
        ({"clientRequest": {"storageConfig": "recordings"}}, None),
        ({"clientRequest": "x"}, None),
        ({}, None),
    ],
)
def test_profile_name_reads_only_a_profile_reference(
    body: dict[str, Any], name: str | None
) -> None:
    assert profile_name(body) == name


# -- secrets -------------------------------------------------------------------------------------


def test_the_secret_never_shows_in_representations(profiles: StorageProfiles) -> None:
    config = profiles.get("recordings")

    for text in (
        repr(profiles),
        str(profiles),
        repr(config),
        str(config),
        config.model_dump_json(),
        json.dumps(config.model_dump(mode="json")),
    ):
        assert_no_secret(text)
