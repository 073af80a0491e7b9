"""Sentinel REDIS_URLs (Celery's form): parsed, rebuilt for Celery, never leaking a password."""

from __future__ import annotations

import pytest

from orchestrator.state.connection import SentinelUrl, broker_url, is_sentinel_url

ISSUE_FORM = "sentinel://:s3cr3t@h1:26379;sentinel://h2:26380;sentinel://h3/2"


def test_the_issues_form_gives_every_sentinel_the_password_and_the_database() -> None:
    url = SentinelUrl.parse(ISSUE_FORM)
    assert url.hosts == (("h1", 26379), ("h2", 26380), ("h3", 26379))
    assert (url.password, url.username, url.db) == ("s3cr3t", None, 2)


def test_celery_gets_the_credentials_and_database_on_every_address() -> None:
    assert broker_url(ISSUE_FORM) == (
        "sentinel://:s3cr3t@h1:26379/2;sentinel://:s3cr3t@h2:26380/2;sentinel://:s3cr3t@h3:26379/2"
    )
    assert broker_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_a_user_and_an_encoded_password_survive_the_round_trip() -> None:
    url = SentinelUrl.parse("sentinel://app:p%40ss%3Bw@h1:26379/1")
    assert (url.username, url.password, url.db) == ("app", "p@ss;w", 1)
    assert SentinelUrl.parse(url.for_celery()) == url


@pytest.mark.parametrize(
    "bad",
    [
        "redis://h1:6379/0",
        "sentinel://",
        "sentinel://:a@h1;sentinel://:b@h2",
        "sentinel://h1/0;sentinel://h2/1",
        "sentinel://h1/zero",
    ],
)
def test_a_bad_sentinel_url_is_refused_without_echoing_a_password(bad: str) -> None:
    with pytest.raises(ValueError) as caught:
        SentinelUrl.parse(bad)
    assert ":a@" not in str(caught.value) and ":b@" not in str(caught.value)


def test_only_sentinel_urls_are_sentinel_urls() -> None:
    assert is_sentinel_url(" sentinel://h1")
    assert not is_sentinel_url("rediss://h1:6380/0")
