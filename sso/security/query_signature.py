"""RSA signatures over a URL query string, as SAML's HTTP-Redirect binding signs messages
(SAML bindings 3.4.4.1): the signer and the verifier agree on the exact octets, the binding
says which."""

from __future__ import annotations

import base64

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
# SHA-1 is not accepted: collisions are practical.
ACCEPTED: dict[str, type[hashes.HashAlgorithm]] = {
    RSA_SHA256: hashes.SHA256,
    RSA_SHA384: hashes.SHA384,
    RSA_SHA512: hashes.SHA512,
}


def _public_key(certificate: str | bytes) -> rsa.RSAPublicKey | None:
    text = certificate.decode() if isinstance(certificate, bytes) else certificate
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            cert = x509.load_pem_x509_certificate(text.encode())
        else:  # the base64 DER of a metadata X509Certificate element
            cert = x509.load_der_x509_certificate(base64.b64decode("".join(text.split())))
    except ValueError:
        return None
    key = cert.public_key()
    return key if isinstance(key, rsa.RSAPublicKey) else None


def is_accepted(algorithm: str | None) -> bool:
    """Whether we verify signatures made with ``algorithm`` (a SigAlg URI)."""
    return algorithm in ACCEPTED


def verify(
    octets: bytes, signature: bytes, algorithm: str, certificates: list[str] | list[bytes]
) -> bool:
    """Whether ``signature`` over ``octets`` was made by the key of one of ``certificates``."""
    digest = ACCEPTED.get(algorithm)
    if digest is None:
        return False
    for certificate in certificates:
        key = _public_key(certificate)
        if key is None:
            continue
        try:
            key.verify(signature, octets, padding.PKCS1v15(), digest())
        except InvalidSignature:
            continue
        return True
    return False


def sign(octets: bytes, key_pem: bytes) -> bytes:
    """An RSA-SHA256 signature of ``octets``."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("the signing key must be RSA")
    return key.sign(octets, padding.PKCS1v15(), hashes.SHA256())
