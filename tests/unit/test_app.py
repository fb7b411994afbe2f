"""``build_runtime``: the long-lived objects of a worker follow the settings."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sso.app import build_runtime
from sso.config import Settings
from sso.login.runtime import Runtime
from sso.security.passwords import hashes_at_once

SECRET = "app-test-secret-that-is-long-enough-0123456789"


@pytest.fixture
def make_runtime(tmp_path: Path) -> Iterator[object]:
    built: list[Runtime] = []

    def make(**overrides: object) -> Runtime:
        settings = Settings(
            secret_key=SECRET, database_url=f"sqlite:///{tmp_path / 'sso.db'}", **overrides
        )
        built.append(build_runtime(settings))
        return built[-1]

    yield make
    for runtime in built:
        runtime.backchannel.close()
        asyncio.run(runtime.async_backchannel.aclose())
        runtime.engine.dispose()


def test_password_checks_at_once_follow_the_setting(make_runtime) -> None:
    assert make_runtime(password_hash_concurrency=3).password_checks.total_tokens == 3


def test_password_checks_at_once_default_to_the_cpus_of_a_single_process(make_runtime) -> None:
    assert make_runtime().password_checks.total_tokens == hashes_at_once()
