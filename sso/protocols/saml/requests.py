"""Reading an SP's AuthnRequest (SAML core 3.4.1, profiles 4.1.4.1) into what the login
layer needs, refusing on the way everything we must not act on."""

from __future__ import annotations

import base64
import calendar
import datetime as dt
from dataclasses import dataclass

from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.s_utils import UnknownPrincipal
from saml2.s_utils import UnsupportedBinding as Saml2UnsupportedBinding
from saml2.time_util import str_to_time

from sso.protocols.saml.bindings import (
    RedirectMessage,
    encode_redirect,
    verify_redirect_signature,
)
from sso.protocols.saml.errors import (
    NoAuthnContext,
    SamlRequestError,
    SamlStatusError,
    UnknownServiceProvider,
)
from sso.protocols.saml.idp import IdentityProvider
from sso.protocols.saml.replay import SeenMessages
from sso.protocols.saml.responses import PASSWORD, PASSWORD_PROTECTED_TRANSPORT
from sso.services.saml_registry import SamlServiceProvider, SamlSpRegistry

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
UNSPECIFIED_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
# Requests older or newer than this are refused (Shibboleth: 3 min + 3 min clock skew).
MAX_REQUEST_AGE = dt.timedelta(minutes=5)
CLOCK_SKEW = dt.timedelta(minutes=3)
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_pis=True
)


@dataclass(frozen=True)
class SsoRequest:
    """An AuthnRequest we accepted, with the ACS taken from the SP's metadata."""

    sp: SamlServiceProvider
    request_id: str
    acs_url: str
    force_authn: bool
    is_passive: bool
    name_id_format: str | None
    allow_create: bool
    sp_name_qualifier: str | None
    authn_class: str
    # A failure found once the ACS was known: answered to the SP, not shown as a page.
    refusal: SamlStatusError | None = None


def issuer_of(xml: bytes) -> str:
    """The Issuer of a SAML protocol message, read before anything else is trusted."""
    try:
        root = etree.fromstring(xml, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise SamlRequestError("the SAML message is not well-formed XML") from exc
    if root.tag not in (
        f"{{{SAMLP}}}AuthnRequest",
        f"{{{SAMLP}}}LogoutRequest",
        f"{{{SAMLP}}}LogoutResponse",
    ):
        raise SamlRequestError(f"unexpected SAML message {etree.QName(root).localname}")
    issuer = root.find(f"{{{SAML}}}Issuer")
    if issuer is None or not (issuer.text or "").strip():
        raise SamlRequestError("the SAML message names no Issuer")
    return issuer.text.strip()


def transport_form(xml: bytes, redirect: RedirectMessage | None) -> tuple[str, str]:
    """The message encoded again for pysaml2, which reads messages in their transport form;
    re-encoded from the XML already decoded here with our limits, never from the original."""
    if redirect is not None:
        return encode_redirect(xml), BINDING_HTTP_REDIRECT
    return base64.b64encode(xml).decode("ascii"), BINDING_HTTP_POST


def known_sp(
    registry: SamlSpRegistry, idp: IdentityProvider, entity_id: str
) -> SamlServiceProvider:
    """The approved SP ``entity_id``, loaded into pysaml2; refused otherwise."""
    sp = registry.approved(entity_id)
    if sp is None:
        raise UnknownServiceProvider(f"{entity_id} is not a registered service provider")
    idp.load(sp)
    return sp


def acs_url_for(
    sp: SamlServiceProvider, url: str | None, index: str | None, protocol_binding: str | None
) -> str:
    """The ACS to answer at: only ever one listed in the SP's metadata (profiles 4.1.4.1)."""
    if protocol_binding not in (None, BINDING_HTTP_POST):
        # Nothing could carry an UnsupportedBinding status back to it: a page.
        raise SamlRequestError(f"responses are sent by HTTP-POST only, not {protocol_binding}")
    endpoints = [
        e for e in sp.metadata.assertion_consumer_services if e.binding == BINDING_HTTP_POST
    ]
    if url is not None:
        for endpoint in endpoints:
            if endpoint.location == url:
                return url
        raise SamlRequestError("the AssertionConsumerServiceURL is not in the SP's metadata")
    if index is not None:
        for endpoint in endpoints:
            if str(endpoint.index) == index:
                return endpoint.location
        raise SamlRequestError("the AssertionConsumerServiceIndex is not in the SP's metadata")
    if not endpoints:
        raise SamlRequestError("the SP's metadata lists no HTTP-POST AssertionConsumerService")
    # Metadata 2.2.3: isDefault="true" first, then one without isDefault, then the first.
    for wanted in (True, None):
        for endpoint in endpoints:
            if endpoint.is_default is wanted:
                return endpoint.location
    return endpoints[0].location


def our_authn_class(https: bool) -> str:
    """What a password login is worth here: over TLS, PasswordProtectedTransport."""
    return PASSWORD_PROTECTED_TRANSPORT if https else PASSWORD


def _authn_class(requested, https: bool) -> str:  # noqa: ANN001 - pysaml2's RequestedAuthnContext
    ours = our_authn_class(https)
    if requested is None or not requested.authn_context_class_ref:
        return ours
    refs = [r.text.strip() for r in requested.authn_context_class_ref if r.text]
    comparison = requested.comparison or "exact"
    satisfied = {
        # What a password login satisfies for each comparison (core 3.3.2.2.1).
        "exact": {ours, UNSPECIFIED_CONTEXT},
        "minimum": {ours, PASSWORD, UNSPECIFIED_CONTEXT},
        "maximum": {ours, PASSWORD_PROTECTED_TRANSPORT, UNSPECIFIED_CONTEXT},
        "better": {UNSPECIFIED_CONTEXT} | ({PASSWORD} if ours != PASSWORD else set()),
    }.get(comparison, set())
    if any(ref in satisfied for ref in refs):
        return ours
    raise NoAuthnContext(f"no authentication here meets {', '.join(refs)} ({comparison})")


def read_authn_request(
    idp: IdentityProvider,
    registry: SamlSpRegistry,
    seen: SeenMessages,
    *,
    xml: bytes,
    redirect: RedirectMessage | None,
    https: bool,
    now: dt.datetime | None = None,
) -> SsoRequest:
    """Check an AuthnRequest end to end (``redirect``: its query string, for the Redirect
    binding); raises SamlRequestError (a page) when it cannot be answered; a failure to answer
    to the SP is in ``refusal``."""
    now = now or dt.datetime.now(dt.UTC)
    sp = known_sp(registry, idp, issuer_of(xml))
    # pysaml2 checks version, Destination (against our endpoints of that binding) and an
    # enveloped signature when there is one (with the SP's metadata certificates, through our
    # backend).
    try:
        parsed = idp.server.parse_authn_request(*transport_form(xml, redirect))
    except (Saml2UnsupportedBinding, UnknownPrincipal) as exc:
        raise SamlRequestError(str(exc)) from exc
    except Exception as exc:  # pysaml2 raises many unrelated types for a bad request
        raise SamlRequestError(f"the AuthnRequest was refused: {exc}") from exc
    if parsed is None or parsed.message is None:
        raise SamlRequestError("the AuthnRequest could not be read")
    request = parsed.message
    if request.issuer is None or request.issuer.text.strip() != sp.entity_id:
        raise SamlRequestError("the AuthnRequest's Issuer changed while it was read")
    if not request.id:
        raise SamlRequestError("the AuthnRequest has no ID")
    try:
        issued = dt.datetime.fromtimestamp(
            calendar.timegm(str_to_time(request.issue_instant)), dt.UTC
        )
    except (TypeError, ValueError) as exc:
        raise SamlRequestError("the AuthnRequest's IssueInstant is not a date") from exc
    if issued < now - MAX_REQUEST_AGE - CLOCK_SKEW or issued > now + CLOCK_SKEW:
        raise SamlRequestError("the AuthnRequest is too old, or comes from the future")

    signed_enveloped = request.signature is not None  # pysaml2 verified it if present
    signed_redirect = False
    if redirect is not None and redirect.signature is not None:
        if not verify_redirect_signature(redirect, sp.metadata.signing_certs):
            raise SamlRequestError("the AuthnRequest's signature does not verify")
        signed_redirect = True
    must_sign = sp.metadata.authn_requests_signed or idp.settings.saml_require_signed_requests
    if must_sign and not (signed_enveloped or signed_redirect):
        raise SamlRequestError("this SP must sign its AuthnRequests, and this one is not signed")

    acs_url = acs_url_for(
        sp,
        request.assertion_consumer_service_url,
        None
        if request.assertion_consumer_service_index is None
        else str(request.assertion_consumer_service_index),
        request.protocol_binding,
    )
    if not seen.first_time(sp.entity_id, request.id):
        raise SamlRequestError("this AuthnRequest was already received: a replay")
    policy = request.name_id_policy
    refusal = None
    try:
        authn_class = _authn_class(request.requested_authn_context, https)
    except NoAuthnContext as exc:
        authn_class, refusal = our_authn_class(https), exc
    return SsoRequest(
        sp=sp,
        request_id=request.id,
        acs_url=acs_url,
        force_authn=str(request.force_authn).lower() in ("true", "1"),
        is_passive=str(request.is_passive).lower() in ("true", "1"),
        name_id_format=policy.format if policy is not None else None,
        allow_create=policy is None or str(policy.allow_create).lower() not in ("false", "0"),
        sp_name_qualifier=policy.sp_name_qualifier if policy is not None else None,
        authn_class=authn_class,
        refusal=refusal,
    )
