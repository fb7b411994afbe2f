"""The Alembic migrations build exactly the schema the models declare, on both backends."""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import sso.accounts.models
import sso.accounts.questions  # noqa: F401
import sso.audit
import sso.mail
import sso.protocols.saml.models
import sso.services.models
import sso.sessions.models  # noqa: F401 - every model module registers its tables
from sso.db import Base, make_engine
from sso.migrate import MIGRATIONS_DIR, alembic_config, upgrade

PROJECT_ROOT = Path(sso.accounts.models.__file__).resolve().parents[2]
_database_names = itertools.count()


@pytest.fixture
def fresh_database(
    database_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A brand-new, empty database (not the suite's shared one)."""
    if database_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    cluster = request.getfixturevalue("postgres_cluster")
    name = f"migrations_{next(_database_names)}"
    url = cluster.create_database(name)
    yield url
    cluster.drop_database(name)


def schema_differences(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrations_yield_exactly_the_models_schema(fresh_database: str) -> None:
    upgrade(fresh_database)

    assert schema_differences(fresh_database) == []
    assert table_names(fresh_database) == set(Base.metadata.tables) | {"alembic_version"}


def test_upgrade_twice_is_harmless(fresh_database: str) -> None:
    upgrade(fresh_database)
    upgrade(fresh_database)

    assert schema_differences(fresh_database) == []


def test_downgrade_to_base_then_upgrade_again(fresh_database: str) -> None:
    upgrade(fresh_database)

    command.downgrade(alembic_config(fresh_database), "base")
    assert table_names(fresh_database) == {"alembic_version"}

    upgrade(fresh_database)
    assert schema_differences(fresh_database) == []


def _model_modules() -> set[str]:
    package = PROJECT_ROOT / "sso"
    return {
        ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
        for path in package.rglob("models.py")
    }


def _modules_imported_by(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    return imported


def test_env_imports_every_model_module() -> None:
    """A models module env.py does not import would be invisible to autogenerate."""
    model_modules = _model_modules()
    assert {"sso.accounts.models", "sso.services.models", "sso.sessions.models"} <= model_modules

    missing = model_modules - _modules_imported_by(MIGRATIONS_DIR / "env.py")

    assert not missing, f"migrations/env.py does not import {sorted(missing)}"
