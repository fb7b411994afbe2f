"""SAML 2.0 IdP endpoints: metadata, SSO (Redirect, POST, unsolicited) — profiles 4.1 (Web
Browser SSO) over bindings 3.4 (HTTP-Redirect) and 3.5 (HTTP-POST)."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from functools import partial

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from sso.login.cookies import clear_tgc, read_tgc
from sso.login.page import login_page
from sso.login.pending import PendingRequest
from sso.login.routes import end_sso_session
from sso.login.runtime import Runtime, RuntimeDep
from sso.protocols.saml.attributes import derived_attributes, released
from sso.protocols.saml.bindings import (
    MAX_ENCODED_BYTES,
    RedirectMessage,
    check_relay_state,
    decode_post,
    decode_redirect,
    encode_post,
    parse_redirect_query,
)
from sso.protocols.saml.errors import (
    NoPassive,
    SamlRequestError,
    SamlStatusError,
    UnknownServiceProvider,
)
from sso.protocols.saml.idp import METADATA, SLO_POST, SLO_REDIRECT, SSO_POST, SSO_REDIRECT
from sso.protocols.saml.logout import (
    LogoutRequestIn,
    front_channel_request_url,
    logout_response,
    matches,
    read_logout_request,
)
from sso.protocols.saml.nameid import NameIdChoice, choose_format
from sso.protocols.saml.replay import Replayed, SeenMessages
from sso.protocols.saml.requests import (
    SsoRequest,
    acs_url_for,
    known_sp,
    our_authn_class,
    read_authn_request,
)
from sso.protocols.saml.responses import AuthnFacts, authn_response, status_response
from sso.protocols.saml.state import SamlState, saml_state
from sso.services.saml_registry import SamlServiceProvider
from sso.services.saml_release import release_for
from sso.sessions.registry import LogoutTarget, SsoSession

PROTOCOL = "saml"
METADATA_MEDIA_TYPE = "application/samlmetadata+xml"
log = logging.getLogger("sso.saml")
REPLAYED = "this AuthnRequest was already received: a replay"
router = APIRouter()


def request_error_page(request: Request, runtime: Runtime, error: SamlRequestError) -> Response:
    """A message we will not answer to its sender: the user is told, nothing is sent."""
    log.info("SAML request refused: %s", error.message)
    return runtime.pages.message(
        request, "error.title", error.page_key, error.status_code, reason=error.message[:300]
    )


def post_to_sp(
    request: Request, runtime: Runtime, url: str, field: str, xml: bytes, relay_state: str | None
) -> Response:
    """Bindings 3.5: the browser carries the message to the SP in an auto-submitted form."""
    fields = [(field, encode_post(xml))]
    if relay_state:
        fields.append(("RelayState", relay_state))
    response = runtime.pages.render(request, "post_form.html", action=url, fields=fields)
    response.headers["Cache-Control"] = "no-store"
    return response


def _status(
    request: Request,
    runtime: Runtime,
    state: SamlState,
    acs_url: str,
    request_id: str | None,
    relay_state: str | None,
    error: SamlStatusError,
) -> Response:
    xml = status_response(state.idp, in_response_to=request_id, acs_url=acs_url, error=error)
    return post_to_sp(request, runtime, acs_url, "SAMLResponse", xml, relay_state)


# -- metadata ----------------------------------------------------------------------------------


@router.get(f"/{METADATA}")
async def metadata(request: Request) -> Response:
    """Our metadata, signed (metadata 2.4.3, 3.1): what SPs and federations load."""
    document = saml_state(request).idp.metadata_document(time.time())
    return Response(document, media_type=METADATA_MEDIA_TYPE)


# -- SSO ---------------------------------------------------------------------------------------


def _pending(sso: SsoRequest, relay_state: str | None) -> PendingRequest:
    params = {
        "acs": sso.acs_url,
        "sp": sso.sp.entity_id,
        "authn_class": sso.authn_class,
        "allow_create": "1" if sso.allow_create else "0",
    }
    for key, value in (
        ("id", sso.request_id),
        ("relay_state", relay_state),
        ("name_id_format", sso.name_id_format),
        ("sp_name_qualifier", sso.sp_name_qualifier),
    ):
        if value:
            params[key] = value
    return PendingRequest(
        protocol=PROTOCOL,
        relying_party=sso.sp.entity_id,
        relying_party_name=sso.sp.name,
        params=params,
        renew=sso.force_authn,
        passive=sso.is_passive,
    )


async def _single_sign_on(
    request: Request, runtime: Runtime, state: SamlState, sso: SsoRequest, relay_state: str | None
) -> Response:
    """Profiles 4.1.4.2: answer at once from the SSO session, or ask the login layer.

    The request's ID enters the replay cache on every path, before any answer leaves: in the
    same transaction as the session's record of the SP when the answer is an assertion.
    """
    replay = (sso.sp.entity_id, sso.request_id) if sso.request_id else None
    session = None
    if sso.refusal is None:
        session = await runtime.run_database(runtime.sessions.find_session, read_tgc(request))
    pending = _pending(sso, relay_state)
    if session is not None and not sso.force_authn:
        return await complete_login(request, pending, session, False, replay=replay)
    if replay is not None and not await runtime.run_database(state.seen.first_time, *replay):
        return request_error_page(request, runtime, SamlRequestError(REPLAYED))
    if sso.refusal is not None:
        return _status(
            request, runtime, state, sso.acs_url, sso.request_id, relay_state, sso.refusal
        )
    if sso.is_passive:
        # Core 3.4.1: IsPassive forbids asking; ForceAuthn with IsPassive cannot be met either.
        error = NoPassive("the user is not logged in and may not be asked to")
        return _status(request, runtime, state, sso.acs_url, sso.request_id, relay_state, error)
    return login_page(request, runtime, pending)


def _https(runtime: Runtime) -> bool:
    return runtime.settings.base_url.startswith("https://")


@dataclass(frozen=True)
class _Received:
    """A SAML message as a binding delivered it, decoded with our limits."""

    kind: str  # "SAMLRequest" or "SAMLResponse"
    xml: bytes  # a request's; responses (to our front-channel requests) are not read
    relay_state: str | None
    redirect: RedirectMessage | None  # the query string, for the Redirect binding


def _by_redirect(request: Request) -> _Received:
    """Bindings 3.4: the message in the query string, deflated."""
    message = parse_redirect_query(request.scope.get("query_string", b""))
    xml = decode_redirect(message.message) if message.kind == "SAMLRequest" else b""
    return _Received(message.kind, xml, message.relay_state, message)


async def _by_post(request: Request) -> _Received:
    """Bindings 3.5: the message in a form field."""
    form = await request.form(max_files=0, max_fields=8, max_part_size=MAX_ENCODED_BYTES)
    relay_state = form.get("RelayState")
    relay_state = check_relay_state(relay_state if isinstance(relay_state, str) else None)
    for name in ("SAMLRequest", "SAMLResponse", "RelayState"):
        if len(form.getlist(name)) > 1:  # which one would be the message? (as for Redirect)
            raise SamlRequestError(f"the parameter {name} is given more than once")
    for kind in ("SAMLRequest", "SAMLResponse"):
        value = form.get(kind)
        if isinstance(value, str) and value:
            xml = decode_post(value) if kind == "SAMLRequest" else b""
            return _Received(kind, xml, relay_state, None)
    raise SamlRequestError("no SAMLRequest or SAMLResponse in the form")


async def _sso(request: Request, runtime: Runtime, received: _Received) -> Response:
    """An AuthnRequest, whichever binding brought it."""
    state = saml_state(request)
    try:
        if received.kind != "SAMLRequest":
            raise SamlRequestError("an SSO endpoint takes a SAMLRequest")
        sso = await runtime.run_database(
            read_authn_request,
            state.idp,
            state.registry,
            xml=received.xml,
            redirect=received.redirect,
            https=_https(runtime),
        )
    except SamlRequestError as error:
        return request_error_page(request, runtime, error)
    return await _single_sign_on(request, runtime, state, sso, received.relay_state)


@router.get(f"/{SSO_REDIRECT}")
async def sso_redirect(request: Request, runtime: RuntimeDep) -> Response:
    """SSO over HTTP-Redirect (bindings 3.4)."""
    try:
        received = _by_redirect(request)
    except SamlRequestError as error:
        return request_error_page(request, runtime, error)
    return await _sso(request, runtime, received)


@router.post(f"/{SSO_POST}")
async def sso_post(request: Request, runtime: RuntimeDep) -> Response:
    """SSO over HTTP-POST (bindings 3.5)."""
    try:
        received = await _by_post(request)
    except SamlRequestError as error:
        return request_error_page(request, runtime, error)
    return await _sso(request, runtime, received)


@router.get("/saml/sso/unsolicited")
async def sso_unsolicited(request: Request, runtime: RuntimeDep) -> Response:
    """IdP-initiated SSO (profiles 4.1.5), with Shibboleth's parameters: ``providerId`` (the
    SP), optional ``shire`` (an ACS URL, which must be in its metadata) and ``target`` (the
    RelayState)."""
    state = saml_state(request)
    try:
        provider = request.query_params.get("providerId") or ""
        shire = request.query_params.get("shire")
        target = check_relay_state(request.query_params.get("target"))
        if not provider or len(provider) > 1024:
            raise SamlRequestError("providerId names no service provider")
        sp = await runtime.run_database(known_sp, state.registry, provider)
        acs_url = acs_url_for(sp, shire, None, None)
    except SamlRequestError as error:
        return request_error_page(request, runtime, error)
    sso = SsoRequest(
        sp=sp,
        request_id="",
        acs_url=acs_url,
        force_authn=False,
        is_passive=False,
        name_id_format=None,
        allow_create=True,
        sp_name_qualifier=None,
        authn_class=our_authn_class(_https(runtime)),
    )
    return await _single_sign_on(request, runtime, state, sso, target)


# -- the login layer's hand-back ---------------------------------------------------------------


def _attributes(
    state: SamlState, sp: SamlServiceProvider, session: SsoSession, pairwise: str | None
) -> dict[str, list[str]]:
    """What this SP receives: its release policy (with REFEDS R&S), and the subject
    identifiers its metadata requires (SAML subject-id profile 3.3)."""
    attributes = derived_attributes(session.authentication.attributes, state.idp.scope)
    allowed = set(release_for(sp))
    requirement = sp.metadata.subject_id_requirement
    if requirement == "subject-id":
        allowed.add("subject-id")
    elif requirement in ("pairwise-id", "any") and pairwise:
        # Either satisfies "any"; the pairwise one reveals less.
        attributes["pairwise-id"] = [f"{pairwise}@{state.idp.scope}"]
        allowed.add("pairwise-id")
    return released(attributes, allowed)


def _logout_url(sp: SamlServiceProvider) -> str:
    endpoints = sp.metadata.single_logout_services
    return endpoints[0].location if endpoints else ""


@dataclass(frozen=True)
class _Answer:
    acs_url: str
    xml: bytes
    joined: LogoutTarget | None  # None when the answer is a failure status


def _answer(state: SamlState, pending: PendingRequest, session: SsoSession) -> _Answer:
    """Blocking part of ``complete_login``: the signed (perhaps encrypted) Response."""
    params = pending.params
    sp = state.registry.approved(params["sp"])
    if sp is None:
        raise UnknownServiceProvider(f"{params['sp']} is no longer a registered service provider")
    acs_url = params["acs"]
    subject = session.authentication.subject
    requirement = sp.metadata.subject_id_requirement
    pairwise = (
        state.name_ids.persistent_value(sp.entity_id, subject)
        if requirement in ("pairwise-id", "any")
        else None
    )
    try:
        name_format = choose_format(
            params.get("name_id_format"), sp.name_id_format, sp.metadata.name_id_formats
        )
        name_id = state.name_ids.issue(
            name_format,
            sp.entity_id,
            subject,
            session.authentication.attributes,
            NameIdChoice(
                format=params.get("name_id_format"),
                allow_create=params.get("allow_create", "1") == "1",
                sp_name_qualifier=params.get("sp_name_qualifier"),
            ),
        )
    except SamlStatusError as error:
        xml = status_response(
            state.idp, in_response_to=params.get("id"), acs_url=acs_url, error=error
        )
        return _Answer(acs_url, xml, None)
    session_index = "_" + secrets.token_hex(16)
    encrypt = sp.encrypt_assertions
    if encrypt is None:
        encrypt = state.idp.settings.saml_encrypt_assertions
    certificates = sp.metadata.encryption_certs
    xml = authn_response(
        state.idp,
        sp_entity_id=sp.entity_id,
        in_response_to=params.get("id"),
        acs_url=acs_url,
        name_id=name_id,
        attributes=_attributes(state, sp, session, pairwise),
        facts=AuthnFacts(
            authn_instant=session.authentication.authenticated_at,
            authn_class=params.get("authn_class") or our_authn_class(True),
            session_index=session_index,
            session_not_on_or_after=session.expires_at,
        ),
        encrypt_with=certificates[0] if encrypt and certificates else None,
    )
    joined = LogoutTarget(
        protocol=PROTOCOL,
        service=sp.entity_id,
        logout_url=_logout_url(sp),
        ticket=session_index,
        name_id=name_id.value,
        name_id_format=name_id.format,
    )
    return _Answer(acs_url, xml, joined)


async def complete_login(
    request: Request,
    pending: PendingRequest,
    session: SsoSession,
    fresh: bool,
    *,
    replay: tuple[str, str] | None = None,
) -> Response:
    """The login layer's hand-back: the Response auto-POSTed to the SP's ACS.

    ``replay`` (issuer, request ID): a request answered at once, whose ID is not yet in the
    replay cache; it goes in with the session's record of the SP, in one transaction.
    """
    runtime: Runtime = request.app.state.runtime
    state = saml_state(request)
    try:
        answer = await runtime.run_database(_answer, state, pending, session)
    except SamlRequestError as error:
        return request_error_page(request, runtime, error)
    if answer.joined is None:
        if replay is not None and not await runtime.run_database(state.seen.first_time, *replay):
            return request_error_page(request, runtime, SamlRequestError(REPLAYED))
    else:
        also = None
        if replay is not None:
            also = partial(SeenMessages.record, issuer=replay[0], message_id=replay[1])
        try:
            await runtime.run_database(
                runtime.sessions.record_logout_target, session.id, answer.joined, also
            )
        except Replayed:
            return request_error_page(request, runtime, SamlRequestError(REPLAYED))
        log.info(
            "SAML assertion for %s issued to %s%s",
            session.authentication.subject,
            pending.relying_party,
            " after a fresh login" if fresh else "",
        )
    return post_to_sp(
        request,
        runtime,
        answer.acs_url,
        "SAMLResponse",
        answer.xml,
        pending.params.get("relay_state"),
    )


# -- Single Logout -----------------------------------------------------------------------------


def _session_to_end(runtime: Runtime, cookie: str | None, logout: LogoutRequestIn) -> str | None:
    """The session the LogoutRequest names: the browser's own session when it is that one,
    else the one its SessionIndex points to (a browser that withheld the cookie)."""
    session = runtime.sessions.find_session(cookie)
    candidates = [session.id] if session is not None else []
    for index in logout.session_indexes:
        found = runtime.sessions.session_of_logout_target(PROTOCOL, logout.sp.entity_id, index)
        if found is not None:
            candidates.append(found)
    for session_id in candidates:
        if any(matches(t, logout) for t in runtime.sessions.logout_targets(session_id)):
            return session_id
    return None


def front_channel_frames(state: SamlState, targets: list[LogoutTarget]) -> list[str]:
    """Signed LogoutRequests for the SAML SPs among ``targets`` (the login layer's
    front-channel hook): the URLs the logout page loads in hidden frames."""
    frames = []
    for target in targets:
        sp = state.registry.approved(target.service) if target.protocol == PROTOCOL else None
        url = front_channel_request_url(state.idp, sp, target) if sp is not None else None
        if url is not None:
            frames.append(url)
    return frames


async def _single_logout(
    request: Request,
    runtime: Runtime,
    state: SamlState,
    logout: LogoutRequestIn,
    relay_state: str | None,
) -> Response:
    session_id = await runtime.run_database(_session_to_end, runtime, read_tgc(request), logout)
    frames: list[str] = []
    if session_id is not None:
        # CAS services get their back-channel call; the other SAML SPs come back as frames.
        frames = await end_sso_session(
            runtime, session_id, initiator=(PROTOCOL, logout.sp.entity_id)
        )
    answer = logout_response(state.idp, logout, relay_state)
    if answer is not None and answer.saml_response is None and not frames:
        response: Response = RedirectResponse(answer.url, status_code=302)
    else:
        response = runtime.pages.render(
            request,
            "front_channel_logout.html",
            frames=frames,
            answer_url=answer.url if answer else "",
            answer_response=answer.saml_response if answer else None,
            relay_state=relay_state,
        )
    response.headers["Cache-Control"] = "no-store"
    clear_tgc(response, runtime.settings)
    return response


async def _slo(request: Request, runtime: Runtime, received: _Received) -> Response:
    """A LogoutRequest (or an SP's LogoutResponse to ours), whichever binding brought it."""
    if received.kind == "SAMLResponse":
        # An SP's answer to our front-channel request, in its hidden frame: nothing to do.
        return runtime.pages.message(request, "saml.logout.title", "saml.logout.done")
    state = saml_state(request)
    try:
        logout = await runtime.run_database(
            read_logout_request,
            state.idp,
            state.registry,
            state.seen,
            xml=received.xml,
            redirect=received.redirect,
        )
    except SamlRequestError as error:
        return request_error_page(request, runtime, error)
    return await _single_logout(request, runtime, state, logout, received.relay_state)


@router.get(f"/{SLO_REDIRECT}")
async def slo_redirect(request: Request, runtime: RuntimeDep) -> Response:
    """Single Logout over HTTP-Redirect (profiles 4.4.3, bindings 3.4)."""
    try:
        received = _by_redirect(request)
    except SamlRequestError as error:
        return request_error_page(request, runtime, error)
    return await _slo(request, runtime, received)


@router.post(f"/{SLO_POST}")
async def slo_post(request: Request, runtime: RuntimeDep) -> Response:
    """Single Logout over HTTP-POST (profiles 4.4.3, bindings 3.5)."""
    try:
        received = await _by_post(request)
    except SamlRequestError as error:
        return request_error_page(request, runtime, error)
    return await _slo(request, runtime, received)
