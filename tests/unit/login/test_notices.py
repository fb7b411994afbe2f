"""Who a notice goes to, and how it shows an address it must not give away."""

from __future__ import annotations

import pytest

from sso.accounts.models import Account
from sso.login.notices import addresses, masked_address


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("jeanne.dupont@perso.test", "j***@perso.test"),
        ("j@perso.test", "j***@perso.test"),
        ('"a@b"@perso.test', '"***@perso.test'),  # the last @ separates the domain
        ("not-an-address", "***"),
        ("@perso.test", "***"),
        ("", "***"),
    ],
)
def test_an_address_is_masked_but_its_domain_kept(address: str, shown: str) -> None:
    assert masked_address(address) == shown


def test_a_masked_address_keeps_nothing_of_the_local_part_but_its_first_letter() -> None:
    assert masked_address("secret.name@perso.test").count("secret") == 0
    assert len(masked_address("a" * 60 + "@perso.test")) == len("a***@perso.test")


def test_notices_go_to_the_recovery_address_then_the_academic_one() -> None:
    both = Account(identifier="jdupont", email="j@ac-test.fr", recovery_email="j@perso.test")
    only_own = Account(identifier="pdurand", email="p@ac-test.fr", recovery_email=None)
    assert addresses(both) == ["j@perso.test", "j@ac-test.fr"]
    assert addresses(both, recovery_only=True) == ["j@perso.test"]
    assert addresses(only_own) == ["p@ac-test.fr"]
