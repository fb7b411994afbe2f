"""Our IdP metadata: a key rollover publishes the next certificate before it signs anything;
unsigned metadata when the setting says so; keys generated once under var_dir."""

from __future__ import annotations

import pytest
from lxml import etree

from sso.security import xmldsig
from tests.support.saml_sp import key_pair

MD = "{urn:oasis:names:tc:SAML:2.0:metadata}"
DS = "{http://www.w3.org/2000/09/xmldsig#}"


@pytest.fixture
def settings_overrides(tmp_path, request):
    overrides = {}
    if "rollover" in request.node.name:
        _, cert = key_pair("next.sso.test").write(tmp_path, "next")
        overrides["saml_next_cert_file"] = cert
    if "unsigned" in request.node.name:
        overrides["saml_sign_metadata"] = False
    if "requires_signed" in request.node.name:
        overrides["saml_require_signed_requests"] = True
    return overrides


def _signing_certificates(document: bytes) -> list[str]:
    root = etree.fromstring(document)
    return [
        "".join(c.text.split())
        for c in root.iter(f"{DS}X509Certificate")
        if c.getparent().getparent().getparent().get("use") in (None, "signing")
        and c.getparent().getparent().getparent().tag == f"{MD}KeyDescriptor"
    ]


def test_rollover_publishes_the_next_certificate(client, settings) -> None:
    document = client.get("/saml/metadata").content
    published = _signing_certificates(document)
    current = xmldsig.certificate_base64(client.app.state.saml.idp.keys.cert_pem)
    upcoming = xmldsig.certificate_base64(settings.saml_next_cert_file.read_bytes())
    assert current in published and upcoming in published
    # Still signed with the current key only.
    xmldsig.verify(document, [client.app.state.saml.idp.keys.cert_pem])
    with pytest.raises(xmldsig.XmlSignatureError):
        xmldsig.verify(document, [settings.saml_next_cert_file.read_bytes()])


def test_unsigned_metadata_when_the_setting_says_so(client) -> None:
    document = client.get("/saml/metadata").content
    assert b"Signature" not in document
    assert etree.fromstring(document).get("entityID") == "https://sso.test/saml/metadata"


def test_the_generated_key_is_kept_across_restarts(client, settings) -> None:
    from sso.app import create_app

    first = client.app.state.saml.idp.keys.cert_pem
    assert (settings.var_dir / "saml").is_dir()
    assert create_app(settings).state.saml.idp.keys.cert_pem == first


def test_policy_requires_signed_requests_from_every_sp(client, tmp_path, settings) -> None:
    from tests.flows.test_saml_sso import _path
    from tests.support.saml_client import make_sp

    assert b'WantAuthnRequestsSigned="true"' in client.get("/saml/metadata").content
    idp_metadata = client.get("/saml/metadata").text
    unsigned = make_sp(tmp_path / "u", idp_metadata)  # its metadata does not ask for signing
    client.app.state.saml.registry.add(
        metadata_xml=unsigned.metadata_xml, released_attributes=["*"]
    )
    refused = client.get(_path(unsigned.login_url("https://sso.test/saml/metadata")))
    assert refused.status_code == 400 and "sign" in refused.text
    signing = make_sp(
        tmp_path / "s", idp_metadata, entity_id="https://s.test/metadata", sign_requests=True
    )
    client.app.state.saml.registry.add(metadata_xml=signing.metadata_xml, released_attributes=["*"])
    page = client.get(_path(signing.login_url("https://sso.test/saml/metadata")))
    assert page.status_code == 200 and 'id="academic-login"' in page.text
