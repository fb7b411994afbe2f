"""The replay cache of SP message IDs (SAML profiles 4.1.4.5 / core 1.3.4), in the database so
that a request replayed to another worker or node is caught too."""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import Connection, Engine, delete, insert
from sqlalchemy.exc import IntegrityError

from sso.db import utcnow
from sso.protocols.saml.models import SeenMessageRow

# Longer than any request is accepted for (its IssueInstant must be recent, see requests.py).
REMEMBER_FOR = dt.timedelta(hours=1)
# Built once: an ORM insert(...).values(...) per request costs twice the write itself.
_INSERT = insert(SeenMessageRow.__table__)


class Replayed(Exception):  # noqa: N818 - a domain name, like the others of sso.errors
    """The message ID is already in the cache."""


class SeenMessages:
    """Message IDs already received, per issuer."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def first_time(self, issuer: str, message_id: str) -> bool:
        """Record the ID; False when it was seen before (a replay)."""
        try:
            with self._engine.begin() as conn:
                self.record(conn, issuer, message_id)
        except Replayed:
            return False
        return True

    @staticmethod
    def record(conn: Connection, issuer: str, message_id: str) -> None:
        """Record the ID within the caller's transaction; Replayed when it was seen before
        (the transaction can then only be rolled back, as PostgreSQL has aborted it)."""
        key = hashlib.sha256(f"{issuer}\n{message_id}".encode()).hexdigest()
        try:
            conn.execute(_INSERT, {"id": key, "expires_at": utcnow() + REMEMBER_FOR})
        except IntegrityError as exc:
            raise Replayed(key) from exc

    def purge(self) -> int:
        """Forget IDs too old to be accepted anyway."""
        with self._engine.begin() as conn:
            return conn.execute(
                delete(SeenMessageRow).where(SeenMessageRow.expires_at <= utcnow())
            ).rowcount
