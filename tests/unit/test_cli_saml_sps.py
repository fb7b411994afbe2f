"""``sso saml-sps``: list, add (file or URL), approve, reject, remove, policy, refresh."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from sso.cli import main
from sso.db import make_engine
from sso.services.saml_models import SamlServiceProviderRow
from sso.services.saml_registry import SamlSpRegistry
from tests.support.saml_sp import MetadataServer, key_pair, shibboleth_metadata, signed

SECRET = "cli-test-secret-that-is-long-enough-0123456789"
SP = "https://sp.univ-test.fr/shibboleth"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    """Only the settings each test gives, on the suite's migrated database."""
    for name in list(os.environ):
        if name.startswith("SSO_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SSO_SECRET_KEY", SECRET)
    monkeypatch.setenv("SSO_DATABASE_URL", database_url)
    monkeypatch.setenv("SSO_SAML_SP_REFRESH_MIN_SECONDS", "60")


@pytest.fixture
def registry(database_url: str) -> Iterator[SamlSpRegistry]:
    engine = make_engine(database_url)
    yield SamlSpRegistry(engine, cache_seconds=0)
    engine.dispose()


@pytest.fixture
def metadata_file(tmp_path: Path) -> Path:
    path = tmp_path / "sp-metadata.xml"
    path.write_text(shibboleth_metadata())
    return path


def test_add_from_a_file_and_list(
    metadata_file: Path, registry: SamlSpRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["saml-sps", "add", str(metadata_file), "--release", "uid,mail"]) == 0
    assert capsys.readouterr().out == f"SAML SP {SP!r} added (Plateforme de test)\n"

    assert main(["saml-sps", "list"]) == 0

    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["approved", SP, "Plateforme", "de", "test"]
    assert "release: uid,mail -> mail,uid" in out
    assert registry.approved(SP).released_attributes == ["uid", "mail"]


def test_add_twice_is_an_entity_id_clash_unless_replacing(
    metadata_file: Path, registry: SamlSpRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["saml-sps", "add", str(metadata_file), "--name", "Moodle"]) == 0

    assert main(["saml-sps", "add", str(metadata_file)]) == 1
    assert f"sso: the entityID {SP!r} is already registered" in capsys.readouterr().err
    assert main(["saml-sps", "add", str(metadata_file), "--replace", "--release", "*"]) == 0
    assert registry.get(SP).released_attributes == ["*"]


def test_add_invalid_metadata(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text(shibboleth_metadata(acs=None))

    assert main(["saml-sps", "add", str(bad)]) == 1
    assert capsys.readouterr().err == ("sso: the SPSSODescriptor has no AssertionConsumerService\n")
    with pytest.raises(SystemExit) as exited:
        main(["saml-sps", "add", str(tmp_path / "missing.xml")])
    assert "sso: cannot read" in str(exited.value.code)


def test_add_with_a_required_signature(
    tmp_path: Path, registry: SamlSpRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    federation = key_pair("federation.test")
    cert = tmp_path / "federation.crt"
    cert.write_bytes(federation.cert_pem)
    unsigned, good = tmp_path / "unsigned.xml", tmp_path / "signed.xml"
    unsigned.write_text(shibboleth_metadata())
    good.write_text(signed(shibboleth_metadata(), federation))

    assert main(["saml-sps", "add", str(unsigned), "--signing-cert", str(cert)]) == 1
    assert "is not signed, and a signature is required" in capsys.readouterr().err
    assert main(["saml-sps", "add", str(good), "--signing-cert", str(cert)]) == 0
    assert registry.get(SP).metadata.signed


def test_approve_reject_remove(
    registry: SamlSpRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.register(shibboleth_metadata(), contact="it@univ-test.fr")

    assert main(["saml-sps", "list"]) == 0
    assert "pending" in capsys.readouterr().out
    assert main(["saml-sps", "approve", SP, "--release", "eduPersonPrincipalName"]) == 0
    assert "approved; release: eduPersonPrincipalName" in capsys.readouterr().out
    assert registry.approved(SP) is not None
    assert main(["saml-sps", "reject", SP]) == 0
    assert registry.approved(SP) is None and registry.get(SP).status == "rejected"
    assert main(["saml-sps", "remove", SP]) == 0
    assert main(["saml-sps", "remove", SP]) == 1
    assert main(["saml-sps", "approve", SP]) == 1
    assert f"sso: no SAML SP {SP!r}" in capsys.readouterr().err


def test_policy(registry: SamlSpRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    registry.add(shibboleth_metadata(), encrypt_assertions=True)
    persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"

    assert main(["saml-sps", "policy", SP, "--release", "uid", "--name-id-format", persistent]) == 0
    sp = registry.get(SP)
    assert (sp.released_attributes, sp.name_id_format, sp.encrypt_assertions) == (
        ["uid"],
        persistent,
        True,  # kept: not given
    )
    assert main(["saml-sps", "policy", SP, "--release", "mail", "--encrypt", "default"]) == 0
    sp = registry.get(SP)
    assert (sp.name_id_format, sp.encrypt_assertions) == (persistent, None)
    capsys.readouterr()
    assert main(["saml-sps", "policy", SP, "--release", "password"]) == 1
    assert "unknown attribute(s): password" in capsys.readouterr().err


def test_refresh(
    registry: SamlSpRegistry, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with MetadataServer().running() as server:
        server.serve(shibboleth_metadata(cache_duration="PT1H"))
        assert main(["saml-sps", "add", server.url]) == 0
        assert main(["saml-sps", "refresh"]) == 0
        assert capsys.readouterr().out.endswith("0 refreshed, 0 failed\n")

        engine = make_engine(database_url)
        try:
            with engine.begin() as conn:  # as if the hour had passed
                conn.execute(
                    update(SamlServiceProviderRow).values(
                        next_refresh_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
                    )
                )
        finally:
            engine.dispose()
        server.serve("<html>oops")

        assert main(["saml-sps", "refresh"]) == 1

    out = capsys.readouterr().out
    assert f"{SP}: the metadata is not well-formed XML" in out
    assert out.endswith("1 refreshed, 1 failed\n")
    assert "last error: the metadata is not well-formed XML" in _listing(capsys)
    assert registry.approved(SP) is not None  # the last good copy


def _listing(capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["saml-sps", "list"]) == 0
    return capsys.readouterr().out
