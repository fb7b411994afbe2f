"""Our SAML Responses (SAML core 3.3.3 / profiles 4.1.4.2): built from pysaml2's classes,
signed and encrypted through the crypto backend the IdP installed.

Built here rather than by ``Server.create_authn_response``: that path runs pysaml2's release
policy and NameID database (ours are the registry's policy and our table), names no
AuthnContextClassRef of ours, picks its own SessionIndex (which single logout must know) and
encrypts with 3DES.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from saml2 import class_name, saml, samlp
from saml2.s_utils import sid
from saml2.sigver import (
    get_pem_wrapped_unwrapped,
    pre_encrypt_assertion,
    pre_encryption_part,
    pre_signature_part,
    signed_instance_factory,
)
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from sso.protocols.saml.attributes import NAME_FORMAT_URI, SAML_NAMES
from sso.protocols.saml.errors import SamlStatusError
from sso.protocols.saml.idp import IdentityProvider
from sso.protocols.saml.nameid import IssuedNameId

SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
ENTITY = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
PASSWORD_PROTECTED_TRANSPORT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"  # noqa: S105 - a URN
PASSWORD = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"  # noqa: S105 - a URN
AES128_GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
RSA_OAEP = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
CLOCK_SKEW = dt.timedelta(seconds=180)


def as_bytes(xml: str | bytes) -> bytes:
    """pysaml2 hands signed documents back as str or bytes, depending on the path."""
    return xml.encode("utf-8") if isinstance(xml, str) else xml


def saml_instant(moment: dt.datetime) -> str:
    """xs:dateTime in UTC, as SAML core 1.3.3 asks."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class AuthnFacts:
    """What the assertion says about the authentication (core 2.7.2)."""

    authn_instant: dt.datetime
    authn_class: str
    session_index: str
    session_not_on_or_after: dt.datetime


def _issuer(idp: IdentityProvider) -> saml.Issuer:
    return saml.Issuer(text=idp.entity_id, format=ENTITY)


def _attribute_statement(attributes: dict[str, list[str]]) -> saml.AttributeStatement:
    return saml.AttributeStatement(
        attribute=[
            saml.Attribute(
                name=SAML_NAMES[name],
                name_format=NAME_FORMAT_URI,
                friendly_name=name,
                attribute_value=[saml.AttributeValue(text=value) for value in values],
            )
            for name, values in sorted(attributes.items())
            if name in SAML_NAMES
        ]
    )


def _signature(idp: IdentityProvider, element_id: str, number: int) -> object:
    """A signature template; ``number`` tells the Response's and the assertion's Ids apart."""
    return pre_signature_part(
        element_id,
        idp.server.sec.my_cert,
        number,
        sign_alg=SIG_RSA_SHA256,
        digest_alg=DIGEST_SHA256,
    )


def _sp_cert_file(idp: IdentityProvider, certificate: str) -> str:
    """The SP's encryption certificate as a file, as the backends take it; named after its
    digest so each is written once and the backend's per-file cache keeps working."""
    wrapped, _ = get_pem_wrapped_unwrapped(certificate)
    directory = Path(idp.settings.var_dir) / "saml" / "sp-certificates"
    path = directory / (hashlib.sha256(wrapped.encode()).hexdigest() + ".pem")
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{sid()}.tmp")
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
    not_on_or_after = saml_instant(now + dt.timedelta(seconds=idp.settings.saml_response_lifetime))
    assertion_id, response_id = sid(), sid()
    assertion = saml.Assertion(
        id=assertion_id,
        version="2.0",
        issue_instant=saml_instant(now),
        issuer=_issuer(idp),
        subject=saml.Subject(
            name_id=saml.NameID(
                text=name_id.value,
                format=name_id.format,
                name_qualifier=name_id.name_qualifier,
                sp_name_qualifier=name_id.sp_name_qualifier,
            ),
            subject_confirmation=[
                saml.SubjectConfirmation(
                    method=BEARER,
                    subject_confirmation_data=saml.SubjectConfirmationData(
                        in_response_to=in_response_to,
                        recipient=acs_url,
                        not_on_or_after=not_on_or_after,
                    ),
                )
            ],
        ),
        conditions=saml.Conditions(
            not_before=saml_instant(now - CLOCK_SKEW),
            not_on_or_after=not_on_or_after,
            audience_restriction=[
                saml.AudienceRestriction(audience=[saml.Audience(text=sp_entity_id)])
            ],
        ),
        authn_statement=[
            saml.AuthnStatement(
                authn_instant=saml_instant(facts.authn_instant),
                session_index=facts.session_index,
                session_not_on_or_after=saml_instant(facts.session_not_on_or_after),
                authn_context=saml.AuthnContext(
                    authn_context_class_ref=saml.AuthnContextClassRef(text=facts.authn_class)
                ),
            )
        ],
    )
    if attributes:
        assertion.attribute_statement = [_attribute_statement(attributes)]
    assertion.signature = _signature(idp, assertion_id, 2)
    response = samlp.Response(
        id=response_id,
        version="2.0",
        issue_instant=saml_instant(now),
        destination=acs_url,
        in_response_to=in_response_to,
        issuer=_issuer(idp),
        status=samlp.Status(status_code=samlp.StatusCode(value=SUCCESS)),
        assertion=assertion,
    )
    response.signature = _signature(idp, response_id, 1)
    assertion_name = class_name(assertion)
    sec = idp.server.sec
    if encrypt_with is None:
        xml = signed_instance_factory(
            response, sec, [(assertion_name, assertion_id), (class_name(response), response_id)]
        )
        return as_bytes(xml)
    # Signed, then encrypted (the SP decrypts, then checks the assertion's signature), then
    # the Response signed over the EncryptedAssertion. The assertion carries its namespace
    # declarations itself, or it would not parse once decrypted apart from the Response.
    tag = assertion._to_element_tree().tag
    xml = pre_encrypt_assertion(
        response
    ).get_xml_string_with_self_contained_assertion_within_encrypted_assertion(tag)  # noqa: E501 - pysaml2's name
    xml = signed_instance_factory(xml, sec, [(assertion_name, assertion_id)])
    _, unwrapped = get_pem_wrapped_unwrapped(encrypt_with)
    xml = sec.encrypt_assertion(
        xml,
        _sp_cert_file(idp, encrypt_with),
        pre_encryption_part(msg_enc=AES128_GCM, key_enc=RSA_OAEP, encrypt_cert=unwrapped),
        key_type="aes-128",
    )
    xml = sec.sign_statement(xml, class_name(response), node_id=response_id)
    return as_bytes(xml)


def status_response(
    idp: IdentityProvider,
    *,
    in_response_to: str | None,
    acs_url: str,
    error: SamlStatusError,
    now: dt.datetime | None = None,
) -> bytes:
    """A signed Response that carries only a failure status (core 3.2.2.2)."""
    now = now or dt.datetime.now(dt.UTC)
    response_id = sid()
    status_code = samlp.StatusCode(value=error.top)
    if error.second:
        status_code.status_code = samlp.StatusCode(value=error.second)
    response = samlp.Response(
        id=response_id,
        version="2.0",
        issue_instant=saml_instant(now),
        destination=acs_url,
        in_response_to=in_response_to,
        issuer=_issuer(idp),
        status=samlp.Status(
            status_code=status_code, status_message=samlp.StatusMessage(text=error.message)
        ),
    )
    response.signature = _signature(idp, response_id, 1)
    xml = signed_instance_factory(response, idp.server.sec, [(class_name(response), response_id)])
    return as_bytes(xml)
