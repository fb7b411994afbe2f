"""Single Logout (SAML profiles 4.4): an SP's LogoutRequest ends the SSO session, CAS side
included; the other SAML SPs of the session are told through the browser (front channel,
one hidden frame each, as Shibboleth's IdP does); then the SP that asked gets its
LogoutResponse."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT

from sso.protocols.saml.bindings import (
    RedirectMessage,
    signed_redirect_query,
)
from sso.protocols.saml.errors import SamlRequestError
from sso.protocols.saml.idp import SLO_POST, SLO_REDIRECT, IdentityProvider
from sso.protocols.saml.messages import (
    SAML_NS,
    SUCCESS,
    child,
    protocol_message,
    saml,
    saml_instant,
    samlp,
    signed,
    status,
)
from sso.protocols.saml.nameid import PERSISTENT, TRANSIENT
from sso.protocols.saml.replay import SeenMessages
from sso.protocols.saml.requests import checked_message
from sso.security import xmldsig
from sso.services.saml_metadata import Endpoint
from sso.services.saml_registry import SamlServiceProvider, SamlSpRegistry
from sso.sessions.registry import LogoutTarget


@dataclass(frozen=True)
class LogoutRequestIn:
    """An SP's LogoutRequest we accepted."""

    sp: SamlServiceProvider
    request_id: str
    name_id: str
    session_indexes: tuple[str, ...]
    binding: str  # the binding it came by, which the response goes back by when possible


def read_logout_request(
    idp: IdentityProvider,
    registry: SamlSpRegistry,
    seen: SeenMessages,
    *,
    xml: bytes,
    redirect: RedirectMessage | None,
) -> LogoutRequestIn:
    """Check an SP's LogoutRequest; it must be signed (profiles 4.4.4.1), by one of the
    certificates of the SP's metadata."""
    message = checked_message(
        idp,
        registry,
        xml=xml,
        redirect=redirect,
        kind="LogoutRequest",
        endpoints=(SLO_REDIRECT, SLO_POST),
    )
    if not message.signed:
        raise SamlRequestError("a LogoutRequest must be signed")
    sp, request = message.sp, message.root
    name_id = request.find(f"{{{SAML_NS}}}NameID")
    if name_id is None or not (name_id.text or "").strip():
        raise SamlRequestError("the LogoutRequest names no NameID")
    if not seen.first_time(sp.entity_id, message.message_id):
        raise SamlRequestError("this LogoutRequest was already received: a replay")
    return LogoutRequestIn(
        sp=sp,
        request_id=message.message_id,
        name_id=name_id.text.strip(),
        session_indexes=tuple(
            i.text.strip() for i in request.findall(samlp("SessionIndex")) if i.text
        ),
        binding=BINDING_HTTP_REDIRECT if redirect is not None else BINDING_HTTP_POST,
    )


def matches(target: LogoutTarget, request: LogoutRequestIn) -> bool:
    """Whether a session's record of an SP is what the SP's LogoutRequest names."""
    return (
        target.protocol == "saml"
        and target.service == request.sp.entity_id
        and target.name_id == request.name_id
        and (not request.session_indexes or target.ticket in request.session_indexes)
    )


def _endpoint(sp: SamlServiceProvider, preferred: str) -> Endpoint | None:
    endpoints = [
        e
        for e in sp.metadata.single_logout_services
        if e.binding in (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST)
    ]
    for endpoint in endpoints:
        if endpoint.binding == preferred:
            return endpoint
    return endpoints[0] if endpoints else None


def front_channel_request_url(
    idp: IdentityProvider, sp: SamlServiceProvider, target: LogoutTarget
) -> str | None:
    """A signed Redirect-binding LogoutRequest telling ``sp`` that the session it joined
    (``target``) has ended; None when the SP has no Redirect SLO endpoint."""
    endpoint = _endpoint(sp, BINDING_HTTP_REDIRECT)
    if endpoint is None or endpoint.binding != BINDING_HTTP_REDIRECT:
        return None
    now = dt.datetime.now(dt.UTC)
    qualified = target.name_id_format in (TRANSIENT, PERSISTENT)
    request = protocol_message(
        "LogoutRequest",
        idp,
        now=now,
        destination=endpoint.location,
        NotOnOrAfter=saml_instant(now + dt.timedelta(minutes=5)),
        Reason="urn:oasis:names:tc:SAML:2.0:logout:user",
    )
    child(
        request,
        saml("NameID"),
        {
            "Format": target.name_id_format or None,
            # Qualified as in the assertion (sso.protocols.saml.nameid.NameIds.issue).
            "NameQualifier": idp.entity_id if qualified else None,
            "SPNameQualifier": sp.entity_id if qualified else None,
        },
        target.name_id,
    )
    child(request, samlp("SessionIndex"), text=target.ticket)
    query = signed_redirect_query("SAMLRequest", xmldsig.serialize(request), None, idp.keys.key_pem)
    separator = "&" if "?" in endpoint.location else "?"
    return endpoint.location + separator + query


@dataclass(frozen=True)
class LogoutAnswer:
    """How the LogoutResponse goes back: a URL to redirect to, or a form to POST."""

    url: str
    saml_response: str | None  # set for the POST binding: the form's SAMLResponse


def logout_response(
    idp: IdentityProvider, request: LogoutRequestIn, relay_state: str | None
) -> LogoutAnswer | None:
    """The signed LogoutResponse (core 3.7.2) to the SP that asked, by the binding it used
    when its metadata offers it; None when its metadata lists no SLO endpoint."""
    endpoint = _endpoint(request.sp, request.binding)
    if endpoint is None:
        return None
    location = endpoint.response_location or endpoint.location
    response = protocol_message(
        "LogoutResponse",
        idp,
        now=dt.datetime.now(dt.UTC),
        destination=location,
        in_response_to=request.request_id,
    )
    status(response, SUCCESS)
    if endpoint.binding == BINDING_HTTP_REDIRECT:
        query = signed_redirect_query(
            "SAMLResponse", xmldsig.serialize(response), relay_state, idp.keys.key_pem
        )
        separator = "&" if "?" in location else "?"
        return LogoutAnswer(location + separator + query, None)
    xml = signed(idp, response, response)
    return LogoutAnswer(location, base64.b64encode(xml).decode("ascii"))
