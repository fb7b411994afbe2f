"""``DriverStatement``: Core-compiled SQL run on the DBAPI cursor binds and returns what Core
would, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError

from sso.db import DriverStatement, driver_statement, make_engine, utcnow
from sso.sessions.models import ServiceLoginRow, SsoSessionRow, TicketRow
from sso.sessions.registry import _FIND_TICKET  # the statement of the hot path itself

_sessions = SsoSessionRow.__table__
_tickets = TicketRow.__table__
_logins = ServiceLoginRow.__table__
LOGIN_KEYS = ["session_id", "protocol", "service", "logout_url", "ticket", "created_at"]


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    now = utcnow().replace(microsecond=123456)
    with engine.begin() as conn:
        conn.execute(
            insert(_sessions),
            {
                "id": "s1",
                "subject": "cmartin",
                "method": "academic",
                "assurance": "password",
                "attributes": {"mail": ["claire.martin@ac-test.fr"], "sn": ["Martin"]},
                "authenticated_at": now,
                "last_used_at": now,
                "expires_at": now + dt.timedelta(hours=8),
            },
        )
        conn.execute(
            insert(_tickets),
            {
                "id": "t1",
                "kind": "ST",
                "session_id": "s1",
                "service": "https://app.test/?next=%2F",
                "from_new_login": True,
                "proxies": ["https://proxy.test/cb"],
                "expires_at": now + dt.timedelta(seconds=10),
            },
        )
    yield engine
    engine.dispose()


def test_a_row_comes_back_with_the_types_core_gives(engine: Engine) -> None:
    statement = _FIND_TICKET
    with engine.connect() as conn:
        expected = tuple(conn.execute(statement, {"ticket_id": "t1"}).one())
    connection = engine.raw_connection()
    try:
        row = DriverStatement(statement, engine.dialect).first(
            connection.cursor(), {"ticket_id": "t1"}
        )
    finally:
        connection.close()
    assert row == expected
    assert row is not None
    _kind, _service, _session, from_new_login, proxies, expires_at = row[:6]
    authenticated_at, _assurance, attributes = row[8:]
    assert from_new_login is True
    assert proxies == ["https://proxy.test/cb"]
    assert attributes["mail"] == ["claire.martin@ac-test.fr"]
    assert expires_at.tzinfo is not None and authenticated_at.microsecond == 123456


def test_no_row_is_none(engine: Engine) -> None:
    connection = engine.raw_connection()
    try:
        assert (
            DriverStatement(_FIND_TICKET, engine.dialect).first(
                connection.cursor(), {"ticket_id": "unknown"}
            )
            is None
        )
    finally:
        connection.close()


def test_values_are_bound_through_the_column_types(engine: Engine) -> None:
    created = dt.datetime(2026, 12, 4, 9, 30, 15, 250000, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    statement = DriverStatement(insert(_logins), engine.dialect, column_keys=LOGIN_KEYS)
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        changed = statement.execute(
            cursor,
            {
                "session_id": "s1",
                "protocol": "cas",
                "service": "https://app.test/?next=%2F",
                "logout_url": "https://app.test/logout",
                "ticket": "ST-1",
                "created_at": created,
            },
        )
        connection.commit()
    finally:
        connection.close()
    assert changed == 1
    with engine.connect() as conn:
        stored = conn.execute(select(_logins.c.created_at, _logins.c.service)).one()
    assert stored.created_at == created  # the same instant, read back in UTC
    assert stored.created_at.tzinfo is not None
    assert stored.service == "https://app.test/?next=%2F"


def test_rows_changed_are_counted(engine: Engine) -> None:
    spend = DriverStatement(
        delete(_tickets).where(_tickets.c.id == bindparam("ticket_id")), engine.dialect
    )
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        assert spend.execute(cursor, {"ticket_id": "t1"}) == 1
        assert spend.execute(cursor, {"ticket_id": "t1"}) == 0
        connection.commit()
    finally:
        connection.close()


def test_driver_errors_are_raised_as_core_raises_them(engine: Engine) -> None:
    statement = DriverStatement(insert(_logins), engine.dialect, column_keys=LOGIN_KEYS)
    connection = engine.raw_connection()
    try:
        with pytest.raises(IntegrityError):  # protocol is NOT NULL
            statement.execute(
                connection.cursor(),
                {
                    "session_id": "s1",
                    "protocol": None,
                    "service": "https://app.test/",
                    "logout_url": "https://app.test/logout",
                    "ticket": "ST-2",
                    "created_at": utcnow(),
                },
            )
        connection.rollback()
    finally:
        connection.close()


def test_a_missing_value_is_refused_before_the_driver_sees_it(engine: Engine) -> None:
    statement = DriverStatement(insert(_logins), engine.dialect, column_keys=LOGIN_KEYS)
    with pytest.raises(KeyError):
        statement.parameters({"session_id": "s1"})


def _login(ticket: str) -> dict[str, object]:
    return {
        "session_id": "s1",
        "protocol": "cas",
        "service": "https://app.test/",
        "logout_url": "https://app.test/logout",
        "ticket": ticket,
        "created_at": utcnow(),
    }


def test_run_within_a_transaction_it_commits_with_it(engine: Engine) -> None:
    statement = driver_statement(insert(_logins), engine.dialect, tuple(LOGIN_KEYS))
    with engine.begin() as conn:
        assert statement.execute_in(conn, _login("ST-in")) == 1
    with engine.connect() as conn:
        assert conn.execute(select(_logins.c.ticket)).scalars().all() == ["ST-in"]


def test_run_within_a_transaction_it_is_undone_with_it(engine: Engine) -> None:
    # A login's bookkeeping must not outlive the transaction it was part of.
    statement = driver_statement(insert(_logins), engine.dialect, tuple(LOGIN_KEYS))
    with pytest.raises(RuntimeError), engine.begin() as conn:
        statement.execute_in(conn, _login("ST-rolled-back"))
        raise RuntimeError("the caller fails after the statement")
    with engine.connect() as conn:
        assert conn.execute(select(_logins.c.ticket)).scalars().all() == []


def test_a_statement_is_compiled_once_per_dialect(engine: Engine) -> None:
    statement = insert(_logins)
    first = driver_statement(statement, engine.dialect, tuple(LOGIN_KEYS))
    assert driver_statement(statement, engine.dialect, tuple(LOGIN_KEYS)) is first
    assert driver_statement(statement, engine.dialect) is not first  # other columns, other SQL
