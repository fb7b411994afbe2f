"""Academic identifiers: trimmed, NFKC-folded, lower case; only ASCII logins are valid."""

from __future__ import annotations

import pytest

from sso.accounts.identifiers import (
    MAX_IDENTIFIER_LENGTH,
    is_valid_identifier,
    normalize_identifier,
)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("jdupont", "jdupont"),
        ("  jdupont\t", "jdupont"),
        ("JDupont", "jdupont"),
        ("ＪＤＵＰＯＮＴ", "jdupont"),  # full-width letters (Japanese keyboards)
        ("\u3000jdupont\u00a0", "jdupont"),  # ideographic and no-break spaces
        ("\ufb01lou", "filou"),  # the "fi" ligature
        ("\u212aarl", "karl"),  # KELVIN SIGN looks like K and folds to it
        ("jean.dupont-2@ac-paris.fr", "jean.dupont-2@ac-paris.fr"),
    ],
)
def test_normalize(typed: str, stored: str) -> None:
    assert normalize_identifier(typed) == stored
    assert is_valid_identifier(normalize_identifier(typed))


def test_normalize_is_idempotent() -> None:
    once = normalize_identifier("  ＪDupont ")

    assert normalize_identifier(once) == once


@pytest.mark.parametrize(
    "identifier",
    [
        "jdupont",
        "j",
        "0123",
        "jean.dupont",
        "jean_dupont",
        "jean-dupont",
        "jdupont@ac-lyon.fr",
        "a" * MAX_IDENTIFIER_LENGTH,
    ],
)
def test_valid(identifier: str) -> None:
    assert is_valid_identifier(identifier)


@pytest.mark.parametrize(
    "identifier",
    [
        "",
        "\u0441martin",  # CYRILLIC SMALL LETTER ES: looks exactly like "cmartin"
        "cm\u0430rtin",  # CYRILLIC SMALL LETTER A
        "jdupönt",
        "jdupont\u200b",  # zero-width space
        "JDupont",  # not normalised
        "jean dupont",
        ".jdupont",
        "-jdupont",
        "_jdupont",
        "jdupont\n",
        "jdu/pont",
        "jdupont'--",
        "a" * (MAX_IDENTIFIER_LENGTH + 1),
    ],
)
def test_invalid(identifier: str) -> None:
    assert not is_valid_identifier(identifier)


def test_cyrillic_look_alike_stays_distinct_after_normalisation() -> None:
    look_alike = normalize_identifier("\u0441martin")

    assert look_alike != "cmartin"
    assert not is_valid_identifier(look_alike)
