"""The audit log: an append-only table of what happened to accounts (logins, lockouts, resets).

The user reads their own events on "Mon activité"; the helpdesk reads everyone's. Rows are
only ever inserted (and purged past the retention): nothing updates them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Connection, Engine, Integer, String, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from sso.db import Base, UtcDateTime, driver_statement, utcnow

# The events, as stored and as their labels are keyed in the locales ("audit.<event>").
LOGIN_SUCCEEDED = "login_succeeded"
LOGIN_FAILED = "login_failed"
ACCOUNT_LOCKED = "account_locked"
ACCOUNT_UNLOCKED = "account_unlocked"
PASSWORD_CHANGED = "password_changed"  # noqa: S105 - an event name
RESET_REQUESTED = "reset_requested"
PASSWORD_RESET = "password_reset"  # noqa: S105 - an event name
IDENTIFIER_REMINDED = "identifier_reminded"
NEW_DEVICE = "new_device"
RECOVERY_EMAIL_CHANGED = "recovery_email_changed"
QUESTIONS_SET = "questions_set"


class AuditEvent(Base):
    """One thing that happened to an account, with where it came from."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    # The account's id and identifier as they were (the account may be deleted later).
    account_id: Mapped[int | None] = mapped_column(Integer, index=True)
    identifier: Mapped[str] = mapped_column(String(64), default="")
    event: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(256), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# Built once, run on the DBAPI cursor (sso.db.DriverStatement): every login writes one.
_INSERT_EVENT = insert(AuditEvent.__table__)


def record(
    db: Engine | Connection,
    event: str,
    *,
    account_id: int | None = None,
    identifier: str = "",
    address: str = "",
    user_agent: str = "",
    **detail: Any,  # noqa: ANN401 - JSON-able values
) -> None:
    """Append one event (blocking): in its own transaction on an engine, or within the
    caller's on a connection (so a login's bookkeeping is one write)."""
    values = {
        "at": utcnow(),
        "account_id": account_id,
        "identifier": identifier[:64],
        "event": event,
        "address": address[:64],
        "user_agent": user_agent[:256],
        "detail": detail,
    }
    # Compiled for the columns given here, so the INSERT cannot drift from them.
    insert_event = driver_statement(_INSERT_EVENT, db.dialect, tuple(values))
    if isinstance(db, Connection):
        insert_event.execute_in(db, values)
        return
    with db.begin() as conn:
        insert_event.execute_in(conn, values)


def events_of(engine: Engine, account_id: int, limit: int = 50) -> list[AuditEvent]:
    """The latest events of one account, newest first (blocking)."""
    with Session(engine, expire_on_commit=False) as db:
        return list(
            db.scalars(
                select(AuditEvent)
                .where(AuditEvent.account_id == account_id)
                .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
                .limit(limit)
            )
        )
