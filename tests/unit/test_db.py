"""The SQLite writer queue of ``sso.sqlite``: writers take turns, and a turn always ends."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

import sso.sqlite
from sso.db import make_engine
from sso.sqlite import SqliteWriterQueue


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'queue.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"))
    yield engine
    engine.dispose()


def _queue(engine: Engine) -> SqliteWriterQueue:
    with engine.connect() as conn:
        return type(conn.connection.dbapi_connection).queue  # type: ignore[attr-defined]


def _is_free(queue: SqliteWriterQueue, wait: float = 5.0) -> bool:
    """Whether another thread can start writing within ``wait`` seconds."""
    result: list[bool] = []

    def probe() -> None:
        entered = queue.enter()
        if entered:
            queue.leave()
        result.append(entered)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join(timeout=wait)
    return result == [True]


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM items")).scalar_one()


def test_concurrent_writers_all_commit_and_leave_the_queue_free(engine: Engine) -> None:
    def write(offset: int) -> None:
        for i in range(50):
            with engine.begin() as conn:
                conn.execute(
                    text("INSERT INTO items (id, name) VALUES (:id, 'x')"), {"id": offset + i}
                )

    threads = [threading.Thread(target=write, args=(n * 1000,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert _count(engine) == 400
    assert _is_free(_queue(engine))


def test_a_failed_write_ends_the_turn(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO items (id, name) VALUES (1, 'a')"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO items (id, name) VALUES (1, 'b')"))
    assert _is_free(_queue(engine))


def test_a_transaction_left_uncommitted_ends_the_turn_when_the_connection_returns(
    engine: Engine,
) -> None:
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO items (id, name) VALUES (1, 'a')"))
        assert not _is_free(_queue(engine), wait=0.5)  # writing: the others wait
    assert _is_free(_queue(engine))
    assert _count(engine) == 0  # rolled back when the pool took the connection back


def test_reads_do_not_wait_for_a_writer(engine: Engine) -> None:
    with engine.connect() as writer:
        writer.execute(text("INSERT INTO items (id, name) VALUES (1, 'a')"))
        assert _count(engine) == 0  # another connection reads at once (WAL), before the commit
        writer.commit()
    assert _count(engine) == 1


def test_engines_on_one_file_share_its_queue(engine: Engine, tmp_path: Path) -> None:
    other = make_engine(f"sqlite:///{tmp_path / 'queue.db'}")
    elsewhere = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        assert _queue(other) is _queue(engine)
        assert _queue(elsewhere) is not _queue(engine)
    finally:
        other.dispose()
        elsewhere.dispose()


def test_a_thread_already_writing_goes_straight_to_sqlite(tmp_path: Path) -> None:
    """Its second connection must not wait for a turn the thread itself holds (no deadlock)."""
    queue = SqliteWriterQueue(str(tmp_path / "queue.db"))
    assert queue.enter()
    try:
        assert not queue.enter()
    finally:
        queue.leave()
    assert queue.enter()
    queue.leave()


def test_a_writer_in_another_process_makes_this_one_wait(engine: Engine, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    script = (
        "import sys\n"
        "from sqlalchemy import text\n"
        "from sso.db import make_engine\n"
        f"engine = make_engine({url!r})\n"
        "with engine.begin() as conn:\n"
        "    conn.execute(text(\"INSERT INTO items (id, name) VALUES (7, 'other')\"))\n"
        "    print('writing', flush=True)\n"
        "    sys.stdin.readline()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as other:
        try:
            assert other.stdout is not None and other.stdin is not None
            assert other.stdout.readline().strip() == "writing"
            assert not _is_free(_queue(engine), wait=0.5)
            other.stdin.write("commit\n")
            other.stdin.flush()
            assert other.wait(timeout=30) == 0
        finally:
            if other.poll() is None:
                other.kill()
    assert _is_free(_queue(engine))
    assert _count(engine) == 1


def test_commits_leave_wal_checkpoints_to_the_checkpointer(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 0


def test_the_wal_is_checkpointed_and_started_over_under_steady_writes(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sso.sqlite, "CHECKPOINT_EVERY_WRITES", 10)
    monkeypatch.setattr(sso.sqlite, "WAL_RESTART_PAGES", 50)
    wal = tmp_path / "queue.db-wal"
    largest = 0
    for i in range(2000):  # ~2,000 pages: ~8 MB of WAL if it were never started over
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO items (id, name) VALUES (:id, 'x')"), {"id": i})
        largest = max(largest, wal.stat().st_size)

    assert _count(engine) == 2000
    assert largest < 2_000_000


def test_the_checkpointer_syncs_the_database_file_it_copied_to(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under load SQLite leaves that fsync to the checkpoint that restarts the WAL, inside the
    # writer queue: every writer would wait for all the pages copied since the last one.
    monkeypatch.setattr(sso.sqlite, "CHECKPOINT_EVERY_WRITES", 10)
    database = (tmp_path / "queue.db").resolve()
    synced: list[Path] = []
    fdatasync = sso.sqlite.os.fdatasync

    def recording_fdatasync(fd: int) -> None:
        synced.append(Path(sso.sqlite.os.readlink(f"/proc/self/fd/{fd}")))
        fdatasync(fd)

    monkeypatch.setattr(sso.sqlite.os, "fdatasync", recording_fdatasync)
    for i in range(50):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO items (id, name) VALUES (:id, 'x')"), {"id": i})
    for _ in range(100):
        if database in synced:
            break
        threading.Event().wait(0.05)
    assert database in synced
