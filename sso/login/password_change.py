"""Choosing a new password: the forced change at first login (or when an administrator asked
for it), checked against the password policy, before any ticket or SAML response is issued;
the pending request then continues where it was."""

from __future__ import annotations

from functools import partial

import anyio.to_thread
from fastapi import APIRouter, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from sso.accounts.models import Account
from sso.accounts.policy import PasswordPolicy
from sso.accounts.store import MAX_PASSWORD_LENGTH
from sso.audit import PASSWORD_CHANGED, record
from sso.db import utcnow
from sso.login.cookies import csrf_ok
from sso.login.notices import send_notice
from sso.login.page import PASSWORD_CHANGE, password_change_page, password_fingerprint
from sso.login.pending import PendingRequest
from sso.login.routes import client_address, end_sessions_of, finish_login, user_agent
from sso.login.runtime import Runtime, RuntimeDep
from sso.security.signed import InvalidSignedToken

router = APIRouter()
NUMEN_LENGTH = 13


def contains_numen(runtime: Runtime, account: Account, password: str) -> bool:
    """Whether the password holds the account's NUMEN: only its digest is known, so every
    13-character stretch of the password is tried (a hundred HMACs at most)."""
    text = "".join(password.split()).upper()
    return any(
        runtime.accounts.numen_matches(account, text[i : i + NUMEN_LENGTH])
        for i in range(max(0, len(text) - NUMEN_LENGTH + 1))
    )


def password_is_current(runtime: Runtime, account: Account, password: str) -> bool:
    """Whether ``password`` is the account's current one (blocking: argon2id). Beyond the
    length limit it never is, as at the login door: a cut password would match a prefix."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    return runtime.accounts.hasher.verify(password, account.password_hash).ok


def password_problems(
    runtime: Runtime, account: Account, password: str, confirmation: str
) -> list[str]:
    """Why a new password is refused (locale keys); empty when it is acceptable (blocking:
    it checks the password differs from the current one)."""
    if password != confirmation:
        return ["policy.mismatch"]
    policy = PasswordPolicy.from_settings(runtime.settings)
    problems = policy.problems(
        password,
        identifier=account.identifier,
        names=(account.given_name, account.surname, account.display_name),
    )
    if contains_numen(runtime, account, password) and "policy.contains_numen" not in problems:
        problems.append("policy.contains_numen")
    if not problems and password_is_current(runtime, account, password):
        problems.append("password_change.same")
    return problems


def store_new_password(
    runtime: Runtime,
    account: Account,
    password: str,
    address: str,
    agent: str,
    language: str,
    *,
    event: str = PASSWORD_CHANGED,
    **detail: str,
) -> None:
    """Save the password (which unlocks the account and voids its outstanding recovery
    tokens), log ``event`` and tell the holder by mail (blocking). Every way to a new
    password ends here: the forced change, the account page, and the recoveries."""
    runtime.accounts.change_password(account.id, password)
    runtime.recovery.void(account.id)
    record(
        runtime.engine,
        event,
        account_id=account.id,
        identifier=account.identifier,
        address=address,
        user_agent=agent,
        **detail,
    )
    send_notice(
        runtime,
        account,
        "password_changed",
        language,
        when=utcnow().strftime("%d/%m/%Y %H:%M UTC"),
        address=address,
        reset_url=runtime.settings.url("recover/password"),
    )


@router.post("/login/password")
async def change_password(
    request: Request,
    runtime: RuntimeDep,
    new_password: str = Form("", max_length=1024),
    confirm_password: str = Form("", max_length=1024),
    change: str = Form("", max_length=2048),
    csrf_token: str = Form("", max_length=256),
    pending: str = Form("", max_length=8192),
) -> Response:
    """The forced change's form: a new password, then on to the service that asked."""
    try:
        pending_request = PendingRequest.from_token(runtime.signer, pending)
        claims = runtime.signer.verify(PASSWORD_CHANGE, change)
    except InvalidSignedToken:
        return runtime.pages.message(request, "error.title", "login.expired_form", 400)
    if not csrf_ok(request, csrf_token, runtime.csrf):
        return runtime.pages.message(request, "error.title", "error.csrf", 403)
    account = await run_in_threadpool(runtime.accounts.get, int(claims.get("a", 0)))
    if account is None or password_fingerprint(account) != claims.get("h"):
        # Used already (the password changed since), or the account is gone.
        return runtime.pages.message(request, "error.title", "login.expired_form", 400)
    problems = await anyio.to_thread.run_sync(
        partial(password_problems, runtime, account, new_password, confirm_password),
        limiter=runtime.password_checks,
    )
    if problems:
        return password_change_page(
            request, runtime, account, pending_request, problems=problems, status_code=400
        )
    await anyio.to_thread.run_sync(
        partial(
            store_new_password,
            runtime,
            account,
            new_password,
            client_address(request),
            user_agent(request),
            runtime.pages.language(request),
        ),
        limiter=runtime.password_checks,
    )
    await end_sessions_of(runtime, account.identifier)
    account = await run_in_threadpool(runtime.accounts.get, account.id)
    assert account is not None
    return await finish_login(request, runtime, account, pending_request)
