"""The SSO session behind the ticket-granting cookie: cookie attributes, timeouts, touching,
purging, hashed storage, and who keeps or loses the session on a new login.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import pytest
from sqlalchemy import select, update

from sso.db import Base, utcnow
from sso.sessions.authentication import METHOD_ACADEMIC, Authentication
from sso.sessions.models import (
    ProxyGrantingTicketRow,
    ServiceLoginRow,
    SsoSessionRow,
    TicketRow,
)
from tests.support.cas_login import log_in, set_cookie, ticket_from
from tests.support.login_form import submit_login

SERVICE = "https://app.test/cas/callback?next=/home"
PASSWORD = "correct horse battery staple"
IDLE = 7200  # the default settings
MAX_LIFETIME = 28800


@pytest.fixture
def accounts(add_account, add_service):
    add_service(SERVICE, name="Webmail")
    add_account("cmartin", PASSWORD, display_name="Claire Martin")
    add_account("pdurand", PASSWORD, display_name="Paul Durand")


def session_rows(runtime) -> list:
    with runtime.engine.connect() as conn:
        return conn.execute(select(SsoSessionRow)).all()


def set_session_times(runtime, **values: dt.datetime) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(update(SsoSessionRow).values(**values))


def has_sso(client) -> bool:
    """Whether the browser's cookie still gets a ticket without the password."""
    answer = client.get("/login", params={"service": SERVICE})
    if answer.status_code == 302:
        assert answer.headers["location"].startswith(SERVICE + "&ticket=ST-")
        return True
    assert answer.status_code == 200
    assert 'id="academic-login"' in answer.text
    return False


def tgc(answer) -> str:
    cookie = set_cookie(answer, "TGC")
    assert cookie is not None, answer.headers
    return cookie[0]


# -- the cookie -----------------------------------------------------------------------------


def test_tgc_is_httponly_secure_samesite_none_on_https(client, accounts):
    answer = log_in(client, "cmartin", PASSWORD, SERVICE)
    value, attributes = set_cookie(answer, "TGC")
    # Spec 3.6/3.7: only A-Z a-z 0-9 and '-', prefixed TGT-.
    assert re.fullmatch(r"TGT-[A-Za-z0-9-]{32,}", value)
    assert "httponly" in attributes
    assert "secure" in attributes
    assert attributes["samesite"].lower() == "none"
    assert attributes["path"] == "/"
    # A browser-session cookie: the server-side limits decide how long it lives.
    assert "max-age" not in attributes and "expires" not in attributes
    assert "domain" not in attributes


@pytest.mark.parametrize("settings_overrides", [{"base_url": "http://sso.test/"}])
def test_tgc_over_plain_http_is_not_secure_and_lax(client, accounts):
    answer = log_in(client, "cmartin", PASSWORD, SERVICE)
    _, attributes = set_cookie(answer, "TGC")
    assert "httponly" in attributes
    assert "secure" not in attributes
    assert attributes["samesite"].lower() == "lax"
    assert attributes["path"] == "/"
    assert has_sso(client)


@pytest.mark.parametrize("settings_overrides", [{"base_url": "https://sso.test/cas"}])
def test_tgc_path_is_the_base_path(client, accounts):
    page = client.get("/cas/login", params={"service": SERVICE})
    answer = submit_login(client, page, "cmartin", PASSWORD)
    assert answer.status_code == 302
    _, attributes = set_cookie(answer, "TGC")
    assert attributes["path"] == "/cas/"
    assert "secure" in attributes
    assert client.get("/cas/login", params={"service": SERVICE}).status_code == 302


@pytest.mark.parametrize("settings_overrides", [{"base_url": "https://sso.test/cas"}])
@pytest.mark.parametrize("endpoint", ["serviceValidate", "p3/serviceValidate", "proxyValidate"])
def test_tickets_validate_under_the_base_path(client, accounts, endpoint):
    # The validation endpoints are plain Starlette routes: the prefix must reach them too.
    page = client.get("/cas/login", params={"service": SERVICE})
    ticket = ticket_from(submit_login(client, page, "cmartin", PASSWORD).headers["location"])
    assert (
        client.get(f"/{endpoint}", params={"service": SERVICE, "ticket": ticket}).status_code == 404
    )
    answer = client.get(f"/cas/{endpoint}", params={"service": SERVICE, "ticket": ticket})
    assert "<cas:user>cmartin</cas:user>" in answer.text
    assert client.post(f"/cas/{endpoint}").status_code == 405


@pytest.mark.parametrize(
    "cookie", ["TGT-doesnotexist", "", "x" * 200, "TGT-" + "A" * 48, "../../etc/passwd"]
)
def test_unknown_cookie_gives_no_sso(client, accounts, cookie):
    client.cookies.set("TGC", cookie, domain="sso.test")
    assert not has_sso(client)


def test_cookie_is_stored_as_its_sha256_only(client, runtime, accounts):
    answer = log_in(client, "cmartin", PASSWORD, SERVICE)
    cookie = tgc(answer)
    ticket = ticket_from(answer.headers["location"])
    (row,) = session_rows(runtime)
    assert row.id == hashlib.sha256(cookie.encode()).hexdigest()
    with runtime.engine.connect() as conn:
        (ticket_row,) = conn.execute(select(TicketRow)).all()
        assert ticket_row.id == hashlib.sha256(ticket.encode()).hexdigest()
        for table in Base.metadata.sorted_tables:
            for stored in conn.execute(select(table)).all():
                text = repr(tuple(stored))
                assert cookie not in text and cookie[4:] not in text, table.name
                assert ticket not in text and ticket[3:] not in text, table.name


# -- timeouts -------------------------------------------------------------------------------


def test_session_idle_too_long_gives_no_sso(client, runtime, accounts):
    log_in(client, "cmartin", PASSWORD, SERVICE)
    now = utcnow()
    set_session_times(runtime, last_used_at=now - dt.timedelta(seconds=IDLE - 120))
    assert has_sso(client)  # just inside the idle limit (and touched by this use)
    set_session_times(runtime, last_used_at=now - dt.timedelta(seconds=IDLE + 5))
    assert not has_sso(client)
    page = client.get("/login")
    assert 'id="academic-login"' in page.text  # not the logged-in page either


def test_session_past_its_absolute_limit_gives_no_sso_even_if_used(client, runtime, accounts):
    log_in(client, "cmartin", PASSWORD, SERVICE)
    assert has_sso(client)
    (row,) = session_rows(runtime)
    assert abs(row.expires_at - (row.authenticated_at + dt.timedelta(seconds=MAX_LIFETIME))) < (
        dt.timedelta(seconds=5)
    )
    set_session_times(runtime, expires_at=utcnow() - dt.timedelta(seconds=1))
    assert not has_sso(client)


@pytest.mark.parametrize(
    "settings_overrides", [{"session_idle_timeout": 600, "session_max_lifetime": 1200}]
)
def test_timeouts_come_from_the_settings(client, runtime, accounts):
    log_in(client, "cmartin", PASSWORD, SERVICE)
    (row,) = session_rows(runtime)
    assert abs(row.expires_at - utcnow() - dt.timedelta(seconds=1200)) < dt.timedelta(seconds=5)
    set_session_times(runtime, last_used_at=utcnow() - dt.timedelta(seconds=590))
    assert has_sso(client)
    set_session_times(runtime, last_used_at=utcnow() - dt.timedelta(seconds=610))
    assert not has_sso(client)


def test_session_is_touched_at_most_once_a_minute(client, runtime, accounts):
    log_in(client, "cmartin", PASSWORD, SERVICE)
    recent = utcnow() - dt.timedelta(seconds=30)
    set_session_times(runtime, last_used_at=recent)
    assert has_sso(client)
    assert has_sso(client)
    (row,) = session_rows(runtime)
    assert abs(row.last_used_at - recent) < dt.timedelta(milliseconds=1)  # not written
    older = utcnow() - dt.timedelta(seconds=90)
    set_session_times(runtime, last_used_at=older)
    before = utcnow()
    assert has_sso(client)
    (row,) = session_rows(runtime)
    assert row.last_used_at >= before - dt.timedelta(milliseconds=1)  # touched


def test_use_keeps_an_idle_session_alive(client, runtime, accounts):
    log_in(client, "cmartin", PASSWORD, SERVICE)
    set_session_times(runtime, last_used_at=utcnow() - dt.timedelta(seconds=IDLE - 60))
    assert has_sso(client)  # touched now: the idle clock restarts
    (row,) = session_rows(runtime)
    assert utcnow() - row.last_used_at < dt.timedelta(seconds=5)


# -- purge ----------------------------------------------------------------------------------


def _authentication(subject: str) -> Authentication:
    return Authentication(subject=subject, method=METHOD_ACADEMIC, authenticated_at=utcnow())


def test_purge_expired_removes_dead_sessions_and_tickets(runtime):
    sessions = runtime.sessions
    now = utcnow()
    _, live = sessions.create_session(_authentication("live"))
    _, expired = sessions.create_session(_authentication("expired"))
    _, idle = sessions.create_session(_authentication("idle"))
    with runtime.engine.begin() as conn:
        conn.execute(
            update(SsoSessionRow)
            .where(SsoSessionRow.id == expired.id)
            .values(expires_at=now - dt.timedelta(seconds=1))
        )
        conn.execute(
            update(SsoSessionRow)
            .where(SsoSessionRow.id == idle.id)
            .values(last_used_at=now - dt.timedelta(seconds=IDLE + 1))
        )
    kept_ticket = sessions.issue_ticket(live, kind="ST", service=SERVICE, from_new_login=True)
    stale_ticket = sessions.issue_ticket(live, kind="ST", service=SERVICE, from_new_login=True)
    with runtime.engine.begin() as conn:
        conn.execute(
            update(TicketRow)
            .where(TicketRow.id == hashlib.sha256(stale_ticket.encode()).hexdigest())
            .values(expires_at=now - dt.timedelta(seconds=1))
        )
    for dead in (expired, idle):
        # Children of dead sessions go too, even when not expired themselves.
        sessions.issue_ticket(dead, kind="ST", service=SERVICE, from_new_login=False)
        sessions.record_service_login(
            dead.id, protocol="cas", service=SERVICE, logout_url=SERVICE, ticket="ST-x"
        )
        sessions.create_proxy_granting_ticket(dead.id, service=SERVICE, proxies=[])
    sessions.record_service_login(
        live.id, protocol="cas", service=SERVICE, logout_url=SERVICE, ticket="ST-y"
    )
    _, live_pgt_iou = sessions.create_proxy_granting_ticket(live.id, service=SERVICE, proxies=[])

    assert sessions.purge_expired() >= 3

    with runtime.engine.connect() as conn:
        assert conn.scalars(select(SsoSessionRow.id)).all() == [live.id]
        assert conn.scalars(select(TicketRow.id)).all() == [
            hashlib.sha256(kept_ticket.encode()).hexdigest()
        ]
        assert conn.scalars(select(ServiceLoginRow.session_id)).all() == [live.id]
        assert conn.scalars(select(ProxyGrantingTicketRow.session_id)).all() == [live.id]
    assert sessions.consume_ticket(kept_ticket) is not None
    assert sessions.purge_expired() == 0


# -- a new login on a browser that has a session ---------------------------------------------


def test_same_person_logging_in_again_keeps_the_session(client, runtime, accounts):
    first = log_in(client, "cmartin", PASSWORD, SERVICE)
    cookie = tgc(first)
    (before,) = session_rows(runtime)
    again = log_in(client, " CMARTIN ", PASSWORD, SERVICE, renew="true")
    assert again.status_code == 302
    assert set_cookie(again, "TGC") is None  # the browser keeps its cookie
    (after,) = session_rows(runtime)
    assert after.id == before.id == hashlib.sha256(cookie.encode()).hexdigest()
    assert after.subject == "cmartin"
    assert after.authenticated_at > before.authenticated_at
    assert after.expires_at == before.expires_at  # a refresh does not extend the limit
    assert has_sso(client)


def test_another_person_on_the_same_browser_ends_the_previous_session(client, runtime, accounts):
    first_cookie = tgc(log_in(client, "cmartin", PASSWORD, SERVICE))
    second = log_in(client, "pdurand", PASSWORD, SERVICE, renew="true")
    assert second.status_code == 302
    second_cookie = tgc(second)
    assert second_cookie != first_cookie
    (row,) = session_rows(runtime)
    assert row.subject == "pdurand"
    assert row.id == hashlib.sha256(second_cookie.encode()).hexdigest()
    client.cookies.clear()
    client.cookies.set("TGC", first_cookie, domain="sso.test")
    assert not has_sso(client)  # the first person's cookie is dead


def test_failed_login_leaves_the_existing_session_alone(client, runtime, accounts):
    log_in(client, "cmartin", PASSWORD, SERVICE)
    failed = log_in(client, "pdurand", "wrong password", SERVICE, renew="true")
    assert failed.status_code == 401
    assert set_cookie(failed, "TGC") is None
    (row,) = session_rows(runtime)
    assert row.subject == "cmartin"
    assert has_sso(client)


def test_a_cookie_planted_before_login_is_never_adopted(client, runtime, accounts):
    planted = "TGT-" + "P" * 48
    client.cookies.set("TGC", planted, domain="sso.test")
    answer = log_in(client, "cmartin", PASSWORD, SERVICE)
    assert answer.status_code == 302
    issued = tgc(answer)
    assert issued != planted
    (row,) = session_rows(runtime)
    assert row.id == hashlib.sha256(issued.encode()).hexdigest()
