"""Composing our mails: ``sso/templates/mail/<name>.txt`` and ``.html`` in the user's language.

Callers pass every link already absolute (``settings.url(...)``): a mail is read far from
the request that asked for it, and a link built from the request's Host header would let
anyone who forges that header send our users to their own site.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from sso.config import Settings
from sso.mail import Outbox
from sso.web.i18n import LANGUAGES, translate


@dataclass(frozen=True)
class ComposedMail:
    """A mail ready for the outbox: its subject, its plain text and its HTML."""

    subject: str
    text: str
    html: str


class Mails:
    """Renders the mail templates; the HTML escapes what it is given, the text does not."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env = Environment(
            loader=PackageLoader("sso", "templates"),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,  # a context value forgotten by a caller fails loudly
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,
        )

    def compose(self, name: str, language: str, **context: Any) -> ComposedMail:
        """The mail ``name`` in ``language`` (the default language if we do not speak it)."""
        if language not in LANGUAGES:
            language = self.settings.default_language

        def t(key: str, **values: object) -> str:
            return translate(language, key, **values)

        values = {"t": t, "lang": language, "base_url": self.settings.base_url, **context}
        subject = " ".join(t(f"mail.{name}.subject", **context).split())  # never a line break
        return ComposedMail(
            subject=subject,
            text=self.env.get_template(f"mail/{name}.txt").render(values),
            html=self.env.get_template(f"mail/{name}.html").render(values),
        )

    def send(
        self,
        outbox: Outbox,
        to_address: str,
        name: str,
        language: str,
        **context: Any,
    ) -> None:
        """Compose the mail ``name`` and queue it for ``to_address`` (a blocking insert)."""
        mail = self.compose(name, language, **context)
        outbox.enqueue(to_address, mail.subject, mail.text, mail.html)
