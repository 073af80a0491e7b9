"""Named storage profiles: storage credentials that never travel through Redis.

A queued start names its storage as ``"storageConfig": {"profile": "NAME"}``. Only the name is
stored and queued; the worker resolves it from the JSON file named by ``KRTC_STORAGE_PROFILES``::

    {"recordings": {"vendor": 4, "region": 0, "bucket": "b", "accessKey": "AK", "secretKey": "SK",
                    "filenamePrefix": ["meetings"]}}

Each profile is validated as a ``storageConfig`` when the file is loaded.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.krtc.models import StorageConfig
from orchestrator.krtc.models.base import REVEAL_SECRETS
from orchestrator.krtc.validation import RequestValidationError, validate_model

__all__ = ["PROFILE_KEY", "StorageProfiles", "profile_name", "UnknownProfileError"]

PROFILE_KEY = "profile"


class UnknownProfileError(ConfigError):
    """A start names a storage profile that is not configured."""


def profile_name(body: Mapping[str, Any]) -> str | None:
    """The storage profile a start body names, if its storageConfig is ``{"profile": NAME}``."""
    client_request = body.get("clientRequest")
    storage = client_request.get("storageConfig") if isinstance(client_request, Mapping) else None
    if isinstance(storage, Mapping) and PROFILE_KEY in storage:
        name = storage[PROFILE_KEY]
        return name if isinstance(name, str) else str(name)
    return None


class StorageProfiles:
    """Storage configs by name.

    Args:
        profiles: the validated storage configs.
        source: where they came from, for messages.
    """

    def __init__(self, profiles: Mapping[str, StorageConfig], *, source: str = "(none)") -> None:
        self._profiles = dict(profiles)
        self.source = source

    @classmethod
    def from_file(cls, path: str | Path) -> StorageProfiles:
        """Load and validate every profile of a JSON file.

        Raises:
            ConfigError: the file is missing or malformed, or a profile is invalid (secret values
                are never echoed).
        """
        where = f"storage profiles file {str(path)!r} (KRTC_STORAGE_PROFILES)"
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {where}: {exc.strerror}") from None
        except ValueError:
            raise ConfigError(f"{where} is not valid JSON") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{where} must be a JSON object of NAME: storageConfig")
        profiles: dict[str, StorageConfig] = {}
        for name, value in data.items():
            if not isinstance(value, dict):
                # validate_model would read a string as JSON text, accepting a profile written
                # as a quoted object and naming the rest "(body)".
                raise ConfigError(
                    f"{where}: profile {name!r} must be a JSON object (storageConfig)"
                )
            try:
                profiles[name] = validate_model(StorageConfig, value, subject=f"profile {name!r}")
            except RequestValidationError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        return cls(profiles, source=str(path))

    @classmethod
    def from_setting(cls, path: str | None) -> StorageProfiles:
        """The profiles of ``KRTC_STORAGE_PROFILES``, or none when it is unset."""
        return cls.from_file(path) if path else cls({})

    def names(self) -> list[str]:
        return sorted(self._profiles)

    def __contains__(self, name: object) -> bool:
        return name in self._profiles

    def get(self, name: str) -> StorageConfig:
        """The storage config of ``name``.

        Raises:
            UnknownProfileError: naming the profiles that exist.
        """
        try:
            return self._profiles[name]
        except KeyError:
            known = ", ".join(self.names()) or "none are configured: set KRTC_STORAGE_PROFILES"
            raise UnknownProfileError(f"unknown storage profile {name!r} ({known})") from None

    def resolve(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``body`` with a ``{"profile": NAME}`` storageConfig replaced by the profile's config.

        The result holds the storage secret: build the wire request from it and drop it.
        """
        name = profile_name(body)
        if name is None:
            return dict(body)
        resolved = copy.deepcopy(dict(body))
        resolved["clientRequest"]["storageConfig"] = self.get(name).model_dump(
            mode="json", exclude_none=True, context={REVEAL_SECRETS: True}
        )
        return resolved
