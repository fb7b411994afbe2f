"""XML Signature and XML Encryption in-process, with the ``xmlsec`` binding and lxml.

Primitives only: no SAML library here (pysaml2 is adapted to these in
``sso.protocols.saml.crypto``). The rules follow the SAML profile of both specs:

- XML-DSig (https://www.w3.org/TR/xmldsig-core1/) as restricted by SAML core §5.4: enveloped
  signatures only, one Reference whose URI is the signed element's ID, exclusive
  canonicalisation, only the enveloped-signature and exc-c14n transforms.
- XML Encryption (https://www.w3.org/TR/xmlenc-core1/) as used by SAML core §6: the element
  (``Type=#Element``) encrypted with AES-GCM, its key transported with RSA-OAEP in an
  ``<xenc:EncryptedKey>``.

Verification is where signature wrapping must be stopped (Somorovsky et al., "On Breaking SAML",
2012), so it is strict: it returns the element it verified, and callers must use that element,
never look the document up again by name.
"""

from __future__ import annotations

import base64
import functools
import os
import re

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from sso.errors import SsoError

# Namespaces.
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
XENC_NS = "http://www.w3.org/2001/04/xmlenc#"
XENC11_NS = "http://www.w3.org/2009/xmlenc11#"
SAML_ASSERTION_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
XML_NS = "http://www.w3.org/XML/1998/namespace"

# Canonicalisation and transforms (XML-DSig §6.5, §6.6; Exclusive XML C14N 1.0).
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
EXC_C14N_WITH_COMMENTS = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
ENVELOPED_SIGNATURE = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

# Digests (XML-DSig §6.2; RFC 6931 §2.1).
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"

# Signature methods (XML-DSig §6.4; RFC 6931 §2.3).
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"

# Block encryption and key transport (XML Enc 1.1 §5.2, §5.5).
AES128_GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
AES256_GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
TRIPLEDES_CBC = "http://www.w3.org/2001/04/xmlenc#tripledes-cbc"  # named only to be refused
RSA_OAEP_MGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
RSA_OAEP = "http://www.w3.org/2009/xmlenc11#rsa-oaep"
TYPE_ELEMENT = "http://www.w3.org/2001/04/xmlenc#Element"

ALLOWED_C14N = frozenset({EXC_C14N, EXC_C14N_WITH_COMMENTS})
ALLOWED_TRANSFORMS = frozenset({ENVELOPED_SIGNATURE, EXC_C14N, EXC_C14N_WITH_COMMENTS})
STRONG_SIGNATURE_METHODS = frozenset({RSA_SHA256, RSA_SHA384, RSA_SHA512})
STRONG_DIGESTS = frozenset({SHA256, SHA384, SHA512})
# Session key sizes in bytes for the content algorithms we accept (XML Enc 1.1 §5.2.4).
GCM_KEY_SIZES = {AES128_GCM: 16, AES256_GCM: 32}
KEY_TRANSPORTS = frozenset({RSA_OAEP_MGF1P, RSA_OAEP})
_SHORT_NAMES = {"aes128-gcm": AES128_GCM, "aes256-gcm": AES256_GCM}

_SIGNATURE = f"{{{DSIG_NS}}}Signature"
_XML_ID = f"{{{XML_NS}}}id"
_PEM_BODY = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)
_C = xmlsec.constants
_TRANSFORMS_BY_URI = {
    EXC_C14N: _C.TransformExclC14N,
    EXC_C14N_WITH_COMMENTS: _C.TransformExclC14NWithComments,
    ENVELOPED_SIGNATURE: _C.TransformEnveloped,
    SHA1: _C.TransformSha1,
    SHA256: _C.TransformSha256,
    SHA384: _C.TransformSha384,
    SHA512: _C.TransformSha512,
    RSA_SHA1: _C.TransformRsaSha1,
    RSA_SHA256: _C.TransformRsaSha256,
    RSA_SHA384: _C.TransformRsaSha384,
    RSA_SHA512: _C.TransformRsaSha512,
}


class XmlSecurityError(SsoError):
    """Base of the XML signature and encryption errors."""


class LibxmlMismatchError(XmlSecurityError):
    """lxml and xmlsec were built against different libxml2 libraries."""


class XmlSignatureError(XmlSecurityError):
    """A document that cannot be signed, or whose signature is not accepted."""


class XmlEncryptionError(XmlSecurityError):
    """An element that cannot be encrypted or decrypted."""


def check_libxml2() -> None:
    """Refuse to run when lxml and xmlsec do not share one libxml2.

    Trees cross from lxml into xmlsec as raw libxml2 pointers; two different libraries in one
    process corrupt memory or fail with "lxml & xmlsec libxml2 library version mismatch".
    """
    lxml_runtime, lxml_compiled = etree.LIBXML_VERSION, etree.LIBXML_COMPILED_VERSION
    xmlsec_runtime = tuple(xmlsec.get_libxml_version())
    xmlsec_compiled = tuple(xmlsec.get_libxml_compiled_version())
    if len({lxml_runtime, lxml_compiled, xmlsec_runtime, xmlsec_compiled}) != 1:
        raise LibxmlMismatchError(
            f"lxml uses libxml2 {_dotted(lxml_runtime)} (built with {_dotted(lxml_compiled)}) "
            f"but xmlsec uses {_dotted(xmlsec_runtime)} (built with {_dotted(xmlsec_compiled)}): "
            "install lxml and xmlsec wheels that carry the same libxml2 (see pyproject.toml)"
        )


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


# --- Parsing -------------------------------------------------------------------------------


def parse(document: bytes, error: type[XmlSecurityError] = XmlSecurityError) -> etree._Element:
    """Parse untrusted XML: no DTD, no entities, no network, no huge trees.

    A DOCTYPE is refused outright: SAML never needs one (SAML core §1.3 / saml-bindings
    §3.5.5.1), and a DTD is how entity expansion and ID-attribute tricks get in.
    """
    # A new parser per call: lxml parsers must not be used by two threads at once.
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_blank_text=False,
    )
    try:
        root = etree.fromstring(document, parser)
    except etree.XMLSyntaxError as exc:
        raise error(f"not well-formed XML: {exc}") from exc
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise error("XML with a DOCTYPE is refused")
    if next(root.iter(etree.Entity), None) is not None:  # needs a DTD; a backstop all the same
        raise error("XML entity references refused")
    return root


def serialize(root: etree._Element) -> bytes:
    """The document of ``root``, in UTF-8, without an XML declaration."""
    return etree.tostring(root.getroottree(), encoding="UTF-8", xml_declaration=False)


def _ids(root: etree._Element, id_attribute: str) -> dict[str, etree._Element]:
    """Map every ID value in the document to its element, refusing a value seen twice.

    ``xml:id`` counts too, because libxml2 registers it as an ID by itself: a copy of the signed
    element's ID in any of these attributes would make "#ID" ambiguous.
    """
    names = {id_attribute, "ID", "Id", _XML_ID}
    found: dict[str, etree._Element] = {}
    for element in root.iter(etree.Element):
        for name in names:
            value = element.get(name)
            if value is None:
                continue
            if value in found:
                raise XmlSignatureError(f"duplicate ID {value!r} in the document")
            found[value] = element
    return found


# --- Signing -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _private_key(key_pem: bytes) -> xmlsec.Key:
    try:
        return xmlsec.Key.from_memory(key_pem, _C.KeyDataFormatPem)
    except xmlsec.Error as exc:
        raise XmlSignatureError("cannot load the private key (PEM expected)") from exc


@functools.lru_cache(maxsize=256)
def _certificate_key(cert_pem: bytes) -> xmlsec.Key:
    try:
        return xmlsec.Key.from_memory(cert_pem, _C.KeyDataFormatCertPem)
    except xmlsec.Error as exc:
        raise XmlSignatureError("cannot load the certificate (PEM expected)") from exc


@functools.lru_cache(maxsize=32)
def certificate_base64(cert_pem: bytes) -> str:
    """The certificate's DER in base64, as ``<ds:X509Certificate>`` carries it (XML-DSig §4.5.4)."""
    match = _PEM_BODY.search(cert_pem)
    if match is None:
        raise XmlSignatureError("no PEM certificate found")
    return b"".join(match.group(1).split()).decode("ascii")


def sign(
    document: bytes,
    key_pem: bytes,
    cert_pem: bytes | None,
    element_id: str,
    *,
    id_attribute: str = "ID",
) -> bytes:
    """Sign the element whose ``id_attribute`` is ``element_id`` with an enveloped signature.

    A ``<ds:Signature>`` template already among the element's children (pysaml2 places one) is
    filled in as it is; otherwise one is added (:func:`add_signature_template`). ``cert_pem``
    may be None only when there is a template.
    """
    root = parse(document, XmlSignatureError)
    element = _ids(root, id_attribute).get(element_id)
    if element is None or element.get(id_attribute) != element_id:
        raise XmlSignatureError(f"no element with {id_attribute}={element_id!r} to sign")
    if element.find(_SIGNATURE) is None:
        if cert_pem is None:
            raise XmlSignatureError("no signature template, and no certificate to build one with")
        add_signature_template(element, cert_pem, id_attribute=id_attribute)
    sign_in_place(element, key_pem, id_attribute=id_attribute)
    return serialize(root)


def sign_in_place(element: etree._Element, key_pem: bytes, *, id_attribute: str = "ID") -> None:
    """Fill in the ``<ds:Signature>`` template among ``element``'s children, in its tree.

    For trees built here (sso.protocols.saml.messages): no parse, no serialisation. Nested
    signatures are signed innermost first, so the outer digest covers the inner signature.
    """
    element_id = element.get(id_attribute)
    templates = element.findall(_SIGNATURE)
    if len(templates) != 1:
        raise XmlSignatureError("the element to sign must carry exactly one ds:Signature")
    signature = templates[0]
    uris = [
        ref.get("URI")
        for ref in signature.iterfind(f"{{{DSIG_NS}}}SignedInfo/*")
        if ref.tag == f"{{{DSIG_NS}}}Reference"
    ]
    if element_id is None or uris != [f"#{element_id}"]:
        raise XmlSignatureError(f"the signature template must reference #{element_id} only")
    context = xmlsec.SignatureContext()
    context.register_id(element, id_attribute)
    # The key alone, without its certificate: xmlsec would otherwise add the certificate to an
    # X509Data the template already carries, and the document would hold it twice.
    context.key = _private_key(key_pem)
    try:
        context.sign(signature)
    except xmlsec.Error as exc:
        raise XmlSignatureError(f"signing failed: {exc}") from exc


def add_signature_template(
    element: etree._Element, cert_pem: bytes, *, id_attribute: str = "ID"
) -> etree._Element:
    """Add the template of an enveloped signature of ``element``: exc-c14n, RSA-SHA256, SHA-256,
    the certificate in ``KeyInfo/X509Data``, right after ``<saml:Issuer>`` where SAML's schema
    wants it (SAML core §5.4.1), else as the first child."""
    element_id = element.get(id_attribute)
    if not element_id:
        raise XmlSignatureError(f"the element to sign has no {id_attribute}")
    return _signature_template(element, element_id, cert_pem)


def _signature_template(
    element: etree._Element, element_id: str, cert_pem: bytes
) -> etree._Element:
    signature = xmlsec.template.create(
        element, _C.TransformExclC14N, _C.TransformRsaSha256, ns="ds"
    )
    reference = xmlsec.template.add_reference(signature, _C.TransformSha256, uri=f"#{element_id}")
    xmlsec.template.add_transform(reference, _C.TransformEnveloped)
    xmlsec.template.add_transform(reference, _C.TransformExclC14N)
    x509_data = xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    xmlsec.template.x509_data_add_certificate(x509_data).text = certificate_base64(cert_pem)
    first = element[0] if len(element) else None
    if first is not None and first.tag == f"{{{SAML_ASSERTION_NS}}}Issuer":
        first.addnext(signature)
    else:
        element.insert(0, signature)
    return signature


# --- Verification --------------------------------------------------------------------------


def verify(
    document: bytes,
    certificates: list[bytes],
    *,
    element_id: str | None = None,
    element_tag: str | None = None,
    id_attribute: str = "ID",
    allow_sha1: bool = False,
) -> etree._Element:
    """Verify the enveloped signature of one element with one of ``certificates`` (PEM).

    The element is the one whose ``id_attribute`` is ``element_id``, or the document's root when
    no ID is given; ``element_tag`` (Clark notation, ``{ns}Local``) must then match. Returns that
    element. Refused, with :class:`XmlSignatureError`:

    - a DOCTYPE, or an ID value present twice in the document (ambiguous "#ID");
    - no ``<ds:Signature>`` as a direct child of the element, or more than one;
    - anything but a single Reference whose URI is "#" + the element's ID, or "" when the
      element is the root (SAML core §5.4.2);
    - transforms other than enveloped-signature and exc-c14n, c14n other than exc-c14n
      (§5.4.3, §5.4.4), a ``<ds:Object>`` (SAML 2.0 errata to core §5.4: SHOULD be rejected);
    - SHA-1 unless ``allow_sha1`` (RFC 6931 §2.1.1, §2.3.1: weak);
    - comments or processing instructions inside the element: exc-c14n drops them, so text
      split by a comment would be signed whole but read in part (CVE-2017-11427 and kin).

    The key comes only from ``certificates``: ``KeyInfo`` is never read, so an attacker's
    certificate embedded in the signature is worthless. Certificate dates are not checked:
    SAML trust is the key published in metadata, not a PKI.
    """
    if not certificates:
        raise XmlSignatureError("no certificate to verify the signature with")
    root = parse(document, XmlSignatureError)
    ids = _ids(root, id_attribute)
    if element_id is not None:
        element = ids.get(element_id)
        if element is None or element.get(id_attribute) != element_id:
            raise XmlSignatureError(f"no element with {id_attribute}={element_id!r}")
    else:
        element = root
    if element_tag is not None and element.tag != element_tag:
        raise XmlSignatureError(f"the signed element is {element.tag}, not {element_tag}")
    signature = _check_signature_shape(element, root, id_attribute, allow_sha1)
    if next(element.iter(etree.Comment, etree.ProcessingInstruction), None) is not None:
        raise XmlSignatureError("comments and processing instructions refused in signed content")

    errors: list[str] = []
    for cert_pem in certificates:
        context = xmlsec.SignatureContext()
        if element.get(id_attribute) is not None:
            context.register_id(element, id_attribute)
        # Defence in depth behind the checks above: xmlsec itself refuses other algorithms.
        for uri in _allowed_reference_transforms(allow_sha1):
            context.enable_reference_transform(_TRANSFORMS_BY_URI[uri])
        for uri in _allowed_signature_transforms(allow_sha1):
            context.enable_signature_transform(_TRANSFORMS_BY_URI[uri])
        context.key = _certificate_key(cert_pem)
        try:
            context.verify(signature)
        except xmlsec.Error as exc:
            errors.append(str(exc))
            continue
        return element
    raise XmlSignatureError(
        f"signature not valid with any of {len(certificates)} certificate(s): {errors[-1]}"
    )


def _allowed_reference_transforms(allow_sha1: bool) -> list[str]:
    return [*ALLOWED_TRANSFORMS, *STRONG_DIGESTS, *([SHA1] if allow_sha1 else [])]


def _allowed_signature_transforms(allow_sha1: bool) -> list[str]:
    return [*ALLOWED_C14N, *STRONG_SIGNATURE_METHODS, *([RSA_SHA1] if allow_sha1 else [])]


def _one(parent: etree._Element, local: str, ns: str = DSIG_NS) -> etree._Element:
    found = parent.findall(f"{{{ns}}}{local}")
    if len(found) != 1:
        raise XmlSignatureError(f"expected exactly one {local} in {etree.QName(parent).localname}")
    return found[0]


def _check_signature_shape(
    element: etree._Element, root: etree._Element, id_attribute: str, allow_sha1: bool
) -> etree._Element:
    """SAML core §5.4's constraints on the signature, checked before any cryptography."""
    signature = _one(element, "Signature")
    if signature.find(f"{{{DSIG_NS}}}Object") is not None:
        raise XmlSignatureError("ds:Object refused in a SAML signature")
    signed_info = _one(signature, "SignedInfo")
    c14n = _one(signed_info, "CanonicalizationMethod").get("Algorithm")
    if c14n not in ALLOWED_C14N:
        raise XmlSignatureError(f"canonicalisation {c14n!r} refused")
    method = _one(signed_info, "SignatureMethod").get("Algorithm")
    if method not in STRONG_SIGNATURE_METHODS and not (allow_sha1 and method == RSA_SHA1):
        raise XmlSignatureError(f"signature method {method!r} refused")
    reference = _one(signed_info, "Reference")
    uri = reference.get("URI")
    element_id = element.get(id_attribute)
    if not (
        (element_id is not None and uri == f"#{element_id}") or (uri == "" and element is root)
    ):
        raise XmlSignatureError(f"reference {uri!r} is not the signed element's own ID")
    transforms = reference.find(f"{{{DSIG_NS}}}Transforms")
    algorithms = [] if transforms is None else [t.get("Algorithm") for t in transforms]
    if (
        ENVELOPED_SIGNATURE not in algorithms
        or len(algorithms) != len(set(algorithms))
        or not set(algorithms) <= ALLOWED_TRANSFORMS
        or (transforms is not None and len(transforms) != len(algorithms))
    ):
        raise XmlSignatureError(f"transforms {algorithms} refused")
    digest = _one(reference, "DigestMethod").get("Algorithm")
    if digest not in STRONG_DIGESTS and not (allow_sha1 and digest == SHA1):
        raise XmlSignatureError(f"digest {digest!r} refused")
    return signature


# --- Encryption ----------------------------------------------------------------------------


def content_algorithm(algorithm: str) -> str:
    """The URI of an accepted content algorithm, from its URI or short name ("aes128-gcm")."""
    uri = _SHORT_NAMES.get(algorithm, algorithm)
    if uri not in GCM_KEY_SIZES:
        raise XmlEncryptionError(f"content encryption {algorithm!r} refused: AES-GCM only")
    return uri


@functools.lru_cache(maxsize=256)
def _recipient_key(cert_pem: bytes) -> rsa.RSAPublicKey:
    try:
        key = x509.load_pem_x509_certificate(cert_pem).public_key()
    except ValueError as exc:
        raise XmlEncryptionError("cannot load the recipient's certificate (PEM)") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise XmlEncryptionError("the recipient's certificate must carry an RSA key")
    return key


def encrypt_element(
    document: bytes,
    xpath: str,
    recipient_cert_pem: bytes,
    *,
    algorithm: str = "aes128-gcm",
    template: bytes | None = None,
) -> bytes:
    """Replace the one element ``xpath`` selects by its ``<xenc:EncryptedData>``.

    The content is encrypted with a fresh AES-GCM key (XML Enc 1.1 §5.2.4), the key with
    RSA-OAEP (``rsa-oaep-mgf1p``, §5.5.2) to ``recipient_cert_pem``, into an
    ``<xenc:EncryptedKey>`` inside ``EncryptedData/KeyInfo`` (SAML core §6.2 allows it there).
    A ``template`` (an ``EncryptedData`` such as pysaml2's ``pre_encryption_part``) gives the
    structure — Ids, ``KeyName``, ``X509Data`` — but never the algorithms: whatever it names
    (pysaml2 names 3DES), AES-GCM and RSA-OAEP are used.
    """
    uri = content_algorithm(algorithm)
    public_key = _recipient_key(recipient_cert_pem)
    root = parse(document, XmlEncryptionError)
    try:
        targets = root.xpath(xpath)
    except etree.XPathError as exc:
        raise XmlEncryptionError(f"bad XPath {xpath!r}") from exc
    if not isinstance(targets, list) or len(targets) != 1 or not etree.iselement(targets[0]):
        raise XmlEncryptionError(f"{xpath!r} must select exactly one element")
    _encrypt(targets[0], public_key, uri, recipient_cert_pem, template)
    return serialize(root)


def _encrypt(
    target: etree._Element,
    public_key: rsa.RSAPublicKey,
    uri: str,
    recipient_cert_pem: bytes,
    template: bytes | None,
) -> etree._Element:
    """Replace ``target`` by its ``EncryptedData``, which is returned."""
    encrypted_data = _encrypted_data_template(template, uri, recipient_cert_pem)
    # The EncryptedKey is filled in by hand (below), not by xmlsec's key manager: xmlsec would look
    # the transport key up through the template's KeyName, which names the key in the SP's metadata
    # and matches nothing here. So it leaves the template while the content is encrypted.
    key_info = encrypted_data.find(f"{{{DSIG_NS}}}KeyInfo")
    encrypted_keys = [] if key_info is None else key_info.findall(f"{{{XENC_NS}}}EncryptedKey")
    for encrypted_key in encrypted_keys:
        key_info.remove(encrypted_key)

    session_key = os.urandom(GCM_KEY_SIZES[uri])
    context = xmlsec.EncryptionContext()
    context.key = xmlsec.Key.from_binary_data(_C.KeyDataAes, session_key)
    try:
        encrypted_data = context.encrypt_xml(encrypted_data, target)
    except xmlsec.Error as exc:
        raise XmlEncryptionError(f"encryption failed: {exc}") from exc

    key_info = encrypted_data.find(f"{{{DSIG_NS}}}KeyInfo")
    if key_info is None:
        key_info = etree.SubElement(encrypted_data, f"{{{DSIG_NS}}}KeyInfo")
        encrypted_data.find(f"{{{XENC_NS}}}EncryptionMethod").addnext(key_info)
    # rsa-oaep-mgf1p: MGF1 with SHA-1 and SHA-1 as the OAEP digest unless a DigestMethod says
    # otherwise (XML Enc §5.4.2); SHA-1 is sound inside OAEP, and it is what every SP decrypts.
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303
    for encrypted_key in encrypted_keys:
        cipher_value = encrypted_key.find(f"{{{XENC_NS}}}CipherData/{{{XENC_NS}}}CipherValue")
        cipher_value.text = base64.b64encode(public_key.encrypt(session_key, oaep)).decode()
        key_info.append(encrypted_key)
    return encrypted_data


def _encrypted_data_template(template: bytes | None, uri: str, cert_pem: bytes) -> etree._Element:
    """An ``EncryptedData`` template with our algorithms, from ``template`` or built afresh."""
    if template is None:
        data = etree.Element(f"{{{XENC_NS}}}EncryptedData", nsmap={"xenc": XENC_NS})
        etree.SubElement(data, f"{{{XENC_NS}}}EncryptionMethod")
        key_info = etree.SubElement(data, f"{{{DSIG_NS}}}KeyInfo", nsmap={"ds": DSIG_NS})
        encrypted_key = etree.SubElement(key_info, f"{{{XENC_NS}}}EncryptedKey")
        etree.SubElement(encrypted_key, f"{{{XENC_NS}}}EncryptionMethod")
        ek_key_info = etree.SubElement(encrypted_key, f"{{{DSIG_NS}}}KeyInfo")
        x509_data = etree.SubElement(ek_key_info, f"{{{DSIG_NS}}}X509Data")
        etree.SubElement(x509_data, f"{{{DSIG_NS}}}X509Certificate").text = certificate_base64(
            cert_pem
        )
        etree.SubElement(encrypted_key, f"{{{XENC_NS}}}CipherData")
        etree.SubElement(data, f"{{{XENC_NS}}}CipherData")
    else:
        data = parse(template, XmlEncryptionError)
        if data.tag != f"{{{XENC_NS}}}EncryptedData":
            raise XmlEncryptionError("the encryption template must be an xenc:EncryptedData")
    data.set("Type", TYPE_ELEMENT)
    _set_method(data, uri)
    _ensure_cipher_value(data)
    for encrypted_key in data.iterfind(f"{{{DSIG_NS}}}KeyInfo/{{{XENC_NS}}}EncryptedKey"):
        _set_method(encrypted_key, RSA_OAEP_MGF1P)
        _ensure_cipher_value(encrypted_key)
    if not data.findall(f"{{{DSIG_NS}}}KeyInfo/{{{XENC_NS}}}EncryptedKey"):
        raise XmlEncryptionError("the encryption template has no xenc:EncryptedKey")
    return data


def _set_method(parent: etree._Element, uri: str) -> None:
    method = parent.find(f"{{{XENC_NS}}}EncryptionMethod")
    if method is None:
        method = etree.Element(f"{{{XENC_NS}}}EncryptionMethod")
        parent.insert(0, method)
    # Children such as KeySize or DigestMethod belonged to the template's algorithm, not ours.
    method.clear()
    method.set("Algorithm", uri)


def _ensure_cipher_value(parent: etree._Element) -> None:
    cipher_data = parent.find(f"{{{XENC_NS}}}CipherData")
    if cipher_data is None:
        cipher_data = etree.SubElement(parent, f"{{{XENC_NS}}}CipherData")
    for child in list(cipher_data):
        cipher_data.remove(child)
    etree.SubElement(cipher_data, f"{{{XENC_NS}}}CipherValue")


def encrypt_assertion(
    document: bytes,
    recipient_cert_pem: bytes,
    *,
    assertion_id: str | None = None,
    algorithm: str = "aes128-gcm",
) -> bytes:
    """Encrypt a ``<saml:Assertion>`` into a ``<saml:EncryptedAssertion>`` (SAML core §2.3.4).

    The assertion is the one with ID ``assertion_id``, or the document's only one. It is wrapped
    in an ``EncryptedAssertion`` first unless it is already inside one.
    """
    root = parse(document, XmlEncryptionError)
    tag = f"{{{SAML_ASSERTION_NS}}}Assertion"
    assertions = [a for a in root.iter(tag) if assertion_id is None or a.get("ID") == assertion_id]
    if len(assertions) != 1:
        raise XmlEncryptionError("expected exactly one assertion to encrypt")
    wrapper = encrypt_assertion_in_place(assertions[0], recipient_cert_pem, algorithm=algorithm)
    return serialize(wrapper if wrapper.getparent() is None else root)


def encrypt_assertion_in_place(
    assertion: etree._Element, recipient_cert_pem: bytes, *, algorithm: str = "aes128-gcm"
) -> etree._Element:
    """Encrypt ``assertion`` into an ``EncryptedAssertion``, which is returned: in its place
    when the assertion has a parent (wrapped first unless that parent is an
    ``EncryptedAssertion``), else a new root.

    An assertion without a parent is encrypted as the root of its own document, with every
    namespace declaration it carries: an SP then reads it once decrypted, even apart from the
    Response. Inside a tree, it is serialised for encryption without its ancestors'
    declarations.
    """
    uri = content_algorithm(algorithm)
    public_key = _recipient_key(recipient_cert_pem)
    wrapper_tag = f"{{{SAML_ASSERTION_NS}}}EncryptedAssertion"
    parent = assertion.getparent()
    # The assertion's own prefix for the wrapper: lxml would otherwise rename the prefix of a
    # moved (perhaps signed) assertion to the wrapper's.
    nsmap = {assertion.prefix: SAML_ASSERTION_NS}
    if parent is None:
        encrypted_data = _encrypt(assertion, public_key, uri, recipient_cert_pem, template=None)
        wrapper = etree.Element(wrapper_tag, nsmap=nsmap)
        wrapper.append(encrypted_data)
        return wrapper
    if parent.tag != wrapper_tag:
        wrapper = etree.Element(wrapper_tag, nsmap=nsmap)
        assertion.addprevious(wrapper)
        wrapper.append(assertion)
        parent = wrapper
    _encrypt(assertion, public_key, uri, recipient_cert_pem, template=None)
    return parent


def decrypt_element(document: bytes, key_pem: bytes) -> bytes:
    """Decrypt the document's first ``<xenc:EncryptedData>`` in place, and return the document.

    Like ``xmlsec1 --decrypt``: when the EncryptedData is the root, the result is the decrypted
    element alone. Only AES-GCM content and RSA-OAEP key transport are accepted: CBC modes fall
    to padding oracles ("How to Break XML Encryption", Jager & Somorovsky 2011) and RSA PKCS#1
    v1.5 to Bleichenbacher's attack. The session key is looked for in ``EncryptedData/KeyInfo``
    and among the ``EncryptedData``'s sibling ``EncryptedKey`` elements (SAML core §6.2).
    """
    root = parse(document, XmlEncryptionError)
    encrypted_data = next(root.iter(f"{{{XENC_NS}}}EncryptedData"), None)
    if encrypted_data is None:
        raise XmlEncryptionError("no xenc:EncryptedData in the document")
    if encrypted_data.get("Type", TYPE_ELEMENT) != TYPE_ELEMENT:
        raise XmlEncryptionError("only encrypted elements (Type=#Element) are accepted")
    method = encrypted_data.find(f"{{{XENC_NS}}}EncryptionMethod")
    uri = None if method is None else method.get("Algorithm")
    if uri not in GCM_KEY_SIZES:
        raise XmlEncryptionError(f"content encryption {uri!r} refused: AES-GCM only")

    candidates = encrypted_data.findall(f"{{{DSIG_NS}}}KeyInfo/{{{XENC_NS}}}EncryptedKey")
    parent = encrypted_data.getparent()
    if parent is not None:
        candidates += parent.findall(f"{{{XENC_NS}}}EncryptedKey")
    session_key = _decrypt_session_key(candidates, key_pem, GCM_KEY_SIZES[uri])

    context = xmlsec.EncryptionContext()
    # With the key set, xmlsec reads nothing from KeyInfo (no RetrievalMethod, no key lookup).
    context.key = xmlsec.Key.from_binary_data(_C.KeyDataAes, session_key)
    try:
        decrypted = context.decrypt(encrypted_data)
    except xmlsec.Error as exc:
        raise XmlEncryptionError(f"decryption failed: {exc}") from exc
    if parent is None:
        root = decrypted
    else:
        # Keys beside the EncryptedData served it alone; leaving them would confuse the next pass.
        for encrypted_key in parent.findall(f"{{{XENC_NS}}}EncryptedKey"):
            parent.remove(encrypted_key)
    return serialize(root)


def _decrypt_session_key(candidates: list[etree._Element], key_pem: bytes, size: int) -> bytes:
    if not candidates:
        raise XmlEncryptionError("no xenc:EncryptedKey for the EncryptedData")
    for encrypted_key in candidates:
        method = encrypted_key.find(f"{{{XENC_NS}}}EncryptionMethod")
        transport = None if method is None else method.get("Algorithm")
        if transport not in KEY_TRANSPORTS:
            continue
        context = xmlsec.EncryptionContext()
        context.key = _private_key_for_decryption(key_pem)
        try:
            session_key = context.decrypt(encrypted_key)
        except xmlsec.Error:
            continue  # another recipient's key, or not ours
        if isinstance(session_key, bytes) and len(session_key) == size:
            return session_key
    raise XmlEncryptionError("no xenc:EncryptedKey could be decrypted with RSA-OAEP and our key")


@functools.lru_cache(maxsize=32)
def _private_key_for_decryption(key_pem: bytes) -> xmlsec.Key:
    try:
        return xmlsec.Key.from_memory(key_pem, _C.KeyDataFormatPem)
    except xmlsec.Error as exc:
        raise XmlEncryptionError("cannot load the private key (PEM expected)") from exc
