"""Signed SAML Responses per second: the in-process backend against pysaml2's xmlsec1 backend.

One typical Response (a signed assertion with a NameID, an AuthnStatement and five attributes,
inside a Response signed too) is produced by a pysaml2 ``Server`` built from an in-memory
configuration with a throw-away RSA key under a temporary directory. Three figures per backend,
each from a loop bounded in time (``--seconds``, 2 s by default), on one core:

- ``sign``: ``sign_statement`` of the prepared Response — the signing alone, what DESIGN.md's
  target is about (in-process ~600/s against ~14/s for xmlsec1);
- ``verify``: ``validate_signature`` of the signed Response with the IdP's certificate;
- ``response``: ``create_authn_response`` end to end (pysaml2's XML building + two signatures).

A measurement, not a test: exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "CFB has been moved", CryptographyDeprecationWarning)
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, class_name, saml
    from saml2.config import IdPConfig, SPConfig
    from saml2.metadata import entity_descriptor
    from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
    from saml2.samlp import response_from_string
    from saml2.server import Server
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from sso.protocols.saml.crypto import install, make_crypto_backend  # noqa: E402

TARGET_INPROCESS = 600  # signed responses/s, DESIGN.md "Choices already made"
IDP_ID = "https://idp.bench/saml/metadata"
SP_ID = "https://sp.bench/saml/metadata"
ACS = "https://sp.bench/saml/acs"
IDENTITY = {
    "uid": ["alice"],
    "mail": ["alice.martin@ac-exemple.fr"],
    "givenName": ["Alice"],
    "sn": ["Martin"],
    "eduPersonAffiliation": ["staff", "member"],
}


def _key_pair(directory: Path, name: str, bits: int) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
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
    key_file, cert_file = directory / f"{name}.key", directory / f"{name}.crt"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


def _server(directory: Path, bits: int) -> tuple[Server, Path]:
    key_file, cert_file = _key_pair(directory, "idp", bits)
    sp = SPConfig()
    sp.load(
        {
            "entityid": SP_ID,
            "crypto_backend": "XMLSecurity",
            "service": {
                "sp": {"endpoints": {"assertion_consumer_service": [(ACS, BINDING_HTTP_POST)]}}
            },
        }
    )
    idp = IdPConfig()
    idp.load(
        {
            "entityid": IDP_ID,
            "crypto_backend": "XMLSecurity",
            "key_file": str(key_file),
            "cert_file": str(cert_file),
            "metadata": {"inline": [entity_descriptor(sp).to_string().decode()]},
            "service": {
                "idp": {
                    "endpoints": {
                        "single_sign_on_service": [("https://idp.bench/sso", BINDING_HTTP_REDIRECT)]
                    },
                    "signing_algorithm": SIG_RSA_SHA256,
                    "digest_algorithm": DIGEST_SHA256,
                    "policy": {"default": {"attribute_restrictions": None}},
                }
            },
        }
    )
    return Server(config=idp), cert_file


def _response(server: Server) -> str:
    return str(
        server.create_authn_response(
            IDENTITY,
            in_response_to="id-request-0001",
            destination=ACS,
            sp_entity_id=SP_ID,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text="c2b1f0e6-persistent-id"),
            authn={"class_ref": saml.AUTHN_PASSWORD_PROTECTED, "authn_instant": int(time.time())},
            sign_response=True,
            sign_assertion=True,
        )
    )


def _rate(operation: Callable[[], object], seconds: float) -> float:
    operation()  # warm caches (file reads, parsed keys) as a running server has them
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        operation()
        count += 1
    return count / (time.perf_counter() - start)


def _figures(server: Server, cert_file: Path, seconds: float) -> dict[str, float]:
    backend = server.sec.crypto
    signed = _response(server)
    response = response_from_string(signed)
    # The Response as pysaml2 hands it to the backend: its template in place, unsigned (the
    # assertion inside stays signed, as in create_authn_response).
    response.signature.signature_value.text = ""
    response.signature.signed_info.reference[0].digest_value.text = ""
    unsigned, node, node_id = str(response), class_name(response), response.id
    key_file = server.sec.key_file
    return {
        "sign": _rate(lambda: backend.sign_statement(unsigned, node, key_file, node_id), seconds),
        "verify": _rate(
            lambda: backend.validate_signature(signed, str(cert_file), "pem", node, node_id),
            seconds,
        ),
        "response": _rate(lambda: _response(server), seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per figure (default 2)")
    parser.add_argument("--bits", type=int, default=3072, help="RSA key size (default 3072)")
    args = parser.parse_args()
    load = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="bench-xml-") as directory:
        server, cert_file = _server(Path(directory), args.bits)
        figures: dict[str, dict[str, float]] = {}
        for name in ("inprocess", "xmlsec1"):
            install(server, make_crypto_backend(name))
            figures[name] = _figures(server, cert_file, args.seconds)

    print(f"Signed SAML Responses, RSA-{args.bits}, SHA-256, one core, {args.seconds:g} s each")
    print(f"{'':10}{'sign/s':>10}{'verify/s':>10}{'response/s':>12}")
    for name, figure in figures.items():
        print(
            f"{name:10}{figure['sign']:>10,.0f}{figure['verify']:>10,.0f}"
            f"{figure['response']:>12,.0f}"
        )
    ratio = figures["inprocess"]["sign"] / figures["xmlsec1"]["sign"]
    verdict = "met" if figures["inprocess"]["sign"] >= TARGET_INPROCESS else "NOT met"
    print(
        f"target: in-process signing ~{TARGET_INPROCESS}/s (DESIGN.md): {verdict}; "
        f"{ratio:.0f}x xmlsec1"
    )
    print(f"load average at start: {load:.2f}")


if __name__ == "__main__":
    main()
