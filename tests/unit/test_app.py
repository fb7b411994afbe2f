"""``build_runtime``: the long-lived objects of a worker follow the settings."""

from __future__ import annotations

import asyncio
import threading
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
        overrides.setdefault("database_url", f"sqlite:///{tmp_path / 'sso.db'}")
        settings = Settings(secret_key=SECRET, **overrides)
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


def test_short_database_calls_stay_on_the_event_loop_with_sqlite_only(
    make_runtime, database_url: str, database_backend: str
) -> None:
    """SQLite calls are cheaper than a thread hand-off; a PostgreSQL round trip would stall
    every request of the worker."""
    runtime = make_runtime(database_url=database_url)

    async def thread_of_the_call() -> tuple[int, int]:
        return threading.get_ident(), await runtime.run_database(threading.get_ident)

    loop_thread, call_thread = asyncio.run(thread_of_the_call())

    assert (call_thread == loop_thread) is (database_backend == "sqlite")
