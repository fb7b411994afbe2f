"""Self-service recovery for academic accounts ("mot de passe oublié", "identifiant oublié").

Forgot password: identifier + NUMEN → a reset link mailed to the recovery address (24 h,
single use, only the latest works). Forgot identifier: NUMEN + surname + date of birth → the
identifier mailed there. Both answer the same page, at the same speed, whether the data matched
or not: the matching and the mail happen after the answer is sent (a background task), so
neither the words nor the timing tell whether an account exists. After a reset the user logs
in normally; every SSO session of the account ends.
"""

from __future__ import annotations

import datetime as dt
import hmac
from functools import partial

import anyio.to_thread
from fastapi import APIRouter, BackgroundTasks, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from sso.accounts.models import Account
from sso.accounts.policy import PasswordPolicy, fold
from sso.accounts.recovery import RESET_PASSWORD
from sso.audit import IDENTIFIER_REMINDED, PASSWORD_RESET, RESET_REQUESTED, record
from sso.login.cookies import csrf_ok, csrf_token, set_csrf_cookie
from sso.login.notices import send_notice
from sso.login.password_change import password_problems, store_new_password
from sso.login.routes import client_address, end_sessions_of, user_agent
from sso.login.runtime import Runtime, RuntimeDep

router = APIRouter()


def form_page(
    request: Request,
    runtime: Runtime,
    template: str,
    status_code: int = 200,
    **context: object,
) -> Response:
    """A page with a form: its CSRF token, and the CSRF cookie when the browser has none."""
    token, new_cookie = csrf_token(request, runtime.csrf)
    response = runtime.pages.render(
        request, template, status_code=status_code, csrf_token=token, **context
    )
    set_csrf_cookie(response, runtime.settings, new_cookie)
    return response


def _name_key(name: str) -> bytes:
    """A name as people type it: case, accents and spacing ignored."""
    return " ".join(fold(name).split()).encode()


async def recovery_throttled(request: Request, runtime: Runtime) -> bool:
    """Recovery requests count against the address like failed logins: guessing NUMENs is
    as slow as guessing passwords."""
    address = client_address(request)
    if await runtime.run_database(runtime.throttle.blocked, address):
        return True
    await run_in_threadpool(runtime.throttle.record_failure, address)
    return False


# -- Forgot password -------------------------------------------------------------------------
@router.get("/recover/password")
async def forgot_password_form(request: Request, runtime: RuntimeDep) -> Response:
    """Identifier and NUMEN, to receive a reset link."""
    return form_page(request, runtime, "recover_password.html")


def send_reset_link(
    runtime: Runtime, identifier: str, numen: str, language: str, address: str, agent: str
) -> None:
    """After the answer: when identifier and NUMEN match, mail a reset link (blocking)."""
    account = runtime.accounts.find(identifier)
    if account is None or not runtime.accounts.numen_matches(account, numen):
        return
    token = runtime.recovery.issue(account.id, RESET_PASSWORD, runtime.settings.reset_link_lifetime)
    link = runtime.settings.url("recover/reset") + "?token=" + token
    send_notice(
        runtime,
        account,
        "reset_link",
        language,
        recovery_only=bool(account.recovery_email),
        link=link,
        expires_hours=runtime.settings.reset_link_lifetime // 3600,
    )
    record(
        runtime.engine,
        RESET_REQUESTED,
        account_id=account.id,
        identifier=account.identifier,
        address=address,
        user_agent=agent,
    )


@router.post("/recover/password")
async def forgot_password(
    request: Request,
    runtime: RuntimeDep,
    background: BackgroundTasks,
    identifier: str = Form("", max_length=256),
    numen: str = Form("", max_length=64),
    csrf_token: str = Form("", max_length=256),
) -> Response:
    """The same answer whatever was typed; the link, if any, is sent afterwards."""
    if not csrf_ok(request, csrf_token, runtime.csrf):
        return runtime.pages.message(request, "error.title", "error.csrf", 403)
    if await recovery_throttled(request, runtime):
        return runtime.pages.message(request, "error.title", "login.throttled", 429)
    background.add_task(
        run_in_threadpool,
        send_reset_link,
        runtime,
        identifier,
        numen,
        runtime.pages.language(request),
        client_address(request),
        user_agent(request),
    )
    return runtime.pages.message(
        request,
        "recover.password.title",
        "recover.password.sent",
        hours=runtime.settings.reset_link_lifetime // 3600,
    )


@router.get("/recover/reset")
async def reset_form(request: Request, runtime: RuntimeDep, token: str = "") -> Response:
    """The reset link's page: choose a new password (the link is used up only on success)."""
    redeemable = await runtime.run_database(runtime.recovery.peek, token[:128], RESET_PASSWORD)
    if redeemable is None:
        return _invalid_link(request, runtime)
    account = await run_in_threadpool(runtime.accounts.get, redeemable.account_id)
    if account is None:
        return _invalid_link(request, runtime)
    return _reset_page(request, runtime, account, token)


def _invalid_link(request: Request, runtime: Runtime) -> Response:
    return runtime.pages.message(
        request,
        "recover.reset.invalid_title",
        "recover.reset.invalid",
        400,
        link=runtime.settings.url("recover/password"),
        link_key="recover.password.link",
    )


def _reset_page(
    request: Request,
    runtime: Runtime,
    account: Account,
    token: str,
    problems: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    return form_page(
        request,
        runtime,
        "reset_password.html",
        status_code,
        token=token,
        identifier=account.identifier,
        policy=PasswordPolicy.from_settings(runtime.settings),
        problems=problems or [],
    )


def _reset(
    runtime: Runtime, token: str, password: str, address: str, agent: str, language: str
) -> Account | None:
    """Use the link up and store the password (blocking); the account, or None when the link
    died meanwhile (used by a concurrent request, or expired)."""
    redeemed = runtime.recovery.redeem(token, RESET_PASSWORD)
    if redeemed is None:
        return None
    account = runtime.accounts.get(redeemed.account_id)
    if account is None:
        return None
    store_new_password(runtime, account, password, address, agent, language, event=PASSWORD_RESET)
    return account


@router.post("/recover/reset")
async def reset_password(
    request: Request,
    runtime: RuntimeDep,
    token: str = Form("", max_length=128),
    new_password: str = Form("", max_length=1024),
    confirm_password: str = Form("", max_length=1024),
    csrf_token: str = Form("", max_length=256),
) -> Response:
    """Store the new password; the user then logs in as usual."""
    if not csrf_ok(request, csrf_token, runtime.csrf):
        return runtime.pages.message(request, "error.title", "error.csrf", 403)
    redeemable = await runtime.run_database(runtime.recovery.peek, token, RESET_PASSWORD)
    account = (
        await run_in_threadpool(runtime.accounts.get, redeemable.account_id) if redeemable else None
    )
    if account is None:
        return _invalid_link(request, runtime)
    problems = await anyio.to_thread.run_sync(
        partial(password_problems, runtime, account, new_password, confirm_password),
        limiter=runtime.password_checks,
    )
    if problems:
        return _reset_page(request, runtime, account, token, problems, 400)
    account = await anyio.to_thread.run_sync(
        partial(
            _reset,
            runtime,
            token,
            new_password,
            client_address(request),
            user_agent(request),
            runtime.pages.language(request),
        ),
        limiter=runtime.password_checks,
    )
    if account is None:
        return _invalid_link(request, runtime)
    await end_sessions_of(runtime, account.identifier)
    return runtime.pages.message(
        request,
        "recover.reset.done_title",
        "recover.reset.done",
        link=runtime.settings.url("login"),
        link_key="recover.reset.login",
    )


# -- Forgot identifier -----------------------------------------------------------------------
@router.get("/recover/identifier")
async def forgot_identifier_form(request: Request, runtime: RuntimeDep) -> Response:
    """NUMEN, surname and date of birth, to receive the identifier."""
    return form_page(request, runtime, "recover_identifier.html")


def send_identifier(
    runtime: Runtime,
    numen: str,
    surname: str,
    birth_date: str,
    language: str,
    address: str,
    agent: str,
) -> None:
    """After the answer: when the three match one account, mail its identifier (blocking)."""
    account = runtime.accounts.find_by_numen(numen)
    if account is None or account.birth_date is None:
        return
    try:
        born = dt.date.fromisoformat(birth_date.strip())
    except ValueError:
        return
    same_name = hmac.compare_digest(_name_key(surname), _name_key(account.surname))
    if not same_name or born != account.birth_date:
        return
    send_notice(
        runtime,
        account,
        "identifier_reminder",
        language,
        recovery_only=bool(account.recovery_email),
        login_url=runtime.settings.url("login"),
    )
    record(
        runtime.engine,
        IDENTIFIER_REMINDED,
        account_id=account.id,
        identifier=account.identifier,
        address=address,
        user_agent=agent,
    )


@router.post("/recover/identifier")
async def forgot_identifier(
    request: Request,
    runtime: RuntimeDep,
    background: BackgroundTasks,
    numen: str = Form("", max_length=64),
    surname: str = Form("", max_length=256),
    birth_date: str = Form("", max_length=32),
    csrf_token: str = Form("", max_length=256),
) -> Response:
    """The same answer whatever was typed; the identifier, if any, is sent afterwards."""
    if not csrf_ok(request, csrf_token, runtime.csrf):
        return runtime.pages.message(request, "error.title", "error.csrf", 403)
    if await recovery_throttled(request, runtime):
        return runtime.pages.message(request, "error.title", "login.throttled", 429)
    background.add_task(
        run_in_threadpool,
        send_identifier,
        runtime,
        numen,
        surname,
        birth_date,
        runtime.pages.language(request),
        client_address(request),
        user_agent(request),
    )
    return runtime.pages.message(request, "recover.identifier.title", "recover.identifier.sent")
