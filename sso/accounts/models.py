"""The account table."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sso.db import Base, UtcDateTime, utcnow


class Account(Base):
    """A person who can log in: an academic account (blue door) or an invited one (direct)."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Stored normalised (trimmed, NFKC, lower case): the identifier users type is case-insensitive.
    identifier: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    kind: Mapped[str] = mapped_column(String(16), default="academic")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    given_name: Mapped[str] = mapped_column(String(128), default="")
    surname: Mapped[str] = mapped_column(String(128), default="")
    display_name: Mapped[str] = mapped_column(String(256), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    affiliation: Mapped[str] = mapped_column(String(64), default="")
    # Further released attributes (e.g. supannEntiteAffectation): name -> list of values.
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Keyed hash of the NUMEN (sso.accounts.numen): looked up for recovery, never read back.
    numen_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    # Where recovery links and notices go (the "adresse de secours" given at activation).
    recovery_email: Mapped[str] = mapped_column(String(254), default="")
    # First login (NUMEN) or forced by an administrator: a new password before any ticket.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    # A temporary password (NUMEN, helpdesk-issued) stops working at this time.
    password_expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # Lockout ("trois tentatives, puis rideau"): consecutive failures, and the lock itself.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)  # None: until unlocked
    lock_count: Mapped[int] = mapped_column(Integer, default=0)  # escalation of temporary locks
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    def released_attributes(self) -> dict[str, list[str]]:
        """Every attribute the account has, as the services registry filters them."""
        attributes: dict[str, list[str]] = {
            "uid": [self.identifier],
            "mail": [self.email] if self.email else [],
            "givenName": [self.given_name] if self.given_name else [],
            "sn": [self.surname] if self.surname else [],
            "displayName": [self.display_name] if self.display_name else [],
            "eduPersonAffiliation": [self.affiliation] if self.affiliation else [],
        }
        for name, values in (self.attributes or {}).items():
            attributes[name] = [str(v) for v in (values if isinstance(values, list) else [values])]
        return {name: values for name, values in attributes.items() if values}


class RecoveryToken(Base):
    """A single-use secret mailed to a user (reset link, one-time code, address confirmation).

    Only its SHA-256 is stored; issuing a new one of a purpose voids the older ones, so only
    the latest link works.
    """

    __tablename__ = "recovery_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # What the token is for beyond its purpose (e.g. the address being confirmed).
    payload: Mapped[str] = mapped_column(String(254), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class KnownDevice(Base):
    """A browser that has logged in to an account (its long-lived device cookie, hashed)."""

    __tablename__ = "known_devices"
    __table_args__ = (UniqueConstraint("account_id", "device_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    device_hash: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(256), default="")
    first_seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class LoginThrottle(Base):
    """Failed logins from one client address in the current window (per-IP throttling)."""

    __tablename__ = "login_throttle"

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
