"""The account store: authentication that fails alike on every path, legacy hashes upgraded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from passlib.hash import ldap_salted_sha1
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from sso.accounts.importer import import_accounts
from sso.accounts.models import Account
from sso.accounts.store import MAX_PASSWORD_LENGTH, AccountStore
from sso.db import make_engine
from sso.security.passwords import PasswordHasher

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    hasher = PasswordHasher()
    hasher.warm_up()
    return hasher


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine, hasher: PasswordHasher) -> AccountStore:
    report = import_accounts(
        engine, hasher, f"identifier,password,email\njdupont,{PASSWORD},jean@ac-paris.fr\n"
    )
    assert not report.errors
    return AccountStore(engine, hasher)


def stored_hash(engine: Engine, identifier: str) -> str | None:
    with Session(engine) as db:
        return db.scalar(select(Account.password_hash).where(Account.identifier == identifier))


def test_right_password(store: AccountStore) -> None:
    account = store.authenticate("jdupont", PASSWORD, kind="academic")

    assert account is not None
    assert account.identifier == "jdupont"
    assert account.email == "jean@ac-paris.fr"


def test_identifier_as_users_type_it(store: AccountStore) -> None:
    assert store.authenticate("  JDupont ", PASSWORD, kind="academic") is not None
    assert store.authenticate("ＪＤＵＰＯＮＴ", PASSWORD, kind="academic") is not None


@pytest.mark.parametrize(
    "password", ["wrong", "", PASSWORD.upper(), PASSWORD + " ", PASSWORD[:-1], " " + PASSWORD]
)
def test_wrong_password(store: AccountStore, password: str) -> None:
    assert store.authenticate("jdupont", password, kind="academic") is None


@pytest.mark.parametrize("identifier", ["nobody", "", "x" * 1000, "\u0441dupont", "jdupont\x00"])
def test_unknown_identifier(store: AccountStore, identifier: str) -> None:
    assert store.authenticate(identifier, PASSWORD, kind="academic") is None


def test_disabled_account(store: AccountStore, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(update(Account).where(Account.identifier == "jdupont").values(enabled=False))

    assert store.authenticate("jdupont", PASSWORD, kind="academic") is None


def test_account_of_another_kind(store: AccountStore) -> None:
    """An academic account cannot log in through the invited door, nor the reverse."""
    assert store.authenticate("jdupont", PASSWORD, kind="invited") is None


def test_account_without_password(
    store: AccountStore, engine: Engine, hasher: PasswordHasher
) -> None:
    import_accounts(engine, hasher, "identifier\nnopass\n")

    assert store.authenticate("nopass", "", kind="academic") is None
    assert store.authenticate("nopass", "anything", kind="academic") is None


def test_legacy_hash_rehashed_on_login(
    store: AccountStore, engine: Engine, hasher: PasswordHasher
) -> None:
    ssha = ldap_salted_sha1.hash("from the ldap")
    import_accounts(engine, hasher, f"identifier,password_hash\nlegacy,{ssha}\n")

    assert store.authenticate("legacy", "from the ldap", kind="academic") is not None

    new_hash = stored_hash(engine, "legacy")
    assert new_hash is not None and new_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert store.authenticate("legacy", "from the ldap", kind="academic") is not None
    assert stored_hash(engine, "legacy") == new_hash  # current scheme: not re-hashed again


def test_legacy_hash_kept_after_a_wrong_password(
    store: AccountStore, engine: Engine, hasher: PasswordHasher
) -> None:
    ssha = ldap_salted_sha1.hash("from the ldap")
    import_accounts(engine, hasher, f"identifier,password_hash\nlegacy,{ssha}\n")

    assert store.authenticate("legacy", "wrong", kind="academic") is None
    assert stored_hash(engine, "legacy") == ssha


def test_password_longer_than_the_limit_refused(
    store: AccountStore, engine: Engine, hasher: PasswordHasher
) -> None:
    longest = "p" * MAX_PASSWORD_LENGTH
    import_accounts(engine, hasher, f"identifier,password\nlongpw,{longest}\n")

    assert store.authenticate("longpw", longest, kind="academic") is not None
    # Whatever follows the first 128 characters must not be ignored.
    assert store.authenticate("longpw", longest + "anything", kind="academic") is None
    assert store.authenticate("jdupont", PASSWORD + "x" * 200, kind="academic") is None


def test_huge_password_costs_no_more_than_one_verification(
    store: AccountStore, hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[int] = []
    real_verify = hasher.verify

    def spy(password: str, stored: str | None) -> Any:
        verified.append(len(password))
        return real_verify(password, stored)

    monkeypatch.setattr(hasher, "verify", spy)

    assert store.authenticate("jdupont", "x" * 1_000_000, kind="academic") is None
    assert len(verified) == 1 and verified[0] <= MAX_PASSWORD_LENGTH


@pytest.mark.parametrize(
    ("identifier", "password", "kind"),
    [
        ("nobody", PASSWORD, "academic"),
        ("jdupont", "wrong", "academic"),
        ("jdupont", PASSWORD, "invited"),
    ],
    ids=["unknown", "wrong-password", "other-kind"],
)
def test_every_failure_costs_one_real_verification(
    store: AccountStore,
    hasher: PasswordHasher,
    monkeypatch: pytest.MonkeyPatch,
    identifier: str,
    password: str,
    kind: str,
) -> None:
    """Timing must not tell an unknown identifier from a wrong password."""
    hashed_against: list[str] = []
    context = hasher.context
    real_verify, real_verify_and_update = context.verify, context.verify_and_update

    def verify(secret: str, hash: str, **kwargs: Any) -> bool:
        hashed_against.append(hash)
        return real_verify(secret, hash, **kwargs)

    def verify_and_update(secret: str, hash: str, **kwargs: Any) -> Any:
        hashed_against.append(hash)
        return real_verify_and_update(secret, hash, **kwargs)

    monkeypatch.setattr(context, "verify", verify)
    monkeypatch.setattr(context, "verify_and_update", verify_and_update)

    assert store.authenticate(identifier, password, kind=kind) is None
    assert len(hashed_against) == 1
    assert hashed_against[0].startswith("$argon2id$")


def test_find(store: AccountStore) -> None:
    account = store.find(" JDUPONT")

    assert account is not None and account.identifier == "jdupont"
    assert store.find("nobody") is None
    assert store.find("") is None
    assert store.find("x" * 65) is None


def test_set_password(store: AccountStore) -> None:
    assert store.set_password("JDupont", "a new password")

    assert store.authenticate("jdupont", "a new password", kind="academic") is not None
    assert store.authenticate("jdupont", PASSWORD, kind="academic") is None


def test_set_password_of_unknown_account(store: AccountStore) -> None:
    assert not store.set_password("nobody", "a new password")


@pytest.mark.parametrize("password", ["", "x" * (MAX_PASSWORD_LENGTH + 1)], ids=["empty", "long"])
def test_set_password_refuses_a_password_no_login_could_use(
    store: AccountStore, password: str
) -> None:
    with pytest.raises(ValueError, match="a password must have 1 to 128 characters"):
        store.set_password("jdupont", password)

    assert store.authenticate("jdupont", PASSWORD, kind="academic") is not None
