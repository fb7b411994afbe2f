"""The login page with its doors, and the page of a logged-in user."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from sso.accounts.models import Account
from sso.accounts.policy import PasswordPolicy
from sso.login.cookies import csrf_token, set_csrf_cookie
from sso.login.pending import PendingRequest
from sso.login.runtime import Runtime
from sso.security.tokens import token_digest
from sso.sessions.registry import SsoSession

PASSWORD_CHANGE = "password-change"  # noqa: S105 - a token purpose


def login_page(
    request: Request,
    runtime: Runtime,
    pending: PendingRequest,
    *,
    error_key: str | None = None,
    identifier: str = "",
    status_code: int = 200,
) -> Response:
    """The login page for a pending request.

    Only doors whose back end exists are shown: the violet (federated) and direct (invited)
    doors appear when their issues land, never as dead buttons.
    """
    token, new_cookie = csrf_token(request, runtime.csrf)
    response = runtime.pages.render(
        request,
        "login.html",
        status_code=status_code,
        csrf_token=token,
        pending_token=pending.to_token(runtime.signer, runtime.settings.login_form_lifetime),
        service_name=pending.relying_party_name,
        error_key=error_key,
        identifier=identifier,
        doors={"federated": None, "invited": None},
    )
    set_csrf_cookie(response, runtime.settings, new_cookie)
    return response


def session_page(request: Request, runtime: Runtime, session: SsoSession) -> Response:
    """What a logged-in user sees at /login with no service: who they are, and logout."""
    token, new_cookie = csrf_token(request, runtime.csrf)
    attributes = session.authentication.attributes
    name = (attributes.get("displayName") or [session.authentication.subject])[0]
    response = runtime.pages.render(request, "logged_in.html", display_name=name, csrf_token=token)
    set_csrf_cookie(response, runtime.settings, new_cookie)
    return response


def password_fingerprint(account: Account) -> str:
    """A digest of the account's current hash: a change form stops working once used."""
    return token_digest(account.password_hash or "")[:16]


def password_change_page(
    request: Request,
    runtime: Runtime,
    account: Account,
    pending: PendingRequest,
    *,
    problems: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    """ "Choose your password": at first login, or when an administrator forced a change.

    The form carries a signed token naming the account and its current password hash, so it
    proves the old password was typed just now and cannot be replayed after the change.
    """
    token, new_cookie = csrf_token(request, runtime.csrf)
    change = runtime.signer.sign(
        PASSWORD_CHANGE,
        {"a": account.id, "h": password_fingerprint(account)},
        runtime.settings.login_form_lifetime,
    )
    response = runtime.pages.render(
        request,
        "password_change.html",
        status_code=status_code,
        csrf_token=token,
        pending_token=pending.to_token(runtime.signer, runtime.settings.login_form_lifetime),
        change_token=change,
        service_name=pending.relying_party_name,
        identifier=account.identifier,
        policy=PasswordPolicy.from_settings(runtime.settings),
        problems=problems or [],
        first_login=account.password_changed_at is None,
    )
    set_csrf_cookie(response, runtime.settings, new_cookie)
    return response
