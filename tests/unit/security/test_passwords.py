"""Password hashing: argon2id with OWASP parameters; legacy hashes verified and upgraded."""

from __future__ import annotations

import os
from typing import Any

import pytest
from passlib.hash import ldap_salted_sha1, ldap_salted_sha256, sha512_crypt

from sso.security.passwords import PasswordHasher, hashes_at_once

ARGON2_PREFIX = "$argon2id$v=19$m=19456,t=2,p=1$"


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher()


@pytest.fixture(scope="module")
def stored(hasher: PasswordHasher) -> str:
    return hasher.hash("correct horse")


def test_new_hashes_are_argon2id_with_owasp_parameters(stored: str) -> None:
    assert stored.startswith(ARGON2_PREFIX)


def test_hashes_are_salted(hasher: PasswordHasher, stored: str) -> None:
    assert hasher.hash("correct horse") != stored


def test_right_password(hasher: PasswordHasher, stored: str) -> None:
    check = hasher.verify("correct horse", stored)

    assert check.ok
    assert check.new_hash is None  # already the current scheme


@pytest.mark.parametrize("password", ["correct horsE", "correct horse ", "", "correct"])
def test_wrong_password(hasher: PasswordHasher, stored: str, password: str) -> None:
    check = hasher.verify(password, stored)

    assert not check.ok
    assert check.new_hash is None


@pytest.mark.parametrize(
    "legacy",
    [ldap_salted_sha1, ldap_salted_sha256, sha512_crypt.using(rounds=5000)],
    ids=lambda h: h.name,
)
def test_legacy_hash_verified_and_rehashed(hasher: PasswordHasher, legacy: Any) -> None:
    old = legacy.hash("from the ldap")

    check = hasher.verify("from the ldap", old)

    assert check.ok
    assert check.new_hash is not None
    assert check.new_hash.startswith(ARGON2_PREFIX)
    assert hasher.verify("from the ldap", check.new_hash).ok


def test_ssha_hash_as_ldap_exports_it(hasher: PasswordHasher) -> None:
    old = ldap_salted_sha1.hash("secret")
    assert old.startswith("{SSHA}")

    assert hasher.verify("secret", old).ok


def test_wrong_password_on_legacy_hash_gives_no_new_hash(hasher: PasswordHasher) -> None:
    check = hasher.verify("wrong", ldap_salted_sha1.hash("secret"))

    assert not check.ok
    assert check.new_hash is None


def test_weaker_argon2_parameters_are_upgraded(hasher: PasswordHasher) -> None:
    weak = hasher.context.handler("argon2").using(memory_cost=1024, rounds=1).hash("pw")

    check = hasher.verify("pw", weak)

    assert check.ok
    assert check.new_hash is not None and check.new_hash.startswith(ARGON2_PREFIX)


@pytest.fixture
def hashed_verifications(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> list[str | None]:
    """The stored hashes passlib actually verified a password against, in order."""
    calls: list[str | None] = []
    context = hasher.context
    real_verify, real_verify_and_update = context.verify, context.verify_and_update

    def verify(secret: str, hash: str | None, **kwargs: Any) -> bool:
        result = real_verify(secret, hash, **kwargs)
        calls.append(hash)
        return result

    def verify_and_update(secret: str, hash: str | None, **kwargs: Any) -> Any:
        result = real_verify_and_update(secret, hash, **kwargs)  # raises on unknown hashes
        calls.append(hash)
        return result

    monkeypatch.setattr(context, "verify", verify)
    monkeypatch.setattr(context, "verify_and_update", verify_and_update)
    hasher.warm_up()
    return calls


@pytest.mark.parametrize(
    "bad_hash",
    [None, "", "garbage", "{SSHA}", "{SSHA}!!!", "$argon2id$v=19$m=19456,t=2,p=1$garbage", "*"],
)
def test_missing_or_garbage_hash_never_matches_and_costs_one_verification(
    hasher: PasswordHasher, hashed_verifications: list[str | None], bad_hash: str | None
) -> None:
    check = hasher.verify("anything", bad_hash)

    assert not check.ok
    assert check.new_hash is None
    assert len(hashed_verifications) == 1
    # The one verification is a real argon2id one, as costly as for a real account.
    assert (hashed_verifications[0] or "").startswith(ARGON2_PREFIX)


def test_known_account_costs_one_verification_too(
    hasher: PasswordHasher, stored: str, hashed_verifications: list[str | None]
) -> None:
    hasher.verify("wrong", stored)

    assert hashed_verifications == [stored]


def test_warm_up_computes_the_dummy_hash_once(hasher: PasswordHasher) -> None:
    hasher.warm_up()
    dummy = hasher._dummy_hash

    hasher.warm_up()

    assert hasher._dummy_hash is dummy
    assert dummy.startswith(ARGON2_PREFIX)


@pytest.mark.parametrize(
    ("cpus", "workers", "expected"), [(4, 1, 4), (4, 2, 2), (2, 2, 1), (2, 8, 1), (3, 2, 1)]
)
def test_each_worker_hashes_as_many_passwords_at_once_as_its_share_of_the_cpus(
    monkeypatch: pytest.MonkeyPatch, cpus: int, workers: int, expected: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cpus)), raising=False)

    assert hashes_at_once(workers) == expected
