"""Recovery by personal identity questions ("m'auto dépanner").

A logged-in holder chooses three questions and their answers (``/account/questions``, with
the current password; a notice is mailed to the account's addresses). Who lost access types
the identifier, answers the questions, and, if the answers are right, receives a one-time code
at the recovery address; the code and a new password then reset the account. The answers
alone are never enough: without the code sent to a registered address nothing changes, and an
account without a recovery address gets nothing.

Enumeration-safe like sso.login.recovery: an unknown identifier, or an account without
questions, is shown three decoy questions derived from the identifier (the same every time);
the answer page is the same whether the answers matched or not, and answers are checked
after it is sent (a background task). Attempts are limited per address (the login throttle)
and per account (three wrong sets of answers in 24 hours, counted in the audit log).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from functools import partial

import anyio.to_thread
from fastapi import APIRouter, BackgroundTasks, Form, Request
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from sso.accounts.identifiers import MAX_IDENTIFIER_LENGTH, normalize_identifier
from sso.accounts.models import Account
from sso.accounts.policy import PasswordPolicy
from sso.accounts.questions import QUESTION_COUNT, IdentityQuestions
from sso.accounts.recovery import RECOVERY_CODE
from sso.audit import PASSWORD_RESET, QUESTIONS_SET, AuditEvent, record
from sso.db import utcnow
from sso.login.account import account_holder
from sso.login.cookies import csrf_ok
from sso.login.notices import send_notice
from sso.login.page import password_fingerprint
from sso.login.password_change import (
    password_is_current,
    password_problems,
    store_new_password,
)
from sso.login.recovery import form_page, recovery_throttled
from sso.login.routes import client_address, end_sessions_of, user_agent
from sso.login.runtime import Runtime, RuntimeDep
from sso.security.signed import InvalidSignedToken

router = APIRouter()

QUESTIONS_FAILED = "questions_failed"  # an audit event: a wrong set of answers
MAX_FAILED_SETS = 3  # per account, in FAILED_WINDOW
FAILED_WINDOW = dt.timedelta(hours=24)
# Signed tokens carried by the forms, from one step to the next.
ANSWER_STEP = "identity_questions"
CODE_STEP = "identity_questions_code"
CODE_ACCEPTED = "identity_questions_code_accepted"

# Offered when choosing questions, and the decoys shown for identifiers without questions
# (so that the decoys look like what people choose).
SUGGESTED_QUESTIONS = (
    "Quel était le nom de votre premier animal de compagnie ?",
    "Dans quelle ville êtes-vous né(e) ?",
    "Quel est le prénom de votre meilleur(e) ami(e) d'enfance ?",
    "Quel était le nom de votre école primaire ?",
    "Quelle était la marque de votre première voiture ?",
    "Quel est le nom de jeune fille de votre mère ?",
    "Quel était votre surnom quand vous étiez enfant ?",
    "Dans quelle rue habitiez-vous enfant ?",
    "Quel est le titre de votre livre préféré ?",
    "Quel était le métier de votre grand-père ?",
    "Où avez-vous passé vos premières vacances ?",
    "Quel est le prénom de votre premier professeur ?",
)


def _store(runtime: Runtime) -> IdentityQuestions:
    return IdentityQuestions(runtime.engine, runtime.accounts.hasher)


def decoy_questions(secret_key: str, identifier: str) -> list[str]:
    """Three distinct questions picked by an HMAC of the identifier: the same ones for the
    same identifier every time, unpredictable without the key."""
    digest = hmac.new(
        secret_key.encode(), b"identity-questions-decoy:" + identifier.encode(), hashlib.sha256
    ).digest()
    pool = list(SUGGESTED_QUESTIONS)
    return [
        pool.pop(int.from_bytes(digest[2 * i : 2 * i + 2], "big") % len(pool))
        for i in range(QUESTION_COUNT)
    ]


def _recent_failures(runtime: Runtime, account_id: int) -> int:
    with runtime.engine.connect() as conn:
        return conn.scalar(
            select(func.count(AuditEvent.id)).where(
                AuditEvent.account_id == account_id,
                AuditEvent.event == QUESTIONS_FAILED,
                AuditEvent.at >= utcnow() - FAILED_WINDOW,
            )
        )


def _recoverable(account: Account | None) -> bool:
    return account is not None and account.enabled


# -- Choosing the questions (logged in) -------------------------------------------------------
def _set_page(
    request: Request,
    runtime: Runtime,
    account: Account,
    questions: list[str],
    *,
    error: str = "",
    status_code: int = 200,
) -> Response:
    return form_page(
        request,
        runtime,
        "questions_set.html",
        status_code,
        account=account,
        questions=(questions + [""] * QUESTION_COUNT)[:QUESTION_COUNT],
        has_questions=bool(questions) and not error,
        suggestions=SUGGESTED_QUESTIONS,
        error=error,
        saved=request.query_params.get("saved") == "1",
    )


@router.get("/account/questions")
async def questions_form(request: Request, runtime: RuntimeDep) -> Response:
    """My three questions (never their answers), to replace them."""
    holder = await account_holder(request, runtime)
    if holder is None:
        return RedirectResponse(runtime.settings.url("login"), status_code=303)
    _session, account = holder
    questions = await run_in_threadpool(_store(runtime).questions, account.id)
    return _set_page(request, runtime, account, questions)


def _save(
    runtime: Runtime,
    account: Account,
    current_password: str,
    pairs: list[tuple[str, str]],
    address: str,
    agent: str,
    language: str,
) -> str:
    """Check the password, store the questions, log it and tell the holder (blocking); a
    locale key when refused."""
    if not password_is_current(runtime, account, current_password):
        return "account.wrong_password"
    store = _store(runtime)
    had_questions = bool(store.questions(account.id))
    try:
        store.set(account.id, pairs)
    except ValueError as refused:
        return str(refused)
    record(
        runtime.engine,
        QUESTIONS_SET,
        account_id=account.id,
        identifier=account.identifier,
        address=address,
        user_agent=agent,
    )
    # Whoever sets them knows the password: a holder who did not should hear of it.
    send_notice(
        runtime,
        account,
        "questions_set",
        language,
        changed=had_questions,
        when=utcnow().strftime("%d/%m/%Y %H:%M UTC"),
        address=address,
        browser=agent,
        reset_url=runtime.settings.url("recover/password"),
    )
    return ""


@router.post("/account/questions")
async def questions_save(
    request: Request,
    runtime: RuntimeDep,
    question_1: str = Form("", max_length=512),
    question_2: str = Form("", max_length=512),
    question_3: str = Form("", max_length=512),
    answer_1: str = Form("", max_length=512),
    answer_2: str = Form("", max_length=512),
    answer_3: str = Form("", max_length=512),
    current_password: str = Form("", max_length=1024),
    csrf_token: str = Form("", max_length=256),
) -> Response:
    """Replace my questions and answers: the current password proves it is me."""
    if not csrf_ok(request, csrf_token, runtime.csrf):
        return runtime.pages.message(request, "error.title", "error.csrf", 403)
    holder = await account_holder(request, runtime)
    if holder is None:
        return RedirectResponse(runtime.settings.url("login"), status_code=303)
    _session, account = holder
    questions = [question_1, question_2, question_3]
    error = await anyio.to_thread.run_sync(
        partial(
            _save,
            runtime,
            account,
            current_password,
            list(zip(questions, [answer_1, answer_2, answer_3], strict=True)),
            client_address(request),
            user_agent(request),
            runtime.pages.language(request),
        ),
        limiter=runtime.password_checks,
    )
    if error:
        return _set_page(request, runtime, account, questions, error=error, status_code=400)
    return RedirectResponse(runtime.settings.url("account/questions") + "?saved=1", 303)


# -- Recovering with them ---------------------------------------------------------------------
@router.get("/recover/questions")
async def recover_form(request: Request, runtime: RuntimeDep) -> Response:
    """The identifier whose questions to answer."""
    return form_page(request, runtime, "questions_recover.html")


def _questions_of(runtime: Runtime, identifier: str) -> list[str]:
    """The account's questions, or the identifier's decoys (blocking)."""
    account = runtime.accounts.find(identifier)
    # The same query either way (no account has id 0): an extra round trip for accounts only
    # would tell them apart by the time the page takes.
    questions = _store(runtime).questions(account.id if _recoverable(account) else 0)
    if len(questions) != QUESTION_COUNT:
        questions = decoy_questions(runtime.settings.secret_key, identifier)
    return questions


@router.post("/recover/questions")
async def recover_questions(
    request: Request,
    runtime: RuntimeDep,
    identifier: str = Form("", max_length=256),
    csrf_token: str = Form("", max_length=256),
) -> Response:
    """The three questions to answer: the account's, or decoys looking just the same."""
    if not csrf_ok(request, csrf_token, runtime.csrf):
        return runtime.pages.message(request, "error.title", "error.csrf", 403)
    if await recovery_throttled(request, runtime):
        return runtime.pages.message(request, "error.title", "login.throttled", 429)
    identifier = normalize_identifier(identifier)[:MAX_IDENTIFIER_LENGTH]
    questions = await run_in_threadpool(_questions_of, runtime, identifier)
    token = runtime.signer.sign(
        ANSWER_STEP, {"i": identifier}, runtime.settings.recovery_code_lifetime
    )
    return form_page(request, runtime, "questions_answer.html", questions=questions, token=token)


def send_code_if_right(
    runtime: Runtime, identifier: str, answers: list[str], language: str, address: str, agent: str
) -> None:
    """After the answer: when the answers match, mail a one-time code to the recovery address
    (blocking). Wrong answers count against the address and the account."""
    account = runtime.accounts.find(identifier)
    if not _recoverable(account):
        runtime.throttle.record_failure(address)
        return
    assert account is not None
    if _recent_failures(runtime, account.id) >= MAX_FAILED_SETS:
        runtime.throttle.record_failure(address)
        return
    if not _store(runtime).check(account.id, answers):
        runtime.throttle.record_failure(address)
        record(
            runtime.engine,
            QUESTIONS_FAILED,
            account_id=account.id,
            identifier=account.identifier,
            address=address,
            user_agent=agent,
        )
        return
    if not account.recovery_email:
        return  # the questions alone are never enough: no address, no code
    lifetime = runtime.settings.recovery_code_lifetime
    code = runtime.recovery.issue_code(account.id, RECOVERY_CODE, lifetime)
    send_notice(
        runtime,
        account,
        "recovery_code",
        language,
        recovery_only=True,
        code=code,
        expires_minutes=lifetime // 60,
    )


def _code_page(
    request: Request,
    runtime: Runtime,
    token: str,
    *,
    accepted: str = "",
    wrong_code: bool = False,
    problems: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    return form_page(
        request,
        runtime,
        "questions_code.html",
        status_code,
        token=token,
        accepted=accepted,
        wrong_code=wrong_code,
        policy=PasswordPolicy.from_settings(runtime.settings),
        problems=problems or [],
        minutes=runtime.settings.recovery_code_lifetime // 60,
    )


def _expired(request: Request, runtime: Runtime) -> Response:
    return runtime.pages.message(
        request,
        "questions.recover.title",
        "login.expired_form",
        400,
        link=runtime.settings.url("recover/questions"),
        link_key="questions.code.restart",
    )


@router.post("/recover/questions/answer")
async def recover_answer(
    request: Request,
    runtime: RuntimeDep,
    background: BackgroundTasks,
    token: str = Form("", max_length=2048),
    answer_1: str = Form("", max_length=512),
    answer_2: str = Form("", max_length=512),
    answer_3: str = Form("", max_length=512),
    csrf_token: str = Form("", max_length=256),
) -> Response:
    """The same page whatever was answered; the code, if any, is sent afterwards."""
    if not csrf_ok(request, csrf_token, runtime.csrf):
        return runtime.pages.message(request, "error.title", "error.csrf", 403)
    try:
        identifier = str(runtime.signer.verify(ANSWER_STEP, token).get("i", ""))
    except InvalidSignedToken:
        return _expired(request, runtime)
    address = client_address(request)
    if await runtime.run_database(runtime.throttle.blocked, address):
        return runtime.pages.message(request, "error.title", "login.throttled", 429)
    background.add_task(
        anyio.to_thread.run_sync,
        partial(
            send_code_if_right,
            runtime,
            identifier,
            [answer_1, answer_2, answer_3],
            runtime.pages.language(request),
            address,
            user_agent(request),
        ),
        limiter=runtime.password_checks,
    )
    lifetime = runtime.settings.recovery_code_lifetime
    code_token = runtime.signer.sign(CODE_STEP, {"i": identifier}, lifetime)
    return _code_page(request, runtime, code_token)


def _accepted_before(runtime: Runtime, account: Account, accepted: str) -> bool:
    """Whether this account's code was accepted already (the new password was refused)."""
    try:
        claims = runtime.signer.verify(CODE_ACCEPTED, accepted)
    except InvalidSignedToken:
        return False
    return claims.get("a") == account.id and claims.get("h") == password_fingerprint(account)


@router.post("/recover/questions/reset")
async def recover_reset(
    request: Request,
    runtime: RuntimeDep,
    token: str = Form("", max_length=2048),
    accepted: str = Form("", max_length=2048),
    code: str = Form("", max_length=32),
    new_password: str = Form("", max_length=1024),
    confirm_password: str = Form("", max_length=1024),
    csrf_token: str = Form("", max_length=256),
) -> Response:
    """The code from the mail and a new password; the user then logs in as usual."""
    if not csrf_ok(request, csrf_token, runtime.csrf):
        return runtime.pages.message(request, "error.title", "error.csrf", 403)
    try:
        identifier = str(runtime.signer.verify(CODE_STEP, token).get("i", ""))
    except InvalidSignedToken:
        return _expired(request, runtime)
    address = client_address(request)
    if await runtime.run_database(runtime.throttle.blocked, address):
        return runtime.pages.message(request, "error.title", "login.throttled", 429)
    account = await run_in_threadpool(runtime.accounts.find, identifier)
    if not _recoverable(account):
        account = None
    elif accepted and _accepted_before(runtime, account, accepted):
        pass
    elif not await run_in_threadpool(
        runtime.recovery.redeem_code, account.id, RECOVERY_CODE, "".join(code.split())
    ):
        account = None
    if account is None:
        await run_in_threadpool(runtime.throttle.record_failure, address)
        return _code_page(request, runtime, token, wrong_code=True, status_code=400)
    problems = await anyio.to_thread.run_sync(
        partial(password_problems, runtime, account, new_password, confirm_password),
        limiter=runtime.password_checks,
    )
    if problems:
        # The code is used up: the page carries its acceptance instead, until the password
        # changes.
        lifetime = runtime.settings.recovery_code_lifetime
        claims = {"a": account.id, "h": password_fingerprint(account)}
        accepted = runtime.signer.sign(CODE_ACCEPTED, claims, lifetime)
        return _code_page(
            request, runtime, token, accepted=accepted, problems=problems, status_code=400
        )
    await anyio.to_thread.run_sync(
        partial(
            store_new_password,
            runtime,
            account,
            new_password,
            address,
            user_agent(request),
            runtime.pages.language(request),
            event=PASSWORD_RESET,
            method="questions",
        ),
        limiter=runtime.password_checks,
    )
    await end_sessions_of(runtime, account.identifier)
    return runtime.pages.message(
        request,
        "recover.reset.done_title",
        "recover.reset.done",
        link=runtime.settings.url("login"),
        link_key="recover.reset.login",
    )
