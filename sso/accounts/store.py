"""Looking accounts up and checking their passwords (blocking; run off the event loop)."""

from __future__ import annotations

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from sso.accounts.identifiers import MAX_IDENTIFIER_LENGTH, normalize_identifier
from sso.accounts.models import Account
from sso.db import make_session_factory
from sso.security.passwords import PasswordHasher

MAX_PASSWORD_LENGTH = 128
# Built once: building it at every login cost about as much as running it.
_FIND_ACCOUNT = select(Account).where(Account.identifier == bindparam("identifier"))


class AccountStore:
    """Accounts in the database."""

    def __init__(self, engine: Engine, hasher: PasswordHasher) -> None:
        self._sessions: sessionmaker[Session] = make_session_factory(engine)
        self.hasher = hasher

    def find(self, identifier: str) -> Account | None:
        """An account by identifier (any case, surrounding spaces ignored)."""
        normalized = normalize_identifier(identifier)
        if not normalized or len(normalized) > MAX_IDENTIFIER_LENGTH or "\x00" in normalized:
            return None  # PostgreSQL refuses NUL characters in a query: no such account anyway
        with self._sessions() as db:
            return db.scalar(_FIND_ACCOUNT, {"identifier": normalized})

    def authenticate(self, identifier: str, password: str, *, kind: str) -> Account | None:
        """The account if the password is right and the account usable, else None.

        Every failing path costs one password verification, so the answer's timing does not
        tell an unknown identifier from a wrong password.
        """
        too_long = len(password) > MAX_PASSWORD_LENGTH
        if too_long:  # bounded hashing work, and the answer is no: never match a prefix
            password = password[:MAX_PASSWORD_LENGTH]
        account = self.find(identifier)
        usable = account is not None and account.enabled and account.kind == kind and not too_long
        check = self.hasher.verify(password, account.password_hash if usable else None)
        if not (usable and check.ok):
            return None
        assert account is not None
        if check.new_hash:  # a legacy or outdated hash: store the current scheme now
            with self._sessions.begin() as db:
                db.execute(
                    update(Account)
                    .where(Account.id == account.id)
                    .values(password_hash=check.new_hash)
                )
        return account

    def set_password(self, identifier: str, password: str) -> bool:
        """Set a password directly (demo data, administrators); whether the account exists.

        Raises ValueError for a password no login could use (empty, or beyond the limit).
        """
        if not password or len(password) > MAX_PASSWORD_LENGTH:
            raise ValueError(f"a password must have 1 to {MAX_PASSWORD_LENGTH} characters")
        new_hash = self.hasher.hash(password)
        with self._sessions.begin() as db:
            result = db.execute(
                update(Account)
                .where(Account.identifier == normalize_identifier(identifier))
                .values(password_hash=new_hash)
            )
        return bool(result.rowcount)
