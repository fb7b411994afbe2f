"""The HTTP-Redirect and HTTP-POST bindings (SAML bindings 3.4 and 3.5), done by hand where
pysaml2's versions are unsafe or fragile:

- pysaml2 inflates a Redirect message without a size limit (a deflate bomb of a few KiB
  would inflate to gigabytes): here inflation stops at ``MAX_XML_BYTES``;
- it checks a Redirect signature over values it re-encodes itself, which breaks whenever
  the SP percent-encoded differently: here it is checked over the query string's raw octets,
  as bindings 3.4.4.1 requires.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus

from sso.protocols.saml.errors import SamlRequestError
from sso.security import query_signature

MAX_ENCODED_BYTES = 128 * 1024  # a SAMLRequest/SAMLResponse field, as received
MAX_XML_BYTES = 256 * 1024  # the message once decoded and inflated
MAX_RELAY_STATE = 1024  # bindings 3.4.3 / 3.5.3: 80 bytes is the minimum an IdP must take

_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


def check_xml(xml: bytes) -> bytes:
    """Refuse what no SAML message contains: a DTD (the door to XXE and entity expansion)."""
    if len(xml) > MAX_XML_BYTES:
        raise SamlRequestError("the SAML message is too large")
    # SAML messages are UTF-8 (or its ASCII subset): another encoding (UTF-16...) would hide a
    # DTD from the search below.
    if b"\x00" in xml or xml.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SamlRequestError("the SAML message is not UTF-8")
    declaration = re.match(rb"<\?xml[^>]*encoding=[\"']([A-Za-z0-9._-]+)", xml)
    if declaration and declaration.group(1).lower() not in (b"utf-8", b"utf8", b"us-ascii"):
        raise SamlRequestError("the SAML message is not UTF-8")
    if _DOCTYPE.search(xml):
        raise SamlRequestError("the SAML message carries a DTD, which SAML forbids")
    return xml


def _b64decode(value: str) -> bytes:
    if len(value) > MAX_ENCODED_BYTES:
        raise SamlRequestError("the SAML message is too large")
    try:
        return base64.b64decode(value.encode("ascii"), validate=False)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise SamlRequestError("the SAML message is not valid base64") from exc


def decode_redirect(value: str) -> bytes:
    """A Redirect-binding message: base64, then raw DEFLATE (bindings 3.4.4.1), bounded."""
    compressed = _b64decode(value)
    inflater = zlib.decompressobj(-15)
    try:
        xml = inflater.decompress(compressed, MAX_XML_BYTES + 1)
    except zlib.error as exc:
        raise SamlRequestError("the SAML message is not DEFLATE-compressed") from exc
    if len(xml) > MAX_XML_BYTES or inflater.unconsumed_tail:
        raise SamlRequestError("the SAML message inflates beyond what any SAML message needs")
    return check_xml(xml)


def decode_post(value: str) -> bytes:
    """A POST-binding message: base64 of the XML (bindings 3.5.4)."""
    return check_xml(_b64decode(value))


def encode_redirect(xml: bytes) -> str:
    """Raw DEFLATE then base64, for a message we send by Redirect."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(xml) + compressor.flush()).decode("ascii")


def encode_post(xml: bytes) -> str:
    """Base64, for a message we send by POST."""
    return base64.b64encode(xml).decode("ascii")


def check_relay_state(relay_state: str | None) -> str | None:
    """RelayState is opaque, but bounded."""
    if relay_state is not None and len(relay_state) > MAX_RELAY_STATE:
        raise SamlRequestError("RelayState is too long")
    return relay_state


@dataclass(frozen=True)
class RedirectMessage:
    """The parts of a Redirect-binding query string, raw (still percent-encoded) and decoded."""

    kind: str  # "SAMLRequest" or "SAMLResponse"
    message: str
    relay_state: str | None
    sig_alg: str | None
    signature: bytes | None
    signed_octets: bytes | None  # what the signature covers, exactly as the SP sent it


def parse_redirect_query(query_string: bytes) -> RedirectMessage:
    """Split a Redirect-binding query string keeping each value's original encoding."""
    raw: dict[str, bytes] = {}
    for part in query_string.split(b"&"):
        name, _, value = part.partition(b"=")
        key = unquote_plus(name.decode("ascii", "replace"))
        if key in raw:
            raise SamlRequestError(f"the parameter {key} is given more than once")
        raw[key] = value
    kind = "SAMLRequest" if "SAMLRequest" in raw else "SAMLResponse"
    if kind not in raw:
        raise SamlRequestError("no SAMLRequest or SAMLResponse in the request")
    if len(raw[kind]) > MAX_ENCODED_BYTES * 3:
        raise SamlRequestError("the SAML message is too large")

    def text(name: str) -> str | None:
        value = raw.get(name)
        return None if value is None else unquote_plus(value.decode("ascii", "replace"))

    signature = None
    signed_octets = None
    if "Signature" in raw:
        try:
            signature = base64.b64decode(text("Signature") or "", validate=False)
        except (binascii.Error, ValueError) as exc:
            raise SamlRequestError("the Signature parameter is not valid base64") from exc
        # Bindings 3.4.4.1: the octets are built from the values as they were encoded.
        parts = [b"%s=%s" % (kind.encode(), raw[kind])]
        if "RelayState" in raw:
            parts.append(b"RelayState=" + raw["RelayState"])
        if "SigAlg" not in raw:
            raise SamlRequestError("a Signature without SigAlg")
        parts.append(b"SigAlg=" + raw["SigAlg"])
        signed_octets = b"&".join(parts)
    return RedirectMessage(
        kind=kind,
        message=text(kind) or "",
        relay_state=check_relay_state(text("RelayState")),
        sig_alg=text("SigAlg"),
        signature=signature,
        signed_octets=signed_octets,
    )


def verify_redirect_signature(message: RedirectMessage, certificates: list[str]) -> bool:
    """Whether the query string is signed by one of the SP's signing certificates."""
    if message.signature is None or message.signed_octets is None:
        return False
    if not query_signature.is_accepted(message.sig_alg):
        raise SamlRequestError(f"signature algorithm {message.sig_alg} is not accepted")
    return query_signature.verify(
        message.signed_octets, message.signature, message.sig_alg or "", certificates
    )


def signed_redirect_query(kind: str, xml: bytes, relay_state: str | None, key_pem: bytes) -> str:
    """The query string of a message we send by Redirect, signed with RSA-SHA256."""
    parts = [f"{kind}={quote(encode_redirect(xml), safe='')}"]
    if relay_state:
        parts.append(f"RelayState={quote(relay_state, safe='')}")
    parts.append(f"SigAlg={quote(query_signature.RSA_SHA256, safe='')}")
    signature = query_signature.sign("&".join(parts).encode("ascii"), key_pem)
    return "&".join(parts) + "&Signature=" + quote(base64.b64encode(signature), safe="")
