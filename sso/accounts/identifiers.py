"""Academic identifiers: how users type them and how we store them."""

from __future__ import annotations

import re
import unicodedata

MAX_IDENTIFIER_LENGTH = 64
# Academic identifiers are ASCII logins (first-letter + surname, digits, dots, dashes):
# anything else, e.g. a Cyrillic look-alike of a Latin letter, is refused at import.
_IDENTIFIER = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")


def normalize_identifier(raw: str) -> str:
    """Trimmed, NFKC-folded, lower-case: the form identifiers are stored and looked up in."""
    return unicodedata.normalize("NFKC", raw).strip().lower()


def is_valid_identifier(identifier: str) -> bool:
    """Whether a normalised identifier is one we store."""
    return _IDENTIFIER.fullmatch(identifier) is not None
