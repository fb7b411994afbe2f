"""SAML 2.0 Web Browser SSO (profiles 4.1) against a pysaml2 SP that checks our Responses with
the xmlsec1 program: both bindings, SSO across SPs and with CAS, ForceAuthn, IsPassive,
NameID formats, signed requests, encrypted assertions, release policy, IdP-initiated SSO."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

import pytest
from lxml import etree
from saml2.response import StatusNoPassive
from saml2.samlp import NameIDPolicy

from sso.protocols.saml.attributes import SAML_NAMES
from sso.protocols.saml.nameid import EMAIL, PERSISTENT, TRANSIENT
from sso.protocols.saml.responses import PASSWORD_PROTECTED_TRANSPORT
from sso.security import xmldsig
from tests.support.login_form import submit_login
from tests.support.saml_client import make_sp, saml_form

USER, PASSWORD = "cmartin", "Saml-Passw0rd-2026"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"


@pytest.fixture
def saml(client):
    return client.app.state.saml


@pytest.fixture
def idp_metadata(client) -> str:
    response = client.get("/saml/metadata")
    assert response.status_code == 200
    return response.text


@pytest.fixture
def account(add_account) -> str:
    return add_account(
        USER,
        PASSWORD,
        given_name="Claire",
        surname="Martin",
        email="claire.martin@ac-demo.fr",
        affiliation="teacher",
    )


@pytest.fixture
def register(saml):
    def add(sp, release=("*",), **options):
        saml.registry.add(
            metadata_xml=sp.metadata_xml, released_attributes=list(release), **options
        )
        return sp

    return add


@pytest.fixture
def sp(tmp_path, idp_metadata, register):
    return register(make_sp(tmp_path / "sp", idp_metadata))


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def log_in_at(client, url: str, *, password: str = PASSWORD):
    """Follow an SSO URL to our login page, log in, return the auto-POST page for the SP."""
    page = client.get(_path(url))
    assert page.status_code == 200, page.text[:500]
    assert 'id="academic-login"' in page.text
    answer = submit_login(client, page, USER, password)
    assert answer.status_code == 200, answer.text[:500]
    return answer


def response_of(page) -> tuple[str, dict[str, str]]:
    action, fields = saml_form(page.text)
    assert "SAMLResponse" in fields
    return action, fields


def test_metadata_is_signed_and_lists_both_sso_bindings(client, saml, idp_metadata) -> None:
    document = idp_metadata.encode()
    xmldsig.verify(document, [saml.idp.keys.cert_pem], element_tag=f"{{{MD}}}EntityDescriptor")
    root = etree.fromstring(document)
    assert root.get("entityID") == "https://sso.test/saml/metadata"
    assert root.get("validUntil") and root.get("cacheDuration") == "PT1H"
    sso = {
        e.get("Binding").rsplit(":", 1)[1]: e.get("Location")
        for e in root.iter(f"{{{MD}}}SingleSignOnService")
    }
    assert sso == {
        "HTTP-Redirect": "https://sso.test/saml/sso/redirect",
        "HTTP-POST": "https://sso.test/saml/sso/post",
    }
    assert b"Authentification acad" in document  # mdui:DisplayName
    assert b"<shibmd:Scope" in document or b":Scope " in document


def test_redirect_binding_login_releases_attributes(client, sp, account) -> None:
    page = log_in_at(
        client, sp.login_url("https://sso.test/saml/metadata", relay_state="/cours/42")
    )
    action, fields = response_of(page)
    assert action == sp.acs_url
    assert fields["RelayState"] == "/cours/42"
    answer = sp.read_response(fields["SAMLResponse"])
    identity = answer.get_identity()
    assert identity["mail"] == ["claire.martin@ac-demo.fr"]
    assert identity["givenName"] == ["Claire"]
    assert identity["sn"] == ["Martin"]
    assert identity["eduPersonPrincipalName"] == ["cmartin@sso.test"]
    assert identity["eduPersonAffiliation"] == ["faculty", "member"]
    assert "faculty@sso.test" in identity["eduPersonScopedAffiliation"]
    assert answer.name_id.format == TRANSIENT
    assert answer.authn_info()[0][0] == PASSWORD_PROTECTED_TRANSPORT
    # Attributes went out under their urn:oid names.
    xml = base64.b64decode(fields["SAMLResponse"])
    assert SAML_NAMES["mail"].encode() in xml and b"rsa-sha256" in xml


def test_post_binding_login_and_sso_for_the_next_request(client, sp, account) -> None:
    action, fields = sp.post_request("https://sso.test/saml/metadata", relay_state="rs")
    assert urlsplit(action).path == "/saml/sso/post"
    page = client.post("/saml/sso/post", data=fields)
    answer = submit_login(client, page, USER, PASSWORD)
    sp.read_response(response_of(answer)[1]["SAMLResponse"])
    # Already logged in: the next request is answered without a page.
    again = client.get(_path(sp.login_url("https://sso.test/saml/metadata")))
    assert 'id="academic-login"' not in again.text
    assert sp.read_response(response_of(again)[1]["SAMLResponse"]).get_identity()["uid"] == [USER]


def test_one_sso_session_across_sps_and_cas(
    client, sp, account, tmp_path, idp_metadata, register, add_service
) -> None:
    log_in_at(client, sp.login_url("https://sso.test/saml/metadata"))
    other = register(
        make_sp(tmp_path / "other", idp_metadata, entity_id="https://other.test/metadata")
    )
    page = client.get(_path(other.login_url("https://sso.test/saml/metadata")))
    assert other.read_response(response_of(page)[1]["SAMLResponse"]).get_identity()["uid"] == [USER]
    add_service("https://webmail.test/")
    cas = client.get("/login", params={"service": "https://webmail.test/"})
    assert cas.status_code == 302 and "ticket=ST-" in cas.headers["location"]


def test_force_authn_asks_for_the_password_again(client, sp, account) -> None:
    log_in_at(client, sp.login_url("https://sso.test/saml/metadata"))
    forced = client.get(_path(sp.login_url("https://sso.test/saml/metadata", force_authn="true")))
    assert 'id="academic-login"' in forced.text
    answer = submit_login(client, forced, USER, PASSWORD)
    sp.read_response(response_of(answer)[1]["SAMLResponse"])


def test_is_passive_without_session_answers_no_passive(client, sp, account) -> None:
    page = client.get(_path(sp.login_url("https://sso.test/saml/metadata", is_passive="true")))
    assert 'id="academic-login"' not in page.text
    with pytest.raises(StatusNoPassive):
        sp.read_response(response_of(page)[1]["SAMLResponse"])


def test_is_passive_with_a_session_answers_at_once(client, sp, account) -> None:
    log_in_at(client, sp.login_url("https://sso.test/saml/metadata"))
    page = client.get(_path(sp.login_url("https://sso.test/saml/metadata", is_passive="true")))
    assert sp.read_response(response_of(page)[1]["SAMLResponse"]).get_identity()["uid"] == [USER]


def _persistent(client, sp) -> str:
    policy = NameIDPolicy(format=PERSISTENT, allow_create="true")
    page = client.get(_path(sp.login_url("https://sso.test/saml/metadata", name_id_policy=policy)))
    if 'id="academic-login"' in page.text:
        page = submit_login(client, page, USER, PASSWORD)
    name_id = sp.read_response(response_of(page)[1]["SAMLResponse"]).name_id
    assert name_id.format == PERSISTENT
    return name_id.text


def test_persistent_name_id_is_stable_and_pairwise(
    client, sp, account, tmp_path, idp_metadata, register
) -> None:
    first = _persistent(client, sp)
    assert first == _persistent(client, sp)
    assert USER not in first
    other = register(
        make_sp(tmp_path / "other", idp_metadata, entity_id="https://other.test/metadata")
    )
    assert _persistent(client, other) != first


def test_email_name_id(client, sp, account) -> None:
    policy = NameIDPolicy(format=EMAIL)
    page = log_in_at(client, sp.login_url("https://sso.test/saml/metadata", name_id_policy=policy))
    name_id = sp.read_response(response_of(page)[1]["SAMLResponse"]).name_id
    assert (name_id.format, name_id.text) == (EMAIL, "claire.martin@ac-demo.fr")


def test_release_policy_limits_attributes(
    client, tmp_path, idp_metadata, register, account
) -> None:
    sp = register(make_sp(tmp_path / "sp", idp_metadata), release=("mail",))
    page = log_in_at(client, sp.login_url("https://sso.test/saml/metadata"))
    assert set(sp.read_response(response_of(page)[1]["SAMLResponse"]).get_identity()) == {"mail"}


def test_signed_requests_required_by_metadata(
    client, tmp_path, idp_metadata, register, account
) -> None:
    signing = register(make_sp(tmp_path / "signed", idp_metadata, sign_requests=True))
    unsigned = make_sp(tmp_path / "unsigned", idp_metadata)  # same entityID, does not sign
    refused = client.get(_path(unsigned.login_url("https://sso.test/saml/metadata")))
    assert refused.status_code == 400 and "sign" in refused.text
    page = log_in_at(client, signing.login_url("https://sso.test/saml/metadata"))
    signing.read_response(response_of(page)[1]["SAMLResponse"])


def test_tampered_redirect_signature_is_refused(
    client, tmp_path, idp_metadata, register, account
) -> None:
    signing = register(make_sp(tmp_path / "signed", idp_metadata, sign_requests=True))
    url = signing.login_url("https://sso.test/saml/metadata", relay_state="a")
    tampered = url.replace("RelayState=a", "RelayState=b")
    page = client.get(_path(tampered))
    assert page.status_code == 400 and "signature" in page.text


def test_encrypted_assertion_with_aes_gcm(
    client, tmp_path, idp_metadata, register, account
) -> None:
    sp = register(make_sp(tmp_path / "enc", idp_metadata, encryption=True), encrypt_assertions=True)
    page = log_in_at(client, sp.login_url("https://sso.test/saml/metadata"))
    saml_response = response_of(page)[1]["SAMLResponse"]
    xml = base64.b64decode(saml_response)
    assert b"EncryptedAssertion" in xml and b"xmlenc11#aes128-gcm" in xml
    assert b"tripledes" not in xml and b"cmartin" not in xml
    assert sp.read_response(saml_response).get_identity()["uid"] == [USER]


@pytest.mark.parametrize("settings_overrides", [{"saml_crypto_backend": "xmlsec1"}])
@pytest.mark.parametrize("encrypted", [False, True], ids=["signed", "signed-and-encrypted"])
def test_xmlsec1_backend_signs_and_encrypts_the_same_responses(
    client, tmp_path, idp_metadata, register, account, encrypted
) -> None:
    """The fallback backend (the xmlsec1 program, per signature) builds Responses the SP accepts
    just as the in-process one does."""
    sp = register(
        make_sp(tmp_path / "sp-xmlsec1", idp_metadata, encryption=encrypted),
        encrypt_assertions=encrypted,
    )
    page = log_in_at(client, sp.login_url("https://sso.test/saml/metadata"))
    saml_response = response_of(page)[1]["SAMLResponse"]
    xml = base64.b64decode(saml_response)
    assert (b"xmlenc11#aes128-gcm" in xml) is encrypted
    xmldsig.verify(
        xml, [client.app.state.saml.idp.keys.cert_pem], element_tag=f"{{{SAMLP}}}Response"
    )
    assert sp.read_response(saml_response).get_identity()["uid"] == [USER]


def test_idp_initiated_sso(client, sp, account) -> None:
    page = log_in_at(
        client,
        "/saml/sso/unsolicited?providerId=https%3A%2F%2Fsp.test%2Fmetadata&target=%2Fhome",
    )
    action, fields = response_of(page)
    assert action == sp.acs_url and fields["RelayState"] == "/home"
    answer = sp.read_response(fields["SAMLResponse"], unsolicited=True)
    assert answer.get_identity()["uid"] == [USER]


def test_idp_initiated_refuses_an_acs_outside_metadata(client, sp) -> None:
    page = client.get(
        "/saml/sso/unsolicited",
        params={"providerId": sp.entity_id, "shire": "https://evil.test/acs"},
    )
    assert page.status_code == 400
    assert "SAMLResponse" not in page.text and 'action="https://evil.test' not in page.text


URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"


def test_pairwise_id_when_the_sp_requires_it(
    client, tmp_path, idp_metadata, register, account
) -> None:
    requirement = {
        "name": "urn:oasis:names:tc:SAML:profiles:subject-id:req",
        "format": URI,
        "values": ["pairwise-id"],
    }
    sp = register(
        make_sp(tmp_path / "pw", idp_metadata, extra_entity_attributes=[requirement]),
        release=("mail",),
    )
    page = log_in_at(client, sp.login_url("https://sso.test/saml/metadata"))
    identity = sp.read_response(response_of(page)[1]["SAMLResponse"]).get_identity()
    pairwise = identity["pairwise-id"][0]
    assert pairwise.endswith("@sso.test") and USER not in pairwise
    assert "subject-id" not in identity and set(identity) == {"mail", "pairwise-id"}


def test_subject_id_when_the_sp_requires_it(
    client, tmp_path, idp_metadata, register, account
) -> None:
    requirement = {
        "name": "urn:oasis:names:tc:SAML:profiles:subject-id:req",
        "format": URI,
        "values": ["subject-id"],
    }
    sp = register(
        make_sp(tmp_path / "sid", idp_metadata, extra_entity_attributes=[requirement]), release=()
    )
    page = log_in_at(client, sp.login_url("https://sso.test/saml/metadata"))
    identity = sp.read_response(response_of(page)[1]["SAMLResponse"]).get_identity()
    assert identity == {"subject-id": ["cmartin@sso.test"]}


def test_research_and_scholarship_sp_gets_the_bundle(
    client, tmp_path, idp_metadata, register, account
) -> None:
    category = {
        "name": "http://macedir.org/entity-category",
        "format": URI,
        "values": ["http://refeds.org/category/research-and-scholarship"],
    }
    sp = register(
        make_sp(tmp_path / "rs", idp_metadata, extra_entity_attributes=[category]), release=()
    )
    page = log_in_at(client, sp.login_url("https://sso.test/saml/metadata"))
    identity = sp.read_response(response_of(page)[1]["SAMLResponse"]).get_identity()
    assert {"eduPersonPrincipalName", "mail", "givenName", "sn"} <= set(identity)
    assert "uid" not in identity and "supannAliasLogin" not in identity
