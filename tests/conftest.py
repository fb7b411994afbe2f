"""Fixtures shared by the whole suite.

Every test that asks for ``runtime`` or ``client`` runs twice: on SQLite and on a temporary
PostgreSQL cluster started here with Debian's binaries (``database_backend`` is a session
parameter, so pytest groups the tests by backend and starts the cluster once).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from sso.accounts.importer import import_accounts
from sso.app import create_app
from sso.config import Settings
from sso.db import Base, make_engine
from sso.login.runtime import Runtime
from sso.migrate import upgrade
from sso.services.registry import CasService
from tests.support.postgres import PostgresCluster

BASE_URL = "https://sso.test/"
SECRET = "test-secret-key-that-is-long-enough-0123456789"
_counter = itertools.count()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API leaves an event loop marked running in the main
    thread while it is open, which would break ``asyncio.run`` in the tests after them."""
    items.sort(key=lambda item: item.nodeid.startswith("tests/e2e/"))


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_backend(request: pytest.FixtureRequest) -> str:
    """The database the test runs on."""
    return request.param


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One temporary PostgreSQL cluster for the session."""
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def migrated_database(
    database_backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> str:
    """A database brought to the latest migration, once per backend."""
    if database_backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'sso.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        url = cluster.create_database("sso_tests")
    upgrade(url)
    return url


def _empty_tables(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))  # noqa: S608 - our table names


@pytest.fixture
def database_url(migrated_database: str) -> Iterator[str]:
    """The migrated database, emptied after each test."""
    yield migrated_database
    engine = make_engine(migrated_database)
    _empty_tables(engine)
    engine.dispose()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings."""
    return {}


@pytest.fixture
def settings(database_url: str, tmp_path: Path, settings_overrides: dict[str, Any]) -> Settings:
    """Production-like settings: HTTPS base URL, a real secret, the test database."""
    values: dict[str, Any] = {
        "base_url": BASE_URL,
        "secret_key": SECRET,
        "database_url": database_url,
        "var_dir": tmp_path / "var",
        "service_cache_seconds": 0,
    }
    values.update(settings_overrides)
    return Settings(**values)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """An in-process HTTP client on the app (lifespan run), following no redirects."""
    app = create_app(settings)
    with TestClient(app, base_url=BASE_URL.rstrip("/"), follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def runtime(client: TestClient) -> Runtime:
    """The long-lived objects of the app under test (registries, stores)."""
    return client.app.state.runtime


@pytest.fixture
def add_account(runtime: Runtime) -> Callable[..., str]:
    """Create an academic account: ``add_account("jdupont", "password", email=...)``."""

    def add(identifier: str, password: str, **columns: str) -> str:
        row = {"identifier": identifier, "password": password, **columns}
        header = ",".join(row)
        values = ",".join(f'"{v}"' for v in row.values())
        report = import_accounts(
            runtime.engine,
            runtime.accounts.hasher,
            f"{header}\n{values}\n",
            numen_key=runtime.accounts.numen_key,
        )
        assert not report.errors, report.errors
        return identifier

    return add


@pytest.fixture
def add_service(runtime: Runtime) -> Callable[..., CasService]:
    """Register a CAS service: ``add_service("https://app.test/", released_attributes=[...])``."""

    def add(pattern: str, **options: Any) -> CasService:
        options.setdefault("name", f"service-{next(_counter)}")
        return runtime.services.add(pattern=pattern, **options)

    return add
