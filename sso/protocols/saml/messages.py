"""Our SAML messages as lxml trees: what every Response and LogoutRequest of ours shares
(namespaces, IDs, instants, the Issuer, the Status) and their signing.

Built with lxml rather than pysaml2's classes: a pysaml2 object is written out as a string
and parsed again for each signature, about as much CPU as both RSA signatures of a Response
(bench/README.md). Here the tree is built once, signed in place innermost first through the
``xmlsec`` binding, and serialised once. With the ``xmlsec1`` backend (the fallback) the same
tree goes through pysaml2's backend interface instead, one ``xmlsec1`` run per signature.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping

from lxml import etree

from sso.protocols.saml.crypto import InProcessBackend
from sso.protocols.saml.idp import IdentityProvider
from sso.security import xmldsig

SAMLP_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML_NS = xmldsig.SAML_ASSERTION_NS
XS_NS = "http://www.w3.org/2001/XMLSchema"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
# The protocol element declares samlp; an assertion declares what it uses itself, so that it
# still reads once decrypted apart from the Response (as Shibboleth's IdP writes them).
PROTOCOL_NSMAP = {"samlp": SAMLP_NS, "saml": SAML_NS}
ASSERTION_NSMAP = {"saml": SAML_NS, "xs": XS_NS, "xsi": XSI_NS}

SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
ENTITY = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"


def samlp(local: str) -> str:
    """A protocol element's name, ``{urn:…:protocol}Local``."""
    return f"{{{SAMLP_NS}}}{local}"


def saml(local: str) -> str:
    """An assertion element's name, ``{urn:…:assertion}Local``."""
    return f"{{{SAML_NS}}}{local}"


def message_id() -> str:
    """A fresh ID (core 1.3.4: 128 random bits or more; an xs:ID must not start with a digit)."""
    return "_" + secrets.token_hex(20)


def saml_instant(moment: dt.datetime) -> str:
    """xs:dateTime in UTC, as SAML core 1.3.3 asks."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def child(
    parent: etree._Element,
    tag: str,
    attributes: Mapping[str, str | None] | None = None,
    text: str | None = None,
) -> etree._Element:
    """A child element; attributes whose value is None are left out."""
    element = etree.SubElement(parent, tag)
    if attributes:
        for name, value in attributes.items():
            if value is not None:
                element.set(name, value)
    if text is not None:
        element.text = text
    return element


def protocol_message(
    local: str,
    idp: IdentityProvider,
    *,
    now: dt.datetime,
    destination: str | None,
    in_response_to: str | None = None,
    **attributes: str | None,
) -> etree._Element:
    """The root of a protocol message (core 3.2.1 / 3.2.2) with its Issuer."""
    root = etree.Element(samlp(local), nsmap=PROTOCOL_NSMAP)
    for name, value in {
        "ID": message_id(),
        "Version": "2.0",
        "IssueInstant": saml_instant(now),
        "Destination": destination,
        "InResponseTo": in_response_to,
        **attributes,
    }.items():
        if value is not None:
            root.set(name, value)
    issuer(root, idp)
    return root


def issuer(parent: etree._Element, idp: IdentityProvider) -> etree._Element:
    """Our ``<saml:Issuer>`` (core 2.2.5), of format entity."""
    return child(parent, saml("Issuer"), {"Format": ENTITY}, idp.entity_id)


def status(
    parent: etree._Element, top: str, second: str | None = None, message: str | None = None
) -> etree._Element:
    """A ``<samlp:Status>`` (core 3.2.2.1), with a second-level code when given."""
    element = child(parent, samlp("Status"))
    code = child(element, samlp("StatusCode"), {"Value": top})
    if second is not None:
        child(code, samlp("StatusCode"), {"Value": second})
    if message is not None:
        child(element, samlp("StatusMessage"), text=message)
    return element


def signed(idp: IdentityProvider, root: etree._Element, *elements: etree._Element) -> bytes:
    """``root``'s document with an enveloped signature on each of ``elements`` (each with an
    ID), signed in the order given: the inner element first."""
    for element in elements:
        xmldsig.add_signature_template(element, idp.keys.cert_pem)
    if isinstance(idp.crypto, InProcessBackend):
        for element in elements:
            xmldsig.sign_in_place(element, idp.keys.key_pem)
        return xmldsig.serialize(root)
    document = xmldsig.serialize(root)
    for element in elements:
        namespace, local = etree.QName(element).namespace, etree.QName(element).localname
        document = as_bytes(
            idp.crypto.sign_statement(
                document, f"{namespace}:{local}", str(idp.keys.key_file), element.get("ID")
            )
        )
    return document


def as_bytes(xml: str | bytes) -> bytes:
    """pysaml2's backends hand signed documents back as str or bytes, depending on the path."""
    return xml.encode("utf-8") if isinstance(xml, str) else xml
