"""Random tokens: CAS-compliant alphabet, prefix and length; stored as their SHA-256."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import pytest

from sso.security.tokens import random_token, token_digest


def test_prefix_length_and_alphabet() -> None:
    token = random_token("ST")

    assert re.fullmatch(r"ST-[A-Za-z0-9]{40}", token), token


@pytest.mark.parametrize(
    ("prefix", "length"), [("TGT", 48), ("PGT", 56), ("PGTIOU", 56), ("PT", 1)]
)
def test_custom_prefix_and_length(prefix: str, length: int) -> None:
    token = random_token(prefix, length)

    assert token.startswith(f"{prefix}-")
    assert re.fullmatch(r"[A-Za-z0-9]+", token.removeprefix(f"{prefix}-"))
    assert len(token) == len(prefix) + 1 + length


def test_every_character_of_the_alphabet_is_drawn_and_nothing_else() -> None:
    drawn = "".join(random_token("ST").removeprefix("ST-") for _ in range(200))

    assert set(drawn) == set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def test_characters_are_drawn_without_bias() -> None:
    # Taking random bytes modulo 62 without dropping those >= 248 would favour the first 8
    # characters by a quarter; 200,000 draws tell that apart from chance by far.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    counts = Counter("".join(random_token("ST").removeprefix("ST-") for _ in range(5_000)))
    first = sum(counts[c] for c in alphabet[:8]) / 8
    rest = sum(counts[c] for c in alphabet[8:]) / 54

    assert 0.95 < first / rest < 1.05


def test_tokens_are_unique_over_many_draws() -> None:
    tokens = {random_token("ST") for _ in range(10_000)}

    assert len(tokens) == 10_000


def test_digest_is_sha256_hex() -> None:
    token = random_token("ST")

    digest = token_digest(token)

    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest != token_digest(random_token("ST"))


def test_digest_of_any_submitted_string_never_fails() -> None:
    # Whatever a client sends as a ticket (lone surrogates included) can be looked up.
    assert re.fullmatch(r"[0-9a-f]{64}", token_digest("ST-\udcff\x00é"))
