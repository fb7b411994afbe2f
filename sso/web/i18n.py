"""French by default, English available: message catalogues and the choice of language."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from starlette.requests import Request

LANGUAGES = ("fr", "en")
LANGUAGE_COOKIE = "sso_lang"


@cache
def catalogue(language: str) -> dict[str, str]:
    """The messages of one language: ``sso/locales/<language>.json``, then each area's own
    ``sso/locales/<area>.<language>.json`` (mails, password policy…)."""
    folder = resources.files("sso").joinpath("locales")
    messages: dict[str, str] = json.loads(folder.joinpath(f"{language}.json").read_text("utf-8"))
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(f".{language}.json"):
            messages.update(json.loads(entry.read_text("utf-8")))
    return messages


def translate(language: str, key: str, **values: object) -> str:
    """A message in ``language`` (French when missing there), formatted with ``values``."""
    message = catalogue(language).get(key) or catalogue("fr").get(key) or key
    return message.format(**values) if values else message


def choose_language(request: Request, default: str) -> str:
    """``?lang=``, then the language cookie, then Accept-Language, then the default."""
    for candidate in (request.query_params.get("lang"), request.cookies.get(LANGUAGE_COOKIE)):
        if candidate in LANGUAGES:
            return candidate
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";", 1)[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return default
