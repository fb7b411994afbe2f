"""Looking accounts up, checking their passwords, locking and unlocking them (blocking; run
off the event loop)."""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from sso.accounts.identifiers import MAX_IDENTIFIER_LENGTH, normalize_identifier
from sso.accounts.lockout import LockoutPolicy, is_locked
from sso.accounts.models import Account
from sso.accounts.numen import is_valid_numen, normalize_numen, numen_digest, numen_key
from sso.config import Settings
from sso.db import make_session_factory, utcnow
from sso.security.passwords import PasswordHasher

# What a login attempt came to (LoginOutcome.status).
OK = "ok"
FAILED = "failed"  # unknown identifier, wrong password, disabled, wrong kind
LOCKED = "locked"  # the account is locked (whatever the password)
EXPIRED = "expired"  # right temporary password, past its expiry
MUST_CHANGE = "must_change"  # right password, but a new one must be chosen first


@dataclass(frozen=True)
class LoginOutcome:
    """The result of one password check, lockout applied.

    ``account`` is the account the attempt was about when it exists (for the audit log and
    the lock notice), whatever the status: callers show one generic message for every status
    but ``OK``, ``MUST_CHANGE`` and ``EXPIRED`` (which only a right password reaches).
    """

    status: str
    account: Account | None = None
    locked_now: bool = False  # this failure locked the account: the user is to be told


MAX_PASSWORD_LENGTH = 128
# Built once: building it at every login cost about as much as running it.
_FIND_ACCOUNT = select(Account).where(Account.identifier == bindparam("identifier"))


class AccountStore:
    """Accounts in the database."""

    def __init__(
        self,
        engine: Engine,
        hasher: PasswordHasher,
        *,
        lockout: LockoutPolicy | None = None,
        numen_key: bytes = b"",
        temporary_password_days: int = 14,
    ) -> None:
        self.engine = engine
        self._sessions: sessionmaker[Session] = make_session_factory(engine)
        self.hasher = hasher
        self.lockout = lockout or LockoutPolicy()
        self.numen_key = numen_key
        self.temporary_password_days = temporary_password_days

    @classmethod
    def from_settings(cls, engine: Engine, settings: Settings) -> AccountStore:
        """The store with the settings' lockout, NUMEN key and temporary password life."""
        return cls(
            engine,
            PasswordHasher(),
            lockout=LockoutPolicy(
                settings.lockout_threshold, settings.lockout_mode, settings.lockout_base_seconds
            ),
            numen_key=numen_key(settings.secret_key),
            temporary_password_days=settings.temporary_password_days,
        )

    def get(self, account_id: int) -> Account | None:
        """An account by its id."""
        with self._sessions() as db:
            return db.get(Account, account_id)

    def find_by_numen(self, raw_numen: str) -> Account | None:
        """The account with this NUMEN (any case and spacing), if one has it."""
        numen = normalize_numen(raw_numen)
        if not self.numen_key or not is_valid_numen(numen):
            return None
        with self._sessions() as db:
            return db.scalars(
                select(Account).where(Account.numen_hash == numen_digest(self.numen_key, numen))
            ).first()

    def numen_matches(self, account: Account, raw_numen: str) -> bool:
        """Whether ``raw_numen`` is this account's NUMEN (constant time)."""
        if not self.numen_key or not account.numen_hash:
            return False
        digest = numen_digest(self.numen_key, raw_numen)
        return hmac.compare_digest(digest, account.numen_hash)

    def find(self, identifier: str) -> Account | None:
        """An account by identifier (any case, surrounding spaces ignored)."""
        normalized = normalize_identifier(identifier)
        if not normalized or len(normalized) > MAX_IDENTIFIER_LENGTH or "\x00" in normalized:
            return None  # PostgreSQL refuses NUL characters in a query: no such account anyway
        with self._sessions() as db:
            return db.scalar(_FIND_ACCOUNT, {"identifier": normalized})

    def authenticate(self, identifier: str, password: str, *, kind: str) -> Account | None:
        """The account if the password is right and the account usable now, else None."""
        outcome = self.login(identifier, password, kind=kind)
        return outcome.account if outcome.status == OK else None

    def login(self, identifier: str, password: str, *, kind: str) -> LoginOutcome:
        """Check a password with the lockout rules.

        Every path costs one password verification, so the answer's timing does not tell an
        unknown identifier from a wrong password or a locked account. Failures on an existing
        account count towards its lock; a success resets the count.
        """
        too_long = len(password) > MAX_PASSWORD_LENGTH
        if too_long:  # bounded hashing work, and the answer is no: never match a prefix
            password = password[:MAX_PASSWORD_LENGTH]
        account = self.find(identifier)
        usable = account is not None and account.enabled and account.kind == kind and not too_long
        check = self.hasher.verify(password, account.password_hash if usable else None)
        if account is None:
            return LoginOutcome(FAILED)
        now = utcnow()
        if is_locked(account.locked_at, account.locked_until, now):
            return LoginOutcome(LOCKED, account)
        if not (usable and check.ok):
            return self._count_failure(account, now)
        values: dict[str, object] = {}
        if check.new_hash:  # a legacy or outdated hash: store the current scheme now
            values["password_hash"] = check.new_hash
        if account.failed_logins or account.lock_count or account.locked_at:
            values.update(failed_logins=0, lock_count=0, locked_at=None, locked_until=None)
        if values:
            with self._sessions.begin() as db:
                db.execute(update(Account).where(Account.id == account.id).values(**values))
        if account.password_expires_at is not None and account.password_expires_at <= now:
            return LoginOutcome(EXPIRED, account)
        if account.must_change_password:
            return LoginOutcome(MUST_CHANGE, account)
        return LoginOutcome(OK, account)

    def _count_failure(self, account: Account, now: dt.datetime) -> LoginOutcome:
        with self._sessions.begin() as db:
            # One atomic increment: concurrent failures all count.
            failures = db.execute(
                update(Account)
                .where(Account.id == account.id)
                .values(failed_logins=Account.failed_logins + 1)
                .returning(Account.failed_logins, Account.lock_count)
            ).one()
            if failures.failed_logins < self.lockout.threshold:
                return LoginOutcome(FAILED, account)
            db.execute(
                update(Account)
                .where(Account.id == account.id)
                .values(
                    failed_logins=0,
                    locked_at=now,
                    locked_until=self.lockout.lock_until(failures.lock_count, now),
                    lock_count=Account.lock_count + 1,
                )
            )
        return LoginOutcome(LOCKED, self.get(account.id), locked_now=True)

    def unlock(self, identifier: str) -> Account | None:
        """Lift a lock and reset the failure count (helpdesk); the account, if it exists."""
        with self._sessions.begin() as db:
            account = db.scalar(_FIND_ACCOUNT, {"identifier": normalize_identifier(identifier)})
            if account is None:
                return None
            account.failed_logins = 0
            account.lock_count = 0
            account.locked_at = None
            account.locked_until = None
        return account

    def set_recovery_email(self, account_id: int, address: str) -> None:
        """Store a confirmed recovery address."""
        with self._sessions.begin() as db:
            db.execute(
                update(Account).where(Account.id == account_id).values(recovery_email=address)
            )

    def change_password(self, account_id: int, password: str, *, temporary: bool = False) -> None:
        """Store a new password: the lock lifts, the forced change is done, and a temporary
        password (helpdesk) expires after ``temporary_password_days`` and must be changed."""
        if not password or len(password) > MAX_PASSWORD_LENGTH:
            raise ValueError(f"a password must have 1 to {MAX_PASSWORD_LENGTH} characters")
        now = utcnow()
        new_hash = self.hasher.hash(password)
        with self._sessions.begin() as db:
            db.execute(
                update(Account)
                .where(Account.id == account_id)
                .values(
                    password_hash=new_hash,
                    password_changed_at=now,
                    must_change_password=temporary,
                    password_expires_at=(
                        now + dt.timedelta(days=self.temporary_password_days) if temporary else None
                    ),
                    failed_logins=0,
                    lock_count=0,
                    locked_at=None,
                    locked_until=None,
                )
            )

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
