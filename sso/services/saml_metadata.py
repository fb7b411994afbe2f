"""SAML 2.0 metadata of a service provider: parsed and validated, without pysaml2.

What is read, by section of *Metadata for the OASIS SAML V2.0* (saml-metadata-2.0-os):

- 2.3.2 ``<md:EntityDescriptor>``: entityID, validUntil, cacheDuration (an
  ``<md:EntitiesDescriptor>`` holding exactly one entity is accepted too, 2.3.1);
- 2.4.4 ``<md:SPSSODescriptor>``: AuthnRequestsSigned, WantAssertionsSigned,
  AssertionConsumerService (2.2.3 indexed endpoints), SingleLogoutService (2.4.2),
  NameIDFormat, ``<md:KeyDescriptor>`` (2.4.1.1: use="signing"/"encryption"/both),
  AttributeConsumingService/RequestedAttribute (2.4.4.1, 2.4.4.2);
- 2.3.2.1 ``<md:Organization>``: OrganizationDisplayName, the name when no mdui:DisplayName;
- SAML V2.0 Metadata Extensions for Login and Discovery UI 1.0, 2.1.2: mdui:DisplayName;
- SAML V2.0 Metadata Extension for Entity Attributes 1.0, 2.4: entity categories
  (``http://macedir.org/entity-category``, REFEDS R&S) and the subject-id requirement of the
  SAML V2.0 Subject Identifier Attributes Profile 1.0, 3.4.

Untrusted input: the parser resolves no entity, loads no DTD, never goes to the network, and a
DOCTYPE is refused before parsing (no SAML document needs one; it is how XXE and "billion
laughs" get in). A signature, when the administrator requires one, is checked with the
configured certificate only, and what is read afterwards is the element that was verified.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

from lxml import etree

from sso.errors import SsoError

MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
MDUI_NS = "urn:oasis:names:tc:SAML:metadata:ui"
MDATTR_NS = "urn:oasis:names:tc:SAML:metadata:attribute"
SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
SAML2_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"

ENTITY_CATEGORY = "http://macedir.org/entity-category"
RESEARCH_AND_SCHOLARSHIP = "http://refeds.org/category/research-and-scholarship"
SUBJECT_ID_REQ = "urn:oasis:names:tc:SAML:profiles:subject-id:req"
SUBJECT_ID_REQUIREMENTS = ("subject-id", "pairwise-id", "any", "none")

DEFAULT_MAX_BYTES = 1024 * 1024
_Moment = TypeVar("_Moment", dt.datetime, dt.timedelta)
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
# xs:duration (XML Schema 2, 3.2.6) as cacheDuration uses it; years and months are
# approximated (365 and 30 days): they only bound a cache.
_DURATION = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)


class SpMetadataError(SsoError):
    """SP metadata that cannot be used, with the reason in ``message``.

    ``code`` names the kind of problem (pages translate it); ``message`` gives the details.
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Endpoint:
    """An endpoint (metadata 2.2.2), indexed for the ACS (2.2.3): index and isDefault."""

    binding: str
    location: str
    index: int | None = None
    is_default: bool | None = None  # absent is not "false" (2.2.3): it ranks in between
    response_location: str | None = None


@dataclass(frozen=True)
class RequestedAttribute:
    """An attribute the SP asks for (metadata 2.4.4.2)."""

    name: str
    name_format: str | None = None
    friendly_name: str | None = None
    required: bool = False


@dataclass(frozen=True)
class SpMetadata:
    """What the IdP needs from an SP's metadata."""

    entity_id: str
    display_names: dict[str, str]  # by xml:lang
    assertion_consumer_services: tuple[Endpoint, ...]
    single_logout_services: tuple[Endpoint, ...]
    signing_certs: tuple[str, ...]  # PEM
    encryption_certs: tuple[str, ...]  # PEM
    authn_requests_signed: bool
    want_assertions_signed: bool
    name_id_formats: tuple[str, ...]
    requested_attributes: tuple[RequestedAttribute, ...]
    entity_categories: tuple[str, ...]
    subject_id_requirement: str | None  # subject-id, pairwise-id, any, none; None if unsaid
    valid_until: dt.datetime | None
    cache_duration: dt.timedelta | None
    signed: bool = False  # whether a signature was verified with the configured certificate
    organization_names: dict[str, str] = field(default_factory=dict)

    def display_name(self, language: str = "fr") -> str:
        """The name to show: in ``language``, else English, else any, else the entityID."""
        for names in (self.display_names, self.organization_names):
            for lang in (language, "en"):
                if names.get(lang):
                    return names[lang]
            if names:
                return next(iter(names.values()))
        return self.entity_id

    @property
    def research_and_scholarship(self) -> bool:
        """Whether the SP carries the REFEDS R&S entity category."""
        return RESEARCH_AND_SCHOLARSHIP in self.entity_categories

    def default_acs(self) -> Endpoint:
        """The default ACS (2.2.3): the first isDefault="true", else the first not "false"."""
        services = self.assertion_consumer_services
        for acs in services:
            if acs.is_default:
                return acs
        for acs in services:
            if acs.is_default is None:
                return acs
        return services[0]


def parse_sp_metadata(
    document: bytes | str,
    *,
    signing_cert: str | bytes | None = None,
    now: dt.datetime | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    check_expiry: bool = True,
) -> SpMetadata:
    """Parse and validate one SP's metadata; raise :class:`SpMetadataError` with the reason.

    ``signing_cert`` (PEM): the document must carry a valid signature by this certificate.
    ``check_expiry=False`` reads a stored copy whose validUntil the caller checks itself.
    """
    if isinstance(document, str):
        document = document.encode("utf-8")
    if len(document) > max_bytes:
        raise SpMetadataError(
            "too_large", f"the metadata is larger than {max_bytes} bytes ({len(document)})"
        )
    root = _parse_xml(document)
    signed = False
    if signing_cert:
        root = _verified_root(document, root, signing_cert)
        signed = True
    entity = _entity_descriptor(root)
    metadata = _read_entity(entity, root, signed)
    if check_expiry and metadata.valid_until is not None:
        moment = now or dt.datetime.now(dt.UTC)
        if metadata.valid_until <= moment:
            raise SpMetadataError(
                "expired",
                f"the metadata expired on {metadata.valid_until.isoformat()} (validUntil)",
            )
    return metadata


def _parse_xml(document: bytes) -> etree._Element:
    if _DOCTYPE.search(document):
        raise SpMetadataError("doctype", "the metadata carries a DOCTYPE, which SAML forbids")
    # A parser per call: lxml parsers are not shared between threads.
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(document, parser)
    except etree.XMLSyntaxError as exc:
        raise SpMetadataError("not_xml", f"the metadata is not well-formed XML: {exc}") from exc
    except ValueError as exc:  # e.g. an encoding declaration lxml refuses
        raise SpMetadataError("not_xml", f"the metadata is not XML: {exc}") from exc
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # e.g. hidden in UTF-16
        raise SpMetadataError("doctype", "the metadata carries a DOCTYPE, which SAML forbids")
    return root


def _verified_root(
    document: bytes, root: etree._Element, signing_cert: str | bytes
) -> etree._Element:
    """The root element, as verified with ``signing_cert`` (metadata 3.1: signed as a whole)."""
    from sso.security import xmldsig

    if root.find(f"{{{DS_NS}}}Signature") is None:
        raise SpMetadataError(
            "unsigned", "the metadata is not signed, and a signature is required for this SP"
        )
    cert = signing_cert.encode("ascii") if isinstance(signing_cert, str) else signing_cert
    try:
        return xmldsig.verify(document, [cert], element_tag=root.tag)
    except xmldsig.XmlSecurityError as exc:
        raise SpMetadataError(
            "bad_signature",
            f"the metadata signature is not valid with the required certificate: {exc}",
        ) from exc


def _entity_descriptor(root: etree._Element) -> etree._Element:
    if root.tag == f"{{{MD_NS}}}EntityDescriptor":
        return root
    if root.tag == f"{{{MD_NS}}}EntitiesDescriptor":
        entities = list(root.iter(f"{{{MD_NS}}}EntityDescriptor"))
        if len(entities) != 1:
            raise SpMetadataError(
                "wrong_root",
                f"an EntitiesDescriptor must hold exactly one EntityDescriptor here, "
                f"not {len(entities)}",
            )
        return entities[0]
    raise SpMetadataError(
        "wrong_root",
        f"the root element is {etree.QName(root).localname!r}, not md:EntityDescriptor "
        f"(namespace {MD_NS})",
    )


def _read_entity(entity: etree._Element, root: etree._Element, signed: bool) -> SpMetadata:
    entity_id = (entity.get("entityID") or "").strip()
    if not entity_id:
        raise SpMetadataError("no_entity_id", "the EntityDescriptor has no entityID")
    if len(entity_id) > 1024:  # metadata 2.3.2: at most 1024 characters
        raise SpMetadataError("no_entity_id", "the entityID is longer than 1024 characters")
    sp = _sp_descriptor(entity)
    acs = tuple(
        _endpoint(e, "AssertionConsumerService", indexed=True)
        for e in sp.iterfind(f"{{{MD_NS}}}AssertionConsumerService")
    )
    if not acs:
        raise SpMetadataError("no_acs", "the SPSSODescriptor has no AssertionConsumerService")
    slo = tuple(
        _endpoint(e, "SingleLogoutService", indexed=False)
        for e in sp.iterfind(f"{{{MD_NS}}}SingleLogoutService")
    )
    signing, encryption = _certificates(sp)
    # validUntil and cacheDuration may sit on every level: the strictest one wins.
    levels = [e for e in (sp, entity, root) if e is not None]
    valid_until = _earliest(_datetime(e.get("validUntil")) for e in levels)
    cache_duration = _earliest(_duration(e.get("cacheDuration")) for e in levels)
    categories, subject_id = _entity_attributes(entity)
    return SpMetadata(
        entity_id=entity_id,
        display_names=_by_language(
            sp, f"{{{MD_NS}}}Extensions/{{{MDUI_NS}}}UIInfo/{{{MDUI_NS}}}DisplayName"
        ),
        organization_names=_by_language(
            entity, f"{{{MD_NS}}}Organization/{{{MD_NS}}}OrganizationDisplayName"
        ),
        assertion_consumer_services=acs,
        single_logout_services=slo,
        signing_certs=signing,
        encryption_certs=encryption,
        authn_requests_signed=_boolean(sp.get("AuthnRequestsSigned")),
        want_assertions_signed=_boolean(sp.get("WantAssertionsSigned")),
        name_id_formats=tuple(
            (e.text or "").strip() for e in sp.iterfind(f"{{{MD_NS}}}NameIDFormat") if e.text
        ),
        requested_attributes=tuple(
            RequestedAttribute(
                name=e.get("Name", ""),
                name_format=e.get("NameFormat"),
                friendly_name=e.get("FriendlyName"),
                required=_boolean(e.get("isRequired")),
            )
            for e in sp.iterfind(
                f"{{{MD_NS}}}AttributeConsumingService/{{{MD_NS}}}RequestedAttribute"
            )
            if e.get("Name")
        ),
        entity_categories=categories,
        subject_id_requirement=subject_id,
        valid_until=valid_until,
        cache_duration=cache_duration,
        signed=signed,
    )


def _sp_descriptor(entity: etree._Element) -> etree._Element:
    descriptors = entity.findall(f"{{{MD_NS}}}SPSSODescriptor")
    if not descriptors:
        raise SpMetadataError(
            "no_sp", "the entity has no SPSSODescriptor: it is not a SAML service provider"
        )
    for descriptor in descriptors:  # 2.4.1: protocolSupportEnumeration lists protocol URIs
        if SAML2_PROTOCOL in descriptor.get("protocolSupportEnumeration", "").split():
            return descriptor
    raise SpMetadataError(
        "no_sp", f"no SPSSODescriptor supports SAML 2.0 ({SAML2_PROTOCOL} not listed)"
    )


def _endpoint(element: etree._Element, kind: str, *, indexed: bool) -> Endpoint:
    binding = (element.get("Binding") or "").strip()
    location = (element.get("Location") or "").strip()
    if not binding or not location:
        raise SpMetadataError(
            "no_acs" if indexed else "bad_endpoint", f"a {kind} lacks its Binding or Location"
        )
    check_endpoint_url(location, kind)
    response_location = element.get("ResponseLocation")
    if response_location:
        check_endpoint_url(response_location, kind)
    index: int | None = None
    if indexed and element.get("index") is not None:
        try:
            index = int(element.get("index", ""))
        except ValueError:
            raise SpMetadataError(
                "bad_endpoint", f"a {kind} index is not a number: {element.get('index')!r}"
            ) from None
        if not 0 <= index <= 65535:  # xs:unsignedShort
            raise SpMetadataError("bad_endpoint", f"a {kind} index is out of range: {index}")
    is_default = None
    if indexed and element.get("isDefault") is not None:
        is_default = _boolean(element.get("isDefault"))
    return Endpoint(binding, location, index, is_default, response_location)


def check_endpoint_url(url: str, kind: str) -> None:
    """Endpoints get assertions: HTTPS only, but plain HTTP on loopback (tests, demo)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and _is_loopback(host):
        return
    code = "acs_not_https" if kind == "AssertionConsumerService" else "bad_endpoint"
    raise SpMetadataError(code, f"the {kind} {url!r} is not an https:// URL")


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _certificates(sp: etree._Element) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Signing and encryption certificates; a KeyDescriptor without ``use`` serves both."""
    signing: list[str] = []
    encryption: list[str] = []
    for descriptor in sp.iterfind(f"{{{MD_NS}}}KeyDescriptor"):
        use = descriptor.get("use")
        if use not in (None, "signing", "encryption"):
            raise SpMetadataError("bad_key", f"a KeyDescriptor has an unknown use {use!r}")
        for cert in descriptor.iterfind(
            f"{{{DS_NS}}}KeyInfo/{{{DS_NS}}}X509Data/{{{DS_NS}}}X509Certificate"
        ):
            pem = _pem(cert.text or "")
            if use in (None, "signing"):
                signing.append(pem)
            if use in (None, "encryption"):
                encryption.append(pem)
    return tuple(dict.fromkeys(signing)), tuple(dict.fromkeys(encryption))


def _pem(text: str) -> str:
    body = "".join(text.split())
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SpMetadataError("bad_key", "an X509Certificate is not valid base64") from exc
    if not der:
        raise SpMetadataError("bad_key", "an X509Certificate is empty")
    encoded = base64.b64encode(der).decode("ascii")
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def _entity_attributes(entity: etree._Element) -> tuple[tuple[str, ...], str | None]:
    categories: list[str] = []
    subject_id: str | None = None
    path = f"{{{MD_NS}}}Extensions/{{{MDATTR_NS}}}EntityAttributes/{{{SAML_NS}}}Attribute"
    for attribute in entity.iterfind(path):
        values = [
            (v.text or "").strip()
            for v in attribute.iterfind(f"{{{SAML_NS}}}AttributeValue")
            if (v.text or "").strip()
        ]
        name = attribute.get("Name")
        if name == ENTITY_CATEGORY:
            categories.extend(values)
        elif name == SUBJECT_ID_REQ:
            for value in values:
                if value not in SUBJECT_ID_REQUIREMENTS:
                    raise SpMetadataError(
                        "bad_subject_id",
                        f"the subject-id requirement {value!r} is not one of "
                        f"{', '.join(SUBJECT_ID_REQUIREMENTS)}",
                    )
            if len(values) > 1:  # subject-id profile 3.4.1: a single value
                raise SpMetadataError(
                    "bad_subject_id", "the subject-id requirement has several values"
                )
            subject_id = values[0] if values else None
    return tuple(dict.fromkeys(categories)), subject_id


def _by_language(element: etree._Element, path: str) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in element.iterfind(path):
        text = " ".join((node.text or "").split())
        if text:
            names.setdefault(node.get(XML_LANG, "").lower(), text)
    return names


def _boolean(value: str | None) -> bool:
    """xs:boolean: "true"/"1" or "false"/"0"; absent means false for these attributes."""
    if value is None:
        return False
    value = value.strip()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise SpMetadataError("bad_value", f"{value!r} is not an xs:boolean")


def _datetime(value: str | None) -> dt.datetime | None:
    """xs:dateTime; SAML times without a zone are UTC (SAML core 1.3.3)."""
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise SpMetadataError("bad_value", f"validUntil {value!r} is not an xs:dateTime") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def parse_duration(value: str) -> dt.timedelta:
    """An xs:duration such as ``PT6H`` or ``P1DT12H`` (metadata 2.2.1 cacheDuration)."""
    match = _DURATION.fullmatch(value.strip())
    if not match or value.strip() in ("P", "PT") or value.strip().endswith("T"):
        raise SpMetadataError("bad_value", f"cacheDuration {value!r} is not an xs:duration")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return dt.timedelta(
        days=parts.get("years", 0) * 365
        + parts.get("months", 0) * 30
        + parts.get("weeks", 0) * 7
        + parts.get("days", 0),
        hours=parts.get("hours", 0),
        minutes=parts.get("minutes", 0),
        seconds=parts.get("seconds", 0),
    )


def _duration(value: str | None) -> dt.timedelta | None:
    return None if value is None else parse_duration(value)


def _earliest(values: Iterable[_Moment | None]) -> _Moment | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None  # type: ignore[type-var]
