"""SQLite's writes queued between the threads and workers of one database file, and its WAL
checkpoints run beside them (sso.db.make_engine installs both on an SQLite engine)."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import weakref
from pathlib import Path
from typing import Any

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
        connection: QueuedWritesConnection = self.connection  # type: ignore[assignment]
        connection.before_statement(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            connection.after_statement()

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> sqlite3.Cursor:  # noqa: ANN401
        connection: QueuedWritesConnection = self.connection  # type: ignore[assignment]
        connection.before_statement(sql)
        try:
            return super().executemany(sql, seq_of_parameters)
        finally:
            connection.after_statement()


class QueuedWritesConnection(sqlite3.Connection):
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


def queued_writes_connection(database: Path) -> type[QueuedWritesConnection]:
    """The sqlite3 connection class for ``database`` (``sqlite3.connect(factory=...)``)."""
    attributes = {"queue": _writer_queue(database)}
    return type("QueuedWritesConnection", (QueuedWritesConnection,), attributes)
