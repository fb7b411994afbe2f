"""/logout (CAS Protocol Specification 3.0.3, 2.3): the session ends, the cookie goes, and the
browser is sent on only to a registered ``service`` — ``url`` is ignored, never an open redirect.
Single logout to the services is covered with the validation endpoints.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from sso.sessions.models import SsoSessionRow
from tests.support.cas_login import foreign_links, log_in, page_message, parse_page, set_cookie

SERVICE = "https://app.test/cas/callback?next=/home"
OTHER_SERVICE = "https://intranet.test/"
PASSWORD = "correct horse battery staple"
LOGGED_OUT = "Vous êtes déconnecté. Pour plus de sécurité, fermez votre navigateur."


@pytest.fixture
def logged_in(client, add_account, add_service):
    add_service(SERVICE, name="Webmail")
    add_service(OTHER_SERVICE, name="Intranet")
    add_account("cmartin", PASSWORD, display_name="Claire Martin")
    answer = log_in(client, "cmartin", PASSWORD, SERVICE)
    assert answer.status_code == 302
    return set_cookie(answer, "TGC")[0]


def session_count(runtime) -> int:
    with runtime.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(SsoSessionRow))


def has_sso(client) -> bool:
    answer = client.get("/login", params={"service": SERVICE})
    if answer.status_code == 302:
        return "ticket=ST-" in answer.headers["location"]
    assert answer.status_code == 200
    assert 'id="academic-login"' in answer.text
    return False


def assert_cookie_cleared(answer) -> None:
    value, attributes = set_cookie(answer, "TGC")
    assert value == ""
    assert attributes["max-age"] == "0"
    assert attributes["path"] == "/"
    assert "httponly" in attributes and "secure" in attributes
    assert attributes["samesite"].lower() == "none"


def assert_logout_page(answer) -> None:
    assert answer.status_code == 200
    assert "location" not in answer.headers
    assert "<h1>Déconnexion</h1>" in answer.text
    assert page_message(answer.text) == LOGGED_OUT
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"


def test_logout_ends_the_session_and_clears_the_cookie(client, runtime, logged_in):
    assert has_sso(client)
    answer = client.get("/logout")
    assert_logout_page(answer)
    assert_cookie_cleared(answer)
    assert session_count(runtime) == 0
    assert not has_sso(client)  # the next /login asks for the password


def test_the_old_cookie_is_dead_on_the_server_too(client, runtime, logged_in):
    client.get("/logout")
    client.cookies.clear()
    client.cookies.set("TGC", logged_in, domain="sso.test")  # a copy kept by an attacker
    assert not has_sso(client)
    assert 'id="academic-login"' in client.get("/login").text
    gateway = client.get("/login", params={"service": SERVICE, "gateway": "true"})
    assert gateway.headers["location"] == SERVICE  # no ticket


def test_logout_redirects_to_a_registered_service(client, runtime, logged_in):
    answer = client.get("/logout", params={"service": OTHER_SERVICE})
    assert answer.status_code == 302
    assert answer.headers["location"] == OTHER_SERVICE
    assert_cookie_cleared(answer)
    assert session_count(runtime) == 0
    assert not has_sso(client)


@pytest.mark.parametrize(
    "service",
    [
        "https://evil.test/",
        "https://app.test.evil.test/cas/callback?next=/home",
        "//evil.test/",
        "javascript:alert(1)",
    ],
)
def test_logout_with_an_unregistered_service_shows_the_page_without_redirect(
    client, runtime, logged_in, service
):
    answer = client.get("/logout", params={"service": service})
    assert_logout_page(answer)
    assert foreign_links(answer) == []
    assert_cookie_cleared(answer)
    assert session_count(runtime) == 0


@pytest.mark.parametrize(
    "query",
    [
        {"url": "https://evil.test/"},
        {"url": OTHER_SERVICE},  # even a registered URL: `url` is not a CAS 3.0 parameter
        {"url": "/login"},
    ],
)
def test_logout_ignores_url_entirely(client, runtime, logged_in, query):
    answer = client.get("/logout", params=query)
    assert_logout_page(answer)
    assert foreign_links(answer) == []
    assert session_count(runtime) == 0


def test_logout_with_url_and_service_follows_only_the_service(client, logged_in):
    answer = client.get("/logout", params={"url": "https://evil.test/", "service": OTHER_SERVICE})
    assert answer.status_code == 302
    assert answer.headers["location"] == OTHER_SERVICE


def test_repeated_service_gives_the_page_and_still_logs_out(client, runtime, logged_in):
    answer = client.get(
        "/logout", params=[("service", OTHER_SERVICE), ("service", "https://evil.test/")]
    )
    assert_logout_page(answer)
    assert session_count(runtime) == 0


def test_logout_without_a_session(client, add_service):
    add_service(OTHER_SERVICE)
    answer = client.get("/logout")
    assert_logout_page(answer)
    assert_cookie_cleared(answer)
    redirected = client.get("/logout", params={"service": OTHER_SERVICE})
    assert redirected.status_code == 302
    assert redirected.headers["location"] == OTHER_SERVICE


def test_logout_ends_only_this_browsers_session(client, runtime, logged_in):
    other_browser = TestClient(client.app, base_url="https://sso.test", follow_redirects=False)
    assert log_in(other_browser, "cmartin", PASSWORD, SERVICE).status_code == 302
    assert session_count(runtime) == 2
    client.get("/logout")
    assert session_count(runtime) == 1
    assert not has_sso(client)
    assert has_sso(other_browser)


def test_the_logged_in_pages_logout_button_works(client, runtime, logged_in):
    page = client.get("/login")
    (form,) = parse_page(page.text).forms
    assert form["attrs"]["method"] == "post"
    fields = {i["name"]: i.get("value") or "" for i in form["inputs"]}
    answer = client.post(form["attrs"]["action"], data=fields)
    assert_logout_page(answer)
    assert_cookie_cleared(answer)
    assert session_count(runtime) == 0
    assert not has_sso(client)
