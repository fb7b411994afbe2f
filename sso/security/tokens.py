"""Random single-use tokens (tickets, cookies) and their stored form."""

from __future__ import annotations

import hashlib
import secrets

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def random_token(prefix: str, length: int = 40) -> str:
    """``PREFIX-`` then ``length`` random characters of ``[A-Za-z0-9]`` (CAS spec 3.7).

    40 base-62 characters carry 238 bits: far beyond guessing, and short enough for clients
    that cap ticket length (PGTs at 64 characters).
    """
    return f"{prefix}-" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def token_digest(token: str) -> str:
    """What is stored for a token: its SHA-256 (tokens are random, so no salt is needed)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
