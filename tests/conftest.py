"""Shared fixtures. Integration fixtures that start real services live in tests/integration."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from orchestrator.settings import Settings

#: A recognisable secret: tests search every output for it.
SENTINEL_SECRET = "sEcReT-SeNtInEl-7f3a9c1e5b"
SENTINEL_STORAGE_SECRET = "sToRaGe-SeNtInEl-42d8e0a6"
TEST_ACCESS_KEY = "AKLTtestaccesskey"


@pytest.fixture
def settings() -> Settings:
    """Settings with the sentinel key pair, pointing nowhere in particular."""
    return Settings(
        endpoint="http://127.0.0.1:9/cloud",
        access_key=TEST_ACCESS_KEY,
        secret_key=SecretStr(SENTINEL_SECRET),
    )
