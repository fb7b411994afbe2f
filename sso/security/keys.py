"""The IdP's signing key and certificate: loaded from the configured files, or made once.

SAML trust is the certificate an SP copied from our metadata (SAML metadata §2.4.1.1
``<md:KeyDescriptor>``), so a generated pair must survive restarts and be the same for every
worker: it is written under ``var_dir/saml/`` atomically, and two workers starting at once end up
with the one pair that was linked into place first. ``next_cert`` is the certificate of a key
rollover announced in metadata before it is used (SAML metadata interoperability profile §2.5).
"""

from __future__ import annotations

import datetime
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sso.errors import ConfigurationError

# NIST SP 800-57 part 1 and ANSSI (guide des mécanismes cryptographiques): 2048 bits are good
# until 2030 (112-bit security), 3072 beyond (128-bit); a 3072-bit signature costs ~3x more.
KEY_SIZES = (2048, 3072, 4096)
KEY_SIZE = 2048
VALIDITY = datetime.timedelta(days=3650)
KEY_NAME = "signing.key"
CERT_NAME = "signing.crt"


class KeyFileError(ConfigurationError):
    """Key or certificate files that cannot be used."""


@dataclass(frozen=True)
class SigningKeys:
    """The PEM key and certificate, where they live (pysaml2 wants file names), and the next
    certificate if a rollover is announced."""

    key_pem: bytes
    cert_pem: bytes
    next_cert_pem: bytes | None
    key_file: Path
    cert_file: Path
    next_cert_file: Path | None = None

    @classmethod
    def load_or_create(
        cls,
        var_dir: Path,
        key_file: Path | None,
        cert_file: Path | None,
        next_cert_file: Path | None,
        common_name: str,
        key_size: int = KEY_SIZE,
    ) -> SigningKeys:
        """The configured pair, checked; else the one under ``var_dir/saml/``, made if absent."""
        if (key_file is None) != (cert_file is None):
            raise KeyFileError("set both the SAML key file and its certificate file, or neither")
        if key_file is None or cert_file is None:
            key_file, cert_file = _generated_pair(Path(var_dir) / "saml", common_name, key_size)
        key_pem, cert_pem = _read(key_file), _read(cert_file)
        check_pair(key_pem, cert_pem, str(key_file), str(cert_file))
        next_cert_pem = None
        if next_cert_file is not None:
            next_cert_pem = _read(next_cert_file)
            _check_not_expired(_certificate(next_cert_pem, str(next_cert_file)), next_cert_file)
        return cls(key_pem, cert_pem, next_cert_pem, key_file, cert_file, next_cert_file)


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from exc


def _certificate(cert_pem: bytes, name: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise KeyFileError(f"{name} is not a PEM certificate") from exc


def _check_not_expired(certificate: x509.Certificate, name: str | Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    if certificate.not_valid_after_utc <= now:
        raise KeyFileError(
            f"the certificate {name} expired on {certificate.not_valid_after_utc:%Y-%m-%d}"
        )


def check_pair(key_pem: bytes, cert_pem: bytes, key_name: str, cert_name: str) -> None:
    """Refuse an RSA key that is not the certified one, or a certificate past its end date."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{key_name} is not an unencrypted PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(f"{key_name} must be an RSA key (what SAML peers all verify)")
    certificate = _certificate(cert_pem, cert_name)
    public = certificate.public_key()
    if not (
        isinstance(public, rsa.RSAPublicKey)
        and public.public_numbers() == key.public_key().public_numbers()
    ):
        raise KeyFileError(f"{key_name} is not the key of the certificate {cert_name}")
    _check_not_expired(certificate, cert_name)


def _generated_pair(directory: Path, common_name: str, key_size: int) -> tuple[Path, Path]:
    """``directory/signing.{key,crt}``, made once and for all (a key already there is kept,
    whatever its size).

    The pair goes into one temporary directory first and is linked into place with
    ``os.link`` — which fails if the name exists — key last: the key is the mark of a complete
    pair. A worker that loses the race removes its own pair and uses the winner's.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key_file, cert_file = directory / KEY_NAME, directory / CERT_NAME
    if key_file.exists():
        return key_file, cert_file
    staging = directory / f".new-{secrets.token_hex(8)}"
    staging.mkdir(mode=0o700)
    try:
        key_pem, cert_pem = _new_pair(common_name, key_size)
        _write(staging / KEY_NAME, key_pem, 0o600)
        _write(staging / CERT_NAME, cert_pem, 0o644)
        try:
            os.link(staging / CERT_NAME, cert_file)
        except FileExistsError:
            pass  # another worker is ahead: its key follows, or is there already
        else:
            try:
                os.link(staging / KEY_NAME, key_file)
            except FileExistsError:
                pass  # a key left without its certificate: check_pair will say they differ
    finally:
        for path in staging.iterdir():
            path.unlink()
        staging.rmdir()
    _wait_for(key_file)
    return key_file, cert_file


def _wait_for(key_file: Path, seconds: float = 30.0) -> None:
    """The worker whose certificate won links the key an instant later: wait for it, unless the
    certificate is old, which means its worker died in between."""
    deadline = time.monotonic() + seconds
    while not key_file.exists():
        cert_file = key_file.with_name(CERT_NAME)
        stale = cert_file.exists() and time.time() - cert_file.stat().st_mtime > seconds
        if stale or time.monotonic() > deadline:
            raise KeyFileError(
                f"{cert_file} has no {key_file.name} beside it: remove it and start again"
            )
        time.sleep(0.05)


def _write(path: Path, content: bytes, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(content)
        stream.flush()
        os.fsync(stream.fileno())


def _new_pair(common_name: str, key_size: int) -> tuple[bytes, bytes]:
    """A self-signed certificate, as SAML metadata uses them: only its key matters (SAML
    metadata interoperability profile §2.2), so no CA and a long life."""
    if key_size not in KEY_SIZES:
        raise KeyFileError(f"RSA key size {key_size} refused: one of {KEY_SIZES}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)
