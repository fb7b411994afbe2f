"""Database engine, session factory and the declarative base every model derives from."""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import os
import sqlite3
import threading
import weakref
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


SQLITE_BUSY_TIMEOUT_SECONDS = 30
# Write transactions of one worker between two WAL checkpoints: a few hundred WAL pages.
CHECKPOINT_EVERY_WRITES = 100
# WAL size (pages) at which a checkpoint holds the writer queue so that it copies the whole
# WAL and the next writer starts it over: under steady writes it would otherwise never stop
# growing. ~40 MB of WAL; one pause of the writers (~1 ms) per ~1,300 CAS validations.
WAL_RESTART_PAGES = 10_000
# How long that checkpoint waits for readers (sub-millisecond here) to leave the WAL.
RESTART_READER_WAIT_MS = 20
# Before it, PASSIVE checkpoints catch up (at most this many) until fewer than this many
# frames were written during the last one: what is left to copy and fsync inside the queue.
RESTART_CATCH_UP_TRIES = 3
RESTART_CATCH_UP_FRAMES = 64


def _checkpoint_when_asked(
    queue_ref: weakref.ref[SqliteWriterQueue], database: str, wanted: threading.Event
) -> None:
    """The WAL checkpointer of one writer queue, in a thread of its own; it ends with the queue.

    SQLite checkpoints inside the commit that takes the WAL past 1,000 pages: two fsyncs
    (~15 ms here) while that writer still holds the writer queue, every other writer of every
    worker waiting. ``make_engine`` turns that off (``wal_autocheckpoint=0``) and the queue
    wakes this thread every ``CHECKPOINT_EVERY_WRITES`` turns instead. Its checkpoints are
    PASSIVE: they wait for no reader or writer, and one refused (another worker's checkpoint
    running) is made up by the next. Once the WAL reaches ``WAL_RESTART_PAGES``, a RESTART
    checkpoint inside the queue copies the pages written meanwhile and starts the WAL over.
    """
    database_file = os.open(database, os.O_RDONLY)  # for its fsync (_passive_checkpoint)
    connection = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        while (queue := queue_ref()) is not None:
            del queue  # hold no reference while waiting: the queue may go away
            if not wanted.wait(timeout=10):
                continue
            wanted.clear()
            try:
                wal_pages = _passive_checkpoint(connection, database_file)
                for _ in range(RESTART_CATCH_UP_TRIES if wal_pages >= WAL_RESTART_PAGES else 0):
                    before, wal_pages = wal_pages, _passive_checkpoint(connection, database_file)
                    if wal_pages - before < RESTART_CATCH_UP_FRAMES:
                        break
                queue = queue_ref()
                if wal_pages >= WAL_RESTART_PAGES and queue is not None and queue.enter():
                    try:
                        # RESTART: copy the rest, then wait (a little) for the readers still on
                        # the WAL, so that it surely starts over: a PASSIVE one here left it
                        # growing whenever a reader of another worker was about.
                        connection.execute(f"PRAGMA busy_timeout={RESTART_READER_WAIT_MS}")
                        connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
                    finally:
                        connection.execute("PRAGMA busy_timeout=0")
                        queue.leave()
                del queue
            except (sqlite3.Error, OSError):  # e.g. another worker is checkpointing: next time
                pass
    finally:
        connection.close()
        os.close(database_file)


def _passive_checkpoint(connection: sqlite3.Connection, database_file: int) -> int:
    """A PASSIVE checkpoint, then an fsync of the database file; the WAL's size in frames.

    SQLite fsyncs the database after a checkpoint only if no writer added to the WAL while it
    copied, which under load is almost never. The pages copied then waited, unwritten, for the
    RESTART inside the writer queue, whose fsync wrote them all: 2-13 ms with every writer of
    every worker waiting (bench/cas_validation.py), ~1 ms once synced here, outside the queue.
    """
    _busy, wal_pages, _copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    os.fdatasync(database_file)
    return wal_pages


class SqliteWriterQueue:
    """Makes the writers of one SQLite file wait their turn in the kernel, not in SQLite.

    SQLite lets one writer in at a time and makes the others poll, sleeping 1, 2, 5... up to
    100 ms between tries: under load a waiter keeps missing its turn and waits hundreds of
    milliseconds for a lock held a fraction of one. Here writers queue on a thread lock (within
    a worker process) and on an ``flock`` of ``<database>-writers`` (between workers), and the
    next one is woken as soon as the previous one commits. The queue only orders writers:
    SQLite's lock still guarantees exclusion, and a writer that cannot join the queue in time,
    or whose thread already writes through another connection, goes straight to SQLite.
    Every ``CHECKPOINT_EVERY_WRITES`` turns, it wakes its WAL checkpointer.
    """

    def __init__(self, database: str) -> None:
        self._database = database
        self._lock_path = database + "-writers"
        self._thread_lock = threading.Lock()
        self._owner: int | None = None
        self._fd: int | None = None
        self._fd_pid = 0
        self._turns = 0
        self._checkpoint_wanted = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._checkpointer_pid = 0

    def _file(self) -> int:
        if self._fd is None or self._fd_pid != os.getpid():  # a forked child opens its own
            self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self._fd_pid = os.getpid()
        return self._fd

    def enter(self) -> bool:
        """Wait for this thread's turn to write; False when it goes without the queue."""
        me = threading.get_ident()
        if self._owner == me:
            return False
        if not self._thread_lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_SECONDS):
            return False
        try:
            fcntl.flock(self._file(), fcntl.LOCK_EX)
        except OSError:
            self._thread_lock.release()
            return False
        self._owner = me
        return True

    def leave(self) -> None:
        """Let the next writer in (after a successful ``enter``)."""
        self._owner = None
        self._turns += 1
        try:
            if self._turns % CHECKPOINT_EVERY_WRITES == 0:
                self._wake_checkpointer()
        finally:
            try:
                fcntl.flock(self._file(), fcntl.LOCK_UN)
            finally:
                self._thread_lock.release()

    def _wake_checkpointer(self) -> None:
        thread = self._checkpointer
        if thread is None or self._checkpointer_pid != os.getpid() or not thread.is_alive():
            self._checkpointer = threading.Thread(
                target=_checkpoint_when_asked,
                args=(weakref.ref(self), self._database, self._checkpoint_wanted),
                name="sqlite-wal-checkpoint",
                daemon=True,
            )
            self._checkpointer.start()
            self._checkpointer_pid = os.getpid()
        self._checkpoint_wanted.set()

    def __del__(self) -> None:
        if self._fd is not None and self._fd_pid == os.getpid():
            os.close(self._fd)


# One queue per database file and process, shared by every engine on that file.
_writer_queues: weakref.WeakValueDictionary[str, SqliteWriterQueue] = weakref.WeakValueDictionary()
_writer_queues_lock = threading.Lock()


def _writer_queue(database: Path) -> SqliteWriterQueue:
    path = str(database.resolve())
    with _writer_queues_lock:
        queue = _writer_queues.get(path)
        if queue is None:
            queue = _writer_queues[path] = SqliteWriterQueue(path)
        return queue


_READ_ONLY_STATEMENTS = ("SELECT", "PRAGMA", "EXPLAIN")


class _QueuedWritesCursor(sqlite3.Cursor):
    """A cursor whose connection joins the writer queue before the first write it runs."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:  # noqa: ANN401
        connection: _QueuedWritesConnection = self.connection  # type: ignore[assignment]
        connection.before_statement(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            connection.after_statement()

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> sqlite3.Cursor:  # noqa: ANN401
        connection: _QueuedWritesConnection = self.connection  # type: ignore[assignment]
        connection.before_statement(sql)
        try:
            return super().executemany(sql, seq_of_parameters)
        finally:
            connection.after_statement()


class _QueuedWritesConnection(sqlite3.Connection):
    """A sqlite3 connection that holds its database's writer queue from its first write until
    its transaction ends (commit, rollback, close)."""

    queue: SqliteWriterQueue  # set on the subclass made for each database

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(*args, **kwargs)
        self._queued = False

    def cursor(self, factory: Any = _QueuedWritesCursor) -> sqlite3.Cursor:  # noqa: ANN401
        return super().cursor(factory)

    def before_statement(self, sql: str) -> None:
        if not self._queued and not sql.lstrip()[:7].upper().startswith(_READ_ONLY_STATEMENTS):
            self._queued = self.queue.enter()

    def after_statement(self) -> None:
        if self._queued and not self.in_transaction:  # it autocommitted, or failed
            self._leave()

    def _leave(self) -> None:
        if getattr(self, "_queued", False):
            self._queued = False
            self.queue.leave()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._leave()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._leave()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._leave()

    def __del__(self) -> None:
        self._leave()


def _queued_writes_connection(database: Path) -> type[_QueuedWritesConnection]:
    """The sqlite3 connection class for ``database`` (``sqlite3.connect(factory=...)``)."""
    attributes = {"queue": _writer_queue(database)}
    return type("QueuedWritesConnection", (_QueuedWritesConnection,), attributes)


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
            connect_args["factory"] = _queued_writes_connection(Path(url.database))
        engine = create_engine(url, connect_args=connect_args)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            if isinstance(dbapi_connection, _QueuedWritesConnection):
                cursor.execute("PRAGMA wal_autocheckpoint=0")  # see _checkpoint_when_asked
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
