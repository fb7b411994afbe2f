"""``/samlValidate``: SAML 1.1 ticket validation (CAS Protocol Specification 3.0.3, section 4.2).

"``/samlValidate`` checks the validity of a Service Ticket by a SAML 1.1 request document
provided by a HTTP POST. A SAML 1.1 response document MUST be returned."

- :func:`parse_saml_request` / :func:`read_saml_request` read the SOAP 1.1 envelope of
  section 4.2.4 (the ``TARGET`` service comes from the query string, not from here).
- :func:`render_saml_success` writes the response of section 4.2.5 as Apereo CAS does: SOAP
  envelope, ``samlp:Response`` with ``samlp:Success``, an assertion with conditions, an
  ``AttributeStatement`` (attributes in the ``http://www.ja-sig.org/products/cas/`` namespace,
  section 4.2.5.1) and an ``AuthenticationStatement``.
- :func:`render_saml_failure` writes a denial without any ``NameIdentifier``: phpCAS takes the
  mere presence of that element as success.

Send both as :data:`SAML_MEDIA_TYPE` (SOAP 1.1 is ``text/xml``), UTF-8.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden
from defusedxml.ElementTree import fromstring

from sso.protocols.cas.errors import InvalidRequest
from sso.protocols.cas.responses import format_instant, xml_attr, xml_text

SOAP_ENVELOPE_NAMESPACE: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SAML1_PROTOCOL_NAMESPACE: Final = "urn:oasis:names:tc:SAML:1.0:protocol"
SAML1_ASSERTION_NAMESPACE: Final = "urn:oasis:names:tc:SAML:1.0:assertion"
CAS_ATTRIBUTE_NAMESPACE: Final = "http://www.ja-sig.org/products/cas/"
CONFIRMATION_METHOD_ARTIFACT: Final = "urn:oasis:names:tc:SAML:1.0:cm:artifact"
AUTHN_METHOD_PASSWORD: Final = "urn:oasis:names:tc:SAML:1.0:am:password"  # noqa: S105
AUTHN_METHOD_UNSPECIFIED: Final = "urn:oasis:names:tc:SAML:1.0:am:unspecified"

SAML_MEDIA_TYPE: Final = "text/xml; charset=utf-8"
MAX_REQUEST_BYTES: Final = 64 * 1024
"""Largest request body read; a real request is about 500 bytes."""

_ENVELOPE: Final = f"{{{SOAP_ENVELOPE_NAMESPACE}}}Envelope"
_BODY: Final = f"{{{SOAP_ENVELOPE_NAMESPACE}}}Body"
_REQUEST: Final = f"{{{SAML1_PROTOCOL_NAMESPACE}}}Request"
_ARTIFACT: Final = f"{{{SAML1_PROTOCOL_NAMESPACE}}}AssertionArtifact"


@dataclass(frozen=True, slots=True)
class SamlRequest:
    """What a ``/samlValidate`` request carries (section 4.2.3)."""

    artifact: str
    """``samlp:AssertionArtifact``: the service ticket, surrounding whitespace removed."""
    request_id: str | None
    """``RequestID``, to echo as the response's ``InResponseTo``; ``None`` when absent."""


def read_saml_request(body: bytes) -> SamlRequest:
    """Read the SOAP 1.1 envelope around a SAML 1.x ``samlp:Request`` (sections 4.2.2-4.2.4).

    Parsed with defusedxml with DTDs, entity declarations and external references forbidden.
    Raises :class:`~sso.protocols.cas.errors.InvalidRequest` for an empty or oversized
    (> :data:`MAX_REQUEST_BYTES`) body, a body that is not well-formed XML or holds a DTD or
    entity, an envelope not shaped ``soap:Envelope/soap:Body/samlp:Request``, and a request
    without exactly one non-empty ``samlp:AssertionArtifact``.

    Lenient where real clients differ: ``RequestID`` and ``IssueInstant`` are not checked
    (python-cas sends a UUID and a local time without a zone; phpCAS always sends the same
    fixed ``RequestID``), and the artifact may be surrounded by whitespace.
    """
    if len(body) > MAX_REQUEST_BYTES:
        raise InvalidRequest(f"The SAML request is larger than {MAX_REQUEST_BYTES} bytes.")
    if not body.strip():
        raise InvalidRequest("The SAML request body is empty.")
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DTDForbidden as exc:
        raise InvalidRequest("The SAML request must not contain a DTD.") from exc
    except EntitiesForbidden as exc:
        raise InvalidRequest("The SAML request must not declare entities.") from exc
    except DefusedXmlException as exc:
        raise InvalidRequest("The SAML request uses forbidden XML constructs.") from exc
    except (ParseError, ValueError) as exc:
        raise InvalidRequest("The SAML request is not well-formed XML.") from exc

    if root.tag != _ENVELOPE:
        raise InvalidRequest("The SAML request is not a SOAP 1.1 envelope.")
    envelope_body = _only_child(root, _BODY, "The SOAP envelope needs exactly one Body.")
    request = _single_element(
        envelope_body, _REQUEST, "The SOAP Body must hold exactly one SAML 1.x samlp:Request."
    )
    major_version = request.get("MajorVersion")
    if major_version is not None and major_version.strip() != "1":
        raise InvalidRequest("The samlp:Request must be SAML version 1.x.")

    artifacts = request.findall(_ARTIFACT)
    if len(artifacts) != 1:
        raise InvalidRequest("The samlp:Request must carry exactly one samlp:AssertionArtifact.")
    artifact_element = artifacts[0]
    artifact = (artifact_element.text or "").strip()
    if len(artifact_element) or not artifact:
        raise InvalidRequest("The samlp:AssertionArtifact must hold the service ticket.")

    request_id = (request.get("RequestID") or "").strip() or None
    return SamlRequest(artifact=artifact, request_id=request_id)


def parse_saml_request(body: bytes) -> str:
    """The service ticket of a ``/samlValidate`` request; see :func:`read_saml_request`."""
    return read_saml_request(body).artifact


def _only_child(parent: Element, tag: str, problem: str) -> Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise InvalidRequest(problem)
    return found[0]


def _single_element(parent: Element, tag: str, problem: str) -> Element:
    children = list(parent)
    if len(children) != 1 or children[0].tag != tag:
        raise InvalidRequest(problem)
    return children[0]


# --- responses ----------------------------------------------------------------------------

_SOAP_OPEN: Final = (
    f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP_ENVELOPE_NAMESPACE}">'
    "<SOAP-ENV:Header/><SOAP-ENV:Body>"
)
_SOAP_CLOSE: Final = "</SOAP-ENV:Body></SOAP-ENV:Envelope>\n"
_RESPONSE_NAMESPACES: Final = (
    f'xmlns:samlp="{SAML1_PROTOCOL_NAMESPACE}" xmlns:saml="{SAML1_ASSERTION_NAMESPACE}"'
    ' xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
    ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)
_ATTRIBUTE_NAMESPACE_ATTR: Final = xml_attr(CAS_ATTRIBUTE_NAMESPACE)


def _response_open(response_id: str, in_response_to: str | None, now: datetime) -> str:
    in_response = "" if in_response_to is None else f" InResponseTo={xml_attr(in_response_to)}"
    return (
        f"<samlp:Response {_RESPONSE_NAMESPACES} IssueInstant={xml_attr(format_instant(now))}"
        f' MajorVersion="1" MinorVersion="1" ResponseID={xml_attr(response_id)}{in_response}'
    )


def _subject(user: str) -> str:
    return (
        f"<saml:Subject><saml:NameIdentifier>{xml_text(user)}</saml:NameIdentifier>"
        "<saml:SubjectConfirmation><saml:ConfirmationMethod>"
        f"{CONFIRMATION_METHOD_ARTIFACT}</saml:ConfirmationMethod>"
        "</saml:SubjectConfirmation></saml:Subject>"
    )


def render_saml_success(
    *,
    user: str,
    attributes: Mapping[str, Sequence[str]],
    service: str,
    issuer: str,
    authn_instant: datetime,
    auth_method: str,
    now: datetime,
    lifetime_seconds: int,
    in_response_to: str | None,
    response_id: str,
    assertion_id: str,
) -> str:
    """A successful ``/samlValidate`` answer (section 4.2.5), as Apereo CAS builds it.

    - ``samlp:Response`` (``Recipient`` = ``service``, ``InResponseTo`` = the request's
      ``RequestID`` when there is one) with ``samlp:StatusCode Value="samlp:Success"``.
    - ``saml:Assertion`` (SAML 1.1) issued by ``issuer`` at ``now``, valid from ``now`` for
      ``lifetime_seconds`` (``saml:Conditions``) for the audience ``service``.
    - ``saml:AttributeStatement``: the subject (``NameIdentifier`` = ``user``, confirmation
      method ``urn:oasis:names:tc:SAML:1.0:cm:artifact``) and one ``saml:Attribute`` per
      attribute, in order, with ``AttributeNamespace="http://www.ja-sig.org/products/cas/"``
      and one ``saml:AttributeValue`` per value. Section 4.2.5.1: a server supporting
      Remember-Me MUST include ``longTermAuthenticationRequestTokenUsed``; the caller adds it.
      Attributes without values are left out (python-cas fails on an empty attribute) and
      the statement is left out when none remain, since SAML 1.1 requires an attribute in it.
    - ``saml:AuthenticationStatement`` with ``auth_method`` (for example
      :data:`AUTHN_METHOD_PASSWORD`) at ``authn_instant``, and the same subject.

    Datetimes must be timezone-aware. The ids should be NCNames (``xs:ID``).
    """
    if lifetime_seconds <= 0:
        raise ValueError("lifetime_seconds must be positive")
    issued = format_instant(now)
    subject = _subject(user)
    parts = [
        _SOAP_OPEN,
        _response_open(response_id, in_response_to, now),
        f" Recipient={xml_attr(service)}>",
        '<samlp:Status><samlp:StatusCode Value="samlp:Success"/></samlp:Status>',
        f"<saml:Assertion AssertionID={xml_attr(assertion_id)} IssueInstant={xml_attr(issued)}",
        f' Issuer={xml_attr(issuer)} MajorVersion="1" MinorVersion="1">',
        f"<saml:Conditions NotBefore={xml_attr(issued)} NotOnOrAfter=",
        xml_attr(format_instant(now + timedelta(seconds=lifetime_seconds))),
        "><saml:AudienceRestrictionCondition><saml:Audience>",
        xml_text(service),
        "</saml:Audience></saml:AudienceRestrictionCondition></saml:Conditions>",
    ]
    statement: list[str] = []
    for name, values in attributes.items():
        if isinstance(values, str):
            values = (values,)
        if not name or len(values) == 0:
            continue
        statement += (
            f"<saml:Attribute AttributeName={xml_attr(name)}",
            f" AttributeNamespace={_ATTRIBUTE_NAMESPACE_ATTR}>",
        )
        for value in values:
            statement += (
                '<saml:AttributeValue xsi:type="xsd:string">',
                xml_text(value),
                "</saml:AttributeValue>",
            )
        statement.append("</saml:Attribute>")
    if statement:
        parts += ("<saml:AttributeStatement>", subject, *statement, "</saml:AttributeStatement>")
    parts += (
        f"<saml:AuthenticationStatement AuthenticationInstant="
        f"{xml_attr(format_instant(authn_instant))}"
        f" AuthenticationMethod={xml_attr(auth_method)}>",
        subject,
        "</saml:AuthenticationStatement></saml:Assertion></samlp:Response>",
        _SOAP_CLOSE,
    )
    return "".join(parts)


def render_saml_failure(
    *,
    code: str,
    message: str,
    response_id: str,
    in_response_to: str | None,
    now: datetime,
) -> str:
    """A failed ``/samlValidate`` answer: a ``samlp:Response`` without assertion.

    The status code is ``samlp:RequestDenied``, as Apereo CAS answers every validation
    failure, or ``samlp:Responder`` when ``code`` is ``INTERNAL_ERROR`` (the fault is ours).
    ``samlp:StatusMessage`` reads ``"CODE: message"``, keeping the CAS error code of section
    2.5.3 visible. There is no ``NameIdentifier`` anywhere, which is what phpCAS checks.
    """
    status = "samlp:Responder" if code == "INTERNAL_ERROR" else "samlp:RequestDenied"
    return (
        f"{_SOAP_OPEN}{_response_open(response_id, in_response_to, now)}>"
        f'<samlp:Status><samlp:StatusCode Value="{status}"/>'
        f"<samlp:StatusMessage>{xml_text(f'{code}: {message}')}</samlp:StatusMessage>"
        f"</samlp:Status></samlp:Response>{_SOAP_CLOSE}"
    )
