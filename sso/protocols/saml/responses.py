"""Our SAML Responses (SAML core 3.3.3 / profiles 4.1.4.2): lxml trees
(sso.protocols.saml.messages), signed and encrypted through the crypto backend the IdP
installed.

Built here rather than by pysaml2's ``Server.create_authn_response``: that path runs pysaml2's
release policy and NameID database (ours are the registry's policy and our table), names no
AuthnContextClassRef of ours, picks its own SessionIndex (which single logout must know),
encrypts with 3DES, and writes and re-parses the document around each signature.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from saml2.sigver import get_pem_wrapped_unwrapped, pre_encryption_part

from sso.protocols.saml.attributes import NAME_FORMAT_URI, SAML_NAMES
from sso.protocols.saml.crypto import InProcessBackend
from sso.protocols.saml.errors import SamlStatusError
from sso.protocols.saml.idp import IdentityProvider
from sso.protocols.saml.messages import (
    ASSERTION_NSMAP,
    SAML_NS,
    SUCCESS,
    XSI_NS,
    as_bytes,
    child,
    issuer,
    message_id,
    protocol_message,
    saml,
    saml_instant,
    signed,
    status,
)
from sso.protocols.saml.nameid import IssuedNameId
from sso.security import xmldsig

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
PASSWORD_PROTECTED_TRANSPORT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"  # noqa: S105 - a URN
PASSWORD = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"  # noqa: S105 - a URN
AES128_GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
RSA_OAEP = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
CLOCK_SKEW = dt.timedelta(seconds=180)
_XSI_TYPE = f"{{{XSI_NS}}}type"


@dataclass(frozen=True)
class AuthnFacts:
    """What the assertion says about the authentication (core 2.7.2)."""

    authn_instant: dt.datetime
    authn_class: str
    session_index: str
    session_not_on_or_after: dt.datetime


def _assertion(
    idp: IdentityProvider,
    *,
    sp_entity_id: str,
    in_response_to: str | None,
    acs_url: str,
    name_id: IssuedNameId,
    attributes: dict[str, list[str]],
    facts: AuthnFacts,
    now: dt.datetime,
) -> etree._Element:
    """The assertion (core 2.3.3), in the schema's order: Issuer, (Signature), Subject,
    Conditions, AuthnStatement, AttributeStatement."""
    not_on_or_after = saml_instant(now + dt.timedelta(seconds=idp.settings.saml_response_lifetime))
    assertion = etree.Element(saml("Assertion"), nsmap=ASSERTION_NSMAP)
    assertion.set("ID", message_id())
    assertion.set("Version", "2.0")
    assertion.set("IssueInstant", saml_instant(now))
    issuer(assertion, idp)
    subject = child(assertion, saml("Subject"))
    child(
        subject,
        saml("NameID"),
        {
            "Format": name_id.format,
            "NameQualifier": name_id.name_qualifier,
            "SPNameQualifier": name_id.sp_name_qualifier,
        },
        name_id.value,
    )
    confirmation = child(subject, saml("SubjectConfirmation"), {"Method": BEARER})
    child(
        confirmation,
        saml("SubjectConfirmationData"),
        {"InResponseTo": in_response_to, "Recipient": acs_url, "NotOnOrAfter": not_on_or_after},
    )
    conditions = child(
        assertion,
        saml("Conditions"),
        {"NotBefore": saml_instant(now - CLOCK_SKEW), "NotOnOrAfter": not_on_or_after},
    )
    child(child(conditions, saml("AudienceRestriction")), saml("Audience"), text=sp_entity_id)
    statement = child(
        assertion,
        saml("AuthnStatement"),
        {
            "AuthnInstant": saml_instant(facts.authn_instant),
            "SessionIndex": facts.session_index,
            "SessionNotOnOrAfter": saml_instant(facts.session_not_on_or_after),
        },
    )
    context = child(statement, saml("AuthnContext"))
    child(context, saml("AuthnContextClassRef"), text=facts.authn_class)
    released = [(name, values) for name, values in sorted(attributes.items()) if name in SAML_NAMES]
    if released:
        attribute_statement = child(assertion, saml("AttributeStatement"))
        for name, values in released:
            attribute = child(
                attribute_statement,
                saml("Attribute"),
                {"Name": SAML_NAMES[name], "NameFormat": NAME_FORMAT_URI, "FriendlyName": name},
            )
            for value in values:
                child(attribute, saml("AttributeValue"), {_XSI_TYPE: "xs:string"}, value)
    return assertion


def _sp_cert_file(idp: IdentityProvider, certificate: str) -> str:
    """The SP's encryption certificate as a file, as the backends take it; named after its
    digest so each is written once and the backend's per-file cache keeps working."""
    wrapped, _ = get_pem_wrapped_unwrapped(certificate)
    directory = Path(idp.settings.var_dir) / "saml" / "sp-certificates"
    path = directory / (hashlib.sha256(wrapped.encode()).hexdigest() + ".pem")
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{message_id()}.tmp")
        partial.write_text(wrapped)
        partial.replace(path)
    return str(path)


def authn_response(
    idp: IdentityProvider,
    *,
    sp_entity_id: str,
    in_response_to: str | None,
    acs_url: str,
    name_id: IssuedNameId,
    attributes: dict[str, list[str]],
    facts: AuthnFacts,
    encrypt_with: str | None = None,
    now: dt.datetime | None = None,
) -> bytes:
    """A successful Response, signed, holding one signed assertion (encrypted to
    ``encrypt_with``, the SP's certificate, when given) for ``acs_url``."""
    now = now or dt.datetime.now(dt.UTC)
    response = protocol_message(
        "Response", idp, now=now, destination=acs_url, in_response_to=in_response_to
    )
    status(response, SUCCESS)
    assertion = _assertion(
        idp,
        sp_entity_id=sp_entity_id,
        in_response_to=in_response_to,
        acs_url=acs_url,
        name_id=name_id,
        attributes=attributes,
        facts=facts,
        now=now,
    )
    if encrypt_with is None:
        response.append(assertion)
        return signed(idp, response, assertion, response)
    # Signed, then encrypted (the SP decrypts, then checks the assertion's signature), then
    # the Response signed over the EncryptedAssertion.
    if not isinstance(idp.crypto, InProcessBackend):
        return _encrypted_by_backend(idp, response, assertion, encrypt_with)
    xmldsig.add_signature_template(assertion, idp.keys.cert_pem)
    xmldsig.sign_in_place(assertion, idp.keys.key_pem)
    wrapped, _ = get_pem_wrapped_unwrapped(encrypt_with)
    # Encrypted while it is a document of its own, with all its namespace declarations.
    response.append(xmldsig.encrypt_assertion_in_place(assertion, wrapped.encode("ascii")))
    return signed(idp, response, response)


def _encrypted_by_backend(
    idp: IdentityProvider, response: etree._Element, assertion: etree._Element, certificate: str
) -> bytes:
    """The encrypted path through pysaml2's backend interface (the ``xmlsec1`` fallback): the
    assertion signed and encrypted as a document of its own, then put in the Response."""
    xmldsig.add_signature_template(assertion, idp.keys.cert_pem)
    document = as_bytes(
        idp.crypto.sign_statement(
            xmldsig.serialize(assertion),
            f"{SAML_NS}:Assertion",
            str(idp.keys.key_file),
            assertion.get("ID"),
        )
    )
    _, unwrapped = get_pem_wrapped_unwrapped(certificate)
    encrypted = idp.crypto.encrypt_assertion(
        document.decode("utf-8"),  # pysaml2 writes str() of it to the file
        _sp_cert_file(idp, certificate),
        pre_encryption_part(msg_enc=AES128_GCM, key_enc=RSA_OAEP, encrypt_cert=unwrapped),
        key_type="aes-128",
        node_xpath="/*",
    )
    wrapper = child(response, saml("EncryptedAssertion"))
    wrapper.append(xmldsig.parse(as_bytes(encrypted), xmldsig.XmlEncryptionError))
    return signed(idp, response, response)


def status_response(
    idp: IdentityProvider,
    *,
    in_response_to: str | None,
    acs_url: str,
    error: SamlStatusError,
    now: dt.datetime | None = None,
) -> bytes:
    """A signed Response that carries only a failure status (core 3.2.2.2)."""
    response = protocol_message(
        "Response",
        idp,
        now=now or dt.datetime.now(dt.UTC),
        destination=acs_url,
        in_response_to=in_response_to,
    )
    status(response, error.top, error.second, error.message)
    return signed(idp, response, response)
