"""The NUMEN (numéro d'identification de l'Éducation nationale): kept only as a keyed hash.

It is a lifelong identifier the academies treat as a secret (the initial password and the key
of recovery), so it is never stored: an HMAC-SHA256 under a key derived from the server secret
lets recovery find the account from a typed NUMEN while nobody can read one back. Changing
``SSO_SECRET_KEY`` therefore means re-importing the NUMENs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

# 13 characters: two digits, a letter, seven digits, three letters (e.g. 12E0123456ABC); some
# academies' files differ, so only the alphabet and length are checked.
_NUMEN = re.compile(r"^[0-9A-Z]{13}$")


def normalize_numen(raw: str) -> str:
    """As the academies write it: upper case, no spaces (users type it every way)."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", raw)).upper()


def is_valid_numen(numen: str) -> bool:
    """Whether a normalised NUMEN has the shape of one."""
    return _NUMEN.fullmatch(numen) is not None


def numen_key(secret_key: str) -> bytes:
    """The HMAC key of NUMEN digests, derived from the server secret for this purpose only."""
    return hmac.new(secret_key.encode(), b"sso numen digest v1", hashlib.sha256).digest()


def numen_digest(key: bytes, raw_numen: str) -> str:
    """What is stored for a NUMEN."""
    return hmac.new(key, normalize_numen(raw_numen).encode(), hashlib.sha256).hexdigest()
