"""Single-use secrets mailed to users: reset links, one-time codes, address confirmations.

Stored as their SHA-256 only; issuing one voids the account's older ones of the same purpose
(only the latest link works); consuming is one atomic UPDATE, so a token works once even when
two requests race.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, delete, select, update

from sso.accounts.models import RecoveryToken
from sso.db import utcnow
from sso.security.tokens import random_token, token_digest

RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose, not a secret
RECOVERY_CODE = "recovery_code"
CONFIRM_EMAIL = "confirm_email"
MAX_CODE_ATTEMPTS = 5


def _code_digest(account_id: int, purpose: str, code: str) -> str:
    # Codes are short: salted with their account and purpose so a digest matches nowhere else.
    return token_digest(f"{purpose}:{account_id}:{code}")


@dataclass(frozen=True)
class RedeemedToken:
    """The account a token was issued for, and what it carried."""

    account_id: int
    payload: str


class RecoveryTokens:
    """The ``recovery_tokens`` table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def issue(self, account_id: int, purpose: str, lifetime: int, payload: str = "") -> str:
        """A new link token (``R-`` and 40 random characters); older ones of ``purpose`` die."""
        token = random_token("R")
        self._store(account_id, purpose, lifetime, payload, token_digest(token))
        return token

    def issue_code(self, account_id: int, purpose: str, lifetime: int) -> str:
        """A new 8-digit one-time code, for typing; attempts on it are limited."""
        code = f"{secrets.randbelow(10**8):08d}"
        self._store(account_id, purpose, lifetime, "", _code_digest(account_id, purpose, code))
        return code

    def _store(
        self, account_id: int, purpose: str, lifetime: int, payload: str, digest: str
    ) -> None:
        now = utcnow()
        with self._engine.begin() as conn:
            conn.execute(
                delete(RecoveryToken).where(
                    RecoveryToken.account_id == account_id, RecoveryToken.purpose == purpose
                )
            )
            conn.execute(
                RecoveryToken.__table__.insert().values(
                    account_id=account_id,
                    purpose=purpose,
                    token_hash=digest,
                    payload=payload,
                    attempts=0,
                    created_at=now,
                    expires_at=now + dt.timedelta(seconds=lifetime),
                )
            )

    def peek(self, token: str, purpose: str) -> RedeemedToken | None:
        """The live token's account, without using it up (to show the form it opens)."""
        if not token or len(token) > 128:
            return None
        with self._engine.connect() as conn:
            row = conn.execute(
                select(RecoveryToken.account_id, RecoveryToken.payload).where(
                    RecoveryToken.token_hash == token_digest(token),
                    RecoveryToken.purpose == purpose,
                    RecoveryToken.used_at.is_(None),
                    RecoveryToken.expires_at > utcnow(),
                )
            ).first()
        return RedeemedToken(row.account_id, row.payload) if row else None

    def redeem(self, token: str, purpose: str) -> RedeemedToken | None:
        """Use a live link token up; None when unknown, expired, voided or already used."""
        if not token or len(token) > 128:
            return None
        now = utcnow()
        with self._engine.begin() as conn:
            row = conn.execute(
                update(RecoveryToken)
                .where(
                    RecoveryToken.token_hash == token_digest(token),
                    RecoveryToken.purpose == purpose,
                    RecoveryToken.used_at.is_(None),
                    RecoveryToken.expires_at > now,
                )
                .values(used_at=now)
                .returning(RecoveryToken.account_id, RecoveryToken.payload)
            ).first()
        return RedeemedToken(row.account_id, row.payload) if row else None

    def redeem_code(self, account_id: int, purpose: str, code: str) -> bool:
        """Use up a one-time code of this account; each wrong try counts, and the code dies
        after ``MAX_CODE_ATTEMPTS`` of them (8 digits cannot be guessed in five tries)."""
        now = utcnow()
        digest = _code_digest(account_id, purpose, code.strip())
        with self._engine.begin() as conn:
            live = (
                RecoveryToken.account_id == account_id,
                RecoveryToken.purpose == purpose,
                RecoveryToken.used_at.is_(None),
                RecoveryToken.expires_at > now,
                RecoveryToken.attempts < MAX_CODE_ATTEMPTS,
            )
            used = conn.execute(
                update(RecoveryToken)
                .where(*live, RecoveryToken.token_hash == digest)
                .values(used_at=now)
            ).rowcount
            if not used:
                conn.execute(
                    update(RecoveryToken).where(*live).values(attempts=RecoveryToken.attempts + 1)
                )
        return bool(used)

    def void(self, account_id: int) -> None:
        """Every outstanding token of an account dies (after a password change)."""
        with self._engine.begin() as conn:
            conn.execute(
                delete(RecoveryToken).where(
                    RecoveryToken.account_id == account_id, RecoveryToken.used_at.is_(None)
                )
            )

    def purge(self) -> int:
        """Delete expired and used tokens."""
        with self._engine.begin() as conn:
            return conn.execute(
                delete(RecoveryToken).where(
                    (RecoveryToken.expires_at <= utcnow()) | RecoveryToken.used_at.is_not(None)
                )
            ).rowcount
