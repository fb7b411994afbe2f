"""Password hashing: argon2id with OWASP parameters; legacy schemes verified then re-hashed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

from passlib.context import CryptContext

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
ARGON2_MEMORY_KIB = 19456
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1


def hashes_at_once(workers: int = 1) -> int:
    """How many hashes one of ``workers`` processes should compute at once: its share of the
    CPUs this machine lets us use, at least one.

    An argon2id hash keeps one core busy on 19 MiB of memory; more hashes at once than cores
    only slow each of them down (they evict each other from the CPU caches): measured on 2
    cores, 8 at once give ~10 % fewer logins per second than 2.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) // max(1, workers))


@dataclass(frozen=True)
class PasswordCheck:
    """Outcome of a verification: whether it matched, and a new hash to store if any."""

    ok: bool
    new_hash: str | None = None


class PasswordHasher:
    """Hashes and verifies passwords. Blocking: callers run it off the event loop."""

    def __init__(self) -> None:
        self.context = CryptContext(
            # Accounts imported from an academy's LDAP keep their {SSHA} hashes until next login.
            schemes=["argon2", "ldap_salted_sha1", "ldap_salted_sha256", "sha512_crypt"],
            deprecated=["ldap_salted_sha1", "ldap_salted_sha256", "sha512_crypt"],
            argon2__type="ID",
            argon2__memory_cost=ARGON2_MEMORY_KIB,
            argon2__rounds=ARGON2_TIME_COST,
            argon2__parallelism=ARGON2_PARALLELISM,
        )

    @cached_property
    def _dummy_hash(self) -> str:
        return self.context.hash("dummy password for unknown identifiers")

    def hash(self, password: str) -> str:
        """A new argon2id hash."""
        return self.context.hash(password)

    def verify(self, password: str, stored_hash: str | None) -> PasswordCheck:
        """Check a password; with no stored hash, spend the same time and say no.

        The dummy verification keeps unknown identifiers from answering faster than known ones.
        """
        if not stored_hash:
            self.context.verify(password, self._dummy_hash)
            return PasswordCheck(ok=False)
        try:
            ok, new_hash = self.context.verify_and_update(password, stored_hash)
        except ValueError:  # an unrecognised or corrupt hash never matches
            self.context.verify(password, self._dummy_hash)
            return PasswordCheck(ok=False)
        return PasswordCheck(ok=ok, new_hash=new_hash if ok else None)

    def warm_up(self) -> None:
        """Compute the dummy hash now so the first unknown identifier is not slower."""
        _ = self._dummy_hash
