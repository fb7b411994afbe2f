"""The cookies of the login layer: the ticket-granting cookie and the CSRF cookie.

The ticket-granting cookie (TGC) is ``HttpOnly``, scoped to our base path, and a browser
session cookie. Over HTTPS it is ``Secure; SameSite=None``: a SAML SP POSTs its AuthnRequest
to us cross-site, and browsers leave ``Lax`` cookies off such POSTs, which would make every
SAML login ask for the password again. CSRF on our own forms is handled by the CSRF token,
not by SameSite. Over plain HTTP (local demo only) browsers refuse ``SameSite=None`` without
``Secure``, so the cookie falls back to ``Lax``, which still serves CAS redirects (top-level
GET navigations).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from sso.config import Settings
from sso.security.csrf import CSRF_COOKIE, CsrfProtection

TGC_COOKIE = "TGC"


def set_tgc(response: Response, settings: Settings, value: str) -> None:
    """Give the browser its SSO session."""
    response.set_cookie(
        TGC_COOKIE,
        value,
        path=settings.base_path,
        secure=settings.secure_cookies,
        httponly=True,
        samesite="none" if settings.secure_cookies else "lax",
    )


def clear_tgc(response: Response, settings: Settings) -> None:
    """Take the SSO session cookie away."""
    response.delete_cookie(
        TGC_COOKIE,
        path=settings.base_path,
        secure=settings.secure_cookies,
        httponly=True,
        samesite="none" if settings.secure_cookies else "lax",
    )


def read_tgc(request: Request) -> str | None:
    """The SSO session cookie the browser sent, if any."""
    return request.cookies.get(TGC_COOKIE)


def csrf_token(request: Request, csrf: CsrfProtection) -> tuple[str, str | None]:
    """The CSRF token for a form, and a new CSRF cookie value to set when the browser has none."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if cookie and len(cookie) <= 128:
        return csrf.token_for(cookie), None
    cookie = csrf.new_cookie_value()
    return csrf.token_for(cookie), cookie


def set_csrf_cookie(response: Response, settings: Settings, value: str | None) -> None:
    """Set the CSRF cookie chosen by ``csrf_token`` (nothing when the browser had one)."""
    if value is None:
        return
    response.set_cookie(
        CSRF_COOKIE,
        value,
        path=settings.base_path,
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def csrf_ok(request: Request, submitted: str | None, csrf: CsrfProtection) -> bool:
    """Whether a submitted form carries the token of this browser's CSRF cookie."""
    return csrf.is_valid(request.cookies.get(CSRF_COOKIE), submitted)
