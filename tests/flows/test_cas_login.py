"""/login as credential requestor and acceptor (CAS Protocol Specification 3.0.3, 2.1-2.2).

Each test drives the real application over HTTP; the ticket's ``isFromNewLogin`` is read
back through /p3/serviceValidate, the way a CAS 3.0 client sees it.
"""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import update

from sso.services.models import CasServiceRow
from tests.support.cas_login import (
    TICKET,
    foreign_links,
    log_in,
    page_message,
    parse_page,
    ticket_from,
)
from tests.support.login_form import read_form, submit_login

# django-cas-ng style: the service's own query string must survive byte for byte.
SERVICE = "https://app.test/cas/callback?next=/inbox%3Fa%3D1&x=%C3%A9&empty=&plus=a+b"
IDENTIFIER = "cmartin"
PASSWORD = "correct horse battery staple"
UNKNOWN_SERVICE_TEXT = "n'est pas autorisée à utiliser ce service d'authentification"
BAD_REQUEST_TEXT = "La demande reçue est invalide."


@pytest.fixture
def account(add_account):
    return add_account(IDENTIFIER, PASSWORD, display_name="Claire Martin")


@pytest.fixture
def service(add_service):
    return add_service(SERVICE, name="Webmail")


@pytest.fixture
def logged_in(client, account, service):
    """A browser holding an SSO session (logged in through the service)."""
    answer = log_in(client, IDENTIFIER, PASSWORD, SERVICE)
    assert answer.status_code == 302
    return client


def is_login_page(response) -> bool:
    return response.status_code == 200 and 'id="academic-login"' in response.text


def is_from_new_login(client, service_url: str, ticket: str) -> bool:
    answer = client.get("/p3/serviceValidate", params={"service": service_url, "ticket": ticket})
    assert f"<cas:user>{IDENTIFIER}</cas:user>" in answer.text, answer.text
    if "<cas:isFromNewLogin>true</cas:isFromNewLogin>" in answer.text:
        return True
    assert "<cas:isFromNewLogin>false</cas:isFromNewLogin>" in answer.text, answer.text
    return False


# -- 2.1.1 service --------------------------------------------------------------------------


def test_no_service_and_no_session_shows_the_login_page(client):
    page = client.get("/login")
    assert is_login_page(page)
    action, fields = read_form(page.text)
    assert action == "/login/academic"
    assert set(fields) == {"csrf_token", "pending", "identifier", "password"}
    assert "Pour accéder à" not in page.text


def test_no_service_with_a_session_shows_the_logged_in_page(client, account):
    answer = log_in(client, IDENTIFIER, PASSWORD)
    assert answer.status_code == 200
    assert "Vous êtes connecté en tant que Claire Martin." in answer.text
    again = client.get("/login")
    assert again.status_code == 200
    assert "<h1>Vous êtes connecté</h1>" in again.text
    assert "Vous êtes connecté en tant que Claire Martin." in again.text
    assert 'id="academic-login"' not in again.text


def test_registered_service_shows_the_login_page_with_only_the_blue_door(client, service):
    page = client.get("/login", params={"service": SERVICE})
    assert is_login_page(page)
    assert "Pour accéder à : Webmail" in page.text
    forms = parse_page(page.text).forms
    assert [form["attrs"].get("id") for form in forms] == ["academic-login"]
    assert forms[0]["attrs"]["method"] == "post"
    # The violet and direct doors have no back end yet: no dead buttons.
    for absent in ("door-federated", "door-invited", "violet", "Connexion directe"):
        assert absent not in page.text
    assert page.text.count('class="door ') == 1


@pytest.mark.parametrize(
    "unknown",
    [
        "https://evil.test/",
        "https://app.test/cas/callback2",  # a longer path is another service
        "https://app.test.evil.test/cas/callback?next=/inbox%3Fa%3D1&x=%C3%A9&empty=&plus=a+b",
        "javascript:alert(1)",
    ],
)
def test_unregistered_service_gets_a_clear_page_and_never_a_redirect(client, service, unknown):
    for extra in ({}, {"gateway": "true"}, {"renew": "true"}, {"warn": "true"}):
        answer = client.get("/login", params={"service": unknown, **extra})
        assert answer.status_code == 403
        assert "location" not in answer.headers
        assert UNKNOWN_SERVICE_TEXT in page_message(answer.text)
        assert foreign_links(answer) == []


def test_disabled_service_is_refused_like_an_unregistered_one(logged_in, runtime):
    with runtime.engine.begin() as conn:
        conn.execute(update(CasServiceRow).values(enabled=False))
    for extra in ({}, {"gateway": "true"}):
        answer = logged_in.get("/login", params={"service": SERVICE, **extra})
        assert answer.status_code == 403
        assert "location" not in answer.headers
        assert UNKNOWN_SERVICE_TEXT in page_message(answer.text)


def test_unregistered_service_is_refused_even_with_a_session(logged_in):
    for extra in ({}, {"gateway": "true"}, {"method": "POST"}, {"method": "HEADER"}):
        answer = logged_in.get("/login", params={"service": "https://evil.test/", **extra})
        assert answer.status_code == 403
        assert "location" not in answer.headers
        assert "ticket" not in answer.headers
        assert "ST-" not in answer.text
        assert UNKNOWN_SERVICE_TEXT in page_message(answer.text)


# -- 2.2.4 successful login and 2.1.5 single sign-on -----------------------------------------


def test_login_redirects_to_the_service_with_its_query_string_kept_byte_for_byte(
    client, account, service
):
    answer = log_in(client, IDENTIFIER, PASSWORD, SERVICE)
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(SERVICE + "&ticket=")
    ticket = location[len(SERVICE + "&ticket=") :]
    assert TICKET.fullmatch(ticket)
    assert answer.headers["cache-control"] == "no-store"
    assert is_from_new_login(client, SERVICE, ticket)


def test_session_gives_a_new_ticket_without_asking_for_the_password(logged_in):
    first = logged_in.get("/login", params={"service": SERVICE})
    second = logged_in.get("/login", params={"service": SERVICE})
    for answer in (first, second):
        assert answer.status_code == 302
        assert answer.headers["location"].startswith(SERVICE + "&ticket=ST-")
    tickets = {ticket_from(first.headers["location"]), ticket_from(second.headers["location"])}
    assert len(tickets) == 2
    assert not is_from_new_login(logged_in, SERVICE, tickets.pop())


@pytest.mark.parametrize(
    ("registered", "asked", "expected_prefix", "expected_suffix"),
    [
        ("https://spa.test/app", "https://spa.test/app", "https://spa.test/app?ticket=", ""),
        (
            "https://spa.test/app?x=1",
            "https://spa.test/app?x=1#/route?y=2",
            "https://spa.test/app?x=1&ticket=",
            "#/route?y=2",
        ),
        (
            "https://spa.test/app",
            "https://spa.test/app#top",
            "https://spa.test/app?ticket=",
            "#top",
        ),
    ],
)
def test_ticket_is_appended_before_the_fragment(
    logged_in, add_service, registered, asked, expected_prefix, expected_suffix
):
    add_service(registered)
    answer = logged_in.get("/login", params={"service": asked})
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(expected_prefix)
    assert location.endswith(expected_suffix)
    ticket = location[len(expected_prefix) : len(location) - len(expected_suffix)]
    assert TICKET.fullmatch(ticket), location


# -- renew ----------------------------------------------------------------------------------


@pytest.mark.parametrize("renew", ["true", ""])
def test_renew_asks_for_the_password_even_with_a_session(logged_in, renew):
    page = logged_in.get("/login", params={"service": SERVICE, "renew": renew})
    assert is_login_page(page)
    answer = submit_login(logged_in, page, IDENTIFIER, PASSWORD)
    assert answer.status_code == 302
    ticket = ticket_from(answer.headers["location"])
    assert is_from_new_login(logged_in, SERVICE, ticket)


def test_renew_false_is_not_renew(logged_in):
    answer = logged_in.get("/login", params={"service": SERVICE, "renew": "false"})
    assert answer.status_code == 302
    assert not is_from_new_login(logged_in, SERVICE, ticket_from(answer.headers["location"]))


# -- gateway --------------------------------------------------------------------------------


@pytest.mark.parametrize("gateway", ["true", ""])
def test_gateway_without_a_session_returns_to_the_service_without_a_ticket(
    client, service, gateway
):
    answer = client.get("/login", params={"service": SERVICE, "gateway": gateway})
    assert answer.status_code == 302
    assert answer.headers["location"] == SERVICE
    assert "set-cookie" not in answer.headers


def test_gateway_with_a_session_gives_a_ticket(logged_in):
    answer = logged_in.get("/login", params={"service": SERVICE, "gateway": "true"})
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(SERVICE + "&ticket=ST-")
    assert not is_from_new_login(logged_in, SERVICE, ticket_from(answer.headers["location"]))


def test_gateway_without_service_asks_for_credentials(client):
    assert is_login_page(client.get("/login", params={"gateway": "true"}))


def test_renew_wins_over_gateway_without_a_session(client, service):
    answer = client.get("/login", params={"service": SERVICE, "gateway": "true", "renew": "true"})
    assert is_login_page(answer)


def test_renew_wins_over_gateway_with_a_session(logged_in):
    page = logged_in.get("/login", params={"service": SERVICE, "renew": "true", "gateway": "true"})
    assert is_login_page(page)
    answer = submit_login(logged_in, page, IDENTIFIER, PASSWORD)
    assert answer.status_code == 302
    assert is_from_new_login(logged_in, SERVICE, ticket_from(answer.headers["location"]))


# -- warn -----------------------------------------------------------------------------------


def test_warn_asks_before_using_the_session_and_the_link_continues(logged_in):
    page = logged_in.get("/login", params={"service": SERVICE, "warn": "true"})
    assert page.status_code == 200
    assert "location" not in page.headers
    assert "Vous allez être connecté à l&#39;application « Webmail »." in page.text
    assert "ST-" not in page.text
    continue_links = [a for a in parse_page(page.text).links if a.get("id") == "continue"]
    assert len(continue_links) == 1
    href = unescape(continue_links[0]["href"])
    assert href.startswith("https://sso.test/login?")
    answer = logged_in.get(href)
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(SERVICE + "&ticket=ST-")


def test_warn_keeps_the_response_method(logged_in):
    page = logged_in.get("/login", params={"service": SERVICE, "warn": "true", "method": "HEADER"})
    href = unescape(
        next(a["href"] for a in parse_page(page.text).links if a.get("id") == "continue")
    )
    answer = logged_in.get(href)
    assert answer.status_code == 200
    assert answer.headers["service"] == SERVICE
    assert TICKET.fullmatch(answer.headers["ticket"])


# -- method (CAS 3.0) -----------------------------------------------------------------------


def _post_form(answer) -> tuple[dict, dict[str, str]]:
    parsed = parse_page(answer.text)
    assert len(parsed.forms) == 1
    form = parsed.forms[0]
    fields = {i["name"]: i.get("value") for i in form["inputs"] if i.get("type") == "hidden"}
    # Without JavaScript the user presses this button; with it, autosubmit.js does.
    assert [b.get("type") for b in form["buttons"]] == ["submit"]
    assert [s.get("src") for s in parsed.scripts] == ["/static/autosubmit.js"]
    return form["attrs"], fields


def test_method_post_answers_with_a_form_posting_the_ticket(logged_in):
    answer = logged_in.get("/login", params={"service": SERVICE, "method": "POST"})
    assert answer.status_code == 200
    assert "location" not in answer.headers
    attrs, fields = _post_form(answer)
    assert attrs["method"] == "post"
    assert attrs["action"] == SERVICE
    assert set(fields) == {"ticket"}
    assert TICKET.fullmatch(fields["ticket"])
    assert answer.headers["cache-control"] == "no-store"
    assert not is_from_new_login(logged_in, SERVICE, fields["ticket"])


def test_method_post_after_the_password(client, account, service):
    answer = log_in(client, IDENTIFIER, PASSWORD, SERVICE, method="POST")
    assert answer.status_code == 200
    attrs, fields = _post_form(answer)
    assert attrs["action"] == SERVICE
    assert is_from_new_login(client, SERVICE, fields["ticket"])
    assert "TGC=" in answer.headers["set-cookie"]


def test_method_header_answers_with_service_and_ticket_headers(logged_in):
    answer = logged_in.get("/login", params={"service": SERVICE, "method": "HEADER"})
    assert answer.status_code == 200
    assert "location" not in answer.headers
    assert answer.headers["service"] == SERVICE
    assert TICKET.fullmatch(answer.headers["ticket"])
    assert answer.headers["cache-control"] == "no-store"
    assert not is_from_new_login(logged_in, SERVICE, answer.headers["ticket"])


def test_method_get_is_the_plain_redirect(logged_in):
    answer = logged_in.get("/login", params={"service": SERVICE, "method": "GET"})
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(SERVICE + "&ticket=ST-")


@pytest.mark.parametrize(
    ("default", "asked", "expected"),
    [
        ("POST", None, "POST"),
        ("HEADER", None, "HEADER"),
        ("POST", "GET", "GET"),
        ("HEADER", "POST", "POST"),
    ],
)
def test_service_response_method_is_the_default(logged_in, add_service, default, asked, expected):
    url = f"https://{default.lower()}.test/"
    add_service(url, response_method=default)
    params = {"service": url} | ({"method": asked} if asked else {})
    answer = logged_in.get("/login", params=params)
    if expected == "GET":
        assert answer.status_code == 302
        assert answer.headers["location"].startswith(url + "?ticket=ST-")
    elif expected == "POST":
        assert answer.status_code == 200
        assert _post_form(answer)[0]["action"] == url
    else:
        assert answer.status_code == 200
        assert answer.headers["service"] == url
        assert TICKET.fullmatch(answer.headers["ticket"])


@pytest.mark.parametrize("method", ["PUT", "REDIRECT", "POST;x", ""])
def test_unknown_method_is_a_bad_request_page(logged_in, method):
    if method == "":  # an empty method is no method: the default applies
        assert logged_in.get("/login", params={"service": SERVICE, "method": ""}).status_code == 302
        return
    answer = logged_in.get("/login", params={"service": SERVICE, "method": method})
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert BAD_REQUEST_TEXT in page_message(answer.text)


# -- malformed requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        [("service", SERVICE), ("service", "https://evil.test/")],
        [("service", SERVICE), ("renew", "true"), ("renew", "false")],
        [("service", SERVICE), ("gateway", "true"), ("gateway", "true")],
        [("service", SERVICE), ("method", "POST"), ("method", "GET")],
        [("service", SERVICE), ("warn", "true"), ("warn", "")],
        [("service", SERVICE + "&pad=" + "a" * 5000)],
        [("service", SERVICE), ("method", "P" * 5000)],
    ],
)
def test_repeated_or_oversized_parameters_are_a_bad_request_page(logged_in, query):
    answer = logged_in.get("/login", params=query)
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert "ST-" not in answer.text
    assert BAD_REQUEST_TEXT in page_message(answer.text)


# -- service URLs that are not plain ASCII ----------------------------------------------------

RAW_SERVICES = [
    ("https://iri.test/?q=é", "https://iri.test/?q=%C3%A9"),
    ("https://iri.test/?q=€&r=1", "https://iri.test/?q=%E2%82%AC&r=1"),
    ('https://iri.test/"><script>alert(1)</script>', None),
]


@pytest.mark.parametrize(("raw", "encoded"), RAW_SERVICES)
@pytest.mark.parametrize("method", ["GET", "HEADER", "POST"])
def test_non_ascii_or_markup_service_urls_are_encoded_not_echoed(
    logged_in, add_service, raw, encoded, method
):
    add_service(r"https://iri\.test/.*", match="regex")
    answer = logged_in.get("/login", params={"service": raw, "method": method})
    assert "<script>alert" not in answer.text
    if method == "POST":
        assert answer.status_code == 200
        attrs, fields = _post_form(answer)
        assert attrs["action"] == raw  # HTML-escaped in the page, the browser posts to it
        ticket = fields["ticket"]
    else:
        if method == "GET":
            assert answer.status_code == 302
            target, ticket = re.fullmatch(
                r"(.*)[?&]ticket=(.*)", answer.headers["location"]
            ).groups()
        else:
            assert answer.status_code == 200
            target, ticket = answer.headers["service"], answer.headers["ticket"]
        assert target.isascii()
        if encoded is not None:
            assert target == encoded
    assert TICKET.fullmatch(ticket)
    validation = logged_in.get("/serviceValidate", params={"service": raw, "ticket": ticket})
    assert "<cas:user>cmartin</cas:user>" in validation.text
