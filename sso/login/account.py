"""The account holder's own pages: "Mon compte" with "Mon activité" (the last logins,
failures, lockouts, password changes and recovery events, with time, address and browser),
changing the password while logged in, and the recovery address (confirmed from itself; the
former one is told)."""

from __future__ import annotations

from functools import partial

import anyio.to_thread
from fastapi import APIRouter, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from sso.accounts.importer import EMAIL
from sso.accounts.models import Account
from sso.accounts.policy import PasswordPolicy
from sso.accounts.recovery import CONFIRM_EMAIL
from sso.audit import RECOVERY_EMAIL_CHANGED, events_of, record
from sso.db import utcnow
from sso.login.cookies import csrf_ok, csrf_token, read_tgc, set_csrf_cookie
from sso.login.notices import masked_address, send_notice
from sso.login.password_change import (
    password_is_current,
    password_problems,
    store_new_password,
)
from sso.login.routes import client_address, end_sso_session, user_agent
from sso.login.runtime import Runtime, RuntimeDep
from sso.sessions.registry import SsoSession

router = APIRouter()


async def account_holder(request: Request, runtime: Runtime) -> tuple[SsoSession, Account] | None:
    """The SSO session of this browser and its account, or None (not logged in)."""
    session = await runtime.run_database(runtime.sessions.find_session, read_tgc(request))
    if session is None:
        return None
    account = await run_in_threadpool(runtime.accounts.find, session.authentication.subject)
    return (session, account) if account is not None else None


def _account_page(
    request: Request,
    runtime: Runtime,
    account: Account,
    *,
    problems: list[str] | None = None,
    changed: bool = False,
    wrong_password: bool = False,
    email_error: str = "",
    status_code: int = 200,
    events: list | None = None,
) -> Response:
    token, new_cookie = csrf_token(request, runtime.csrf)
    response = runtime.pages.render(
        request,
        "account.html",
        status_code=status_code,
        csrf_token=token,
        account=account,
        events=events or [],
        policy=PasswordPolicy.from_settings(runtime.settings),
        problems=problems or [],
        changed=changed,
        wrong_password=wrong_password,
        email_error=email_error,
        email_sent=request.query_params.get("email") == "sent",
    )
    set_csrf_cookie(response, runtime.settings, new_cookie)
    return response


@router.get("/account")
async def account_page(request: Request, runtime: RuntimeDep) -> Response:
    """Who I am, my recent activity, and a form to change my password."""
    holder = await account_holder(request, runtime)
    if holder is None:
        return RedirectResponse(runtime.settings.url("login"), status_code=303)
    _session, account = holder
    events = await run_in_threadpool(events_of, runtime.engine, account.id)
    return _account_page(
        request, runtime, account, events=events, changed=request.query_params.get("changed") == "1"
    )


@router.post("/account/password")
async def account_change_password(
    request: Request,
    runtime: RuntimeDep,
    current_password: str = Form("", max_length=1024),
    new_password: str = Form("", max_length=1024),
    confirm_password: str = Form("", max_length=1024),
    csrf_token: str = Form("", max_length=256),
) -> Response:
    """Change my password: the current one proves it is me; my other sessions end."""
    if not csrf_ok(request, csrf_token, runtime.csrf):
        return runtime.pages.message(request, "error.title", "error.csrf", 403)
    holder = await account_holder(request, runtime)
    if holder is None:
        return RedirectResponse(runtime.settings.url("login"), status_code=303)
    session, account = holder
    right = await anyio.to_thread.run_sync(
        partial(password_is_current, runtime, account, current_password),
        limiter=runtime.password_checks,
    )
    if not right:
        events = await run_in_threadpool(events_of, runtime.engine, account.id)
        return _account_page(
            request, runtime, account, events=events, wrong_password=True, status_code=400
        )
    problems = await anyio.to_thread.run_sync(
        partial(password_problems, runtime, account, new_password, confirm_password),
        limiter=runtime.password_checks,
    )
    if problems:
        events = await run_in_threadpool(events_of, runtime.engine, account.id)
        return _account_page(
            request, runtime, account, events=events, problems=problems, status_code=400
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
    # Every other session of mine ends; this browser's stays.
    for session_id in await run_in_threadpool(runtime.sessions.sessions_of, account.identifier):
        if session_id != session.id:
            await end_sso_session(runtime, session_id)
    return RedirectResponse(runtime.settings.url("account") + "?changed=1", status_code=303)


@router.post("/account/recovery-email")
async def account_recovery_email(
    request: Request,
    runtime: RuntimeDep,
    current_password: str = Form("", max_length=1024),
    recovery_email: str = Form("", max_length=320),
    csrf_token: str = Form("", max_length=256),
) -> Response:
    """Set my recovery address: it takes effect once I follow the link mailed to it."""
    if not csrf_ok(request, csrf_token, runtime.csrf):
        return runtime.pages.message(request, "error.title", "error.csrf", 403)
    holder = await account_holder(request, runtime)
    if holder is None:
        return RedirectResponse(runtime.settings.url("login"), status_code=303)
    _session, account = holder
    address = recovery_email.strip()
    right = await anyio.to_thread.run_sync(
        partial(password_is_current, runtime, account, current_password),
        limiter=runtime.password_checks,
    )
    error = ""
    if not right:
        error = "account.wrong_password"
    elif len(address) > 254 or not EMAIL.fullmatch(address) or "\n" in address:
        error = "account.invalid_email"
    if error:
        events = await run_in_threadpool(events_of, runtime.engine, account.id)
        return _account_page(
            request, runtime, account, events=events, email_error=error, status_code=400
        )
    await run_in_threadpool(
        _send_confirmation, runtime, account, address, runtime.pages.language(request)
    )
    return RedirectResponse(runtime.settings.url("account") + "?email=sent", status_code=303)


def _send_confirmation(runtime: Runtime, account: Account, address: str, language: str) -> None:
    token = runtime.recovery.issue(
        account.id, CONFIRM_EMAIL, runtime.settings.reset_link_lifetime, payload=address
    )
    mail = runtime.mails.compose(
        "confirm_recovery_email",
        language,
        display_name=account.display_name or account.identifier,
        identifier=account.identifier,
        link=runtime.settings.url("account/confirm-email") + "?token=" + token,
    )
    # To the new address itself: following the link proves it is reachable and ours.
    runtime.outbox.enqueue(address, mail.subject, mail.text, mail.html)


def _change_recovery_email(
    runtime: Runtime, account: Account, new_address: str, address: str, agent: str, language: str
) -> None:
    """Store the confirmed address, log it and tell the holder (blocking). The notice goes to
    the account's addresses as they were: the former recovery address and the academic one."""
    runtime.accounts.set_recovery_email(account.id, new_address)
    record(
        runtime.engine,
        RECOVERY_EMAIL_CHANGED,
        account_id=account.id,
        identifier=account.identifier,
        address=address,
        user_agent=agent,
    )
    if new_address == account.recovery_email:
        return  # confirmed again: nothing changed
    send_notice(
        runtime,
        account,
        "recovery_email_changed",
        language,
        new_address=masked_address(new_address),
        when=utcnow().strftime("%d/%m/%Y %H:%M UTC"),
        address=address,
        browser=agent,
        # Not the reset page: a reset link would now go to the new address. Logged in, the
        # holder can change the password and put their address back.
        account_url=runtime.settings.url("account"),
    )


@router.get("/account/confirm-email")
async def confirm_recovery_email(
    request: Request, runtime: RuntimeDep, token: str = ""
) -> Response:
    """The confirmation link: the address becomes the recovery address (once)."""
    redeemed = await runtime.run_database(runtime.recovery.redeem, token[:128], CONFIRM_EMAIL)
    account = (
        await run_in_threadpool(runtime.accounts.get, redeemed.account_id) if redeemed else None
    )
    if redeemed is None or account is None:
        return runtime.pages.message(
            request, "recover.reset.invalid_title", "account.confirm_invalid", 400
        )
    await run_in_threadpool(
        _change_recovery_email,
        runtime,
        account,
        redeemed.payload,
        client_address(request),
        user_agent(request),
        runtime.pages.language(request),
    )
    return runtime.pages.message(
        request,
        "account.confirmed_title",
        "account.confirmed",
        link=runtime.settings.url("account"),
        link_key="account.link",
        address=redeemed.payload,
    )
