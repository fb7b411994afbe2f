"""The IdP's signing key pair: generated once, atomically, reused; configured pairs checked."""

from __future__ import annotations

import datetime
import multiprocessing
import os
import stat
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sso.errors import ConfigurationError
from sso.security import keys as keys_module
from sso.security.keys import KeyFileError, SigningKeys

CN = "sso.test"


def _pair(days: int = 30) -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "configured")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=60))
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pair() -> tuple[bytes, bytes]:
    return _pair()


@pytest.fixture(scope="module")
def other_pair() -> tuple[bytes, bytes]:
    return _pair()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SigningKeys]:
    """One real generation, of the default size, for the module."""
    var_dir = tmp_path_factory.mktemp("var")
    return var_dir, SigningKeys.load_or_create(var_dir, None, None, None, CN)


def _write(directory: Path, name: str, content: bytes) -> Path:
    path = directory / name
    path.write_bytes(content)
    return path


# --- Generated ------------------------------------------------------------------------------


def test_generated_under_var_saml(generated: tuple[Path, SigningKeys]) -> None:
    var_dir, keys = generated
    assert keys.key_file == var_dir / "saml" / "signing.key"
    assert keys.cert_file == var_dir / "saml" / "signing.crt"
    assert keys.key_file.read_bytes() == keys.key_pem
    assert keys.next_cert_pem is None
    assert stat.S_IMODE(keys.key_file.stat().st_mode) == 0o600
    assert [p.name for p in keys.key_file.parent.iterdir()] in (
        ["signing.key", "signing.crt"],
        ["signing.crt", "signing.key"],
    )


def test_generated_certificate(generated: tuple[Path, SigningKeys]) -> None:
    _, keys = generated
    cert = x509.load_pem_x509_certificate(keys.cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CN
    assert cert.issuer == cert.subject
    assert cert.public_key().key_size == 2048
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=3649) < lifetime < datetime.timedelta(days=3651)
    key = serialization.load_pem_private_key(keys.key_pem, password=None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()


def test_generated_key_size_follows_the_setting(tmp_path: Path) -> None:
    keys = SigningKeys.load_or_create(tmp_path, None, None, None, CN, key_size=3072)
    assert x509.load_pem_x509_certificate(keys.cert_pem).public_key().key_size == 3072
    # A key already there is kept, whatever size is asked for now.
    again = SigningKeys.load_or_create(tmp_path, None, None, None, CN, key_size=2048)
    assert again.key_pem == keys.key_pem


def test_weak_or_odd_key_sizes_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="1024"):
        SigningKeys.load_or_create(tmp_path, None, None, None, CN, key_size=1024)


def test_reused_on_next_start(generated: tuple[Path, SigningKeys], monkeypatch) -> None:
    var_dir, first = generated

    def no_new_pair(common_name: str, key_size: int) -> tuple[bytes, bytes]:
        raise AssertionError("a second pair was generated")

    monkeypatch.setattr(keys_module, "_new_pair", no_new_pair)
    again = SigningKeys.load_or_create(var_dir, None, None, None, CN)
    assert (again.key_pem, again.cert_pem) == (first.key_pem, first.cert_pem)


def test_race_loser_uses_the_winners_pair(tmp_path: Path, monkeypatch, pair, other_pair) -> None:
    """Worker B generates while worker A finishes first: B must end with A's pair, not its own."""
    pairs = iter([pair, other_pair])
    winner: list[SigningKeys] = []

    def slow_new_pair(common_name: str, key_size: int) -> tuple[bytes, bytes]:
        made = next(pairs)
        if made is pair:  # B, mid-generation: A starts and completes
            winner.append(SigningKeys.load_or_create(tmp_path, None, None, None, CN))
        return made

    monkeypatch.setattr(keys_module, "_new_pair", slow_new_pair)
    loser = SigningKeys.load_or_create(tmp_path, None, None, None, CN)
    assert winner[0].cert_pem == other_pair[1]
    assert (loser.key_pem, loser.cert_pem) == (other_pair[0], other_pair[1])
    assert not [p for p in (tmp_path / "saml").iterdir() if p.name.startswith(".new-")]


def test_workers_starting_together_share_one_pair(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=3, mp_context=context) as pool:
        futures = [
            pool.submit(SigningKeys.load_or_create, tmp_path, None, None, None, CN)
            for _ in range(3)
        ]
        results = [future.result(timeout=60) for future in futures]
    assert len({(r.key_pem, r.cert_pem) for r in results}) == 1
    assert results[0].key_pem == (tmp_path / "saml" / "signing.key").read_bytes()


def test_certificate_without_key_refused_when_stale(tmp_path: Path, pair, monkeypatch) -> None:
    directory = tmp_path / "saml"
    directory.mkdir()
    old = _write(directory, "signing.crt", pair[1])
    os.utime(old, (1_000_000_000, 1_000_000_000))  # left by a worker that died long ago
    monkeypatch.setattr(keys_module, "_new_pair", lambda common_name, key_size: pair)
    with pytest.raises(KeyFileError, match="no signing.key"):
        SigningKeys.load_or_create(tmp_path, None, None, None, CN)


# --- Configured ----------------------------------------------------------------------------


def test_configured_pair_loaded(tmp_path: Path, pair, other_pair) -> None:
    key_file = _write(tmp_path, "k.pem", pair[0])
    cert_file = _write(tmp_path, "c.pem", pair[1])
    next_file = _write(tmp_path, "next.pem", other_pair[1])
    keys = SigningKeys.load_or_create(tmp_path, key_file, cert_file, next_file, CN)
    assert (keys.key_pem, keys.cert_pem, keys.next_cert_pem) == (pair[0], pair[1], other_pair[1])
    assert (keys.key_file, keys.cert_file, keys.next_cert_file) == (key_file, cert_file, next_file)
    assert not (tmp_path / "saml").exists()


def test_key_not_matching_certificate_refused(tmp_path: Path, pair, other_pair) -> None:
    key_file = _write(tmp_path, "k.pem", pair[0])
    cert_file = _write(tmp_path, "c.pem", other_pair[1])
    with pytest.raises(KeyFileError, match="is not the key of the certificate"):
        SigningKeys.load_or_create(tmp_path, key_file, cert_file, None, CN)


def test_expired_certificate_refused(tmp_path: Path) -> None:
    key_pem, cert_pem = _pair(days=-1)
    key_file = _write(tmp_path, "k.pem", key_pem)
    cert_file = _write(tmp_path, "c.pem", cert_pem)
    with pytest.raises(KeyFileError, match="expired"):
        SigningKeys.load_or_create(tmp_path, key_file, cert_file, None, CN)


def test_expired_next_certificate_refused(tmp_path: Path, pair) -> None:
    key_file = _write(tmp_path, "k.pem", pair[0])
    cert_file = _write(tmp_path, "c.pem", pair[1])
    next_file = _write(tmp_path, "n.pem", _pair(days=-1)[1])
    with pytest.raises(KeyFileError, match="expired"):
        SigningKeys.load_or_create(tmp_path, key_file, cert_file, next_file, CN)


@pytest.mark.parametrize(
    ("key_content", "cert_content", "reason"),
    [(b"garbage", None, "not an unencrypted PEM private key"), (None, b"garbage", "not a PEM")],
)
def test_unreadable_files_refused(tmp_path: Path, pair, key_content, cert_content, reason) -> None:
    key_file = _write(tmp_path, "k.pem", key_content or pair[0])
    cert_file = _write(tmp_path, "c.pem", cert_content or pair[1])
    with pytest.raises(KeyFileError, match=reason):
        SigningKeys.load_or_create(tmp_path, key_file, cert_file, None, CN)


def test_missing_file_and_half_configuration_refused(tmp_path: Path, pair) -> None:
    cert_file = _write(tmp_path, "c.pem", pair[1])
    with pytest.raises(KeyFileError, match="cannot read"):
        SigningKeys.load_or_create(tmp_path, tmp_path / "absent.pem", cert_file, None, CN)
    with pytest.raises(KeyFileError, match="both"):
        SigningKeys.load_or_create(tmp_path, None, cert_file, None, CN)
    assert issubclass(KeyFileError, ConfigurationError)
