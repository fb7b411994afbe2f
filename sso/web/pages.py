"""Rendering pages: Jinja2 templates with the user's language, and the error page."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from sso.config import Settings
from sso.web.i18n import LANGUAGE_COOKIE, LANGUAGES, choose_language, translate

# Our pages are never framed (clickjacking) and never cached (they carry tokens).
PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action *; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class Pages:
    """Renders the templates under ``sso/templates``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env = Environment(
            loader=PackageLoader("sso", "templates"),
            autoescape=select_autoescape(default=True),
            auto_reload=False,
        )

    def language(self, request: Request) -> str:
        """The language of the page answering ``request``."""
        return choose_language(request, self.settings.default_language)

    def render(
        self, request: Request, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        """A page in the user's language."""
        language = self.language(request)
        html = self.env.get_template(template).render(
            t=lambda key, **values: translate(language, key, **values),
            lang=language,
            other_languages=[code for code in LANGUAGES if code != language],
            base_path=self.settings.base_path,
            demo=self.settings.demo,
            request_url=str(request.url),
            **context,
        )
        response = HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
        if request.query_params.get("lang") in LANGUAGES:
            response.set_cookie(
                LANGUAGE_COOKIE,
                language,
                max_age=365 * 86400,
                path=self.settings.base_path,
                secure=self.settings.secure_cookies,
                httponly=True,
                samesite="lax",
            )
        return response

    def message(
        self,
        request: Request,
        title_key: str,
        body_key: str,
        status_code: int = 200,
        *,
        link: str = "",
        link_key: str = "",
        **values: Any,
    ) -> HTMLResponse:
        """A page that says what happened and what to do (errors included), with an optional
        button to the next step."""
        return self.render(
            request,
            "message.html",
            status_code=status_code,
            title_key=title_key,
            body_key=body_key,
            values=values,
            link=link,
            link_key=link_key,
        )
