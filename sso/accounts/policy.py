"""The password policy: what a new password must be, checked on the server and shown to users.

By default at least 12 characters from three of the four classes (lower case, upper case,
digits, other signs), as CNIL deliberation 2022-100 allows for accounts protected by a lockout;
at most ``MAX_PASSWORD_LENGTH`` so that any password we accept can be used to log in. On top of
that, a password is refused when it holds the user's identifier, NUMEN or names, or when it is a
common password, even lightly decorated (``Soleil2024!``, ``P@ssw0rd``): those fall first to a
guessing attack, whatever their length.

Problems and rules are locale keys (``sso/locales/policy.<lang>.json``): the web layer words
them, this module knows nothing of HTTP.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources

from sso.accounts.store import MAX_PASSWORD_LENGTH
from sso.config import Settings

# Names and parts of identifiers shorter than this are too common inside words to refuse.
MIN_PERSONAL_LENGTH = 3
CHARACTER_CLASSES = 4  # lower case, upper case, digits, other signs

# Which displayed rule (``rules()``) each problem breaks, to mark it on a refused form;
# ``policy.mismatch`` is the page's own problem when the confirmation differs.
RULE_OF_PROBLEM = {
    "policy.too_short": "length",
    "policy.too_long": "length",
    "policy.classes": "classes",
    "policy.contains_identifier": "personal",
    "policy.contains_numen": "personal",
    "policy.contains_name": "personal",
    "policy.common": "common",
    "policy.mismatch": "match",
}

# Ligatures NFKD leaves whole; French names and words use them.
_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ø": "o", "đ": "d", "ł": "l"})
_SEPARATORS = re.compile(r"[\W_]+")
# Decorations users add around a common password: digits, signs and spaces at either end.
_LEADING = re.compile(r"^[\W\d_]+")
_TRAILING = re.compile(r"[\W\d_]+$")
_LEET = str.maketrans({"0": "o", "3": "e", "4": "a", "5": "s", "@": "a", "$": "s"})


def fold(text: str) -> str:
    """Lower case without accents (``Éloïse`` → ``eloise``): how users think of letters."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_LIGATURES))
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _compact(text: str) -> str:
    """Without spaces, dots, dashes…: ``jean.dupont`` and ``Jean Dupont`` meet as one."""
    return _SEPARATORS.sub("", text)


def _unleet(text: str) -> set[str]:
    """Leetspeak read back as letters; ``1`` may have stood for ``i`` or ``l``."""
    plain = text.translate(_LEET)
    return {plain.replace("1", "i"), plain.replace("1", "l")}


def _undecorated(text: str) -> set[str]:
    """``text`` without the digits and signs at its start, its end, or both."""
    stripped = _LEADING.sub("", text)
    return {text, stripped, _TRAILING.sub("", text), _TRAILING.sub("", stripped)}


def _unrepeated(text: str) -> str:
    """The unit a word repeats (``azertyazerty`` → ``azerty``), else the word."""
    for period in range(1, len(text) // 2 + 1):
        if len(text) % period == 0 and text[:period] * (len(text) // period) == text:
            return text[:period]
    return text


def _common_forms(password: str) -> set[str]:
    """The forms of a password a guessing attack tries from a list of common ones."""
    folded = fold(password)
    forms: set[str] = set()
    for spelling in {folded, _compact(folded)}:
        for bare in _undecorated(spelling):
            for plain in {bare, *_unleet(bare)}:
                forms |= {
                    variant for form in _undecorated(plain) for variant in (form, _unrepeated(form))
                }
    forms.discard("")
    return forms


@cache
def common_passwords() -> frozenset[str]:
    """The blocklist shipped with the project (``common_passwords.txt``), folded, read once."""
    text = resources.files("sso.accounts").joinpath("common_passwords.txt").read_text("utf-8")
    entries = (line.strip() for line in text.splitlines())
    return frozenset(fold(entry) for entry in entries if entry and not entry.startswith("#"))


def _personal_words(values: Iterable[str]) -> Iterator[str]:
    """Each value whole and each of its words, folded, long enough to mean something."""
    for value in values:
        folded = fold(value)
        for word in {_compact(folded), *_SEPARATORS.split(folded)}:
            if len(word) >= MIN_PERSONAL_LENGTH:
                yield word


def character_classes(password: str) -> int:
    """How many of lower case, upper case, digits and other signs a password uses."""
    found: set[str] = set()
    for char in password:
        category = unicodedata.category(char)
        if category == "Ll":
            found.add("lower")
        elif category in ("Lu", "Lt"):
            found.add("upper")
        elif category == "Nd":
            found.add("digit")
        else:
            found.add("other")
    return len(found)


@dataclass(frozen=True)
class PasswordPolicy:
    """What a new password must be; built from the settings, one object for the whole server."""

    min_length: int
    min_classes: int
    max_length: int = MAX_PASSWORD_LENGTH

    def __post_init__(self) -> None:
        if not 1 <= self.min_length <= self.max_length <= MAX_PASSWORD_LENGTH:
            raise ValueError(
                f"need 1 <= min_length <= max_length <= {MAX_PASSWORD_LENGTH}: a longer "
                "password could not be used to log in"
            )
        if not 1 <= self.min_classes <= CHARACTER_CLASSES:
            raise ValueError(f"min_classes must be 1 to {CHARACTER_CLASSES}")

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordPolicy:
        """The policy the server's settings (``SSO_PASSWORD_MIN_*``) ask for."""
        return cls(
            min_length=settings.password_min_length, min_classes=settings.password_min_classes
        )

    def problems(
        self,
        password: str,
        *,
        identifier: str = "",
        numen: str = "",
        names: Iterable[str] = (),
    ) -> list[str]:
        """The locale keys of every rule ``password`` breaks; empty when it is acceptable.

        Every broken rule is reported at once, so the user fixes them in one go.
        """
        problems: list[str] = []
        length = len(unicodedata.normalize("NFC", password))  # é typed either way is one
        if length < self.min_length:
            problems.append("policy.too_short")
        if length > self.max_length or len(password) > MAX_PASSWORD_LENGTH:
            problems.append("policy.too_long")
        if character_classes(password) < self.min_classes:
            problems.append("policy.classes")
        compact = _compact(fold(password))
        readings = {compact, *_unleet(compact)}
        login = identifier.partition("@")[0]  # an invited account's mail domain is no secret
        if any(word in reading for word in _personal_words([login]) for reading in readings):
            problems.append("policy.contains_identifier")
        numen_compact = _compact(fold(numen))
        if len(numen_compact) >= MIN_PERSONAL_LENGTH and numen_compact in compact:
            problems.append("policy.contains_numen")
        if any(word in reading for word in _personal_words(names) for reading in readings):
            problems.append("policy.contains_name")
        if not _common_forms(password).isdisjoint(common_passwords()):
            problems.append("policy.common")
        return problems

    @staticmethod
    def broken_rules(problems: Iterable[str]) -> set[str]:
        """The displayed rules (``length``, ``classes``…) that ``problems`` break."""
        return {RULE_OF_PROBLEM[problem] for problem in problems if problem in RULE_OF_PROBLEM}

    def message_values(self) -> dict[str, int]:
        """The values the policy's messages quote (``{min_length}``…), for ``t(key, **values)``."""
        return {
            "min_length": self.min_length,
            "max_length": self.max_length,
            "min_classes": self.min_classes,
        }

    def rules(self) -> list[tuple[str, dict[str, int]]]:
        """Each rule to show next to the field: its locale key and the values it quotes.

        The last part of the key (``length``, ``classes``, ``personal``, ``common``) names the
        rule for the page's script; only the first two can be checked in the browser.
        """
        return [
            (
                "policy.rule.length",
                {"min_length": self.min_length, "max_length": self.max_length},
            ),
            ("policy.rule.classes", {"min_classes": self.min_classes}),
            ("policy.rule.personal", {}),
            ("policy.rule.common", {}),
        ]
