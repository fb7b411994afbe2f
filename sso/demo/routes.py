"""Demo relying platforms ("Webmail" and "M@gistère"), served only in demo mode.

Each behaves like a real CAS client: it redirects to ``/login``, validates the ticket over
real HTTP at ``/p3/serviceValidate``, shows the user and attributes it received, and accepts
single-logout requests. Their own sessions live in process memory: demo mode runs one worker.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import mailbox
import re
import secrets
import xml.etree.ElementTree as ET  # noqa: S405 - our own server's answer, parsed for display
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Request
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from sso.demo.saml_sp import router as saml_sp_router
from sso.login.runtime import RuntimeDep
from sso.mail import maildir_path

router = APIRouter()
# Before "/demo/{platform}" below, which would take "/demo/saml-sp" for a CAS platform.
router.include_router(saml_sp_router)

DEMO_PLATFORMS = {"webmail": "Webmail (démo)", "magistere": "M@gistère (démo)"}
_COOKIE = "demo_app_session"
_CAS = "{http://www.yale.edu/tp/cas}"
# demo session id -> (platform, user, attributes, service ticket)
_sessions: dict[str, tuple[str, str, dict[str, list[str]], str]] = {}


def demo_service_url(base_url: str, platform: str) -> str:
    """The CAS service URL of a demo platform."""
    return f"{base_url}demo/{platform}"


def _parse_success(xml: str) -> tuple[str, dict[str, list[str]]] | None:
    root = ET.fromstring(xml)  # noqa: S314 - our own server's answer
    success = root.find(f"{_CAS}authenticationSuccess")
    if success is None:
        return None
    user = success.findtext(f"{_CAS}user") or ""
    attributes: dict[str, list[str]] = {}
    for element in success.find(f"{_CAS}attributes") or []:
        attributes.setdefault(element.tag.removeprefix(_CAS), []).append(element.text or "")
    return user, attributes


# The demo mails page shows this many, newest first.
MAILS_SHOWN = 100
_URL = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class DeliveredMail:
    """A mail filed in the demo maildir, as the mails page shows it."""

    subject: str
    to: str
    date: str
    body: Markup  # the text part, escaped, its URLs made links


def linkify(text: str) -> Markup:
    """``text`` escaped, with each http(s) URL made a link (nothing else becomes markup)."""
    parts: list[str] = []
    position = 0
    for match in _URL.finditer(text):
        url = match.group().rstrip(".,;:!?)»")
        parts.append(escape(text[position : match.start()]))
        parts.append(Markup('<a href="{0}">{0}</a>').format(url))
        position = match.start() + len(url)
    parts.append(escape(text[position:]))
    return Markup("").join(parts)


def _text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def delivered_mails(directory: Path, limit: int = MAILS_SHOWN) -> list[DeliveredMail]:
    """The newest mails of the maildir, newest first (filing time, then Date)."""
    if not directory.is_dir():
        return []
    box = mailbox.Maildir(directory, create=False)
    filed: list[tuple[float, EmailMessage]] = []
    for key in box.keys():
        try:
            filed_at = box.get_message(key).get_date()
            message = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        except (KeyError, FileNotFoundError):  # taken away meanwhile
            continue
        filed.append((filed_at, message))  # type: ignore[arg-type]
    filed.sort(key=lambda item: item[0], reverse=True)
    return [
        DeliveredMail(
            subject=str(message["Subject"] or ""),
            to=str(message["To"] or ""),
            date=str(message["Date"] or ""),
            body=linkify(_text_of(message)),
        )
        for _, message in filed[:limit]
    ]


@router.get("/demo/mails")
async def demo_mails(request: Request, runtime: RuntimeDep) -> Response:
    """The mails "sent" in demo mode, so a newcomer can follow a reset link without SMTP."""
    directory = maildir_path(runtime.settings)
    mails = await run_in_threadpool(delivered_mails, directory)
    return runtime.pages.render(request, "demo_mails.html", mails=mails, maildir=str(directory))


@router.get("/demo/{platform}")
async def demo_platform(request: Request, runtime: RuntimeDep, platform: str) -> Response:
    """A demo platform's home page: log in through CAS, then show what CAS said."""
    if platform not in DEMO_PLATFORMS:
        return runtime.pages.message(request, "error.title", "error.not_found", 404)
    service = demo_service_url(runtime.settings.base_url, platform)
    ticket = request.query_params.get("ticket")
    if ticket:
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.get(
                runtime.settings.url("p3/serviceValidate"),
                params={"service": service, "ticket": ticket},
            )
        parsed = _parse_success(answer.text)
        if parsed is None:
            return runtime.pages.render(
                request,
                "demo.html",
                status_code=401,
                platform=DEMO_PLATFORMS[platform],
                user=None,
                attributes={},
                raw=answer.text,
                login_url=service,
            )
        session_id = secrets.token_urlsafe(24)
        _sessions[session_id] = (platform, parsed[0], parsed[1], ticket)
        response = RedirectResponse(service, status_code=302)
        response.set_cookie(
            f"{_COOKIE}_{platform}",
            session_id,
            httponly=True,
            samesite="lax",
            path=runtime.settings.base_path,
        )
        return response
    session = _sessions.get(request.cookies.get(f"{_COOKIE}_{platform}", ""))
    if session is None:
        login = runtime.settings.url("login") + "?" + urlencode({"service": service})
        return RedirectResponse(login, status_code=302)
    _, user, attributes, _ = session
    return runtime.pages.render(
        request,
        "demo.html",
        platform=DEMO_PLATFORMS[platform],
        user=user,
        attributes=attributes,
        raw=None,
        logout_url=runtime.settings.url("logout") + "?" + urlencode({"service": service}),
        other=[
            (name, demo_service_url(runtime.settings.base_url, key))
            for key, name in DEMO_PLATFORMS.items()
            if key != platform
        ],
    )


@router.post("/demo/{platform}")
async def demo_single_logout(platform: str, request: Request) -> Response:
    """Back-channel single logout: forget the session that the named ticket opened."""
    form = await request.form()
    match = re.search(
        r"<samlp:SessionIndex>(.*)</samlp:SessionIndex>", str(form.get("logoutRequest", ""))
    )
    if match:
        for session_id, (session_platform, _, _, ticket) in list(_sessions.items()):
            if session_platform == platform and ticket == match.group(1):
                del _sessions[session_id]
    return Response(status_code=200)
