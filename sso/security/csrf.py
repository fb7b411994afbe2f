"""CSRF protection for our forms: a random cookie, and a form field that is its HMAC.

Before login there is no session to tie a token to, so the token is bound to a per-browser
cookie instead (signed double-submit, as OWASP describes it).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

CSRF_COOKIE = "sso_csrf"


class CsrfProtection:
    """Issues and checks CSRF tokens bound to the browser's CSRF cookie."""

    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(b"csrf:" + secret_key.encode()).digest()

    @staticmethod
    def new_cookie_value() -> str:
        """A fresh random value for the CSRF cookie."""
        return secrets.token_urlsafe(32)

    def token_for(self, cookie_value: str) -> str:
        """The form token that goes with a cookie value."""
        return hmac.new(self._key, cookie_value.encode(), hashlib.sha256).hexdigest()

    def is_valid(self, cookie_value: str | None, form_token: str | None) -> bool:
        """Whether the submitted form token matches the browser's cookie."""
        if not cookie_value or not form_token or len(form_token) > 128:
            return False
        return hmac.compare_digest(self.token_for(cookie_value), form_token)
