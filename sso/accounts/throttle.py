"""Per-address throttling of failed logins: one address cannot lock out thousands of accounts.

The lockout protects each account; this protects the population. Counts live in the database
(``login_throttle``) so every worker and node sees the same ones.
"""

from __future__ import annotations

import datetime as dt
from contextlib import closing

from sqlalchemy import Engine, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError

from sso.accounts.models import LoginThrottle
from sso.db import DriverStatement, utcnow

# Built once on the table: every password login reads it first.
_throttle = LoginThrottle.__table__
_FIND_WINDOW = select(_throttle.c.failures, _throttle.c.window_started_at).where(
    _throttle.c.address == bindparam("address")
)


class AddressThrottle:
    """At most ``limit`` failed logins per client address in a ``window`` of seconds."""

    def __init__(self, engine: Engine, limit: int, window: int) -> None:
        self._engine = engine
        self.limit = limit
        self.window = dt.timedelta(seconds=window)
        # On the DBAPI cursor, as ticket validation is: every password login reads it first.
        self._find_window = DriverStatement(_FIND_WINDOW, engine.dialect)

    def blocked(self, address: str) -> bool:
        """Whether this address has used up its failures for the current window (blocking)."""
        if not address:
            return False
        with closing(self._engine.raw_connection()) as connection:
            row = self._find_window.first(connection.cursor(), {"address": address[:64]})
        if row is None:
            return False
        started = row.window_started_at
        if started.tzinfo is None:
            started = started.replace(tzinfo=dt.UTC)
        return row.failures >= self.limit and utcnow() - started < self.window

    def record_failure(self, address: str) -> None:
        """Count one failed login from this address (blocking)."""
        if not address:
            return
        address = address[:64]
        now = utcnow()
        with self._engine.begin() as conn:
            restarted = conn.execute(
                update(LoginThrottle)
                .where(
                    LoginThrottle.address == address,
                    LoginThrottle.window_started_at <= now - self.window,
                )
                .values(failures=1, window_started_at=now)
            ).rowcount
            if restarted:
                return
            counted = conn.execute(
                update(LoginThrottle)
                .where(LoginThrottle.address == address)
                .values(failures=LoginThrottle.failures + 1)
            ).rowcount
        if not counted:
            try:
                with self._engine.begin() as conn:
                    conn.execute(
                        LoginThrottle.__table__.insert().values(
                            address=address, failures=1, window_started_at=now
                        )
                    )
            except IntegrityError:  # another worker inserted it meanwhile: count on it
                self.record_failure(address)

    def purge(self) -> int:
        """Forget windows that are over."""
        with self._engine.begin() as conn:
            return conn.execute(
                delete(LoginThrottle).where(
                    LoginThrottle.window_started_at <= utcnow() - self.window
                )
            ).rowcount
