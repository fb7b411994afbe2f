"""Random single-use tokens (tickets, cookies) and their stored form."""

from __future__ import annotations

import hashlib
import secrets

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# A random byte below 248 (4 x 62) picks a character uniformly as byte % 62; others are dropped.
_UNBIASED_BELOW = 256 - 256 % len(_ALPHABET)


def random_token(prefix: str, length: int = 40) -> str:
    """``PREFIX-`` then ``length`` random characters of ``[A-Za-z0-9]`` (CAS spec 3.7).

    40 base-62 characters carry 238 bits: far beyond guessing, and short enough for clients
    that cap ticket length (PGTs at 64 characters).
    """
    characters: list[str] = []
    while len(characters) < length:  # one draw of random bytes nearly always suffices
        characters += [
            _ALPHABET[byte % len(_ALPHABET)]
            for byte in secrets.token_bytes(length - len(characters) + 8)
            if byte < _UNBIASED_BELOW
        ]
    return f"{prefix}-" + "".join(characters[:length])


def token_digest(token: str) -> str:
    """What is stored for a token: its SHA-256 (tokens are random, so no salt is needed)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
