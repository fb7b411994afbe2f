"""The session and ticket registry: one interface, a SQL implementation (Redis comes later).

Cookies and tickets are handed out in clear once and stored as their SHA-256.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, update

from sso.db import DriverStatement, UtcDateTime, utcnow
from sso.security.tokens import random_token, token_digest
from sso.sessions.authentication import Authentication
from sso.sessions.models import (
    ProxyGrantingTicketRow,
    ServiceLoginRow,
    SsoSessionRow,
    TicketRow,
)

# Touching a session on every request would make every ticket a write; a minute of slack on
# the idle timeout is the price of one write per minute instead.
TOUCH_INTERVAL = dt.timedelta(seconds=60)
# Rows per DELETE of the purge: short turns of SQLite's writer queue, well within any driver's
# limit on bound parameters.
PURGE_BATCH = 500

# The statements of the hot paths (ticket issue and validation, session lookup), built once on
# the tables: building them per call on the ORM classes cost more than running them.
_sessions = SsoSessionRow.__table__
_tickets = TicketRow.__table__
_INSERT_SESSION = insert(_sessions)
_FIND_SESSION = select(_sessions).where(_sessions.c.id == bindparam("session_id"))
_TOUCH_SESSION = (
    update(_sessions)
    .where(_sessions.c.id == bindparam("session_id"))
    .values(last_used_at=bindparam("now", type_=UtcDateTime()))
)
_INSERT_TICKET = insert(_tickets)
# A ticket and what its validation needs of its session, read before any write: the session
# columns are NULL when the session has ended.
_FIND_TICKET = (
    select(
        _tickets.c.kind,
        _tickets.c.service,
        _tickets.c.session_id,
        _tickets.c.from_new_login,
        _tickets.c.proxies,
        _tickets.c.expires_at,
        _sessions.c.subject,
        _sessions.c.method,
        _sessions.c.authenticated_at,
        _sessions.c.assurance,
        _sessions.c.attributes,
    )
    .select_from(_tickets.outerjoin(_sessions, _sessions.c.id == _tickets.c.session_id))
    .where(_tickets.c.id == bindparam("ticket_id"))
)
_SPEND_TICKET = delete(_tickets).where(_tickets.c.id == bindparam("ticket_id"))
_INSERT_SERVICE_LOGIN = insert(ServiceLoginRow.__table__)
_SERVICE_LOGIN_KEYS = (
    "session_id",
    "protocol",
    "service",
    "logout_url",
    "ticket",
    "name_id",
    "name_id_format",
    "created_at",
)


@dataclass(frozen=True)
class SsoSession:
    """A live SSO session."""

    id: str
    authentication: Authentication
    last_used_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True)
class ConsumedTicket:
    """A ticket just taken out of the registry: it can never be consumed again."""

    kind: str
    service: str
    session_id: str
    from_new_login: bool
    proxies: list[str]
    expires_at: dt.datetime
    authentication: Authentication | None  # None when its session has ended meanwhile

    def expired(self, now: dt.datetime) -> bool:
        """Whether the ticket outlived its lifetime before this validation."""
        return now >= self.expires_at


@dataclass(frozen=True)
class ProxyGrantingTicket:
    """A live proxy-granting ticket and the session it belongs to."""

    session: SsoSession
    service: str
    proxies: list[str]


@dataclass(frozen=True)
class LogoutTarget:
    """A relying party to tell, by back-channel, that the session it joined has ended."""

    protocol: str
    service: str
    logout_url: str
    ticket: str  # CAS: the service ticket; SAML: the SessionIndex
    name_id: str = ""  # SAML: the NameID the SP knows the user by
    name_id_format: str = ""


class SessionRegistry(Protocol):
    """What the login layer and the protocols need from session storage."""

    def create_session(
        self, authentication: Authentication, also: Callable[[Connection], None] | None = None
    ) -> tuple[str, SsoSession]: ...
    def find_session(self, cookie: str | None) -> SsoSession | None: ...
    def refresh_session(
        self,
        session: SsoSession,
        authentication: Authentication,
        also: Callable[[Connection], None] | None = None,
    ) -> SsoSession: ...
    def end_session(self, session_id: str) -> list[LogoutTarget]: ...
    def sessions_of(self, subject: str) -> list[str]: ...
    def issue_ticket(
        self,
        session: SsoSession,
        *,
        kind: str,
        service: str,
        from_new_login: bool,
        proxies: list[str] | None = None,
    ) -> str: ...
    def consume_ticket(
        self, ticket: str, accept: Callable[[ConsumedTicket], LogoutTarget | None] | None = None
    ) -> ConsumedTicket | None: ...
    def create_proxy_granting_ticket(
        self, session_id: str, *, service: str, proxies: list[str]
    ) -> tuple[str, str]: ...
    def find_proxy_granting_ticket(self, pgt: str) -> ProxyGrantingTicket | None: ...
    def revoke_proxy_granting_ticket(self, pgt: str) -> None: ...
    def record_service_login(
        self, session_id: str, *, protocol: str, service: str, logout_url: str, ticket: str
    ) -> None: ...
    def record_logout_target(
        self,
        session_id: str,
        target: LogoutTarget,
        also: Callable[[Connection], None] | None = None,
    ) -> None: ...
    def logout_targets(self, session_id: str) -> list[LogoutTarget]: ...
    def session_of_logout_target(self, protocol: str, service: str, ticket: str) -> str | None: ...
    def purge_expired(self) -> int: ...


def _authentication(row: Any) -> Authentication:
    return Authentication(
        subject=row.subject,
        method=row.method,
        authenticated_at=row.authenticated_at,
        assurance=row.assurance,
        attributes=row.attributes or {},
    )


def _service_login(session_id: str, target: LogoutTarget) -> dict[str, object]:
    return {
        "session_id": session_id,
        "protocol": target.protocol,
        "service": target.service,
        "logout_url": target.logout_url,
        "ticket": target.ticket,
        "name_id": target.name_id or None,
        "name_id_format": target.name_id_format or None,
        "created_at": utcnow(),
    }


def _logout_target(row: Any) -> LogoutTarget:
    return LogoutTarget(
        protocol=row.protocol,
        service=row.service,
        logout_url=row.logout_url,
        ticket=row.ticket,
        name_id=row.name_id or "",
        name_id_format=row.name_id_format or "",
    )


class SqlSessionRegistry:
    """The registry on the relational database (SQLite or PostgreSQL)."""

    def __init__(
        self,
        engine: Engine,
        *,
        idle_timeout: int,
        max_lifetime: int,
        ticket_lifetime: int,
    ) -> None:
        self._engine = engine
        self._idle = dt.timedelta(seconds=idle_timeout)
        self._max = dt.timedelta(seconds=max_lifetime)
        self._ticket_lifetime = dt.timedelta(seconds=ticket_lifetime)
        self._session_columns = SsoSessionRow.__table__.c
        dialect = engine.dialect
        self._find_ticket = DriverStatement(_FIND_TICKET, dialect)
        self._spend_ticket = DriverStatement(_SPEND_TICKET, dialect)
        self._insert_ticket = DriverStatement(_INSERT_TICKET, dialect)
        self._insert_session = DriverStatement(_INSERT_SESSION, dialect)
        self._insert_service_login = DriverStatement(
            _INSERT_SERVICE_LOGIN, dialect, column_keys=_SERVICE_LOGIN_KEYS
        )

    # -- SSO sessions ---------------------------------------------------------------------
    def create_session(
        self, authentication: Authentication, also: Callable[[Connection], None] | None = None
    ) -> tuple[str, SsoSession]:
        """Open a session; returns the cookie value (shown once) and the session.

        ``also`` runs first in the same transaction (the login's own bookkeeping: one commit
        for both); whatever it raises rolls both back.
        """
        cookie = random_token("TGT", 48)
        now = utcnow()
        session = SsoSession(
            id=token_digest(cookie),
            authentication=authentication,
            last_used_at=now,
            expires_at=now + self._max,
        )
        with self._engine.begin() as conn:
            if also is not None:
                also(conn)
            self._insert_session.execute_in(
                conn,
                {
                    "id": session.id,
                    "subject": authentication.subject,
                    "method": authentication.method,
                    "assurance": authentication.assurance,
                    "attributes": authentication.attributes,
                    "authenticated_at": authentication.authenticated_at,
                    "last_used_at": now,
                    "expires_at": session.expires_at,
                },
            )
        return cookie, session

    def find_session(self, cookie: str | None) -> SsoSession | None:
        """The live session a cookie stands for, or None (unknown, idle too long, too old)."""
        if not cookie or len(cookie) > 128:
            return None
        session_id = token_digest(cookie)
        with self._engine.connect() as conn:
            row = conn.execute(_FIND_SESSION, {"session_id": session_id}).first()
        if row is None:
            return None
        now = utcnow()
        last_used = row.last_used_at
        if now >= row.expires_at or now >= last_used + self._idle:
            return None
        if now - last_used >= TOUCH_INTERVAL:
            with self._engine.begin() as conn:
                conn.execute(_TOUCH_SESSION, {"session_id": session_id, "now": now})
            last_used = now
        return SsoSession(
            id=row.id,
            authentication=_authentication(row),
            last_used_at=last_used,
            expires_at=row.expires_at,
        )

    def refresh_session(
        self,
        session: SsoSession,
        authentication: Authentication,
        also: Callable[[Connection], None] | None = None,
    ) -> SsoSession:
        """Record a new authentication of the same person in their existing session.

        As Apereo does on re-authentication: the services already joined stay joined (and get
        single logout later), only the authentication instant and attributes change. ``also``
        as for ``create_session``.
        """
        now = utcnow()
        with self._engine.begin() as conn:
            if also is not None:
                also(conn)
            conn.execute(
                update(SsoSessionRow)
                .where(SsoSessionRow.id == session.id)
                .values(
                    method=authentication.method,
                    assurance=authentication.assurance,
                    attributes=authentication.attributes,
                    authenticated_at=authentication.authenticated_at,
                    last_used_at=now,
                )
            )
        return SsoSession(
            id=session.id,
            authentication=authentication,
            last_used_at=now,
            expires_at=session.expires_at,
        )

    def end_session(self, session_id: str) -> list[LogoutTarget]:
        """Delete a session with its tickets; returns the services to notify."""
        with self._engine.begin() as conn:
            targets = [
                _logout_target(r)
                for r in conn.execute(
                    select(ServiceLoginRow).where(ServiceLoginRow.session_id == session_id)
                )
            ]
            # Children first: SQLite only cascades with foreign keys on, PostgreSQL always.
            for table in (ServiceLoginRow, TicketRow, ProxyGrantingTicketRow):
                conn.execute(delete(table).where(table.session_id == session_id))
            conn.execute(delete(SsoSessionRow).where(SsoSessionRow.id == session_id))
        return targets

    def sessions_of(self, subject: str) -> list[str]:
        """The ids of every session of one person (to end them after a password change)."""
        with self._engine.connect() as conn:
            return list(
                conn.scalars(select(SsoSessionRow.id).where(SsoSessionRow.subject == subject))
            )

    # -- Service and proxy tickets ----------------------------------------------------------
    def issue_ticket(
        self,
        session: SsoSession,
        *,
        kind: str,
        service: str,
        from_new_login: bool,
        proxies: list[str] | None = None,
    ) -> str:
        """A new ST or PT for ``service`` in ``session``.

        On the DBAPI cursor (``DriverStatement``), as its validation is: every CAS login and
        every visit to a platform with an SSO session issues one.
        """
        ticket = random_token(kind)
        values = {
            "id": token_digest(ticket),
            "kind": kind,
            "session_id": session.id,
            "service": service,
            "from_new_login": from_new_login,
            "proxies": proxies or [],
            "expires_at": utcnow() + self._ticket_lifetime,
        }
        with closing(self._engine.raw_connection()) as connection:  # see consume_ticket
            self._insert_ticket.execute(connection.cursor(), values)
            connection.commit()
        return ticket

    def consume_ticket(
        self, ticket: str, accept: Callable[[ConsumedTicket], LogoutTarget | None] | None = None
    ) -> ConsumedTicket | None:
        """Take a ticket out, atomically: of two concurrent consumers only one gets it.

        The ticket and its session are read first, outside any write transaction; the DELETE
        alone then decides who gets it. ``accept`` is the validation of the ticket read: it
        raises to refuse it (spent all the same) or returns the relying party to record for
        single logout (``record_service_login``), written in the DELETE's transaction. So a
        validation is one commit, and the writer queue of SQLite (``sso.sqlite``), which every
        worker's writes wait for, is held for the two statements alone, not for the checks.
        A session ending between the read and the DELETE reads as it was a moment earlier.
        """
        ticket_id = {"ticket_id": token_digest(ticket)}
        # On the DBAPI cursor (see DriverStatement); closing gives the connection back to the
        # pool, which rolls back whatever did not commit.
        with closing(self._engine.raw_connection()) as connection:
            cursor = connection.cursor()
            row = self._find_ticket.first(cursor, ticket_id)
            if row is None:
                return None
            consumed = ConsumedTicket(
                kind=row.kind,
                service=row.service,
                session_id=row.session_id,
                from_new_login=row.from_new_login,
                proxies=list(row.proxies or []),
                expires_at=row.expires_at,
                authentication=_authentication(row) if row.subject is not None else None,
            )
            target: LogoutTarget | None = None
            refusal: BaseException | None = None
            if accept is not None:
                try:
                    target = accept(consumed)
                except BaseException as exc:  # refused: spent all the same, below
                    refusal = exc
            spent = self._spend_ticket.execute(cursor, ticket_id) == 1
            try:
                if spent and target is not None:
                    self._insert_service_login.execute(
                        cursor, _service_login(row.session_id, target)
                    )
                connection.commit()
            except BaseException:
                # Whatever failed, the ticket must stay consumed.
                connection.rollback()
                self._spend_ticket.execute(cursor, ticket_id)
                connection.commit()
                raise
        if not spent:  # another consumer took it between the read and the DELETE
            return None
        if refusal is not None:
            raise refusal
        return consumed

    def create_proxy_granting_ticket(
        self, session_id: str, *, service: str, proxies: list[str]
    ) -> tuple[str, str]:
        """A new PGT and its IOU; the PGT lives until its session ends."""
        pgt = random_token("PGT", 56)
        iou = random_token("PGTIOU", 56)
        with self._engine.begin() as conn:
            conn.execute(
                insert(ProxyGrantingTicketRow).values(
                    id=token_digest(pgt), session_id=session_id, service=service, proxies=proxies
                )
            )
        return pgt, iou

    def find_proxy_granting_ticket(self, pgt: str) -> ProxyGrantingTicket | None:
        """The PGT and its session, if both are still alive."""
        if not pgt or len(pgt) > 128:
            return None
        with self._engine.connect() as conn:
            row = conn.execute(
                select(
                    ProxyGrantingTicketRow.service.label("pgt_service"),
                    ProxyGrantingTicketRow.proxies.label("pgt_proxies"),
                    SsoSessionRow,
                )
                .join(SsoSessionRow, SsoSessionRow.id == ProxyGrantingTicketRow.session_id)
                .where(ProxyGrantingTicketRow.id == token_digest(pgt))
            ).first()
        if row is None:
            return None
        session_row = row  # a Core row is flat: the session's columns and the two labelled ones
        now = utcnow()
        if now >= session_row.expires_at or now >= session_row.last_used_at + self._idle:
            return None
        session = SsoSession(
            id=session_row.id,
            authentication=_authentication(session_row),
            last_used_at=session_row.last_used_at,
            expires_at=session_row.expires_at,
        )
        return ProxyGrantingTicket(
            session=session, service=row.pgt_service, proxies=list(row.pgt_proxies or [])
        )

    def revoke_proxy_granting_ticket(self, pgt: str) -> None:
        """Forget a PGT (its callback failed, so nobody may hold it)."""
        with self._engine.begin() as conn:
            conn.execute(
                delete(ProxyGrantingTicketRow).where(ProxyGrantingTicketRow.id == token_digest(pgt))
            )

    def record_service_login(
        self, session_id: str, *, protocol: str, service: str, logout_url: str, ticket: str
    ) -> None:
        """Remember that ``service`` joined the session, for single logout."""
        self.record_logout_target(
            session_id,
            LogoutTarget(protocol=protocol, service=service, logout_url=logout_url, ticket=ticket),
        )

    def record_logout_target(
        self,
        session_id: str,
        target: LogoutTarget,
        also: Callable[[Connection], None] | None = None,
    ) -> None:
        """Remember a relying party that joined the session, with what its logout needs.

        ``also`` runs first in the same transaction (the caller's own write, one commit for
        both); whatever it raises rolls both back.
        """
        with self._engine.begin() as conn:
            if also is not None:
                also(conn)
            conn.execute(_INSERT_SERVICE_LOGIN, _service_login(session_id, target))

    def logout_targets(self, session_id: str) -> list[LogoutTarget]:
        """The relying parties that joined a live session."""
        with self._engine.connect() as conn:
            return [
                _logout_target(r)
                for r in conn.execute(
                    select(ServiceLoginRow).where(ServiceLoginRow.session_id == session_id)
                )
            ]

    def session_of_logout_target(self, protocol: str, service: str, ticket: str) -> str | None:
        """The session a relying party joined under ``ticket`` (a SAML SessionIndex)."""
        with self._engine.connect() as conn:
            return conn.scalar(
                select(ServiceLoginRow.session_id).where(
                    ServiceLoginRow.protocol == protocol,
                    ServiceLoginRow.service == service,
                    ServiceLoginRow.ticket == ticket,
                )
            )

    def purge_expired(self) -> int:
        """Delete expired tickets and ended sessions (with their children); returns the count.

        What to delete is read first, outside any write: scanning the tickets (which have no
        index on ``expires_at``) inside the DELETE would hold SQLite's writer queue, and every
        validation with it, for ~10 ms per 60,000 tickets. The DELETEs then go by primary key,
        a batch at a time, and check again: a session used in between stays.
        """
        now = utcnow()
        expired = TicketRow.expires_at <= now
        dead = (SsoSessionRow.expires_at <= now) | (SsoSessionRow.last_used_at <= now - self._idle)
        with self._engine.connect() as conn:
            tickets = list(conn.scalars(select(TicketRow.id).where(expired)))
            sessions = list(conn.scalars(select(SsoSessionRow.id).where(dead)))
        count = 0
        for start in range(0, len(tickets), PURGE_BATCH):
            batch = tickets[start : start + PURGE_BATCH]
            with self._engine.begin() as conn:
                count += conn.execute(
                    delete(TicketRow).where(TicketRow.id.in_(batch), expired)
                ).rowcount
        for start in range(0, len(sessions), PURGE_BATCH):
            batch = sessions[start : start + PURGE_BATCH]
            dead_sessions = select(SsoSessionRow.id).where(SsoSessionRow.id.in_(batch), dead)
            with self._engine.begin() as conn:
                for table in (ServiceLoginRow, TicketRow, ProxyGrantingTicketRow):
                    conn.execute(delete(table).where(table.session_id.in_(dead_sessions)))
                count += conn.execute(
                    delete(SsoSessionRow).where(SsoSessionRow.id.in_(batch), dead)
                ).rowcount
        return count
