"""SAML Single Logout (profiles 4.4): an SP's signed LogoutRequest ends the SSO session (CAS
side included), the other SPs get a front-channel LogoutRequest, the SP gets its answer."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT

from sso.protocols.saml.bindings import parse_redirect_query, verify_redirect_signature
from tests.support.login_form import submit_login
from tests.support.saml_client import logout_request, make_sp, redirect_message, saml_form

USER, PASSWORD = "cmartin", "Saml-Passw0rd-2026"
IDP = "https://sso.test/saml/metadata"


@pytest.fixture
def saml(client):
    return client.app.state.saml


@pytest.fixture
def idp_metadata(client) -> str:
    return client.get("/saml/metadata").text


@pytest.fixture(autouse=True)
def account(add_account) -> str:
    return add_account(USER, PASSWORD, email="claire.martin@ac-demo.fr")


@pytest.fixture
def new_sp(saml, tmp_path, idp_metadata):
    def make(name: str):
        sp = make_sp(tmp_path / name, idp_metadata, entity_id=f"https://{name}.test/metadata")
        saml.registry.add(metadata_xml=sp.metadata_xml, released_attributes=["*"])
        return sp

    return make


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def sign_in(client, sp):
    """SP-initiated SSO (logging in when asked); returns pysaml2's AuthnResponse."""
    page = client.get(_path(sp.login_url(IDP)))
    if 'id="academic-login"' in page.text:
        page = submit_login(client, page, USER, PASSWORD)
    return sp.read_response(saml_form(page.text)[1]["SAMLResponse"])


def session_index(answer) -> str:
    return answer.assertion.authn_statement[0].session_index


def test_logout_from_one_sp_tells_the_other_and_ends_the_session(client, runtime, new_sp) -> None:
    first, second = new_sp("first"), new_sp("second")
    login_first, login_second = sign_in(client, first), sign_in(client, second)
    assert runtime.sessions.sessions_of(USER)
    url = logout_request(
        first,
        name_id=login_first.name_id,
        session_index=session_index(login_first),
        relay_state="bye",
    )
    page = client.get(_path(url))
    assert page.status_code == 200
    assert not runtime.sessions.sessions_of(USER)
    # The other SP gets a signed LogoutRequest for its own NameID, in a hidden frame.
    frame = (
        page.text.split('class="logout-frame" src="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    )
    assert frame.startswith("https://second.test/slo?")
    request = second.client.parse_logout_request(
        parse_qs(urlsplit(frame).query)["SAMLRequest"][0], BINDING_HTTP_REDIRECT
    )
    assert request.message.name_id.text == login_second.name_id.text
    assert request.message.session_index[0].text == session_index(login_second)
    message = parse_redirect_query(urlsplit(frame).query.encode())
    assert verify_redirect_signature(message, [client.app.state.saml.idp.keys.cert_pem.decode()])
    # Then the SP that asked gets a signed LogoutResponse, by Redirect as it asked.
    answer = page.text.split('class="button blue after-logout" href="', 1)[1].split('"', 1)[0]
    answer = answer.replace("&amp;", "&")
    assert answer.startswith("https://first.test/slo?")
    assert b"status:Success" in redirect_message(answer)
    assert parse_qs(urlsplit(answer).query)["RelayState"] == ["bye"]
    # No more SSO: the next AuthnRequest shows the login page.
    assert 'id="academic-login"' in client.get(_path(first.login_url(IDP))).text


def test_logout_of_the_only_sp_redirects_straight_back(client, runtime, new_sp) -> None:
    sp = new_sp("only")
    login = sign_in(client, sp)
    url = logout_request(sp, name_id=login.name_id, session_index=session_index(login))
    answer = client.get(_path(url))
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith("https://only.test/slo?SAMLResponse=")
    message = parse_redirect_query(urlsplit(location).query.encode())
    assert verify_redirect_signature(message, [client.app.state.saml.idp.keys.cert_pem.decode()])
    assert not runtime.sessions.sessions_of(USER)


def test_post_binding_logout_request(client, runtime, new_sp) -> None:
    sp = new_sp("post")
    login = sign_in(client, sp)
    action, fields = logout_request(
        sp,
        name_id=login.name_id,
        session_index=session_index(login),
        binding=BINDING_HTTP_POST,
        destination="https://sso.test/saml/slo/post",
    )
    answer = client.post("/saml/slo/post", data=fields)
    assert answer.status_code in (200, 302)
    assert not runtime.sessions.sessions_of(USER)


def test_logout_ends_the_cas_side_too(client, runtime, new_sp, add_service) -> None:
    sp = new_sp("mixed")
    login = sign_in(client, sp)
    add_service("https://webmail.test/")
    assert (
        "ticket="
        in client.get("/login", params={"service": "https://webmail.test/"}).headers["location"]
    )
    client.get(_path(logout_request(sp, name_id=login.name_id, session_index=session_index(login))))
    again = client.get("/login", params={"service": "https://webmail.test/"})
    assert again.status_code == 200 and 'id="academic-login"' in again.text


def test_unsigned_logout_request_is_refused_and_the_session_kept(client, runtime, new_sp) -> None:
    sp = new_sp("unsigned")
    login = sign_in(client, sp)
    url = logout_request(sp, name_id=login.name_id, session_index=session_index(login), sign=False)
    page = client.get(_path(url))
    assert page.status_code == 400 and "sign" in page.text
    assert runtime.sessions.sessions_of(USER)


def test_logout_request_for_another_name_id_ends_nothing(client, runtime, new_sp) -> None:
    sp = new_sp("other")
    login = sign_in(client, sp)
    login.name_id.text = "_someone-else"
    page = client.get(_path(logout_request(sp, name_id=login.name_id, session_index="_nope")))
    assert page.status_code in (200, 302)  # answered (nothing to end), never an error
    assert runtime.sessions.sessions_of(USER)


def test_lost_cookie_logout_finds_the_session_by_session_index(client, runtime, new_sp) -> None:
    sp = new_sp("cookieless")
    login = sign_in(client, sp)
    client.cookies.clear()  # e.g. a browser that withheld the cookie on a cross-site request
    client.get(_path(logout_request(sp, name_id=login.name_id, session_index=session_index(login))))
    assert not runtime.sessions.sessions_of(USER)


def test_logout_response_from_an_sp_in_its_frame_is_acknowledged(client) -> None:
    xml = b'<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>'
    encoded = base64.b64encode(xml).decode()
    assert client.post("/saml/slo/post", data={"SAMLResponse": encoded}).status_code == 200


def test_cas_logout_page_tells_the_saml_sps_through_the_browser(client, runtime, new_sp) -> None:
    sp = new_sp("webapp")
    login = sign_in(client, sp)
    page = client.get("/logout")
    assert page.status_code == 200
    frame = (
        page.text.split('class="logout-frame" src="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    )
    request = sp.client.parse_logout_request(
        parse_qs(urlsplit(frame).query)["SAMLRequest"][0], BINDING_HTTP_REDIRECT
    )
    assert request.message.name_id.text == login.name_id.text
    assert not runtime.sessions.sessions_of(USER)
