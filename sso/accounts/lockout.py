"""Lockout, "trois tentatives, puis rideau": consecutive failures lock the account.

Two modes: ``helpdesk`` (locked until someone unlocks it, as the academies do) and
``temporary`` (locks of escalating length, LemonLDAP::NG style: the base time doubles with
each lock, up to a day). A successful login resets the count; a password reset unlocks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

MAX_LOCK = dt.timedelta(days=1)


@dataclass(frozen=True)
class LockoutPolicy:
    """When failures lock an account, and for how long."""

    threshold: int = 3
    mode: str = "helpdesk"  # or "temporary"
    base_seconds: int = 300

    def lock_until(self, locks_so_far: int, now: dt.datetime) -> dt.datetime | None:
        """The end of a new lock (None: until unlocked), given the locks before it."""
        if self.mode == "helpdesk":
            return None
        seconds = self.base_seconds * 2 ** min(locks_so_far, 20)
        return now + min(dt.timedelta(seconds=seconds), MAX_LOCK)


def is_locked(
    locked_at: dt.datetime | None, locked_until: dt.datetime | None, now: dt.datetime
) -> bool:
    """Whether a lock is in force."""
    return locked_at is not None and (locked_until is None or locked_until > now)
