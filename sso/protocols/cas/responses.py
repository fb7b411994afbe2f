"""CAS service responses, built as text (CAS Protocol Specification 3.0.3).

Sections implemented here:

- 2.4.2 ``/validate`` (CAS 1.0): "yes<LF>" / "no<LF>" followed by the user's name.
- 2.5.2, 2.6.2, 2.8 ``/serviceValidate``, ``/proxyValidate``, ``/p3/*``: the
  ``cas:serviceResponse`` document of Appendix A, in XML or JSON (the ``format`` parameter of
  2.5.1).
- 2.5.5 / Appendix A ``cas:attributes`` [CAS 3.0].
- 2.7.2 ``/proxy``: ``cas:proxySuccess`` / ``cas:proxyFailure``.
- Appendix C: the single-logout ``samlp:LogoutRequest``.

Documents are assembled from string templates, not a DOM: validation answers are a hot path.
Every value that reaches the XML goes through :func:`xml_text` or :func:`xml_attr`, which escape
markup and replace the characters XML 1.0 cannot carry at all, so the output is always
well-formed whatever a directory holds.

Interoperability choices (see ``shared/notes/cas-interop.md``):

- The prefix is always ``cas:`` and the documents are compact (no whitespace between elements):
  phpCAS strips the literal ``cas:`` prefix to recognise ``user``/``proxies``/
  ``proxyGrantingTicket`` and would see whitespace-only text nodes as attribute values.
- No ``<?xml ...?>`` declaration: python-cas hands the single-logout document to
  ``lxml.etree.fromstring`` as ``str``, which refuses a ``str`` carrying an encoding declaration.
  Bodies are UTF-8, the XML default.
- CAS 3.0 attribute names must be XML NCNames and not the name of a CAS protocol element
  (:data:`RESERVED_ATTRIBUTE_NAMES`); others are left out of the response (both formats), so a
  bad name in a directory never breaks a login. Services/admin code should call
  :func:`is_valid_attribute_name` when a release policy is configured.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final, Literal
from xml.sax.saxutils import escape, quoteattr

Format = Literal["XML", "JSON"]
"""The two response formats of section 2.5.1 (``format`` parameter); XML is the default."""

CAS_NAMESPACE: Final = "http://www.yale.edu/tp/cas"
XML_MEDIA_TYPE: Final = "application/xml; charset=utf-8"
JSON_MEDIA_TYPE: Final = "application/json"
TEXT_MEDIA_TYPE: Final = "text/plain; charset=utf-8"

SAML2_PROTOCOL_NAMESPACE: Final = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML2_ASSERTION_NAMESPACE: Final = "urn:oasis:names:tc:SAML:2.0:assertion"

RESERVED_ATTRIBUTE_NAMES: Final = frozenset(
    {
        # Appendix A element names: clients look these up anywhere under the response
        # (phpCAS takes any <proxy> as a proxy-chain hop and any <authenticationFailure> as a
        # failure; it silently drops <user>, <proxies> and <proxyGrantingTicket>).
        "serviceResponse",
        "authenticationSuccess",
        "authenticationFailure",
        "proxySuccess",
        "proxyFailure",
        "proxyTicket",
        "user",
        "attributes",
        "proxyGrantingTicket",
        "proxies",
        "proxy",
        # phpCAS reads <cas:attribute> as the legacy "name/value" attribute layout.
        "attribute",
    }
)
"""CAS 3.0 attribute names that would make a client misread the response."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """A response body and the media type to send it with."""

    body: str
    media_type: str


# --- XML text -----------------------------------------------------------------------------

# Characters XML 1.0 (section 2.2, production [2] Char) cannot carry, even as references.
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TEXT_ENTITIES: Final = {"\r": "&#13;"}  # a raw CR would be normalised away by the parser

_NAME_START: Final = (
    "A-Z_a-z\xc0-\xd6\xd8-\xf6\xf8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c\u200d"
    "\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff"
)
_NAME_CHAR: Final = _NAME_START + "\\-.0-9\xb7\u0300-\u036f\u203f\u2040"
_NCNAME: Final = re.compile(f"[{_NAME_START}][{_NAME_CHAR}]*")

_TICKET: Final = re.compile("[A-Za-z0-9-]+")  # section 3.7
_SAFE_ID: Final = re.compile("[A-Za-z_][A-Za-z0-9_.-]*")


def _xml_chars(value: str) -> str:
    """Replace characters outside XML 1.0's ``Char`` production with U+FFFD."""
    if _NOT_XML_CHAR.search(value) is None:
        return value
    return _NOT_XML_CHAR.sub("\ufffd", value)


def xml_text(value: str) -> str:
    """Escape ``value`` for use as element content (``&``, ``<``, ``>``, CR)."""
    return escape(_xml_chars(value), _TEXT_ENTITIES)


def xml_attr(value: str) -> str:
    """Escape and quote ``value`` as an attribute value, quotes included."""
    return quoteattr(_xml_chars(value))


@lru_cache(maxsize=4096)
def is_valid_attribute_name(name: str) -> bool:
    """Whether ``name`` can be released as ``<cas:NAME>`` (Appendix A, ``xs:any``).

    The name must be an XML NCName (a name without a colon, since it follows the ``cas:``
    prefix) and not one of :data:`RESERVED_ATTRIBUTE_NAMES`.
    """
    return (
        isinstance(name, str)
        and _NCNAME.fullmatch(name) is not None
        and name not in RESERVED_ATTRIBUTE_NAMES
    )


def format_instant(moment: datetime) -> str:
    """An ``xs:dateTime`` in UTC with millisecond precision and a ``Z``, as Apereo CAS writes.

    A naive datetime is refused: its zone cannot be known.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_format(value: str | None) -> Format | None:
    """Read the ``format`` request parameter (section 2.5.1).

    Absent or empty means ``XML``. Matching is case-insensitive, as in Apereo CAS. Returns
    ``None`` for an unsupported value; the spec then requires an error response
    (``INVALID_REQUEST``), rendered in XML.
    """
    if value is None or value == "":
        return "XML"
    upper = value.upper()
    if upper == "XML":
        return "XML"
    if upper == "JSON":
        return "JSON"
    return None


def _json(document: object) -> Rendered:
    return Rendered(json.dumps(document, separators=(",", ":")), JSON_MEDIA_TYPE)


def released_attributes(
    attributes: Mapping[str, Sequence[str]],
) -> Iterator[tuple[str, Sequence[str]]]:
    """The attributes that go on the wire, in the caller's order.

    Names failing :func:`is_valid_attribute_name` and attributes without values are left out;
    a bare string is taken as a single value rather than a sequence of characters.
    """
    for name, values in attributes.items():
        if not is_valid_attribute_name(name):
            continue
        if isinstance(values, str):
            values = (values,)
        if len(values) == 0:
            continue
        yield name, values


# --- 2.4 /validate [CAS 1.0] --------------------------------------------------------------


def render_validate_v1(user: str | None) -> str:
    """The CAS 1.0 ``/validate`` answer (section 2.4.2): ``yes<LF>user<LF>`` or ``no<LF><LF>``.

    Send it as :data:`TEXT_MEDIA_TYPE`. A user name containing a line break cannot be
    represented (clients read the second line) and raises ``ValueError``.
    """
    if user is None:
        return "no\n\n"
    if "\n" in user or "\r" in user:
        raise ValueError("a CAS 1.0 user name cannot contain a line break")
    return f"yes\n{user}\n"


# --- 2.5 - 2.8 serviceResponse ------------------------------------------------------------

_XML_OPEN: Final = '<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">'
_XML_CLOSE: Final = "</cas:serviceResponse>\n"


def render_authentication_success(
    *,
    user: str,
    attributes: Mapping[str, Sequence[str]] | None,
    pgt_iou: str | None,
    proxies: Sequence[str],
    fmt: Format,
) -> Rendered:
    """``cas:authenticationSuccess`` (sections 2.5.2, 2.6.2, 2.8; Appendix A).

    - ``attributes=None`` answers CAS 2.0 (``/serviceValidate``, ``/proxyValidate``): no
      ``cas:attributes`` block. A mapping answers CAS 3.0 (section 2.5.5): ``cas:attributes``
      holds the attributes in the mapping's order - the caller puts ``authenticationDate``,
      ``longTermAuthenticationRequestTokenUsed`` and ``isFromNewLogin`` first - and a
      multi-valued attribute repeats its element (section 2.5.7). See
      :func:`released_attributes` for what is left out.
    - ``pgt_iou``: the ``cas:proxyGrantingTicket`` IOU, only once the callback of section 2.5.4
      answered 200.
    - ``proxies``: most recently visited proxy first (note in section 2.6.2); ``cas:proxies``
      is written only when there is at least one.

    JSON (sections 2.5.2, 2.5.7): ``{"serviceResponse": {"authenticationSuccess": {...}}}`` with
    the same members in schema order; every attribute value is a list.
    """
    if fmt == "JSON":
        success: dict[str, object] = {"user": user}
        if attributes is not None:
            success["attributes"] = {
                name: list(values) for name, values in released_attributes(attributes)
            }
        if pgt_iou is not None:
            success["proxyGrantingTicket"] = pgt_iou
        if proxies:
            success["proxies"] = list(proxies)
        return _json({"serviceResponse": {"authenticationSuccess": success}})

    parts = [_XML_OPEN, "<cas:authenticationSuccess><cas:user>", xml_text(user), "</cas:user>"]
    if attributes is not None:
        parts.append("<cas:attributes>")
        for name, values in released_attributes(attributes):
            for value in values:
                parts += ("<cas:", name, ">", xml_text(value), "</cas:", name, ">")
        parts.append("</cas:attributes>")
    if pgt_iou is not None:
        parts += ("<cas:proxyGrantingTicket>", xml_text(pgt_iou), "</cas:proxyGrantingTicket>")
    if proxies:
        parts.append("<cas:proxies>")
        for proxy in proxies:
            parts += ("<cas:proxy>", xml_text(proxy), "</cas:proxy>")
        parts.append("</cas:proxies>")
    parts += ("</cas:authenticationSuccess>", _XML_CLOSE)
    return Rendered("".join(parts), XML_MEDIA_TYPE)


def render_authentication_failure(code: str, description: str, fmt: Format) -> Rendered:
    """``cas:authenticationFailure`` with its ``code`` attribute (sections 2.5.2, 2.5.3).

    JSON: ``{"serviceResponse": {"authenticationFailure": {"code": ..., "description": ...}}}``.
    Normally reached through :meth:`sso.protocols.cas.errors.CasError.render`.
    """
    if fmt == "JSON":
        failure = {"code": code, "description": description}
        return _json({"serviceResponse": {"authenticationFailure": failure}})
    body = (
        f"{_XML_OPEN}<cas:authenticationFailure code={xml_attr(code)}>"
        f"{xml_text(description)}</cas:authenticationFailure>{_XML_CLOSE}"
    )
    return Rendered(body, XML_MEDIA_TYPE)


def render_proxy_success(proxy_ticket: str, fmt: Format) -> Rendered:
    """``cas:proxySuccess`` / ``cas:proxyTicket``, the ``/proxy`` answer (section 2.7.2).

    JSON (not shown by the spec): ``{"serviceResponse": {"proxySuccess": {"proxyTicket": ...}}}``.
    """
    if fmt == "JSON":
        return _json({"serviceResponse": {"proxySuccess": {"proxyTicket": proxy_ticket}}})
    body = (
        f"{_XML_OPEN}<cas:proxySuccess><cas:proxyTicket>{xml_text(proxy_ticket)}"
        f"</cas:proxyTicket></cas:proxySuccess>{_XML_CLOSE}"
    )
    return Rendered(body, XML_MEDIA_TYPE)


def render_proxy_failure(code: str, description: str, fmt: Format) -> Rendered:
    """``cas:proxyFailure`` with its ``code`` attribute (sections 2.7.2, 2.7.3).

    The JSON shape is the one section 2.7.2 prints, whose member is ``authenticationFailure``
    (the XML schema's element stays ``proxyFailure``). Normally reached through
    :meth:`sso.protocols.cas.errors.CasError.render_proxy`.
    """
    if fmt == "JSON":
        failure = {"code": code, "description": description}
        return _json({"serviceResponse": {"authenticationFailure": failure}})
    body = (
        f"{_XML_OPEN}<cas:proxyFailure code={xml_attr(code)}>"
        f"{xml_text(description)}</cas:proxyFailure>{_XML_CLOSE}"
    )
    return Rendered(body, XML_MEDIA_TYPE)


# --- Appendix C: single logout ------------------------------------------------------------


def render_logout_request(*, request_id: str, issue_instant: datetime, session_index: str) -> str:
    """The single-logout ``samlp:LogoutRequest`` (section 2.3.3, Appendix C).

    POSTed as the ``logoutRequest`` form field to each service of the session.
    ``session_index`` is the service ticket the service validated. The document is one line
    with the exact text ``<samlp:SessionIndex>ST-...</samlp:SessionIndex>``: phpCAS finds the
    ticket with a line-bound text regex on that literal prefix, and url-decodes the (already
    decoded) field a second time, so the document must hold no ``+`` or ``%`` - hence the ``Z``
    time zone and the checks below, which raise ``ValueError``:

    - ``session_index`` must be a ticket (section 3.7: ``A-Z a-z 0-9 -``);
    - ``request_id`` must be a plain NCName (``[A-Za-z_][A-Za-z0-9_.-]*``), as ``ID`` is
      ``xs:ID``.
    """
    if _TICKET.fullmatch(session_index) is None:
        raise ValueError("session_index must be a CAS ticket (A-Z a-z 0-9 -)")
    if _SAFE_ID.fullmatch(request_id) is None:
        raise ValueError("request_id must match [A-Za-z_][A-Za-z0-9_.-]*")
    return (
        f'<samlp:LogoutRequest xmlns:samlp="{SAML2_PROTOCOL_NAMESPACE}" ID="{request_id}"'
        f' Version="2.0" IssueInstant="{format_instant(issue_instant)}">'
        f'<saml:NameID xmlns:saml="{SAML2_ASSERTION_NAMESPACE}">@NOT_USED@</saml:NameID>'
        f"<samlp:SessionIndex>{session_index}</samlp:SessionIndex>"
        "</samlp:LogoutRequest>"
    )
