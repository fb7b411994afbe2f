"""Importing academic accounts from CSV: idempotent, good rows in, bad rows reported by line.

Columns: ``identifier`` (required), ``given_name``, ``surname``, ``display_name``, ``email``,
``affiliation``, ``password`` (optional, hashed on import) and ``password_hash`` (an existing
hash, e.g. ``{SSHA}`` from LDAP), ``numen``, ``birth_date`` (YYYY-MM-DD or DD/MM/YYYY) and
``recovery_email``. Any other column becomes a released attribute of that name; ``;``
separates several values.

The NUMEN is stored only as its keyed digest (``sso.accounts.numen``). A new account with a
NUMEN and no password gets the NUMEN in upper case as its initial password, as the academies
do: temporary (it expires) and to be changed at first login.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from sso.accounts.identifiers import is_valid_identifier, normalize_identifier
from sso.accounts.models import Account
from sso.accounts.numen import is_valid_numen, normalize_numen, numen_digest
from sso.accounts.store import MAX_PASSWORD_LENGTH
from sso.db import make_session_factory, utcnow
from sso.security.passwords import PasswordHasher

KNOWN_COLUMNS = (
    "identifier",
    "given_name",
    "surname",
    "display_name",
    "email",
    "affiliation",
    "password",
    "password_hash",
    "numen",
    "birth_date",
    "recovery_email",
)
MAX_FIELD_LENGTH = 256
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,253}\.[^@\s]+$")
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_COLUMN_LIMITS = {
    "given_name": 128,
    "surname": 128,
    "display_name": 256,
    "email": 254,
    "affiliation": 64,
    "recovery_email": 254,
}
MAX_PASSWORD_HASH_LENGTH = 255  # the column's size


@dataclass
class ImportReport:
    """What an import did: counts, and each refused line with its reason."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def _birth_date(raw: str) -> dt.date | None:
    raw = raw.strip()
    if not raw:
        return None
    for layout in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            born = dt.datetime.strptime(raw, layout).date()  # noqa: DTZ007 - a calendar date
        except ValueError:
            continue
        if not dt.date(1900, 1, 1) <= born <= dt.date.today():
            raise ValueError(f"birth_date {raw!r} out of range")
        return born
    raise ValueError(f"invalid birth_date {raw!r} (YYYY-MM-DD or DD/MM/YYYY)")


def _row_values(row: dict[str, str], hasher: PasswordHasher, numen_key: bytes) -> dict[str, Any]:
    """The account columns of one CSV row; raises ValueError with the reason."""
    for name, value in row.items():
        if name is None:
            raise ValueError("more fields than columns")
        if value is None:
            raise ValueError(f"missing field {name!r}")
        if "\x00" in value:  # PostgreSQL cannot store it
            raise ValueError(f"field {name!r} contains a NUL character")
        if len(value) > MAX_FIELD_LENGTH and name not in ("password_hash",):
            raise ValueError(f"field {name!r} longer than {MAX_FIELD_LENGTH} characters")
    raw_identifier = row.get("identifier", "")
    identifier = normalize_identifier(raw_identifier)
    if not is_valid_identifier(identifier):
        raise ValueError(
            f"invalid identifier {raw_identifier!r} (letters a-z, digits, '.', '_', '-', '@')"
        )
    values: dict[str, Any] = {"identifier": identifier}
    for column, limit in _COLUMN_LIMITS.items():
        value = (row.get(column) or "").strip()
        if len(value) > limit:
            raise ValueError(f"{column} longer than {limit} characters")
        values[column] = value
    for column in ("email", "recovery_email"):
        if values[column] and not EMAIL.fullmatch(values[column]):
            raise ValueError(f"invalid {column} {values[column]!r}")
    if "birth_date" in row:
        values["birth_date"] = _birth_date(row.get("birth_date") or "")
    raw_numen = row.get("numen") or ""
    if raw_numen.strip():
        numen = normalize_numen(raw_numen)
        if not is_valid_numen(numen):
            # The value itself is never echoed: a NUMEN must not reach logs or reports.
            raise ValueError("invalid numen (13 letters and digits)")
        if not numen_key:
            raise ValueError("numen given but no NUMEN key configured")
        values["numen_hash"] = numen_digest(numen_key, numen)
    if not values["display_name"]:
        values["display_name"] = f"{values['given_name']} {values['surname']}".strip()
    password = row.get("password") or ""
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"password longer than {MAX_PASSWORD_LENGTH} characters")
    password_hash = (row.get("password_hash") or "").strip()
    if len(password_hash) > MAX_PASSWORD_HASH_LENGTH:
        raise ValueError(f"password_hash longer than {MAX_PASSWORD_HASH_LENGTH} characters")
    if password and password_hash:
        raise ValueError("give either password or password_hash, not both")
    if password_hash and not hasher.context.identify(password_hash):
        raise ValueError("password_hash is not in a supported scheme")
    if password:
        values["password_hash"] = password
    elif password_hash:
        values["password_hash"] = password_hash
    attributes: dict[str, list[str]] = {}
    for name, value in row.items():
        if name in KNOWN_COLUMNS or not (value or "").strip():
            continue
        if not _ATTRIBUTE_NAME.fullmatch(name):
            raise ValueError(f"invalid attribute column name {name!r}")
        attributes[name] = [v.strip() for v in value.split(";") if v.strip()]
    values["attributes"] = attributes
    return values


def import_accounts(
    engine: Engine,
    hasher: PasswordHasher,
    lines: Iterable[str],
    *,
    kind: str = "academic",
    numen_key: bytes = b"",
    temporary_password_days: int = 14,
) -> ImportReport:
    """Create or update accounts from CSV lines; bad rows are reported, good ones imported.

    Each row is its own transaction, so a bad row never leaves anything half-written and
    never stops the good rows; importing the same file twice changes nothing.
    """
    report = ImportReport()
    text = "".join(lines) if not isinstance(lines, str) else lines
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "identifier" not in reader.fieldnames:
        report.errors.append((1, "the header must contain an 'identifier' column"))
        return report
    sessions = make_session_factory(engine)
    seen: dict[str, int] = {}
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a field beyond the csv module's size limit
            line = reader.reader.line_num  # DictReader's own count stops at the last good row
            report.errors.append((line, f"unreadable CSV ({exc}); lines after it not read"))
            break
        line = reader.line_num
        try:
            values = _row_values(row, hasher, numen_key)
        except ValueError as exc:
            report.errors.append((line, str(exc)))
            continue
        identifier = values["identifier"]
        if identifier in seen:
            report.errors.append((line, f"{identifier!r} already on line {seen[identifier]}"))
            continue
        seen[values["identifier"]] = line
        with sessions.begin() as db:
            account = db.scalar(select(Account).where(Account.identifier == values["identifier"]))
            plain = row.get("password") or ""
            if plain:
                # Idempotence: keep the stored hash when it already verifies this password.
                if (
                    account is not None
                    and account.password_hash
                    and hasher.verify(plain, account.password_hash).ok
                ):
                    values["password_hash"] = account.password_hash
                else:
                    values["password_hash"] = hasher.hash(plain)
            numen = normalize_numen(row.get("numen") or "")
            initial = (
                numen
                and "password_hash" not in values
                and (account is None or account.password_hash is None)
            )
            if initial:
                # The academies' rule: the first password is the NUMEN in upper case,
                # temporary, and changed at first login.
                values["password_hash"] = hasher.hash(numen)
                values["must_change_password"] = True
                values["password_expires_at"] = utcnow() + dt.timedelta(
                    days=temporary_password_days
                )
            if account is None:
                db.add(Account(kind=kind, **values))
                report.created += 1
                continue
            changed = False
            for key, value in values.items():
                if getattr(account, key) != value:
                    setattr(account, key, value)
                    changed = True
            if changed:
                report.updated += 1
            else:
                report.unchanged += 1
    return report
