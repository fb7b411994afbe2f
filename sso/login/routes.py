"""The doors' endpoints. Only the blue door (academic accounts) exists so far."""

from __future__ import annotations

import logging
from functools import partial

import anyio.to_thread
from fastapi import APIRouter, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from sso.accounts.models import Account
from sso.db import utcnow
from sso.login.cookies import csrf_ok, read_tgc, set_tgc
from sso.login.page import login_page, session_page
from sso.login.pending import PendingRequest
from sso.login.runtime import Runtime, RuntimeDep
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


@router.post("/login/academic")
async def academic_login(
    request: Request,
    runtime: RuntimeDep,
    identifier: str = Form("", max_length=256),
    password: str = Form("", max_length=1024),
    csrf_token: str = Form("", max_length=256),
    pending: str = Form("", max_length=8192),
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
    # Off the event loop, and no more hashes at once than this worker's share of the CPUs.
    account = await anyio.to_thread.run_sync(
        partial(runtime.accounts.authenticate, identifier, password, kind="academic"),
        limiter=runtime.password_checks,
    )
    if account is None:
        log.info("academic login failed", extra={"client": request.client})
        # One message for every failure: it must not tell which of the two was wrong.
        return login_page(
            request,
            runtime,
            pending_request,
            error_key="login.failed",
            identifier=identifier.strip()[:64],
            status_code=401,
        )
    authentication = _authentication(account)
    tgc = read_tgc(request)
    previous = await runtime.run_database(runtime.sessions.find_session, tgc) if tgc else None
    cookie = None
    if previous is not None and previous.authentication.subject == account.identifier:
        session = await runtime.run_database(
            runtime.sessions.refresh_session, previous, authentication
        )
    else:
        if previous is not None:
            # Another person on this browser: their session ends, with single logout.
            await end_sso_session(runtime, previous.id)
        cookie, session = await runtime.run_database(
            runtime.sessions.create_session, authentication
        )
    response = await complete(request, runtime, pending_request, session, True)
    if cookie is not None:
        set_tgc(response, runtime.settings, cookie)
    return response


async def end_sso_session(runtime: Runtime, session_id: str) -> None:
    """End a session and tell every relying party that joined it (never blocks on them)."""
    targets = await run_in_threadpool(runtime.sessions.end_session, session_id)
    by_protocol: dict[str, list] = {}
    for target in targets:
        by_protocol.setdefault(target.protocol, []).append(target)
    for protocol, protocol_targets in by_protocol.items():
        notifier = runtime.logout_notifiers.get(protocol)
        if notifier is not None:
            await notifier(protocol_targets)
