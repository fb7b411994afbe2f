"""The SQL session registry: sessions, expiry, single-use tickets, PGTs, logout, purge."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from sso.db import make_engine, utcnow
from sso.security.tokens import token_digest
from sso.sessions.authentication import Authentication
from sso.sessions.models import (
    ProxyGrantingTicketRow,
    ServiceLoginRow,
    SsoSessionRow,
    TicketRow,
)
from sso.sessions.registry import (
    TOUCH_INTERVAL,
    ConsumedTicket,
    LogoutTarget,
    SqlSessionRegistry,
)

IDLE = 600
MAX = 3600
TICKET_LIFETIME = 10
SERVICE = "https://app.test/cas"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def registry(engine: Engine) -> SqlSessionRegistry:
    return SqlSessionRegistry(
        engine, idle_timeout=IDLE, max_lifetime=MAX, ticket_lifetime=TICKET_LIFETIME
    )


def authentication(subject: str = "jdupont", **changes: object) -> Authentication:
    values: dict[str, object] = {
        "subject": subject,
        "method": "academic",
        "authenticated_at": utcnow().replace(microsecond=0),
        "attributes": {"mail": ["j@ac-paris.fr"]},
    }
    values.update(changes)
    return Authentication(**values)  # type: ignore[arg-type]


def set_session(engine: Engine, session_id: str, **values: dt.datetime) -> None:
    with engine.begin() as conn:
        conn.execute(update(SsoSessionRow).where(SsoSessionRow.id == session_id).values(**values))


def stored_last_used(engine: Engine, session_id: str) -> dt.datetime:
    with engine.connect() as conn:
        return conn.execute(
            select(SsoSessionRow.last_used_at).where(SsoSessionRow.id == session_id)
        ).scalar_one()


def rows(engine: Engine, table: type) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# -- Sessions ---------------------------------------------------------------------------------


def test_create_and_find(registry: SqlSessionRegistry, engine: Engine) -> None:
    authn = authentication()
    before = utcnow()

    cookie, session = registry.create_session(authn)

    assert re.fullmatch(r"TGT-[A-Za-z0-9]{48}", cookie)
    assert session.id == token_digest(cookie)
    assert session.authentication == authn
    assert before + dt.timedelta(seconds=MAX) <= session.expires_at
    assert session.expires_at <= utcnow() + dt.timedelta(seconds=MAX)
    found = registry.find_session(cookie)
    assert found is not None
    assert found.id == session.id
    assert found.authentication == authn
    assert found.expires_at == session.expires_at


def test_cookie_stored_only_as_its_digest(registry: SqlSessionRegistry, engine: Engine) -> None:
    cookie, _session = registry.create_session(authentication())

    with engine.connect() as conn:
        stored = conn.execute(select(SsoSessionRow.id)).scalar_one()
    assert stored == token_digest(cookie)
    assert registry.find_session(stored) is None  # the digest does not open the session


def test_each_session_has_its_own_cookie(registry: SqlSessionRegistry) -> None:
    cookie_a, a = registry.create_session(authentication("a"))
    cookie_b, b = registry.create_session(authentication("b"))

    assert cookie_a != cookie_b and a.id != b.id
    found = registry.find_session(cookie_b)
    assert found is not None and found.authentication.subject == "b"


@pytest.mark.parametrize("cookie", [None, "", "TGT-unknown", "TGT-" + "a" * 200])
def test_unknown_cookie(registry: SqlSessionRegistry, cookie: str | None) -> None:
    registry.create_session(authentication())

    assert registry.find_session(cookie) is None


def test_idle_session_expires(registry: SqlSessionRegistry, engine: Engine) -> None:
    cookie, session = registry.create_session(authentication())
    now = utcnow()

    set_session(engine, session.id, last_used_at=now - dt.timedelta(seconds=IDLE - 5))
    assert registry.find_session(cookie) is not None  # touched now

    set_session(engine, session.id, last_used_at=now - dt.timedelta(seconds=IDLE + 1))
    assert registry.find_session(cookie) is None
    # Finding it again does not revive it.
    assert registry.find_session(cookie) is None


def test_absolute_lifetime_ends_even_a_busy_session(
    registry: SqlSessionRegistry, engine: Engine
) -> None:
    cookie, session = registry.create_session(authentication())

    set_session(engine, session.id, expires_at=utcnow() - dt.timedelta(seconds=1))

    assert registry.find_session(cookie) is None


def test_touched_at_most_once_per_interval(registry: SqlSessionRegistry, engine: Engine) -> None:
    cookie, session = registry.create_session(authentication())
    recently = utcnow() - TOUCH_INTERVAL + dt.timedelta(seconds=10)
    set_session(engine, session.id, last_used_at=recently)

    found = registry.find_session(cookie)

    assert found is not None
    assert stored_last_used(engine, session.id) == recently  # no write
    assert found.last_used_at == recently


def test_touched_after_the_interval(registry: SqlSessionRegistry, engine: Engine) -> None:
    cookie, session = registry.create_session(authentication())
    long_ago = utcnow() - TOUCH_INTERVAL - dt.timedelta(seconds=10)
    set_session(engine, session.id, last_used_at=long_ago)
    before = utcnow()

    found = registry.find_session(cookie)

    assert found is not None
    assert stored_last_used(engine, session.id) >= before
    assert found.last_used_at >= before


def test_refresh_keeps_the_session_and_its_absolute_limit(
    registry: SqlSessionRegistry, engine: Engine
) -> None:
    cookie, session = registry.create_session(authentication(assurance="password"))
    registry.record_service_login(
        session.id, protocol="cas", service=SERVICE, logout_url=SERVICE, ticket="ST-1"
    )
    again = authentication(assurance="mfa", attributes={"mail": ["new@ac-paris.fr"]})

    refreshed = registry.refresh_session(session, again)

    assert refreshed.id == session.id
    assert refreshed.expires_at == session.expires_at  # re-authenticating never extends it
    found = registry.find_session(cookie)
    assert found is not None
    assert found.authentication == again
    assert found.expires_at == session.expires_at
    assert [t.service for t in registry.end_session(session.id)] == [SERVICE]


def test_end_session(registry: SqlSessionRegistry, engine: Engine) -> None:
    cookie, session = registry.create_session(authentication())
    other_cookie, other = registry.create_session(authentication("other"))
    registry.issue_ticket(other, kind="ST", service=SERVICE, from_new_login=True)
    registry.create_proxy_granting_ticket(other.id, service=SERVICE, proxies=[])
    ticket = registry.issue_ticket(session, kind="ST", service=SERVICE, from_new_login=True)
    pgt, _iou = registry.create_proxy_granting_ticket(session.id, service=SERVICE, proxies=[])
    registry.record_service_login(
        session.id, protocol="cas", service=SERVICE, logout_url=SERVICE, ticket="ST-a"
    )
    registry.record_service_login(
        session.id,
        protocol="cas",
        service="https://b.test/",
        logout_url="https://b.test/slo",
        ticket="ST-b",
    )

    targets = registry.end_session(session.id)

    assert sorted(targets, key=lambda t: t.ticket) == [
        LogoutTarget(protocol="cas", service=SERVICE, logout_url=SERVICE, ticket="ST-a"),
        LogoutTarget(
            protocol="cas",
            service="https://b.test/",
            logout_url="https://b.test/slo",
            ticket="ST-b",
        ),
    ]
    assert registry.find_session(cookie) is None
    assert registry.consume_ticket(ticket) is None
    assert registry.find_proxy_granting_ticket(pgt) is None
    # Only the other session and its children remain.
    assert rows(engine, SsoSessionRow) == 1
    assert rows(engine, TicketRow) == 1
    assert rows(engine, ProxyGrantingTicketRow) == 1
    assert rows(engine, ServiceLoginRow) == 0
    assert registry.find_session(other_cookie) is not None


def test_end_unknown_session(registry: SqlSessionRegistry) -> None:
    assert registry.end_session("no-such-session") == []


# -- Tickets ----------------------------------------------------------------------------------


def test_ticket_round_trip(registry: SqlSessionRegistry) -> None:
    authn = authentication()
    _cookie, session = registry.create_session(authn)
    before = utcnow()

    ticket = registry.issue_ticket(session, kind="ST", service=SERVICE, from_new_login=True)
    consumed = registry.consume_ticket(ticket)

    assert re.fullmatch(r"ST-[A-Za-z0-9]{40}", ticket)
    assert isinstance(consumed, ConsumedTicket)
    assert consumed.kind == "ST"
    assert consumed.service == SERVICE
    assert consumed.session_id == session.id
    assert consumed.from_new_login is True
    assert consumed.proxies == []
    assert consumed.authentication == authn
    assert before + dt.timedelta(seconds=TICKET_LIFETIME) <= consumed.expires_at
    assert not consumed.expired(utcnow())
    assert consumed.expired(consumed.expires_at)


def test_proxy_ticket_keeps_its_proxies(registry: SqlSessionRegistry) -> None:
    _cookie, session = registry.create_session(authentication())
    proxies = ["https://proxy2.test/pgt", "https://proxy1.test/pgt"]

    ticket = registry.issue_ticket(
        session, kind="PT", service=SERVICE, from_new_login=False, proxies=proxies
    )
    consumed = registry.consume_ticket(ticket)

    assert ticket.startswith("PT-")
    assert consumed is not None
    assert (consumed.kind, consumed.from_new_login, consumed.proxies) == ("PT", False, proxies)


def test_ticket_single_use(registry: SqlSessionRegistry) -> None:
    _cookie, session = registry.create_session(authentication())
    ticket = registry.issue_ticket(session, kind="ST", service=SERVICE, from_new_login=False)

    assert registry.consume_ticket(ticket) is not None
    assert registry.consume_ticket(ticket) is None


def test_ticket_stored_only_as_its_digest(registry: SqlSessionRegistry, engine: Engine) -> None:
    _cookie, session = registry.create_session(authentication())
    ticket = registry.issue_ticket(session, kind="ST", service=SERVICE, from_new_login=False)

    with engine.connect() as conn:
        stored = conn.execute(select(TicketRow.id)).scalar_one()
    assert stored == token_digest(ticket)
    assert registry.consume_ticket(stored) is None


@pytest.mark.parametrize("ticket", ["", "ST-unknown", "ST-" + "x" * 5000, "\udcff"])
def test_unknown_ticket(registry: SqlSessionRegistry, ticket: str) -> None:
    assert registry.consume_ticket(ticket) is None


def test_expired_ticket_flagged(registry: SqlSessionRegistry, engine: Engine) -> None:
    _cookie, session = registry.create_session(authentication())
    ticket = registry.issue_ticket(session, kind="ST", service=SERVICE, from_new_login=False)
    with engine.begin() as conn:
        conn.execute(update(TicketRow).values(expires_at=utcnow() - dt.timedelta(seconds=1)))

    consumed = registry.consume_ticket(ticket)

    assert consumed is not None
    assert consumed.expired(utcnow())
    assert registry.consume_ticket(ticket) is None  # consumed all the same


def consume_concurrently(registry: SqlSessionRegistry, ticket: str, consumers: int) -> list[bool]:
    """Whether each of ``consumers`` threads, released at once, got the ticket."""
    results: list[bool] = []
    start = threading.Barrier(consumers)

    def consume() -> None:
        start.wait()
        results.append(registry.consume_ticket(ticket) is not None)

    threads = [threading.Thread(target=consume) for _ in range(consumers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_consumers_get_a_ticket_once(registry: SqlSessionRegistry) -> None:
    _cookie, session = registry.create_session(authentication())
    for _ in range(5):
        ticket = registry.issue_ticket(session, kind="ST", service=SERVICE, from_new_login=False)

        assert sorted(consume_concurrently(registry, ticket, 4)) == [False, False, False, True]


def target(ticket: str, **changes: object) -> LogoutTarget:
    values: dict[str, object] = {
        "protocol": "cas",
        "service": SERVICE,
        "logout_url": SERVICE,
        "ticket": ticket,
    }
    values.update(changes)
    return LogoutTarget(**values)  # type: ignore[arg-type]


def test_accepted_ticket_records_its_service_login_with_the_consumption(
    registry: SqlSessionRegistry, engine: Engine
) -> None:
    _cookie, session = registry.create_session(authentication())
    ticket = registry.issue_ticket(session, kind="ST", service=SERVICE, from_new_login=True)
    seen: list[ConsumedTicket] = []

    def accept(consumed: ConsumedTicket) -> LogoutTarget:
        seen.append(consumed)
        return target(ticket)

    consumed = registry.consume_ticket(ticket, accept)

    assert consumed is not None and seen == [consumed]
    assert consumed.authentication is not None and consumed.from_new_login
    assert registry.consume_ticket(ticket) is None
    assert registry.end_session(session.id) == [target(ticket)]


def test_accepted_ticket_without_single_logout_records_nothing(
    registry: SqlSessionRegistry, engine: Engine
) -> None:
    _cookie, session = registry.create_session(authentication())
    ticket = registry.issue_ticket(session, kind="ST", service=SERVICE, from_new_login=False)

    assert registry.consume_ticket(ticket, lambda _consumed: None) is not None
    assert registry.consume_ticket(ticket) is None
    assert rows(engine, ServiceLoginRow) == 0


def test_refused_ticket_is_spent_all_the_same(registry: SqlSessionRegistry, engine: Engine) -> None:
    _cookie, session = registry.create_session(authentication())
    ticket = registry.issue_ticket(session, kind="ST", service=SERVICE, from_new_login=False)

    def refuse(_consumed: ConsumedTicket) -> LogoutTarget:
        raise LookupError("wrong service")

    with pytest.raises(LookupError):
        registry.consume_ticket(ticket, refuse)

    assert registry.consume_ticket(ticket) is None
    assert rows(engine, ServiceLoginRow) == 0


def test_ticket_stays_consumed_when_its_service_login_cannot_be_written(
    registry: SqlSessionRegistry, engine: Engine
) -> None:
    _cookie, session = registry.create_session(authentication())
    ticket = registry.issue_ticket(session, kind="ST", service=SERVICE, from_new_login=False)

    with pytest.raises(IntegrityError):  # protocol is NOT NULL
        registry.consume_ticket(ticket, lambda _consumed: target(ticket, protocol=None))

    assert registry.consume_ticket(ticket) is None
    assert rows(engine, ServiceLoginRow) == 0


def test_concurrent_accepting_consumers_get_a_ticket_once(
    registry: SqlSessionRegistry, engine: Engine
) -> None:
    _cookie, session = registry.create_session(authentication())
    ticket = registry.issue_ticket(session, kind="ST", service=SERVICE, from_new_login=False)
    results: list[bool] = []
    start = threading.Barrier(4)

    def consume() -> None:
        start.wait()
        results.append(registry.consume_ticket(ticket, lambda _c: target(ticket)) is not None)

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False, False, False, True]
    assert rows(engine, ServiceLoginRow) == 1


# -- Proxy-granting tickets -------------------------------------------------------------------


def test_proxy_granting_ticket_lifecycle(registry: SqlSessionRegistry) -> None:
    authn = authentication()
    _cookie, session = registry.create_session(authn)

    pgt, iou = registry.create_proxy_granting_ticket(
        session.id, service=SERVICE, proxies=["https://app.test/pgt"]
    )

    assert re.fullmatch(r"PGT-[A-Za-z0-9]{56}", pgt)
    assert re.fullmatch(r"PGTIOU-[A-Za-z0-9]{56}", iou)
    found = registry.find_proxy_granting_ticket(pgt)
    assert found is not None
    assert found.service == SERVICE
    assert found.proxies == ["https://app.test/pgt"]
    assert found.session.id == session.id
    assert found.session.authentication == authn
    # Not single use: a PGT serves many proxy tickets.
    assert registry.find_proxy_granting_ticket(pgt) is not None
    assert registry.find_proxy_granting_ticket(iou) is None

    registry.revoke_proxy_granting_ticket(pgt)

    assert registry.find_proxy_granting_ticket(pgt) is None


def test_proxy_granting_ticket_dies_with_its_session(registry: SqlSessionRegistry) -> None:
    _cookie, session = registry.create_session(authentication())
    pgt, _iou = registry.create_proxy_granting_ticket(session.id, service=SERVICE, proxies=[])

    registry.end_session(session.id)

    assert registry.find_proxy_granting_ticket(pgt) is None


@pytest.mark.parametrize("column", ["last_used_at", "expires_at"])
def test_proxy_granting_ticket_of_an_expired_session_refused(
    registry: SqlSessionRegistry, engine: Engine, column: str
) -> None:
    _cookie, session = registry.create_session(authentication())
    pgt, _iou = registry.create_proxy_granting_ticket(session.id, service=SERVICE, proxies=[])

    set_session(engine, session.id, **{column: utcnow() - dt.timedelta(seconds=IDLE + 1)})

    assert registry.find_proxy_granting_ticket(pgt) is None


@pytest.mark.parametrize("pgt", ["", "PGT-unknown", "PGT-" + "x" * 200])
def test_unknown_proxy_granting_ticket(registry: SqlSessionRegistry, pgt: str) -> None:
    assert registry.find_proxy_granting_ticket(pgt) is None


# -- Purge ------------------------------------------------------------------------------------


def test_purge_expired(registry: SqlSessionRegistry, engine: Engine) -> None:
    now = utcnow()
    live_cookie, live = registry.create_session(authentication("live"))
    _c1, idle = registry.create_session(authentication("idle"))
    _c2, old = registry.create_session(authentication("old"))
    set_session(engine, idle.id, last_used_at=now - dt.timedelta(seconds=IDLE + 1))
    set_session(engine, old.id, expires_at=now - dt.timedelta(seconds=1))
    live_ticket = registry.issue_ticket(live, kind="ST", service=SERVICE, from_new_login=False)
    stale_ticket = registry.issue_ticket(live, kind="ST", service=SERVICE, from_new_login=False)
    with engine.begin() as conn:
        conn.execute(
            update(TicketRow)
            .where(TicketRow.id == token_digest(stale_ticket))
            .values(expires_at=now - dt.timedelta(seconds=1))
        )
    for dead in (idle, old):
        registry.issue_ticket(dead, kind="ST", service=SERVICE, from_new_login=False)
        registry.create_proxy_granting_ticket(dead.id, service=SERVICE, proxies=[])
        registry.record_service_login(
            dead.id, protocol="cas", service=SERVICE, logout_url=SERVICE, ticket="ST-x"
        )
    live_pgt, _iou = registry.create_proxy_granting_ticket(live.id, service=SERVICE, proxies=[])

    purged = registry.purge_expired()

    assert purged == 3  # the stale ticket and the two dead sessions (children not counted)
    assert rows(engine, SsoSessionRow) == 1
    assert rows(engine, TicketRow) == 1
    assert rows(engine, ProxyGrantingTicketRow) == 1
    assert rows(engine, ServiceLoginRow) == 0
    assert registry.find_session(live_cookie) is not None
    assert registry.find_proxy_granting_ticket(live_pgt) is not None
    assert registry.consume_ticket(live_ticket) is not None
    assert registry.purge_expired() == 0


def test_purge_with_nothing_expired_writes_nothing(
    registry: SqlSessionRegistry, engine: Engine
) -> None:
    # It reads first: a DELETE scanning the tickets would hold SQLite's writer queue (and
    # every validation waiting for it) for the whole scan.
    _cookie, live = registry.create_session(authentication("live"))
    for _ in range(3):
        registry.issue_ticket(live, kind="ST", service=SERVICE, from_new_login=False)
    if engine.dialect.name != "sqlite":
        assert registry.purge_expired() == 0
        return
    with engine.connect() as conn:
        queue = type(conn.connection.dbapi_connection).queue  # type: ignore[attr-defined]
    turns = queue._turns

    assert registry.purge_expired() == 0
    assert queue._turns == turns
    assert rows(engine, TicketRow) == 3
