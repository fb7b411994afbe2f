"""CAS endpoints (CAS Protocol Specification 3.0.3, section 2)."""

from __future__ import annotations

import logging
import secrets
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from sso.db import utcnow
from sso.login.cookies import clear_tgc, read_tgc
from sso.login.page import login_page, session_page
from sso.login.pending import PendingRequest
from sso.login.routes import end_sso_session
from sso.login.runtime import Runtime, RuntimeDep, get_runtime
from sso.protocols.cas.errors import CasError, InternalError, InvalidRequest
from sso.protocols.cas.responses import (
    TEXT_MEDIA_TYPE,
    Format,
    Rendered,
    parse_format,
    render_authentication_success,
    render_proxy_success,
    render_validate_v1,
)
from sso.protocols.cas.saml11 import (
    AUTHN_METHOD_PASSWORD,
    MAX_REQUEST_BYTES,
    SAML_MEDIA_TYPE,
    read_saml_request,
    render_saml_failure,
    render_saml_success,
)
from sso.protocols.cas.validation import (
    TicketValidator,
    Validated,
    add_query_parameters,
    cas3_attributes,
)
from sso.services.registry import MAX_SERVICE_URL_LENGTH, CasService
from sso.sessions.registry import SsoSession

PROTOCOL = "cas"
log = logging.getLogger("sso.cas")
router = APIRouter()

MAX_PARAMETER_LENGTH = MAX_SERVICE_URL_LENGTH


class BadParameter(Exception):
    """A parameter given twice, or far too long."""


def _param(request: Request, name: str) -> str | None:
    """One query parameter; refuses repeated or oversized ones instead of guessing."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadParameter(f"the parameter {name!r} is given more than once")
    if len(values[0]) > MAX_PARAMETER_LENGTH:
        raise BadParameter(f"the parameter {name!r} is too long")
    return values[0]


def _flag(request: Request, name: str) -> bool:
    """A boolean parameter: set means true (spec 2.1.1), unless it says false."""
    value = _param(request, name)
    return value is not None and value.lower() not in ("false", "0", "no")


def _validator(runtime: Runtime) -> TicketValidator:
    return TicketValidator(runtime.sessions, runtime.services, runtime.backchannel)


def _rendered(rendered: Rendered) -> Response:
    return Response(rendered.body, media_type=rendered.media_type)


def _unknown_service(request: Request, runtime: Runtime) -> Response:
    return runtime.pages.message(request, "error.title", "error.unknown_service", 403)


# -- 2.1-2.2 /login --------------------------------------------------------------------------


def respond_with_ticket(
    request: Request, runtime: Runtime, service_url: str, method: str, ticket: str
) -> Response:
    """Send the browser back to the service with its ticket (spec 2.1.1 ``method``)."""
    if method == "POST":
        return runtime.pages.render(
            request, "post_form.html", action=service_url, fields=[("ticket", ticket)]
        )
    if method == "HEADER":
        # Header values must be ASCII: encode the URL as the redirect's Location does.
        service_header = quote(service_url, safe=":/%#?=@[]!$&'()*+,;")
        return Response(
            status_code=200,
            headers={"service": service_header, "ticket": ticket, "Cache-Control": "no-store"},
        )
    return RedirectResponse(
        add_query_parameters(service_url, {"ticket": ticket}),
        status_code=302,
        headers={"Cache-Control": "no-store"},
    )


def _issue_service_ticket(
    runtime: Runtime, service_url: str, session: SsoSession, fresh: bool
) -> tuple[CasService, str] | None:
    """Blocking part of ``complete_login``, in one trip to the thread pool."""
    service = runtime.services.match(service_url)
    if service is None:  # unregistered while the user was typing
        return None
    ticket = runtime.sessions.issue_ticket(
        session, kind="ST", service=service_url, from_new_login=fresh
    )
    return service, ticket


async def complete_login(
    request: Request, pending: PendingRequest, session: SsoSession, fresh: bool
) -> Response:
    """The login layer's hand-back: issue the service ticket and return to the service."""
    runtime: Runtime = request.app.state.runtime
    service_url = pending.params["service"]
    issued = await runtime.run_database(_issue_service_ticket, runtime, service_url, session, fresh)
    if issued is None:
        return _unknown_service(request, runtime)
    service, ticket = issued
    method = pending.params.get("method") or service.response_method
    return respond_with_ticket(request, runtime, service_url, method, ticket)


def _service_and_session(
    runtime: Runtime, service_url: str | None, cookie: str | None
) -> tuple[CasService | None, SsoSession | None]:
    """Blocking part of /login, in one trip to the thread pool: the registered service asked
    for (if any) and the browser's SSO session, not looked up for an unregistered service."""
    service = None
    if service_url is not None:
        service = runtime.services.match(service_url)
        if service is None:
            return None, None
    return service, runtime.sessions.find_session(cookie)


@router.get("/login")
async def login(request: Request, runtime: RuntimeDep) -> Response:
    """Credential requestor (spec 2.1): SSO when possible, otherwise the login page."""
    try:
        service_url = _param(request, "service")
        renew = _flag(request, "renew")
        gateway = _flag(request, "gateway") and not renew  # renew wins (spec 2.1.1)
        warn = _flag(request, "warn")
        method = (_param(request, "method") or "").upper()
    except BadParameter:
        return runtime.pages.message(request, "error.title", "error.bad_request", 400)
    if method not in ("", "GET", "POST", "HEADER"):
        return runtime.pages.message(request, "error.title", "error.bad_request", 400)

    service, session = await runtime.run_database(
        _service_and_session, runtime, service_url, read_tgc(request)
    )
    if service_url is not None and service is None:
        log.info("login for an unregistered service %r", service_url[:200])
        return _unknown_service(request, runtime)
    if session is not None and not renew:
        if service_url is None or service is None:
            return session_page(request, runtime, session)
        if warn:
            continue_url = add_query_parameters(
                runtime.settings.url("login"),
                {"service": service_url} | ({"method": method} if method else {}),
            )
            return runtime.pages.render(
                request,
                "warn.html",
                service_name=service.name,
                service_url=service_url,
                continue_url=continue_url,
            )
        pending = PendingRequest(
            protocol=PROTOCOL,
            relying_party=service_url,
            params={"service": service_url, "method": method},
        )
        return await complete_login(request, pending, session, False)

    if gateway and service_url is not None:
        # Spec 2.1.1: no credentials asked; back to the service without a ticket.
        return RedirectResponse(service_url, status_code=302)

    pending = PendingRequest(
        protocol=PROTOCOL if service_url else "",
        relying_party=service_url or "",
        relying_party_name=service.name if service else "",
        params={"service": service_url, "method": method} if service_url else {},
        renew=renew,
    )
    return login_page(request, runtime, pending)


# -- 2.3 /logout ------------------------------------------------------------------------------


@router.api_route("/logout", methods=["GET", "POST"])
async def logout(request: Request, runtime: RuntimeDep) -> Response:
    """End the SSO session everywhere (spec 2.3); ``url`` is ignored as the spec says.

    POST is the logged-in page's logout button; like the spec's GET it needs no CSRF token.
    """
    try:
        service_url = _param(request, "service")
    except BadParameter:
        service_url = None
    session = await run_in_threadpool(runtime.sessions.find_session, read_tgc(request))
    frames: list[str] = []
    if session is not None:
        frames = await end_sso_session(runtime, session.id)
    redirect_to = None
    if service_url:
        # Only to a registered service: never an open redirect.
        if await run_in_threadpool(runtime.services.match, service_url) is not None:
            redirect_to = service_url
    if frames:
        # Relying parties only the browser can reach (SAML front channel): hidden frames, then
        # on to the service.
        response: Response = runtime.pages.render(
            request, "front_channel_logout.html", frames=frames, answer_url=redirect_to or ""
        )
    elif redirect_to:
        response = RedirectResponse(redirect_to, status_code=302)
    else:
        response = runtime.pages.message(request, "logout.title", "logout.done")
    clear_tgc(response, runtime.settings)
    return response


# -- 2.4-2.9 validation -----------------------------------------------------------------------


def _record_for_single_logout(runtime: Runtime, validated: Validated, service_url: str) -> None:
    if validated.service.single_logout:
        runtime.sessions.record_service_login(
            validated.session_id,
            protocol=PROTOCOL,
            service=service_url,
            logout_url=validated.service.logout_url or service_url,
            ticket=validated.ticket,
        )


def _validate(
    runtime: Runtime,
    request: Request,
    *,
    accept_proxy_tickets: bool,
    with_pgt: bool = True,
) -> Validated:
    """Blocking part of every validation endpoint (see ``_run_validation``)."""
    try:
        ticket = _param(request, "ticket")
        service = _param(request, "service")
        renew = _flag(request, "renew")
        pgt_url = _param(request, "pgtUrl") if with_pgt else None
    except BadParameter as exc:
        raise InvalidRequest(str(exc)) from exc
    validated = _validator(runtime).validate(
        ticket=ticket,
        service=service,
        renew=renew,
        pgt_url=pgt_url,
        accept_proxy_tickets=accept_proxy_tickets,
        single_logout_protocol=PROTOCOL,
    )
    assert service is not None
    if not validated.recorded_for_single_logout:  # a PGT was delivered first (or no SLO)
        # The ticket's own service URL, not the request's spelling of it: that one may decode
        # to the same URL yet carry a NUL, which PostgreSQL refuses (INTERNAL_ERROR on PG only).
        _record_for_single_logout(runtime, validated, validated.issued_for)
    return validated


async def _run_validation(
    runtime: Runtime, request: Request, accept_proxy_tickets: bool
) -> Validated:
    """``_validate`` as a short database call, or in the thread pool when a proxy callback
    (an outbound HTTPS request that may take seconds) is part of it."""
    if "pgtUrl" in request.query_params:
        return await run_in_threadpool(
            _validate, runtime, request, accept_proxy_tickets=accept_proxy_tickets
        )
    return await runtime.run_database(
        _validate, runtime, request, accept_proxy_tickets=accept_proxy_tickets
    )


@router.get("/validate")
async def validate_v1(request: Request, runtime: RuntimeDep) -> Response:
    """CAS 1.0 validation (spec 2.4): ``yes``/``no``, service tickets only."""
    try:
        validated = await runtime.run_database(
            _validate, runtime, request, accept_proxy_tickets=False, with_pgt=False
        )
        body = render_validate_v1(validated.authentication.subject)
    except CasError as exc:
        log.info("validate refused: %s", exc.message)
        body = render_validate_v1(None)
    except Exception:
        log.exception("validate failed")
        body = render_validate_v1(None)
    return PlainTextResponse(body, media_type=TEXT_MEDIA_TYPE)


async def _service_response(
    request: Request, *, accept_proxy_tickets: bool, cas3: bool
) -> Response:
    runtime = await get_runtime(request)  # no dependency injection: see VALIDATION_ROUTES
    fmt: Format | None
    try:
        fmt = parse_format(_param(request, "format"))
    except BadParameter:
        fmt = None
    try:
        if fmt is None:
            fmt = "XML"
            raise InvalidRequest("Unsupported format: use XML or JSON")
        validated = await _run_validation(runtime, request, accept_proxy_tickets)
    except CasError as exc:
        log.info("validation refused: %s %s", exc.code, exc.message)
        return _rendered(exc.render(fmt))
    except Exception:
        log.exception("validation failed")
        return _rendered(InternalError().render(fmt or "XML"))
    return _rendered(
        render_authentication_success(
            user=validated.authentication.subject,
            attributes=cas3_attributes(validated) if cas3 else None,
            pgt_iou=validated.pgt_iou,
            proxies=validated.proxies,
            fmt=fmt,
        )
    )


async def service_validate(request: Request) -> Response:
    """CAS 2.0 service ticket validation (spec 2.5)."""
    return await _service_response(request, accept_proxy_tickets=False, cas3=False)


async def proxy_validate(request: Request) -> Response:
    """CAS 2.0 service and proxy ticket validation (spec 2.6)."""
    return await _service_response(request, accept_proxy_tickets=True, cas3=False)


async def p3_service_validate(request: Request) -> Response:
    """CAS 3.0 service ticket validation with attributes (spec 2.8)."""
    return await _service_response(request, accept_proxy_tickets=False, cas3=True)


async def p3_proxy_validate(request: Request) -> Response:
    """CAS 3.0 service and proxy ticket validation with attributes (spec 2.9)."""
    return await _service_response(request, accept_proxy_tickets=True, cas3=True)


# Plain Starlette routes, first in the router: the requests relying parties make most, taking
# nothing FastAPI would resolve, whose dependency resolution and route handling cost ~60 us of
# the ~500 us of a validation (bench/README.md).
VALIDATION_ROUTES = [
    Route("/p3/serviceValidate", p3_service_validate, methods=["GET"]),
    Route("/serviceValidate", service_validate, methods=["GET"]),
    Route("/p3/proxyValidate", p3_proxy_validate, methods=["GET"]),
    Route("/proxyValidate", proxy_validate, methods=["GET"]),
]
router.routes[:0] = VALIDATION_ROUTES


@router.get("/proxy")
async def proxy(request: Request, runtime: RuntimeDep) -> Response:
    """A proxy ticket for a back-end service (spec 2.7)."""
    fmt: Format = "XML"
    try:
        fmt = parse_format(_param(request, "format")) or "XML"
        pgt = _param(request, "pgt")
        target = _param(request, "targetService")
        ticket = await run_in_threadpool(
            _validator(runtime).issue_proxy_ticket, pgt=pgt, target_service=target
        )
    except BadParameter as exc:
        return _rendered(InvalidRequest(str(exc)).render_proxy(fmt))
    except CasError as exc:
        log.info("proxy refused: %s %s", exc.code, exc.message)
        return _rendered(exc.render_proxy(fmt))
    except Exception:
        log.exception("proxy failed")
        return _rendered(InternalError().render_proxy(fmt))
    return _rendered(render_proxy_success(ticket, fmt))


# -- 4 /samlValidate --------------------------------------------------------------------------


@router.post("/samlValidate")
async def saml_validate(request: Request, runtime: RuntimeDep) -> Response:
    """SAML 1.1 ticket validation over SOAP (spec section 4); ``TARGET`` is the service."""
    now = utcnow()
    response_id = "_" + secrets.token_hex(16)
    in_response_to = None
    try:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REQUEST_BYTES:
                raise InvalidRequest(f"The SAML request is larger than {MAX_REQUEST_BYTES} bytes.")
        saml_request = read_saml_request(bytes(body))
        in_response_to = saml_request.request_id
        target = _param(request, "TARGET")
        validated = await run_in_threadpool(
            _validator(runtime).validate,
            ticket=saml_request.artifact,
            service=target,
            accept_proxy_tickets=False,
        )
        assert target is not None
        await run_in_threadpool(_record_for_single_logout, runtime, validated, validated.issued_for)
    except (CasError, BadParameter) as exc:
        code = exc.code if isinstance(exc, CasError) else "INVALID_REQUEST"
        message = exc.message if isinstance(exc, CasError) else str(exc)
        log.info("samlValidate refused: %s %s", code, message)
        return Response(
            render_saml_failure(
                code=code,
                message=message,
                response_id=response_id,
                in_response_to=in_response_to,
                now=now,
            ),
            media_type=SAML_MEDIA_TYPE,
        )
    except Exception:
        log.exception("samlValidate failed")
        return Response(
            render_saml_failure(
                code="INTERNAL_ERROR",
                message="An internal error occurred during ticket validation.",
                response_id=response_id,
                in_response_to=in_response_to,
                now=now,
            ),
            media_type=SAML_MEDIA_TYPE,
        )
    authentication = validated.authentication
    return Response(
        render_saml_success(
            user=authentication.subject,
            # Section 4.2.1: "SAML attributes MUST NOT be released to a non-SSL site."
            attributes=(
                validated.service.release(authentication.attributes)
                if target.lower().startswith("https://")
                else {}
            ),
            service=target,
            issuer=runtime.settings.base_url.rstrip("/"),
            authn_instant=authentication.authenticated_at,
            auth_method=AUTHN_METHOD_PASSWORD,
            now=now,
            lifetime_seconds=30,
            in_response_to=in_response_to,
            response_id=response_id,
            assertion_id="_" + secrets.token_hex(16),
        ),
        media_type=SAML_MEDIA_TYPE,
    )
