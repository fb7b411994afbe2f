"""Tables of SSO sessions and tickets. Every secret is stored as its SHA-256, never in clear."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sso.db import Base, UtcDateTime, utcnow


class SsoSessionRow(Base):
    """One SSO session: what the ticket-granting cookie stands for."""

    __tablename__ = "sso_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie
    subject: Mapped[str] = mapped_column(String(256), index=True)
    method: Mapped[str] = mapped_column(String(32))
    assurance: Mapped[str] = mapped_column(String(64), default="password")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    authenticated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)


class TicketRow(Base):
    """A service ticket (ST) or proxy ticket (PT): single use, seconds long."""

    __tablename__ = "tickets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the ticket
    kind: Mapped[str] = mapped_column(String(2))
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sso_sessions.id", ondelete="CASCADE"), index=True
    )
    service: Mapped[str] = mapped_column(Text)
    from_new_login: Mapped[bool] = mapped_column(Boolean, default=False)
    proxies: Mapped[list[str]] = mapped_column(JSON, default=list)
    # No index: each validation's DELETE would update it (~10 % of validations/s, bench/), and
    # the purge, once a minute, reads a table of tickets that live seconds (outside any write).
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class ProxyGrantingTicketRow(Base):
    """A proxy-granting ticket: lives as long as the SSO session it came from."""

    __tablename__ = "proxy_granting_tickets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the PGT
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sso_sessions.id", ondelete="CASCADE"), index=True
    )
    service: Mapped[str] = mapped_column(Text)
    # Proxy callback URLs, most recent first: what cas:proxies lists for tickets it issues.
    proxies: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class ServiceLoginRow(Base):
    """A service that validated a ticket in a session: a single-logout target.

    The ticket is kept in clear because the logout request names it (SessionIndex); it is
    recorded only after its validation consumed it, so it can no longer be used.
    """

    __tablename__ = "service_logins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sso_sessions.id", ondelete="CASCADE"), index=True
    )
    protocol: Mapped[str] = mapped_column(String(8), default="cas")
    service: Mapped[str] = mapped_column(Text)
    logout_url: Mapped[str] = mapped_column(Text)
    ticket: Mapped[str] = mapped_column(String(128))  # CAS: the ST; SAML: the SessionIndex
    # SAML only: the NameID the SP received, which its LogoutRequest must name.
    name_id: Mapped[str | None] = mapped_column(Text)
    name_id_format: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
