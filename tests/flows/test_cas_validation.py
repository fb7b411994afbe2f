"""CAS conformance: ticket validation (CAS Protocol Specification 3.0.3, sections 2.4-2.9, 3).

Each test logs in through our form, then validates the service ticket the way a client does,
and asserts the exact wire answer. Proxy tickets are in ``test_cas_proxy.py`` (they need an
HTTPS callback), SAML 1.1 in ``test_cas_saml_validate.py``.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from sso.app import create_app
from tests.conftest import BASE_URL
from tests.support.cas import (
    JSON_TYPE,
    TEXT_TYPE,
    TICKET_FORMAT,
    VALIDATION_ENDPOINTS,
    XML_TYPE,
    failure,
    failure_code,
    json_failure,
    login,
    no_stack_trace,
    saml_request,
    sso_ticket,
    success_body,
    ticket_in,
    validate,
)
from tests.support.login_form import submit_login

USER = "jdupont"
PASSWORD = "correct horse battery staple"
APP = "https://app.test/cas/"
OTHER = "https://other.test/"

CAS3_FACTS = re.compile(
    r"<cas:authenticationDate>(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)</cas:authenticationDate>"
    r"<cas:longTermAuthenticationRequestTokenUsed>false</cas:longTermAuthenticationRequestTokenUsed>"
    r"<cas:isFromNewLogin>(true|false)</cas:isFromNewLogin>"
    r"<cas:authenticationMethod>academic</cas:authenticationMethod>"
)


@pytest.fixture
def cas(client, add_account, add_service):
    """A user and two services; the client is the user's browser and the services' back end."""
    add_account(
        USER,
        PASSWORD,
        email="jeanne.dupont@ac.test",
        given_name="Jeanne",
        surname="Dupont",
        memberOf="teachers;maths",
    )
    add_service(APP, released_attributes=["mail", "memberOf"])
    add_service(OTHER)
    return client


def cas3_attributes(response, *, new_login: bool) -> str:
    """The released part of ``cas:attributes`` after the facts, which are checked here."""
    match = re.search("<cas:attributes>(.*)</cas:attributes>", response.text)
    assert match is not None, response.text
    facts = CAS3_FACTS.match(match.group(1))
    assert facts is not None, response.text
    instant = dt.datetime.fromisoformat(facts.group(1).replace("Z", "+00:00"))
    assert abs(dt.datetime.now(dt.UTC) - instant) < dt.timedelta(minutes=1)
    assert facts.group(2) == ("true" if new_login else "false")
    return match.group(1)[facts.end() :]


# -- 3.1, 3.7: ticket format --------------------------------------------------------------------


def test_service_tickets_have_the_cas_format(cas):
    first = login(cas, APP, USER, PASSWORD)
    tickets = [first] + [sso_ticket(cas, APP) for _ in range(3)]
    for ticket in tickets:
        assert TICKET_FORMAT.match(ticket), ticket
        assert ticket.startswith("ST-")
        assert 32 <= len(ticket) <= 256, ticket
    assert len(set(tickets)) == len(tickets)


# -- 2.4 /validate ------------------------------------------------------------------------------


def test_validate_answers_yes_then_no(cas):
    ticket = login(cas, APP, USER, PASSWORD)
    answer = cas.get("/validate", params={"service": APP, "ticket": ticket})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == TEXT_TYPE
    assert answer.text == f"yes\n{USER}\n"
    replay = cas.get("/validate", params={"service": APP, "ticket": ticket})
    assert replay.text == "no\n\n"


def test_validate_answers_no_to_bad_requests(cas):
    for query in (
        {},
        {"service": APP},
        {"ticket": "ST-unknown-0123456789012345678901234567890"},
        {"service": APP, "ticket": "ST-unknown-0123456789012345678901234567890"},
        {"service": APP, "ticket": "PT-unknown-0123456789012345678901234567890"},
        [("service", APP), ("service", APP), ("ticket", "ST-x")],
    ):
        answer = cas.get("/validate", params=query)
        assert answer.status_code == 200
        assert answer.text == "no\n\n", query


def test_validate_renew_refuses_a_ticket_from_single_sign_on(cas):
    fresh = login(cas, APP, USER, PASSWORD)
    assert cas.get("/validate", params={"service": APP, "ticket": fresh, "renew": "true"}).text == (
        f"yes\n{USER}\n"
    )
    from_sso = sso_ticket(cas, APP)
    refused = cas.get("/validate", params={"service": APP, "ticket": from_sso, "renew": "true"})
    assert refused.text == "no\n\n"


def test_validate_wrong_service_burns_the_ticket(cas):
    ticket = login(cas, APP, USER, PASSWORD)
    assert cas.get("/validate", params={"service": OTHER, "ticket": ticket}).text == "no\n\n"
    assert cas.get("/validate", params={"service": APP, "ticket": ticket}).text == "no\n\n"


# -- 2.5, 2.6, 2.8, 2.9: success ----------------------------------------------------------------


def test_cas2_success_is_the_user_alone(cas):
    login(cas, APP, USER, PASSWORD)
    for endpoint in ("/serviceValidate", "/proxyValidate"):
        answer = validate(cas, endpoint, APP, sso_ticket(cas, APP))
        assert answer.headers["content-type"] == XML_TYPE
        assert answer.text == success_body(USER)


def test_cas3_success_carries_facts_then_released_attributes(cas):
    ticket = login(cas, APP, USER, PASSWORD)
    for endpoint in ("/p3/serviceValidate", "/p3/proxyValidate"):
        answer = validate(cas, endpoint, APP, ticket)
        assert answer.headers["content-type"] == XML_TYPE
        released = cas3_attributes(answer, new_login=endpoint == "/p3/serviceValidate")
        # Only what the release policy lists, a multi-valued attribute repeating its element.
        assert released == (
            "<cas:mail>jeanne.dupont@ac.test</cas:mail>"
            "<cas:memberOf>teachers</cas:memberOf><cas:memberOf>maths</cas:memberOf>"
        )
        start = answer.text.index("<cas:attributes>") + len("<cas:attributes>")
        end = answer.text.index("</cas:attributes>")
        assert answer.text == success_body(USER, answer.text[start:end])
        ticket = sso_ticket(cas, APP)


def test_cas3_is_from_new_login_is_false_for_single_sign_on(cas):
    login(cas, APP, USER, PASSWORD)
    ticket = sso_ticket(cas, APP)
    answer = validate(cas, "/p3/serviceValidate", APP, ticket)
    assert cas3_attributes(answer, new_login=False).startswith("<cas:mail>")


def test_release_all_attributes_with_star(cas, add_service):
    everything = add_service("https://all.test/", released_attributes=["*"])
    ticket = login(cas, everything.pattern, USER, PASSWORD)
    answer = validate(cas, "/p3/serviceValidate", everything.pattern, ticket)
    assert cas3_attributes(answer, new_login=True) == (
        f"<cas:uid>{USER}</cas:uid><cas:mail>jeanne.dupont@ac.test</cas:mail>"
        "<cas:givenName>Jeanne</cas:givenName><cas:sn>Dupont</cas:sn>"
        "<cas:displayName>Jeanne Dupont</cas:displayName>"
        "<cas:memberOf>teachers</cas:memberOf><cas:memberOf>maths</cas:memberOf>"
    )


def test_no_release_policy_releases_no_attribute(cas):
    ticket = login(cas, OTHER, USER, PASSWORD)
    answer = validate(cas, "/p3/serviceValidate", OTHER, ticket)
    assert cas3_attributes(answer, new_login=True) == ""


def test_directory_attributes_never_shadow_the_cas3_facts(client, add_account, add_service):
    add_account(USER, PASSWORD, isFromNewLogin="true", authenticationDate="1970-01-01T00:00:00Z")
    add_service(APP, released_attributes=["*"])
    login(client, APP, USER, PASSWORD)
    answer = validate(client, "/p3/serviceValidate", APP, sso_ticket(client, APP))
    assert answer.text.count("isFromNewLogin") == 2  # one element, open and close tags
    assert answer.text.count("authenticationDate") == 2
    assert cas3_attributes(answer, new_login=False) == f"<cas:uid>{USER}</cas:uid>"


# -- 2.5.1 format -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["JSON", "json"])
def test_json_success(cas, value):
    ticket = login(cas, APP, USER, PASSWORD)
    answer = validate(cas, "/p3/serviceValidate", APP, ticket, format=value)
    assert answer.headers["content-type"] == JSON_TYPE
    document = answer.json()
    success = document["serviceResponse"]["authenticationSuccess"]
    assert list(document) == ["serviceResponse"]
    assert list(document["serviceResponse"]) == ["authenticationSuccess"]
    assert list(success) == ["user", "attributes"]
    assert success["user"] == USER
    attributes = success["attributes"]
    assert list(attributes) == [
        "authenticationDate",
        "longTermAuthenticationRequestTokenUsed",
        "isFromNewLogin",
        "authenticationMethod",
        "mail",
        "memberOf",
    ]
    assert attributes["longTermAuthenticationRequestTokenUsed"] == ["false"]
    assert attributes["isFromNewLogin"] == ["true"]
    assert attributes["mail"] == ["jeanne.dupont@ac.test"]
    assert attributes["memberOf"] == ["teachers", "maths"]


def test_json_cas2_success_has_no_attributes(cas):
    ticket = login(cas, APP, USER, PASSWORD)
    answer = validate(cas, "/serviceValidate", APP, ticket, format="JSON")
    assert answer.text == '{"serviceResponse":{"authenticationSuccess":{"user":"jdupont"}}}'


def test_xml_format_in_any_case(cas):
    login(cas, APP, USER, PASSWORD)
    for value in ("XML", "xml", "Xml", ""):
        answer = validate(cas, "/serviceValidate", APP, sso_ticket(cas, APP), format=value)
        assert answer.headers["content-type"] == XML_TYPE
        assert answer.text == success_body(USER)


def test_json_failure(cas):
    answer = validate(
        cas, "/serviceValidate", APP, "ST-nope-012345678901234567890123456789", format="json"
    )
    code, description = json_failure(answer)
    assert code == "INVALID_TICKET"
    assert "ST-nope-012345678901234567890123456789" in description


def test_unsupported_format_is_an_invalid_request_in_xml(cas):
    ticket = login(cas, APP, USER, PASSWORD)
    for value in ("yaml", "HTML", "JSONP", "xml ", "%00"):
        for endpoint in VALIDATION_ENDPOINTS:
            code, description = failure(validate(cas, endpoint, APP, ticket, format=value))
            assert code == "INVALID_REQUEST"
            assert description == "Unsupported format: use XML or JSON"
    # Not a validation attempt: the ticket is still good.
    assert validate(cas, "/serviceValidate", APP, ticket).text == success_body(USER)


# -- 2.5.3 error codes --------------------------------------------------------------------------


def test_missing_parameters_are_invalid_requests(cas):
    ticket = login(cas, APP, USER, PASSWORD)
    for endpoint in VALIDATION_ENDPOINTS:
        for service, given in ((None, ticket), (APP, None), (None, None), ("", ticket), (APP, "")):
            code, description = failure(validate(cas, endpoint, service, given))
            assert code == "INVALID_REQUEST", (endpoint, service, given)
            assert "required" in description
    # None of these was a validation attempt: the ticket still validates.
    assert validate(cas, "/serviceValidate", APP, ticket).text == success_body(USER)


def test_repeated_parameters_are_invalid_requests(cas):
    login(cas, APP, USER, PASSWORD)
    for endpoint in VALIDATION_ENDPOINTS:
        ticket = sso_ticket(cas, APP)
        for query in (
            [("service", APP), ("service", APP), ("ticket", ticket)],
            [("service", APP), ("ticket", ticket), ("ticket", ticket)],
            [("service", APP), ("ticket", ticket), ("renew", "true"), ("renew", "false")],
            [
                ("service", APP),
                ("ticket", ticket),
                ("pgtUrl", "https://a/"),
                ("pgtUrl", "https://b/"),
            ],
            [("service", APP), ("ticket", ticket), ("format", "XML"), ("format", "JSON")],
        ):
            code, description = failure(cas.get(endpoint, params=query))
            assert code == "INVALID_REQUEST", (endpoint, query)
            assert "given more than once" in description or "format" in description


def test_oversized_parameters_are_refused(cas):
    login(cas, APP, USER, PASSWORD)
    for endpoint in VALIDATION_ENDPOINTS:
        ticket = sso_ticket(cas, APP)
        for query in (
            {"service": APP + "x" * 5000, "ticket": ticket},
            {"service": APP, "ticket": "ST-" + "a" * 5000},
            {"service": APP, "ticket": ticket, "pgtUrl": "https://127.0.0.1/" + "x" * 5000},
        ):
            code, description = failure(cas.get(endpoint, params=query))
            assert code == "INVALID_REQUEST", (endpoint, list(query))
            assert "too long" in description
        # Longer than any ticket we issue (section 3.1.1 asks clients for 256 at most).
        answer = validate(cas, endpoint, APP, "ST-" + "a" * 300)
        assert failure_code(answer) == "INVALID_TICKET_SPEC"


def test_unknown_ticket(cas):
    for endpoint in VALIDATION_ENDPOINTS:
        code, description = failure(validate(cas, endpoint, APP, "ST-1856339-aA5Yuvrxzpv8Tau1cYQ7"))
        assert code == "INVALID_TICKET"
        assert description == "Ticket 'ST-1856339-aA5Yuvrxzpv8Tau1cYQ7' not recognized"


def test_a_ticket_of_another_character_set_is_unknown_and_safely_echoed(cas):
    for ticket in ("ST-<x>&amp;\"'", "ST-é-€-日本", "TGT-" + "a" * 40, "ST- spaced "):
        answer = validate(cas, "/serviceValidate", APP, ticket)
        assert failure_code(answer) == "INVALID_TICKET", ticket


def test_replayed_ticket(cas):
    login(cas, APP, USER, PASSWORD)
    for endpoint in VALIDATION_ENDPOINTS:
        ticket = sso_ticket(cas, APP)
        assert "<cas:user>jdupont</cas:user>" in validate(cas, endpoint, APP, ticket).text
        for again in VALIDATION_ENDPOINTS:
            code, description = failure(validate(cas, again, APP, ticket))
            assert code == "INVALID_TICKET"
            assert description == f"Ticket {ticket!r} not recognized"
        assert cas.get("/validate", params={"service": APP, "ticket": ticket}).text == "no\n\n"


@pytest.mark.parametrize("settings_overrides", [{"service_ticket_lifetime": 1}])
def test_expired_ticket(cas):
    expired = login(cas, APP, USER, PASSWORD)
    also_expired = sso_ticket(cas, APP)
    time.sleep(1.05)
    code, description = failure(validate(cas, "/serviceValidate", APP, expired))
    assert code == "INVALID_TICKET"
    assert description == f"Ticket {expired!r} has expired"
    assert cas.get("/validate", params={"service": APP, "ticket": also_expired}).text == "no\n\n"
    # Spent by that attempt, even though it failed.
    assert failure(validate(cas, "/serviceValidate", APP, expired))[1].endswith("not recognized")
    # The lifetime runs from issue: a ticket issued now is good.
    assert validate(cas, "/serviceValidate", APP, sso_ticket(cas, APP)).text == success_body(USER)


def test_renew_refuses_a_ticket_from_single_sign_on(cas):
    login(cas, APP, USER, PASSWORD)
    for endpoint in VALIDATION_ENDPOINTS:
        from_sso = sso_ticket(cas, APP)
        code, description = failure(validate(cas, endpoint, APP, from_sso, renew="true"))
        assert code == "INVALID_TICKET"
        assert "renew" in description
        # Spent all the same.
        assert failure_code(validate(cas, endpoint, APP, from_sso)) == "INVALID_TICKET"


def test_renew_accepts_a_ticket_from_a_fresh_login(cas):
    for endpoint in VALIDATION_ENDPOINTS:
        # Every one of these tickets comes from typing the password.
        page = cas.get("/login", params={"service": APP, "renew": "true"})
        assert page.status_code == 200
        ticket = ticket_in(submit_login(cas, page, USER, PASSWORD))
        assert (
            "<cas:user>jdupont</cas:user>" in validate(cas, endpoint, APP, ticket, renew="1").text
        )


def test_renew_false_is_not_renew(cas):
    login(cas, APP, USER, PASSWORD)
    answer = validate(cas, "/serviceValidate", APP, sso_ticket(cas, APP), renew="false")
    assert answer.text == success_body(USER)


def test_wrong_service_burns_the_ticket(cas):
    login(cas, APP, USER, PASSWORD)
    for endpoint in VALIDATION_ENDPOINTS:
        ticket = sso_ticket(cas, APP)
        code, description = failure(validate(cas, endpoint, OTHER, ticket))
        assert code == "INVALID_SERVICE"
        assert OTHER in description
        code, _ = failure(validate(cas, endpoint, APP, ticket))
        assert code == "INVALID_TICKET"


def test_unregistered_service_with_a_ticket_fails(cas):
    ticket = login(cas, APP, USER, PASSWORD)
    answer = validate(cas, "/serviceValidate", "https://unregistered.test/", ticket)
    assert failure_code(answer) == "INVALID_SERVICE"


def test_service_unregistered_after_issue_fails(cas, runtime):
    ticket = login(cas, APP, USER, PASSWORD)
    runtime.services.remove(runtime.services.match(APP).name)
    assert failure_code(validate(cas, "/serviceValidate", APP, ticket)) == "INVALID_SERVICE"


# -- service matching (Apereo semantics) ---------------------------------------------------------


def test_exact_match_is_decoded_fragmentless_and_case_insensitive(client, add_account, add_service):
    add_account(USER, PASSWORD)
    registered = "https://match.test/app?lang=%C3%A9t%C3%A9"
    add_service(registered)
    variants = [
        "https://match.test/app?lang=été#section",
        "HTTPS://MATCH.TEST/APP?lang=%C3%A9t%C3%A9",
        "https://Match.Test/app?lang=%c3%a9t%c3%a9#",
    ]
    first = login(client, variants[0], USER, PASSWORD)
    tickets = [first] + [sso_ticket(client, v) for v in variants[1:]]
    for ticket, given in zip(tickets, variants, strict=True):
        # Validated under another spelling of the same service.
        other_spelling = variants[(variants.index(given) + 1) % len(variants)]
        assert validate(client, "/serviceValidate", other_spelling, ticket).text == (
            success_body(USER)
        )


def test_exact_match_keeps_the_trailing_slash_and_the_query(client, add_account, add_service):
    add_account(USER, PASSWORD)
    add_service("https://slash.test/app")
    login(client, "https://slash.test/app", USER, PASSWORD)
    for different in (
        "https://slash.test/app/",
        "https://slash.test/app?x=1",
        "https://slash.test",
    ):
        assert client.get("/login", params={"service": different}).status_code == 403, different
    ticket = sso_ticket(client, "https://slash.test/app")
    answer = validate(client, "/serviceValidate", "https://slash.test/app/", ticket)
    assert failure_code(answer) == "INVALID_SERVICE"


def test_regex_must_match_the_whole_url(client, add_account, add_service):
    add_account(USER, PASSWORD)
    add_service(r"https://reg\.test/app/[a-z]+", match="regex")
    login(client, "https://reg.test/app/abc", USER, PASSWORD)
    for outside in (
        "https://reg.test/app/abc/more",
        "https://reg.test/app/",
        "https://evil.test/?https://reg.test/app/abc",
        "https://reg.test.evil.test/app/abc",
        "https://reg.test/app/abc\n",
    ):
        assert client.get("/login", params={"service": outside}).status_code == 403, outside
    ticket = sso_ticket(client, "https://REG.test/app/xyz#frag")
    answer = validate(client, "/serviceValidate", "https://reg.test/app/xyz", ticket)
    assert answer.text == success_body(USER)


def test_first_service_in_evaluation_order_wins(client, add_account, add_service):
    add_account(USER, PASSWORD, email="j@ac.test", surname="Dupont")
    add_service(
        r"https://order\.test/.*", match="regex", evaluation_order=20, released_attributes=["mail"]
    )
    add_service("https://order.test/special", evaluation_order=10, released_attributes=["sn"])
    first = login(client, "https://order.test/special", USER, PASSWORD)
    answer = validate(client, "/p3/serviceValidate", "https://order.test/special", first)
    assert cas3_attributes(answer, new_login=True) == "<cas:sn>Dupont</cas:sn>"
    ticket = sso_ticket(client, "https://order.test/elsewhere")
    answer = validate(client, "/p3/serviceValidate", "https://order.test/elsewhere", ticket)
    assert cas3_attributes(answer, new_login=False) == "<cas:mail>j@ac.test</cas:mail>"


def test_service_with_a_query_string_survives_byte_for_byte(client, add_account, add_service):
    """django-cas-ng style ``?next=``: its ``%3F`` must come back untouched (not decoded, not
    re-encoded); only the non-ASCII ``é`` is percent-encoded, as a Location header must be."""
    service = "https://dj.test/accounts/login/?next=/a%3Fb&x=é"
    add_account(USER, PASSWORD)
    add_service(r"https://dj\.test/accounts/login/.*", match="regex")
    page = client.get("/login?service=" + quote(service, safe=""))
    redirect = submit_login(client, page, USER, PASSWORD)
    ticket = ticket_in(redirect)
    encoded = "https://dj.test/accounts/login/?next=/a%3Fb&x=%C3%A9"
    assert redirect.headers["location"] == f"{encoded}&ticket={ticket}"
    assert validate(client, "/serviceValidate", service, ticket).text == success_body(USER)
    # The client may equally validate with the URL it was sent back to.
    ticket = sso_ticket(client, service)
    assert validate(client, "/serviceValidate", encoded, ticket).text == success_body(USER)


def test_a_service_spelt_with_a_raw_nul_matches_its_encoded_form(client, add_account, add_service):
    """``a%00b`` at /login and ``a<NUL>b`` at validation decode alike: the same service, on
    PostgreSQL too (recording the request's spelling for single logout broke there)."""
    add_account(USER, PASSWORD)
    add_service(r"https://nul\.test/.*", match="regex")
    ticket = login(client, "https://nul.test/a%00b", USER, PASSWORD)
    answer = client.get(f"/serviceValidate?ticket={ticket}&service=https://nul.test/a%00b")
    assert answer.text == success_body(USER)
    ticket = sso_ticket(client, "https://nul.test/a%00b")
    answer = client.post(
        "/samlValidate?TARGET=https://nul.test/a%00b", content=saml_request(ticket)
    )
    assert f"<saml:NameIdentifier>{USER}</saml:NameIdentifier>" in answer.text


def test_internal_error_when_the_database_is_gone(settings, database_backend, tmp_path):
    """INTERNAL_ERROR (2.5.3, 2.7.3) is what a broken back end gets: never a 500 page."""
    if database_backend == "sqlite":
        broken = f"sqlite:///{tmp_path / 'never-migrated.db'}"  # no tables at all
    else:
        broken = settings.database_url.rsplit("/", 1)[0] + "/no_such_database"
    with TestClient(
        create_app(settings.model_copy(update={"database_url": broken})),
        base_url=BASE_URL.rstrip("/"),
        follow_redirects=False,
    ) as client:
        ticket = "ST-0123456789012345678901234567890123456789"
        for endpoint in VALIDATION_ENDPOINTS:
            code, description = failure(validate(client, endpoint, APP, ticket))
            assert code == "INTERNAL_ERROR"
            assert description == "An internal error occurred during ticket validation."
        answer = validate(client, "/serviceValidate", APP, ticket, format="JSON")
        assert json_failure(answer)[0] == "INTERNAL_ERROR"
        proxy = client.get("/proxy", params={"pgt": "PGT-x", "targetService": APP})
        assert failure(proxy, element="proxyFailure")[0] == "INTERNAL_ERROR"
        assert client.get("/validate", params={"service": APP, "ticket": ticket}).text == "no\n\n"
        saml = client.post(f"/samlValidate?TARGET={quote(APP)}", content=saml_request(ticket))
        assert '<samlp:StatusCode Value="samlp:Responder"/>' in saml.text
        assert "NameIdentifier" not in saml.text
        for answer in (proxy, saml):
            no_stack_trace(answer)


# -- bad input never breaks anything --------------------------------------------------------------

_GARBAGE = [
    "%00",
    "ST-%00%00",
    "%FF%FE%FD%C3%28",
    "%ED%A0%80",  # an encoded UTF-16 surrogate
    "%zz%%",
    "%01%02%1B%E2%80%AE",
    "https%3A%2F%2Fapp.test%2Fcas%2F%00",
    "%41" * 20000,
]


@pytest.mark.parametrize("endpoint", ["/validate", *VALIDATION_ENDPOINTS, "/proxy"])
def test_garbage_parameters_never_break_an_endpoint(cas, endpoint):
    """Huge, binary, percent-garbage and NUL values, alone or next to a good ticket."""
    login(cas, APP, USER, PASSWORD)
    if endpoint == "/proxy":
        names = ["pgt", "targetService", "format"]
    else:
        names = ["service", "ticket", "pgtUrl", "renew", "format"]
    for garbage in _GARBAGE:
        if len(garbage) < 1000:
            alone = cas.get(f"{endpoint}?" + "&".join(f"{name}={garbage}" for name in names))
            no_stack_trace(alone)
            assert alone.status_code == 200
        for name in names:
            good = {"service": quote(APP, safe=""), "ticket": sso_ticket(cas, APP)}
            good[name] = garbage
            raw = f"{endpoint}?" + "&".join(f"{k}={v}" for k, v in good.items())
            answer = cas.get(raw)
            no_stack_trace(answer)
            assert answer.status_code == 200, raw[:200]
            if endpoint == "/validate":
                assert answer.text in ("no\n\n", f"yes\n{USER}\n"), raw[:200]
            else:
                assert answer.text.startswith(("<cas:serviceResponse", "{")), raw[:200]
    for raw in ("?%00=%00", "?=&=&&", "?" + "&".join(["a=b"] * 2000), "?ticket&service"):
        no_stack_trace(cas.get(endpoint + raw))


def test_garbage_posted_to_saml_validate_never_breaks_it(cas):
    for target in ("%00", "%FF", "%zz", "A" * 5000, quote(APP)):
        for body in (b"\x00" * 100, b"\xff\xfe<", saml_request("%00").encode(), b""):
            answer = cas.post(f"/samlValidate?TARGET={target}", content=body)
            no_stack_trace(answer)
            assert answer.status_code == 200
            assert "NameIdentifier" not in answer.text
