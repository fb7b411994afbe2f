"""Database engine, session factory and the declarative base every model derives from."""

from __future__ import annotations

import datetime as dt
import functools
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, sessionmaker
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import TypeDecorator

from sso.sqlite import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    QueuedWritesConnection,
    queued_writes_connection,
)

# Stable constraint names so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of all models."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def make_engine(database_url: str) -> Engine:
    """An engine tuned for the backend: WAL, a busy timeout and the writer queue for SQLite."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        connect_args: dict[str, Any] = {
            "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
            "check_same_thread": False,
        }
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            connect_args["factory"] = queued_writes_connection(Path(url.database))
        engine = create_engine(url, connect_args=connect_args)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            if isinstance(dbapi_connection, QueuedWritesConnection):
                cursor.execute("PRAGMA wal_autocheckpoint=0")  # sso.sqlite checkpoints
            cursor.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


class DriverStatement:
    """A Core statement compiled once for a dialect and run straight on a DBAPI cursor.

    For the few statements of the hottest paths (a CAS ticket's issue, one INSERT, and its
    validation: one read, one DELETE, one INSERT; a password login's throttle read, session
    INSERT, device touch and audit INSERT), where SQLAlchemy's execution (execution
    context, parameter processing, result object: ~55 us a statement here) cost five times
    SQLite's own work and was the largest share of a worker's CPU (bench/README.md). The SQL
    is still the one SQLAlchemy writes from the tables, and values go through the columns' own
    type processors, so what is bound and returned is what Core would bind and return.
    """

    def __init__(
        self, statement: Executable, dialect: Dialect, column_keys: Sequence[str] | None = None
    ) -> None:
        compiled = statement.compile(
            dialect=dialect, column_keys=list(column_keys) if column_keys else None
        )
        self.sql = str(compiled)
        self._driver_error: type[Exception] = dialect.loaded_dbapi.Error
        # The binds in order for positional styles (SQLite's "?"), by name otherwise.
        self._positional: list[str] | None = compiled.positiontup
        self._names = list(compiled.binds)
        self._bind_processors: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._bind_processors[name] = processor
        columns = list(getattr(statement, "selected_columns", ()))
        self._result_processors: list[Callable[[Any], Any] | None] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        # Rows read by column name, as Core's are.
        self._row = namedtuple("Row", [column.key for column in columns])  # noqa: PYI024

    def _run(self, cursor: Any, values: Mapping[str, Any]) -> None:  # noqa: ANN401 - DBAPI
        parameters = self.parameters(values)
        try:
            cursor.execute(self.sql, parameters)
        except self._driver_error as exc:  # as Core raises it: IntegrityError, OperationalError...
            raise DBAPIError.instance(self.sql, parameters, exc, self._driver_error) from exc

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """``values`` processed for the driver, in the form its paramstyle wants."""
        missing = [name for name in self._names if name not in values]
        if missing:  # Core would bind NULL or a default; here that is the caller's to say
            raise KeyError(f"no value for {', '.join(missing)}")
        processed = dict(values)
        for name, processor in self._bind_processors.items():
            processed[name] = processor(processed[name])
        if self._positional is not None:
            return [processed[name] for name in self._positional]
        return processed

    def execute(self, cursor: Any, values: Mapping[str, Any]) -> int:  # noqa: ANN401 - DBAPI
        """Run it; the number of rows it changed."""
        self._run(cursor, values)
        return cursor.rowcount

    def execute_in(self, conn: Connection, values: Mapping[str, Any]) -> int:
        """Run it within ``conn``'s transaction, on its DBAPI connection; rows changed."""
        return self.execute(conn.connection.cursor(), values)

    def first(self, cursor: Any, values: Mapping[str, Any]) -> Any | None:  # noqa: ANN401
        """Run a SELECT; its first row (a named tuple) with the columns' result types, or None."""
        self._run(cursor, values)
        row = cursor.fetchone()
        cursor.fetchall()  # the rest, if any: the cursor is then free again
        if row is None:
            return None
        return self._row._make(
            value if processor is None else processor(value)
            for processor, value in zip(self._result_processors, row, strict=True)
        )


@functools.lru_cache(maxsize=128)
def driver_statement(
    statement: Executable, dialect: Dialect, column_keys: tuple[str, ...] | None = None
) -> DriverStatement:
    """``statement`` as a ``DriverStatement`` for ``dialect``, compiled once: for the
    module-level statements run within a caller's transaction, on
    ``connection.connection.cursor()`` (a login's bookkeeping)."""
    return DriverStatement(statement, dialect, column_keys)


def make_session_factory(engine: Engine) -> sessionmaker:
    """The session factory every store uses (objects stay usable after commit)."""
    return sessionmaker(engine, expire_on_commit=False)
