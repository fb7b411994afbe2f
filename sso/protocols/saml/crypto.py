"""pysaml2's crypto backend, in-process: its calls adapted to :mod:`sso.security.xmldsig`.

pysaml2 hands a ``CryptoBackend`` (saml2/sigver.py) file names for keys and certificates and
strings or ``SamlBase`` objects for documents, and expects strings back; errors must be its
``XmlsecError`` subclasses, because ``SecurityContext`` catches those to try the next certificate
or key. :class:`InProcessBackend` keeps the semantics of ``CryptoBackendXmlSec1`` — sign the
node of type ``node_name`` whose ID is ``node_id`` through the template pysaml2 placed; verify with
the given certificate only, ``ID`` as the ID attribute — minus its spawning of ``xmlsec1`` per
call, and with stricter verification and AES-GCM encryption whatever the template names.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from saml2 import SamlBase
from saml2.sigver import (
    ASSERT_XPATH,
    CryptoBackend,
    CryptoBackendXmlSec1,
    DecryptError,
    EncryptError,
    SignatureError,
    get_xmlsec_binary,
    pre_encrypt_assertion,
)

from sso.errors import ConfigurationError
from sso.security import xmldsig

BACKENDS = ("inprocess", "xmlsec1")


class FileCache:
    """File contents read once per (path, mtime, size, inode), not once per signature.

    pysaml2 names the same key and certificate files on every call; certificates from metadata
    come in fresh temporary files, hence a bounded, least-recently-used cache.
    """

    def __init__(self, size: int = 128) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[tuple[int, int, int], bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, path: str | os.PathLike[str]) -> bytes:
        name = os.fspath(path)
        stat = os.stat(name)
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and entry[0] == stamp:
                self._entries.move_to_end(name)
                return entry[1]
        content = Path(name).read_bytes()
        with self._lock:
            self._entries[name] = (stamp, content)
            self._entries.move_to_end(name)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return content


def _document(statement: Any) -> bytes:  # noqa: ANN401 - pysaml2 passes str, bytes or SamlBase
    if isinstance(statement, bytes):
        return statement
    return str(statement).encode("utf-8")


def _clark(node_name: str) -> str:
    """pysaml2's ``"urn:…:assertion:Assertion"`` (saml2.class_name) in Clark notation,
    ``"{urn:…:assertion}Assertion"``."""
    namespace, _, local = node_name.rpartition(":")
    return f"{{{namespace}}}{local}" if namespace else local


class InProcessBackend(CryptoBackend):
    """Signs, verifies, encrypts and decrypts in-process with the ``xmlsec`` binding.

    ``allow_sha1`` accepts RSA-SHA1 signatures from peers that still send them; refused by
    default. ``algorithm`` is the content encryption of assertions (AES-GCM only).
    """

    def __init__(self, *, allow_sha1: bool = False, algorithm: str = "aes128-gcm") -> None:
        xmldsig.check_libxml2()
        self.allow_sha1 = allow_sha1
        self.algorithm = xmldsig.content_algorithm(algorithm)
        self.files = FileCache()

    @property
    def version(self) -> str:
        return ".".join(str(part) for part in xmlsec.get_libxmlsec_version())

    def _certificate(self, cert_file: str, cert_type: str = "pem") -> bytes:
        content = self.files.read(cert_file)
        if cert_type == "der":
            certificate = x509.load_der_x509_certificate(content)
            return certificate.public_bytes(serialization.Encoding.PEM)
        return content

    def sign_statement(
        self,
        statement: Any,  # noqa: ANN401
        node_name: str,
        key_file: str,
        node_id: str | None,
    ) -> str:
        """Sign the ``node_name`` element with ID ``node_id`` through its ``ds:Signature`` template.

        Without ``node_id`` (pysaml2's metadata signing), the first ``node_name`` element that
        carries a template, as ``xmlsec1 --sign`` would take the first template it finds.
        """
        document = _document(statement)
        try:
            if node_id is None:
                node_id = _first_templated_id(document, _clark(node_name))
            signed = xmldsig.sign(document, self.files.read(key_file), None, node_id)
        except xmldsig.XmlSecurityError as exc:
            raise SignatureError(f"cannot sign {node_name} {node_id}: {exc}") from exc
        return signed.decode("utf-8")

    def validate_signature(
        self,
        signedtext: Any,  # noqa: ANN401
        cert_file: str,
        cert_type: str,
        node_name: str,
        node_id: str | None,
    ) -> bool:
        """Verify with the certificate in ``cert_file`` alone; raise ``SignatureError`` if not.

        Without ``node_id`` (metadata), the signature of the document's root, which must be a
        ``node_name``.
        """
        try:
            xmldsig.verify(
                _document(signedtext),
                [self._certificate(cert_file, cert_type)],
                element_id=node_id,
                element_tag=_clark(node_name),
                allow_sha1=self.allow_sha1,
            )
        except (xmldsig.XmlSecurityError, ValueError, OSError) as exc:
            raise SignatureError(f"{node_name} {node_id}: {exc}") from exc
        return True

    def encrypt_assertion(
        self,
        statement: Any,  # noqa: ANN401
        enc_key: str,
        template: Any,  # noqa: ANN401
        key_type: str = "aes128-gcm",
        node_xpath: str | None = None,
        node_id: str | None = None,
    ) -> str:
        """Encrypt the assertion ``node_xpath`` selects (the one inside ``EncryptedAssertion``).

        ``template`` (pysaml2's ``pre_encryption_part``) gives the structure; ``key_type`` —
        pysaml2's default is "des-192" — is ignored: always AES-GCM with RSA-OAEP.
        """
        if isinstance(statement, SamlBase):
            statement = pre_encrypt_assertion(statement)
        xpath = node_xpath or ASSERT_XPATH
        if node_id is not None:
            xpath = f"{xpath}[@ID='{_xpath_literal(node_id)}']"
        try:
            encrypted = xmldsig.encrypt_element(
                _document(statement),
                xpath,
                self._certificate(enc_key),
                algorithm=self.algorithm,
                template=_template(template),
            )
        except (xmldsig.XmlSecurityError, ValueError, OSError) as exc:
            raise EncryptError(f"cannot encrypt the assertion: {exc}") from exc
        return encrypted.decode("utf-8")

    def encrypt(
        self,
        text: Any,  # noqa: ANN401
        recv_key: str,
        template: Any,  # noqa: ANN401
        key_type: str,
        xpath: str = "",
    ) -> str:
        """Encrypt the element ``xpath`` selects, the root by default (``xmlsec1 --encrypt``)."""
        try:
            encrypted = xmldsig.encrypt_element(
                _document(text),
                xpath or "/*",
                self._certificate(recv_key),
                algorithm=self.algorithm,
                template=_template(template, self.files),
            )
        except (xmldsig.XmlSecurityError, ValueError, OSError) as exc:
            raise EncryptError(f"cannot encrypt: {exc}") from exc
        return encrypted.decode("utf-8")

    def decrypt(self, enctext: Any, key_file: str) -> str:  # noqa: ANN401
        """Decrypt the first ``EncryptedData`` with the key in ``key_file``."""
        try:
            decrypted = xmldsig.decrypt_element(_document(enctext), self.files.read(key_file))
        except (xmldsig.XmlSecurityError, OSError) as exc:
            raise DecryptError(f"cannot decrypt: {exc}") from exc
        return decrypted.decode("utf-8")


def _first_templated_id(document: bytes, tag: str) -> str:
    root = xmldsig.parse(document, xmldsig.XmlSignatureError)
    for element in root.iter(tag):
        if element.find(f"{{{xmldsig.DSIG_NS}}}Signature") is not None and element.get("ID"):
            return element.get("ID")
    raise xmldsig.XmlSignatureError(f"no {tag} with an ID and a signature template")


def _xpath_literal(value: str) -> str:
    if "'" in value:
        raise EncryptError("an ID cannot contain a quote")
    return value


def _template(template: Any, files: FileCache | None = None) -> bytes | None:  # noqa: ANN401
    """pysaml2 passes an ``EncryptedData`` object, its XML, or (``SecurityContext.encrypt``) the
    name of a template file."""
    if template is None or template == "":
        return None
    if isinstance(template, SamlBase):
        return str(template).encode("utf-8")
    if files is not None and isinstance(template, str) and not template.lstrip().startswith("<"):
        return files.read(template)
    return _document(template)


def make_crypto_backend(name: str) -> CryptoBackend:
    """The backend a setting names: "inprocess" (ours) or "xmlsec1" (pysaml2's, spawning it)."""
    if name == "inprocess":
        return InProcessBackend()
    if name == "xmlsec1":
        return CryptoBackendXmlSec1(get_xmlsec_binary())
    raise ConfigurationError(f"unknown SAML crypto backend {name!r}; expected one of {BACKENDS}")


def install(entity: Any, backend: CryptoBackend) -> None:  # noqa: ANN401 - a saml2.entity.Entity
    """Make ``entity`` (a pysaml2 Server or Saml2Client) use ``backend`` for all its XML crypto.

    Its metadata store has a security context of its own (for signed metadata): it gets the
    backend too, and so do the metadata documents loaded through it, which share that context.
    """
    entity.sec.crypto = backend
    store_security = getattr(getattr(entity, "metadata", None), "security", None)
    if store_security is not None:
        store_security.crypto = backend
