"""pysaml2 with our in-process backend: a real IdP and SP round trip, both backends each side."""

from __future__ import annotations

import base64
import datetime
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, saml
from saml2.config import IdPConfig, SPConfig
from saml2.mdstore import InMemoryMetaData
from saml2.metadata import entity_descriptor, sign_entity_descriptor
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.sigver import CryptoBackendXmlSec1, DecryptError, SignatureError
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

with warnings.catch_warnings():
    # pysaml2 7.5.5 names modes.CFB at import (saml2.cryptography.symmetric), which cryptography
    # deprecates; to move to pyproject's filterwarnings (not this module's to edit).
    warnings.filterwarnings("ignore", "CFB has been moved", CryptographyDeprecationWarning)
    from saml2.client import Saml2Client
    from saml2.server import Server

from sso.errors import ConfigurationError
from sso.protocols.saml import crypto
from sso.protocols.saml.crypto import FileCache, InProcessBackend, install, make_crypto_backend
from sso.security import xmldsig

IDP_ID = "https://idp.test/saml/metadata"
SP_ID = "https://sp.test/saml/metadata"
ACS = "https://sp.test/saml/acs"
XENC = xmldsig.XENC_NS
DS = xmldsig.DSIG_NS
SAML = xmldsig.SAML_ASSERTION_NS


@dataclass(frozen=True)
class Keys:
    key_file: Path
    cert_file: Path

    @property
    def cert_pem(self) -> bytes:
        return self.cert_file.read_bytes()


def _keys(directory: Path, name: str) -> Keys:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    keys = Keys(directory / f"{name}.key", directory / f"{name}.crt")
    keys.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    keys.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return keys


def _idp_config(keys: Keys, metadata: list[str]) -> IdPConfig:
    config = IdPConfig()
    config.load(
        {
            "entityid": IDP_ID,
            "crypto_backend": "XMLSecurity",  # replaced by install(); needs no xmlsec1 lookup
            "key_file": str(keys.key_file),
            "cert_file": str(keys.cert_file),
            "metadata": {"inline": metadata},
            "service": {
                "idp": {
                    "endpoints": {
                        "single_sign_on_service": [
                            ("https://idp.test/saml/sso", BINDING_HTTP_REDIRECT)
                        ],
                    },
                    "signing_algorithm": SIG_RSA_SHA256,
                    "digest_algorithm": DIGEST_SHA256,
                    "subject_data": ("dict", None),
                    "policy": {"default": {"attribute_restrictions": None}},
                }
            },
        }
    )
    return config


def _sp_config(keys: Keys, metadata: list[str]) -> SPConfig:
    config = SPConfig()
    config.load(
        {
            "entityid": SP_ID,
            "crypto_backend": "XMLSecurity",
            "key_file": str(keys.key_file),
            "cert_file": str(keys.cert_file),
            "encryption_keypairs": [
                {"key_file": str(keys.key_file), "cert_file": str(keys.cert_file)}
            ],
            "metadata": {"inline": metadata},
            "allow_unknown_attributes": True,
            "service": {
                "sp": {
                    "endpoints": {"assertion_consumer_service": [(ACS, BINDING_HTTP_POST)]},
                    "want_response_signed": True,
                    "want_assertions_signed": True,
                    "allow_unsolicited": False,
                    "signing_algorithm": SIG_RSA_SHA256,
                    "digest_algorithm": DIGEST_SHA256,
                }
            },
        }
    )
    return config


@dataclass(frozen=True)
class Federation:
    idp_keys: Keys
    sp_keys: Keys
    idp_metadata: str
    sp_metadata: str

    def idp(self, backend: str) -> Server:
        server = Server(config=_idp_config(self.idp_keys, [self.sp_metadata]))
        install(server, make_crypto_backend(backend))
        return server

    def sp(self, backend: str) -> Saml2Client:
        client = Saml2Client(config=_sp_config(self.sp_keys, [self.idp_metadata]))
        install(client, make_crypto_backend(backend))
        return client


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Federation:
    directory = tmp_path_factory.mktemp("federation")
    idp_keys, sp_keys = _keys(directory, "idp"), _keys(directory, "sp")
    idp_metadata = entity_descriptor(_idp_config(idp_keys, [])).to_string().decode()
    sp_metadata = entity_descriptor(_sp_config(sp_keys, [])).to_string().decode()
    return Federation(idp_keys, sp_keys, idp_metadata, sp_metadata)


def authn_response(server: Server, *, encrypt: bool, sp_cert: bytes | None = None) -> str:
    return str(
        server.create_authn_response(
            {"mail": ["alice@example.org"], "uid": ["alice"]},
            in_response_to="req-1",
            destination=ACS,
            sp_entity_id=SP_ID,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text="alice-pid"),
            authn={
                "class_ref": saml.AUTHN_PASSWORD_PROTECTED,
                "authn_instant": int(time.time()),
            },
            sign_response=True,
            sign_assertion=True,
            encrypt_assertion=encrypt,
            encrypt_cert_assertion=sp_cert.decode() if sp_cert else None,
        )
    )


def consume(client: Saml2Client, response: str) -> object:
    encoded = base64.b64encode(response.encode()).decode()
    return client.parse_authn_request_response(
        encoded, BINDING_HTTP_POST, outstanding={"req-1": "/"}
    )


def methods(document: str) -> list[str]:
    root = etree.fromstring(document.encode())
    return [m.get("Algorithm") for m in root.iter(f"{{{XENC}}}EncryptionMethod")]


# --- The round trip ------------------------------------------------------------------------


@pytest.mark.parametrize("sp_backend", ["inprocess", "xmlsec1"])
@pytest.mark.parametrize("encrypt", [False, True], ids=["signed", "encrypted"])
def test_round_trip(federation: Federation, sp_backend: str, encrypt: bool) -> None:
    response = authn_response(
        federation.idp("inprocess"), encrypt=encrypt, sp_cert=federation.sp_keys.cert_pem
    )
    root = etree.fromstring(response.encode())
    assert root.find(f"{{{DS}}}Signature") is not None
    if encrypt:
        assert methods(response) == [xmldsig.AES128_GCM, xmldsig.RSA_OAEP_MGF1P]
        assert xmldsig.TRIPLEDES_CBC not in response
        assert "alice@example.org" not in response
    else:
        assert root.find(f"{{{SAML}}}Assertion/{{{DS}}}Signature") is not None
    parsed = consume(federation.sp(sp_backend), response)
    assert parsed.name_id.text == "alice-pid"
    assert parsed.ava["mail"] == ["alice@example.org"]
    assert parsed.assertion.signature is not None


def test_xmlsec1_idp_to_inprocess_sp(federation: Federation) -> None:
    response = authn_response(federation.idp("xmlsec1"), encrypt=False)
    assert consume(federation.sp("inprocess"), response).name_id.text == "alice-pid"


def test_encryption_to_sp_metadata_key(federation: Federation) -> None:
    """Without encrypt_cert_assertion: the SP's key from its metadata, still AES-GCM."""
    response = authn_response(federation.idp("inprocess"), encrypt=True)
    assert methods(response) == [xmldsig.AES128_GCM, xmldsig.RSA_OAEP_MGF1P]
    assert consume(federation.sp("inprocess"), response).name_id.text == "alice-pid"


# --- The SP side refuses -------------------------------------------------------------------


def test_tampered_response_refused(federation: Federation) -> None:
    response = authn_response(federation.idp("inprocess"), encrypt=False)
    tampered = response.replace("alice@example.org", "admin@example.org")
    assert tampered != response
    with pytest.raises(SignatureError):
        consume(federation.sp("inprocess"), tampered)


def test_wrapped_assertion_refused(federation: Federation) -> None:
    """An evil assertion with the signed one's ID, the signed one hidden in Extensions."""
    response = authn_response(federation.idp("inprocess"), encrypt=False)
    root = etree.fromstring(response.encode())
    # Drop the response's signature so that only the assertion's is at stake.
    root.remove(root.find(f"{{{DS}}}Signature"))
    genuine = root.find(f"{{{SAML}}}Assertion")
    evil = etree.fromstring(etree.tostring(genuine))
    evil.remove(evil.find(f"{{{DS}}}Signature"))
    evil.find(f".//{{{SAML}}}NameID").text = "admin"
    root.replace(genuine, evil)
    extensions = etree.SubElement(root, "{urn:oasis:names:tc:SAML:2.0:protocol}Extensions")
    extensions.append(genuine)
    root.insert(1, extensions)
    evil.insert(1, etree.fromstring(etree.tostring(genuine.find(f"{{{DS}}}Signature"))))
    client = federation.sp("inprocess")
    with pytest.raises(SignatureError):
        consume(client, etree.tostring(root).decode())


def test_decrypt_with_wrong_key_refused(federation: Federation) -> None:
    backend = InProcessBackend()
    response = authn_response(
        federation.idp("inprocess"), encrypt=True, sp_cert=federation.sp_keys.cert_pem
    )
    with pytest.raises(DecryptError):
        backend.decrypt(response, str(federation.idp_keys.key_file))


# --- Each backend call directly ------------------------------------------------------------


def test_metadata_signed_and_verified_without_node_id(federation: Federation) -> None:
    """pysaml2's metadata path: sign_statement and validate_signature with node_id=None."""
    server = federation.idp("inprocess")
    descriptor = entity_descriptor(server.config)
    _, signed = sign_entity_descriptor(
        descriptor, None, server.sec, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256
    )
    metadata = InMemoryMetaData(server.metadata.attrc, signed, security=server.sec)
    metadata.cert = str(federation.idp_keys.cert_file)
    assert metadata.parse_and_check_signature(signed)
    xmlsec1 = CryptoBackendXmlSec1(crypto.get_xmlsec_binary())
    assert xmlsec1.validate_signature(
        signed, str(federation.idp_keys.cert_file), "pem",
        "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor", None,
    )  # fmt: skip
    with pytest.raises(SignatureError):
        metadata.parse_and_check_signature(signed.replace(IDP_ID, "https://evil.test/"))


def test_validate_signature_uses_only_the_given_certificate(federation: Federation) -> None:
    response = authn_response(federation.idp("inprocess"), encrypt=False)
    root = etree.fromstring(response.encode())
    backend = InProcessBackend()
    node = "urn:oasis:names:tc:SAML:2.0:protocol:Response"
    assert backend.validate_signature(
        response, str(federation.idp_keys.cert_file), "pem", node, root.get("ID")
    )
    with pytest.raises(SignatureError):
        backend.validate_signature(
            response, str(federation.sp_keys.cert_file), "pem", node, root.get("ID")
        )
    with pytest.raises(SignatureError):  # the ID names a Response, not an Assertion
        backend.validate_signature(
            response, str(federation.idp_keys.cert_file), "pem",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion", root.get("ID"),
        )  # fmt: skip


def test_sha1_refused_by_default(federation: Federation) -> None:
    server = federation.idp("xmlsec1")
    response = str(
        server.create_authn_response(
            {"uid": ["alice"]},
            in_response_to="req-1",
            destination=ACS,
            sp_entity_id=SP_ID,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text="alice-pid"),
            authn={"class_ref": saml.AUTHN_PASSWORD_PROTECTED},
            sign_response=True,
            sign_alg="http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            digest_alg="http://www.w3.org/2000/09/xmldsig#sha1",
        )
    )
    response_id = etree.fromstring(response.encode()).get("ID")
    node = "urn:oasis:names:tc:SAML:2.0:protocol:Response"
    cert = str(federation.idp_keys.cert_file)
    with pytest.raises(SignatureError, match="rsa-sha1"):
        InProcessBackend().validate_signature(response, cert, "pem", node, response_id)
    assert InProcessBackend(allow_sha1=True).validate_signature(
        response, cert, "pem", node, response_id
    )


def test_generic_encrypt_with_template_file_never_3des(federation: Federation) -> None:
    """SecurityContext.encrypt passes pysaml2's 3DES template file by name."""
    server = federation.idp("inprocess")
    document = "<a xmlns='urn:x'><b>secret</b></a>"
    encrypted = server.sec.encrypt(document, str(federation.sp_keys.cert_file))
    assert methods(encrypted) == [xmldsig.AES128_GCM, xmldsig.RSA_OAEP_MGF1P]
    decrypted = InProcessBackend().decrypt(encrypted, str(federation.sp_keys.key_file))
    assert "secret" in decrypted


def test_install_reaches_the_metadata_store(federation: Federation) -> None:
    server = federation.idp("inprocess")
    assert isinstance(server.sec.crypto, InProcessBackend)
    assert server.metadata.security.crypto is server.sec.crypto


def test_make_crypto_backend() -> None:
    assert isinstance(make_crypto_backend("inprocess"), InProcessBackend)
    assert isinstance(make_crypto_backend("xmlsec1"), CryptoBackendXmlSec1)
    with pytest.raises(ConfigurationError):
        make_crypto_backend("XMLSecurity")


def test_refuses_3des_setting() -> None:
    with pytest.raises(xmldsig.XmlEncryptionError):
        InProcessBackend(algorithm="tripledes-cbc")


# --- The file cache ------------------------------------------------------------------------


def test_files_read_once_per_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cert.pem"
    path.write_bytes(b"one")
    reads: list[Path] = []
    original: Callable[[Path], bytes] = Path.read_bytes

    def counting(self: Path) -> bytes:
        reads.append(self)
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    cache = FileCache()
    assert [cache.read(path) for _ in range(5)] == [b"one"] * 5
    assert len(reads) == 1
    path.write_bytes(b"two!")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert cache.read(path) == b"two!"
    assert len(reads) == 2


def test_file_cache_is_bounded(tmp_path: Path) -> None:
    cache = FileCache(size=3)
    for index in range(10):
        path = tmp_path / f"f{index}"
        path.write_bytes(b"x")
        cache.read(path)
    assert len(cache._entries) == 3
