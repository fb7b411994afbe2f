"""Reading an SP's AuthnRequest (SAML core 3.4.1, profiles 4.1.4.1) into what the login
layer needs, refusing on the way everything we must not act on.

Read with lxml alone, one parse and our strict signature check (sso.security.xmldsig), not
with pysaml2's ``parse_authn_request``: two parsers reading one message differently is how
an Issuer cut by a comment or a second Issuer names two SPs at once, and pysaml2's object
model, with the deflate again for its Redirect reader, cost as much as a signature.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

from lxml import etree
from saml2 import BINDING_HTTP_POST
from saml2.time_util import str_to_time

from sso.protocols.saml.bindings import RedirectMessage, verify_redirect_signature
from sso.protocols.saml.errors import (
    NoAuthnContext,
    SamlRequestError,
    SamlStatusError,
    UnknownServiceProvider,
)
from sso.protocols.saml.idp import SSO_POST, SSO_REDIRECT, IdentityProvider
from sso.protocols.saml.responses import PASSWORD, PASSWORD_PROTECTED_TRANSPORT
from sso.security import xmldsig
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
_MESSAGES = ("AuthnRequest", "LogoutRequest", "LogoutResponse")
_NCNAME = re.compile(r"[A-Za-z_][\w.\-]*\Z")  # xs:ID (ASCII is all SAML IDs need)
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}  # xs:boolean


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


def message_root(xml: bytes) -> etree._Element:
    """The root of a SAML protocol message, refused unless it is one we take."""
    try:
        root = etree.fromstring(xml, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise SamlRequestError("the SAML message is not well-formed XML") from exc
    if root.tag not in {f"{{{SAMLP}}}{name}" for name in _MESSAGES}:
        raise SamlRequestError(f"unexpected SAML message {etree.QName(root).localname}")
    return root


def issuer_of(root: etree._Element) -> str:
    """The Issuer of a protocol message, read before anything else is trusted: one, made of
    text alone (a comment inside would make its text ambiguous)."""
    issuers = root.findall(f"{{{SAML}}}Issuer")
    if len(issuers) > 1:
        raise SamlRequestError("the SAML message names more than one Issuer")
    issuer = issuers[0] if issuers else None
    if issuer is None or not (issuer.text or "").strip():
        raise SamlRequestError("the SAML message names no Issuer")
    if len(issuer):
        raise SamlRequestError("the SAML message's Issuer must be text alone")
    return issuer.text.strip()


@dataclass(frozen=True)
class CheckedMessage:
    """A protocol message from a known SP, checked as core 3.2.1 asks."""

    sp: SamlServiceProvider
    root: etree._Element  # the element whose signature was verified, when it was signed
    message_id: str
    issued: dt.datetime
    signed: bool  # an enveloped signature or a Redirect-binding one, verified


def checked_message(
    idp: IdentityProvider,
    registry: SamlSpRegistry,
    *,
    xml: bytes,
    redirect: RedirectMessage | None,
    kind: str,
    endpoints: tuple[str, str],
    now: dt.datetime | None = None,
) -> CheckedMessage:
    """Check ``xml``, a ``kind`` message from an approved SP, by the Redirect binding when
    ``redirect`` is given (else POST): version, ID, IssueInstant, a Destination that is our
    endpoint for that binding (``endpoints``: Redirect, POST), and any signature, verified
    with the SP's metadata certificates only. A signed message must name its Destination
    (bindings 3.4.5.2, 3.5.5.2); an old one, or one from the future, is refused."""
    now = now or dt.datetime.now(dt.UTC)
    root = message_root(xml)
    sp = known_sp(registry, issuer_of(root))
    if root.tag != f"{{{SAMLP}}}{kind}":
        raise SamlRequestError(f"the {kind} was refused: this is a {etree.QName(root).localname}")
    certificates = [c.encode("ascii") for c in sp.metadata.signing_certs]
    signed = False
    if root.find(f"{{{xmldsig.DSIG_NS}}}Signature") is not None:
        try:
            # The element verified is the one read from here on (signature wrapping).
            root = xmldsig.verify(
                xml, certificates, element_id=root.get("ID"), element_tag=root.tag
            )
        except xmldsig.XmlSecurityError as exc:
            raise SamlRequestError(f"the {kind}'s signature does not verify: {exc}") from exc
        if root.getparent() is not None:
            raise SamlRequestError(f"the {kind}'s signature does not verify: not the root")
        signed = True
    if redirect is not None and redirect.signature is not None:
        if not verify_redirect_signature(redirect, list(sp.metadata.signing_certs)):
            raise SamlRequestError(f"the {kind}'s signature does not verify")
        signed = True
    if root.get("Version") != "2.0":
        raise SamlRequestError(f"the {kind} was refused: version {root.get('Version')} is not 2.0")
    message_id = root.get("ID") or ""
    if not _NCNAME.match(message_id):
        raise SamlRequestError(f"the {kind} has no ID, or one that is not an xs:ID")
    try:
        issued = dt.datetime.fromtimestamp(
            calendar.timegm(str_to_time(root.get("IssueInstant") or "")), dt.UTC
        )
    except (TypeError, ValueError, AttributeError) as exc:  # pysaml2's parser, on no match
        raise SamlRequestError(f"the {kind}'s IssueInstant is not a date") from exc
    if issued < now - MAX_REQUEST_AGE - CLOCK_SKEW or issued > now + CLOCK_SKEW:
        raise SamlRequestError(f"the {kind} is too old, or comes from the future")
    destination = root.get("Destination")
    ours = idp.settings.url(endpoints[0] if redirect is not None else endpoints[1])
    if destination is not None and destination != ours:
        raise SamlRequestError(f"the {kind} was refused: its Destination is not {ours}")
    if signed and destination is None:
        raise SamlRequestError(f"the {kind} was refused: a signed message names its Destination")
    return CheckedMessage(sp, root, message_id, issued, signed)


def boolean(root: etree._Element, name: str, default: bool) -> bool:
    """An xs:boolean attribute; refused when it is something else."""
    value = root.get(name)
    if value is None:
        return default
    if value.strip() not in _BOOLEANS:
        raise SamlRequestError(f"{name}={value!r} is not a boolean")
    return _BOOLEANS[value.strip()]


def known_sp(registry: SamlSpRegistry, entity_id: str) -> SamlServiceProvider:
    """The approved SP ``entity_id``; refused otherwise."""
    sp = registry.approved(entity_id)
    if sp is None:
        raise UnknownServiceProvider(f"{entity_id} is not a registered service provider")
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


def _authn_class(requested: etree._Element | None, https: bool) -> str:
    """The class we name in the assertion when a password login meets ``requested`` (a
    ``RequestedAuthnContext``); NoAuthnContext when it does not."""
    ours = our_authn_class(https)
    if requested is None:
        return ours
    refs = [
        r.text.strip()
        for r in requested.findall(f"{{{SAML}}}AuthnContextClassRef")
        if r.text and r.text.strip()
    ]
    if not refs:
        return ours
    comparison = requested.get("Comparison") or "exact"
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
    *,
    xml: bytes,
    redirect: RedirectMessage | None,
    https: bool,
    now: dt.datetime | None = None,
) -> SsoRequest:
    """Check an AuthnRequest end to end (``redirect``: its query string, for the Redirect
    binding); raises SamlRequestError (a page) when it cannot be answered; a failure to answer
    to the SP is in ``refusal``."""
    message = checked_message(
        idp,
        registry,
        xml=xml,
        redirect=redirect,
        kind="AuthnRequest",
        endpoints=(SSO_REDIRECT, SSO_POST),
        now=now,
    )
    sp, request = message.sp, message.root
    must_sign = sp.metadata.authn_requests_signed or idp.settings.saml_require_signed_requests
    if must_sign and not message.signed:
        raise SamlRequestError("this SP must sign its AuthnRequests, and this one is not signed")

    url = request.get("AssertionConsumerServiceURL")
    index = request.get("AssertionConsumerServiceIndex")
    if url is not None and index is not None:
        raise SamlRequestError(
            "AssertionConsumerServiceURL and AssertionConsumerServiceIndex exclude each other"
        )
    if index is not None and not (index.strip().isdigit() and int(index) <= 65535):
        raise SamlRequestError(f"AssertionConsumerServiceIndex={index!r} is not an index")
    acs_url = acs_url_for(
        sp, url, None if index is None else str(int(index)), request.get("ProtocolBinding")
    )
    force_authn = boolean(request, "ForceAuthn", False)
    is_passive = boolean(request, "IsPassive", False)
    policy = request.find(f"{{{SAMLP}}}NameIDPolicy")
    allow_create = True if policy is None else boolean(policy, "AllowCreate", True)
    refusal = None
    try:
        authn_class = _authn_class(request.find(f"{{{SAMLP}}}RequestedAuthnContext"), https)
    except NoAuthnContext as exc:
        authn_class, refusal = our_authn_class(https), exc
    return SsoRequest(
        sp=sp,
        request_id=message.message_id,
        acs_url=acs_url,
        force_authn=force_authn,
        is_passive=is_passive,
        name_id_format=policy.get("Format") if policy is not None else None,
        allow_create=allow_create,
        sp_name_qualifier=policy.get("SPNameQualifier") if policy is not None else None,
        authn_class=authn_class,
        refusal=refusal,
    )
