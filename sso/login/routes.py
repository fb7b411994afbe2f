"""The doors' endpoints. Only the blue door (academic accounts) exists so far."""

from __future__ import annotations

import logging
from functools import partial

import anyio.lowlevel
import anyio.to_thread
from fastapi import APIRouter, Request
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Route

from sso.accounts.models import Account
from sso.accounts.store import EXPIRED, FAILED, LOCKED, MUST_CHANGE, LoginOutcome
from sso.audit import ACCOUNT_LOCKED, LOGIN_FAILED, LOGIN_SUCCEEDED, NEW_DEVICE, record
from sso.db import utcnow
from sso.login.cookies import csrf_ok, read_tgc, set_tgc
from sso.login.devices import device_cookie, remember_device, set_device_cookie
from sso.login.notices import send_notice
from sso.login.page import login_page, password_change_page, session_page
from sso.login.pending import PendingRequest
from sso.login.runtime import Runtime, get_runtime
from sso.security.signed import InvalidSignedToken
from sso.sessions.authentication import METHOD_ACADEMIC, Authentication
from sso.sessions.registry import SsoSession

log = logging.getLogger("sso.login")
router = APIRouter()


async def complete(
    request: Request, runtime: Runtime, pending: PendingRequest, session: SsoSession, fresh: bool
) -> Response:
    """Hand the session back to the protocol that asked for it (or show the session page)."""
    completion = runtime.completions.get(pending.protocol)
    if completion is None:
        return session_page(request, runtime, session)
    return await completion(request, pending, session, fresh)


def _authentication(account: Account) -> Authentication:
    return Authentication(
        subject=account.identifier,
        method=METHOD_ACADEMIC,
        authenticated_at=utcnow(),
        assurance="password",
        attributes=account.released_attributes(),
    )


def client_address(request: Request) -> str:
    """The user's address (from X-Forwarded-For only behind a trusted proxy, see app.py)."""
    return request.client.host if request.client else ""


def user_agent(request: Request) -> str:
    """The browser, as it names itself (for notices and the activity log)."""
    return request.headers.get("user-agent", "")[:256]


def _after_failure(
    runtime: Runtime, request: Request, outcome: LoginOutcome, language: str, typed: str
) -> None:
    """Count the failure against the address, log it, and tell the user of a new lock."""
    address = client_address(request)
    runtime.throttle.record_failure(address)
    account = outcome.account
    if account is None:
        return
    where = {"address": address, "user_agent": user_agent(request)}
    record(
        runtime.engine,
        LOGIN_FAILED,
        account_id=account.id,
        identifier=account.identifier,
        reason=outcome.status,
        **where,
    )
    if outcome.locked_now:
        record(
            runtime.engine,
            ACCOUNT_LOCKED,
            account_id=account.id,
            identifier=account.identifier,
            mode=runtime.settings.lockout_mode,
            **where,
        )
        until = account.locked_until.strftime("%d/%m/%Y %H:%M UTC") if account.locked_until else ""
        send_notice(
            runtime,
            account,
            "account_locked",
            language,
            mode=runtime.settings.lockout_mode,
            until=until,
            reset_url=runtime.settings.url("recover/password"),
        )


# The blue door's form fields and their longest accepted values.
ACADEMIC_FORM = {"identifier": 256, "password": 1024, "csrf_token": 256, "pending": 8192}


async def academic_login_form(request: Request) -> Response:
    """POST /login/academic: the blue door's form, read here rather than by FastAPI, whose
    dependency resolution and field validation cost ~0.3 ms of the ~2.5 ms a login takes on
    the event loop beside its hash (bench/password_login.py). A field too long, or a file
    (which Starlette refuses the same way), gets the application's 400 page."""
    form = await request.form(max_files=0, max_fields=len(ACADEMIC_FORM) + 8)
    fields: dict[str, str] = {}
    for name, longest in ACADEMIC_FORM.items():
        value = form.get(name, "")
        if not isinstance(value, str) or len(value) > longest:
            raise HTTPException(400)
        fields[name] = value
    return await academic_login(request, await get_runtime(request), **fields)


async def academic_login(
    request: Request,
    runtime: Runtime,
    identifier: str,
    password: str,
    csrf_token: str,
    pending: str,
) -> Response:
    """The blue door: academic identifier and password."""
    try:
        pending_request = PendingRequest.from_token(runtime.signer, pending)
    except InvalidSignedToken:
        return runtime.pages.message(request, "error.title", "login.expired_form", 400)
    if not csrf_ok(request, csrf_token, runtime.csrf):
        return login_page(
            request, runtime, pending_request, error_key="error.csrf", status_code=403
        )
    typed = identifier.strip()[:64]
    if await runtime.run_database(runtime.throttle.blocked, client_address(request)):
        # Before any password check: this address has failed too often (it says nothing
        # about any account).
        return login_page(
            request,
            runtime,
            pending_request,
            error_key="login.throttled",
            identifier=typed,
            status_code=429,
        )
    # Off the event loop, and no more hashes at once than this worker's share of the CPUs.
    outcome = await anyio.to_thread.run_sync(
        partial(runtime.accounts.login, identifier, password, kind="academic"),
        limiter=runtime.password_checks,
    )
    # Let a login waiting for the hashing slot just freed start its hash before this one's
    # bookkeeping below, whose SQLite calls run on the loop without yielding: under load
    # (bench/password_login.py) the slots hashed 84 % of the time without this, 90 % with.
    await anyio.lowlevel.checkpoint()
    language = runtime.pages.language(request)
    if outcome.status in (FAILED, LOCKED):
        log.info("academic login failed", extra={"client": request.client})
        await run_in_threadpool(_after_failure, runtime, request, outcome, language, typed)
        # One message for every failure: it must not tell which of the two was wrong, nor
        # that the account is locked (the holder learns that by mail).
        return login_page(
            request,
            runtime,
            pending_request,
            error_key="login.failed",
            identifier=typed,
            status_code=401,
        )
    account = outcome.account
    assert account is not None
    if outcome.status == EXPIRED:
        await run_in_threadpool(
            partial(
                record,
                runtime.engine,
                LOGIN_FAILED,
                account_id=account.id,
                identifier=account.identifier,
                address=client_address(request),
                user_agent=user_agent(request),
                reason=EXPIRED,
            )
        )
        return runtime.pages.message(
            request,
            "login.expired_password_title",
            "login.expired_password",
            403,
            link=runtime.settings.url("recover/password"),
            link_key="recover.password.link",
        )
    if outcome.status == MUST_CHANGE:
        return password_change_page(request, runtime, account, pending_request)
    return await finish_login(request, runtime, account, pending_request)


async def finish_login(
    request: Request, runtime: Runtime, account: Account, pending_request: PendingRequest
) -> Response:
    """The user proved who they are: log it, notice a new device, open or refresh the SSO
    session, and let the protocol that asked complete its answer."""
    authentication = _authentication(account)
    device = device_cookie(request)
    address, agent = client_address(request), user_agent(request)
    seen: list[str] = []  # what remember_device saw, once the session's transaction ran

    def bookkeeping(conn: Connection) -> None:
        seen.append(
            _record_login(conn, account, device, address, agent, pending_request.relying_party)
        )

    tgc = read_tgc(request)
    previous = await runtime.run_database(runtime.sessions.find_session, tgc) if tgc else None
    cookie = None
    if previous is not None and previous.authentication.subject == account.identifier:
        session = await runtime.run_database(
            runtime.sessions.refresh_session, previous, authentication, bookkeeping
        )
    else:
        if previous is not None:
            # Another person on this browser: their session ends, with single logout.
            await end_sso_session(runtime, previous.id)
        cookie, session = await runtime.run_database(
            runtime.sessions.create_session, authentication, bookkeeping
        )
    if seen == ["new"]:
        await run_in_threadpool(
            partial(
                send_notice,
                runtime,
                account,
                "new_device",
                runtime.pages.language(request),
                when=utcnow().strftime("%d/%m/%Y %H:%M UTC"),
                address=address,
                browser=agent,
            )
        )
    response = await complete(request, runtime, pending_request, session, True)
    if cookie is not None:
        set_tgc(response, runtime.settings, cookie)
    set_device_cookie(response, runtime.settings, device)
    return response


def _record_login(
    conn: Connection, account: Account, device: str, address: str, agent: str, service: str
) -> str:
    """A successful login's bookkeeping, in the transaction that opens or refreshes its SSO
    session (one turn of SQLite's writer queue): the device, and the audit events. Returns
    what ``remember_device`` saw."""
    where = {"account_id": account.id, "identifier": account.identifier}
    seen = remember_device(conn, account.id, device, agent)
    record(conn, LOGIN_SUCCEEDED, address=address, user_agent=agent, service=service[:256], **where)
    if seen == "new":
        record(conn, NEW_DEVICE, address=address, user_agent=agent, **where)
    return seen


async def end_sessions_of(runtime: Runtime, subject: str) -> None:
    """End every SSO session of one person (after a password change or reset)."""
    for session_id in await run_in_threadpool(runtime.sessions.sessions_of, subject):
        await end_sso_session(runtime, session_id)


async def end_sso_session(
    runtime: Runtime, session_id: str, *, initiator: tuple[str, str] | None = None
) -> list[str]:
    """End a session and tell every relying party that joined it (never blocks on them).

    Back-channel notices are sent here; the URLs returned are the front-channel ones, for the
    logout page to load in hidden frames. ``initiator`` (protocol, relying party) is the one
    that asked for the logout: it already knows.
    """
    targets = await run_in_threadpool(runtime.sessions.end_session, session_id)
    by_protocol: dict[str, list] = {}
    for target in targets:
        if initiator is not None and (target.protocol, target.service) == initiator:
            continue
        by_protocol.setdefault(target.protocol, []).append(target)
    frames: list[str] = []
    for protocol, protocol_targets in by_protocol.items():
        notifier = runtime.logout_notifiers.get(protocol)
        if notifier is not None:
            await notifier(protocol_targets)
        front_channel = runtime.front_channel_logouts.get(protocol)
        if front_channel is not None:
            frames += await runtime.run_database(front_channel, protocol_targets)
    return frames


# A plain Starlette route, as CAS's validation endpoints are: see academic_login_form.
router.routes[:0] = [Route("/login/academic", academic_login_form, methods=["POST"])]
