"""Security of the blue door and of every page: enumeration, CSRF, forged forms, languages,
legacy hashes, headers, error pages, proxy headers and the settings that refuse unsafe values.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import sys
from dataclasses import asdict
from urllib.parse import urljoin

import httpx
import pytest
from fastapi.testclient import TestClient
from passlib.hash import ldap_salted_sha1
from pydantic import ValidationError
from sqlalchemy import func, insert, select, update

from sso.accounts.importer import import_accounts
from sso.accounts.models import Account
from sso.config import Settings
from sso.login.pending import PURPOSE, PendingRequest
from sso.security.signed import TokenSigner
from sso.services.models import CasServiceRow
from sso.sessions.models import SsoSessionRow
from tests.support.cas_login import log_in, page_message, parse_page, set_cookie
from tests.support.login_form import read_form, submit_login
from tests.support.ports import LOOPBACK, free_port
from tests.support.processes import ServerProcess

SERVICE = "https://app.test/cas/callback?next=/home"
IDENTIFIER = "cmartin"
PASSWORD = "correct horse battery staple"
FAILED_FR = "Identifiant ou mot de passe incorrect."
FAILED_EN = "Wrong identifier or password."
CSRF_FR = "Votre session de connexion n'est plus valide"
EXPIRED_FR = "La page de connexion a expiré."
SECRET = "test-secret-key-that-is-long-enough-0123456789"


@pytest.fixture
def account(add_account):
    return add_account(IDENTIFIER, PASSWORD, display_name="Claire Martin")


@pytest.fixture
def service(add_service):
    return add_service(SERVICE, name="Webmail")


def session_count(runtime) -> int:
    with runtime.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(SsoSessionRow))


def stored_hash(runtime, identifier: str) -> str:
    with runtime.engine.connect() as conn:
        return conn.scalar(select(Account.password_hash).where(Account.identifier == identifier))


@pytest.fixture
def verifications(runtime, monkeypatch):
    """Every password verification the hasher's CryptContext makes: (method, hash verified)."""
    context = runtime.accounts.hasher.context
    calls: list[tuple[str, str]] = []
    for name in ("verify", "verify_and_update"):
        original = getattr(context, name)

        def counting(secret, stored, *args, _name=name, _original=original, **kwargs):
            calls.append((_name, stored))
            return _original(secret, stored, *args, **kwargs)

        monkeypatch.setattr(context, name, counting)
    return calls


# -- the blue door: identifiers and one generic failure --------------------------------------


@pytest.mark.parametrize("typed", ["cmartin", "  CMartin\t", "CMARTIN", "ｃｍａｒｔｉｎ"])
def test_identifier_is_trimmed_and_case_insensitive(client, account, service, typed):
    answer = log_in(client, typed, PASSWORD, SERVICE)
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(SERVICE + "&ticket=ST-")


def test_password_is_case_sensitive(client, account, service):
    answer = log_in(client, IDENTIFIER, PASSWORD.upper(), SERVICE)
    assert answer.status_code == 401


def _failure_page(client, identifier: str, password: str):
    answer = log_in(client, identifier, password, SERVICE)
    assert set_cookie(answer, "TGC") is None
    assert "location" not in answer.headers
    # What differs between two renderings: the echoed identifier and the signed hidden fields.
    text = answer.text.replace(f'value="{identifier}"', 'value="X"')
    text = re.sub(r'name="(pending|csrf_token)" value="[^"]*"', r'name="\1" value=""', text)
    return answer.status_code, page_message(answer.text), text


def test_wrong_password_and_unknown_identifier_give_the_same_page(client, account, service):
    wrong_password = _failure_page(client, IDENTIFIER, "not the password")
    unknown = _failure_page(client, "nobody", "not the password")
    assert wrong_password == unknown
    status, message, _ = unknown
    assert status == 401
    assert message == FAILED_FR


def test_wrong_password_and_unknown_identifier_cost_one_argon2_verification_each(
    client, account, service, verifications
):
    _failure_page(client, IDENTIFIER, "not the password")
    assert [(name, h[:10]) for name, h in verifications] == [("verify_and_update", "$argon2id$")]
    verifications.clear()
    _failure_page(client, "nobody", "not the password")
    assert [(name, h[:10]) for name, h in verifications] == [("verify", "$argon2id$")]
    verifications.clear()
    _failure_page(client, "x" * 200, "not the password")  # too long to be an identifier
    assert [(name, h[:10]) for name, h in verifications] == [("verify", "$argon2id$")]


def test_successful_login_costs_one_verification(client, account, service, verifications):
    assert log_in(client, IDENTIFIER, PASSWORD, SERVICE).status_code == 302
    assert [name for name, _ in verifications] == ["verify_and_update"]


def _unusable_account(runtime, add_account, how: str) -> None:
    if how == "disabled":
        add_account("disabled", PASSWORD)
        with runtime.engine.begin() as conn:
            conn.execute(
                update(Account).where(Account.identifier == "disabled").values(enabled=False)
            )
    elif how == "invited":
        csv = f"identifier,password\ninvited,{PASSWORD}\n"
        report = import_accounts(runtime.engine, runtime.accounts.hasher, csv, kind="invited")
        assert not report.errors
    else:  # an account imported without any password
        add_account("nopassword", "")


@pytest.mark.parametrize(
    ("how", "identifier"),
    [("disabled", "disabled"), ("invited", "invited"), ("no password", "nopassword")],
)
def test_unusable_accounts_cannot_log_in_at_the_blue_door(
    client, runtime, add_account, service, verifications, how, identifier
):
    _unusable_account(runtime, add_account, how)
    reference = _failure_page(client, "nobody", "not the password")
    verifications.clear()
    # Even the right password: the same generic page, one verification, no session.
    assert _failure_page(client, identifier, PASSWORD) == reference
    assert len(verifications) == 1
    assert verifications[0][1].startswith("$argon2id$")
    assert session_count(runtime) == 0


# -- CSRF -----------------------------------------------------------------------------------


def _filled_form(client):
    page = client.get("/login", params={"service": SERVICE})
    action, fields = read_form(page.text)
    fields.update(identifier=IDENTIFIER, password=PASSWORD)
    return action, fields


def _assert_refused_as_csrf(runtime, answer) -> None:
    assert answer.status_code == 403
    assert CSRF_FR in page_message(answer.text)
    assert set_cookie(answer, "TGC") is None
    assert "location" not in answer.headers
    assert session_count(runtime) == 0


def test_post_without_the_csrf_cookie_is_refused(client, runtime, account, service):
    action, fields = _filled_form(client)
    client.cookies.clear()
    _assert_refused_as_csrf(runtime, client.post(action, data=fields))


@pytest.mark.parametrize("token", ["", "0" * 64, "not-a-token", "a" * 300])
def test_post_with_a_wrong_csrf_token_is_refused(client, runtime, account, service, token):
    action, fields = _filled_form(client)
    fields["csrf_token"] = token
    answer = client.post(action, data=fields)
    if len(token) > 256:  # beyond the form's limit: refused before any check
        assert answer.status_code == 400
        assert session_count(runtime) == 0
        return
    _assert_refused_as_csrf(runtime, answer)


def test_csrf_token_of_another_browser_is_refused(client, runtime, account, service):
    action, fields = _filled_form(client)
    fields["csrf_token"] = runtime.csrf.token_for(runtime.csrf.new_cookie_value())
    _assert_refused_as_csrf(runtime, client.post(action, data=fields))


def test_refused_csrf_page_lets_the_user_try_again(client, runtime, account, service):
    action, fields = _filled_form(client)
    client.cookies.clear()
    refused = client.post(action, data=fields)
    assert refused.status_code == 403
    # The page set a new CSRF cookie and carries its token: submitting it now works.
    answer = submit_login(client, refused, IDENTIFIER, PASSWORD)
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(SERVICE + "&ticket=ST-")


# -- the pending request carried in the form ------------------------------------------------


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["pr"]["params"]["service"] = "https://evil.test/"
    claims["pr"]["relying_party"] = "https://evil.test/"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize(
    "forge",
    [
        "missing",
        "garbage",
        "tampered",
        "other key",
        "other purpose",
        "expired",
    ],
)
def test_forged_or_expired_pending_request_is_a_400_page(
    client, runtime, account, service, verifications, forge
):
    action, fields = _filled_form(client)
    real = PendingRequest(
        protocol="cas", relying_party=SERVICE, params={"service": SERVICE, "method": ""}
    )
    claims = {"pr": asdict(real)}
    fields["pending"] = {
        "missing": "",
        "garbage": "not.a.token",
        "tampered": _tampered(fields["pending"]),
        "other key": TokenSigner("another-secret-key-that-is-long-enough-42").sign(
            PURPOSE, claims, 600
        ),
        "other purpose": runtime.signer.sign("relay-state", claims, 600),
        "expired": runtime.signer.sign(PURPOSE, claims, -5),
    }[forge]
    answer = client.post(action, data=fields)
    assert answer.status_code == 400
    assert page_message(answer.text) == (
        EXPIRED_FR + " Veuillez saisir à nouveau vos identifiants."
    )
    assert "location" not in answer.headers
    assert set_cookie(answer, "TGC") is None
    assert session_count(runtime) == 0
    assert verifications == []  # no password checked for a form we did not issue


def test_validly_signed_request_for_an_unregistered_service_gets_no_ticket(
    client, runtime, account, service
):
    action, fields = _filled_form(client)
    evil = PendingRequest(
        protocol="cas",
        relying_party="https://evil.test/",
        params={"service": "https://evil.test/", "method": ""},
    )
    fields["pending"] = evil.to_token(runtime.signer, 600)
    answer = client.post(action, data=fields)
    assert answer.status_code == 403
    assert "location" not in answer.headers
    assert "ST-" not in answer.text


def test_login_form_works_without_javascript(client, service):
    page = client.get("/login", params={"service": SERVICE})
    parsed = parse_page(page.text)
    assert parsed.scripts == []
    assert "<script" not in page.text
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", page.text)
    (form,) = parsed.forms
    assert form["attrs"]["method"] == "post"
    assert form["attrs"]["action"] == "/login/academic"
    assert [b.get("type") for b in form["buttons"]] == ["submit"]


# -- languages ------------------------------------------------------------------------------


def test_pages_are_french_by_default(client, account, service):
    page = client.get("/login", params={"service": SERVICE})
    assert '<html lang="fr">' in page.text
    assert '<label for="identifier">Identifiant</label>' in page.text
    assert set_cookie(page, "sso_lang") is None
    assert page_message(submit_login(client, page, IDENTIFIER, "wrong").text) == FAILED_FR


def test_lang_en_switches_to_english_and_the_cookie_remembers(client, account, service):
    page = client.get("/login", params={"service": SERVICE, "lang": "en"})
    assert '<html lang="en">' in page.text
    assert '<label for="identifier">Identifier</label>' in page.text
    assert "To access: Webmail" in page.text
    value, attributes = set_cookie(page, "sso_lang")
    assert value == "en"
    assert int(attributes["max-age"]) >= 30 * 86400
    again = client.get("/login", params={"service": SERVICE})
    assert '<html lang="en">' in again.text
    failed = submit_login(client, again, IDENTIFIER, "wrong")
    assert '<html lang="en">' in failed.text
    assert page_message(failed.text) == FAILED_EN
    assert '<html lang="fr">' in client.get("/login", params={"lang": "fr"}).text
    assert '<html lang="fr">' in client.get("/login").text


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("en", "en"),
        ("en-GB,en;q=0.9", "en"),
        ("de-DE,de;q=0.9,en;q=0.5", "en"),
        ("fr-FR,fr;q=0.9,en;q=0.5", "fr"),
        ("de", "fr"),
        ("", "fr"),
    ],
)
def test_accept_language_is_honoured(client, accept, expected):
    page = client.get("/login", headers={"Accept-Language": accept})
    assert f'<html lang="{expected}">' in page.text


def test_unknown_lang_parameter_is_ignored(client):
    page = client.get("/login", params={"lang": "xx"})
    assert '<html lang="fr">' in page.text
    assert set_cookie(page, "sso_lang") is None


def test_language_link_keeps_the_service(client, service):
    page = client.get("/login", params={"service": SERVICE})
    (link,) = [a for a in parse_page(page.text).links if a.get("lang") == "en"]
    english = client.get(urljoin(str(page.url), link["href"]))
    assert english.status_code == 200
    assert '<html lang="en">' in english.text
    assert "To access: Webmail" in english.text
    assert read_form(english.text)[1]["pending"]


# -- legacy hashes --------------------------------------------------------------------------


def test_legacy_ssha_hash_logs_in_and_is_rehashed_to_argon2id(
    client, runtime, add_account, service
):
    add_account("legacy", "", password_hash=ldap_salted_sha1.hash(PASSWORD))
    assert stored_hash(runtime, "legacy").startswith("{SSHA}")
    failed = log_in(client, "legacy", "wrong password", SERVICE)
    assert failed.status_code == 401
    assert stored_hash(runtime, "legacy").startswith("{SSHA}")  # only a success re-hashes
    answer = log_in(client, "legacy", PASSWORD, SERVICE)
    assert answer.status_code == 302
    new_hash = stored_hash(runtime, "legacy")
    assert new_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert runtime.accounts.hasher.context.verify(PASSWORD, new_hash)
    client.cookies.clear()
    assert log_in(client, "legacy", PASSWORD, SERVICE).status_code == 302
    assert stored_hash(runtime, "legacy") == new_hash  # current hashes are left alone


# -- headers and error pages ----------------------------------------------------------------


def assert_page_headers(response) -> None:
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"service": SERVICE},
        {"service": "https://evil.test/"},
        {"service": SERVICE, "method": "PUT"},
        {"lang": "en"},
    ],
)
def test_pages_carry_the_security_headers(client, service, query):
    assert_page_headers(client.get("/login", params=query))


def test_pages_after_login_carry_the_security_headers(client, account, service):
    assert_page_headers(log_in(client, IDENTIFIER, PASSWORD))  # the logged-in page
    assert_page_headers(client.get("/login", params={"service": SERVICE, "warn": "true"}))
    assert_page_headers(client.get("/login", params={"service": SERVICE, "method": "POST"}))
    assert_page_headers(log_in(client, IDENTIFIER, "wrong", SERVICE, renew="true"))
    assert_page_headers(client.get("/logout"))


def assert_no_stack_trace(text: str) -> None:
    for leak in ("Traceback", 'File "', "site-packages", "sso/", "Exception", "error:"):
        assert leak not in text


@pytest.mark.parametrize(
    ("method", "path", "data", "status", "message"),
    [
        ("GET", "/no/such/page", None, 404, "Cette page n'existe pas."),
        ("GET", "/login/academic", None, 405, "La demande reçue est invalide."),
        (
            "POST",
            "/login/academic",
            {"identifier": "x" * 300, "password": "p", "csrf_token": "t", "pending": "p"},
            400,
            "La demande reçue est invalide.",
        ),
        (
            "POST",
            "/login/academic",
            {"identifier": "x", "password": "p" * 1025, "csrf_token": "t", "pending": "p"},
            400,
            "La demande reçue est invalide.",
        ),
        (
            "POST",
            "/login/academic",
            {"identifier": "x", "password": "p", "csrf_token": "t", "pending": "p" * 8193},
            400,
            "La demande reçue est invalide.",
        ),
        ("GET", "/static/../sso/config.py", None, 404, "Cette page n'existe pas."),
    ],
)
def test_error_pages_say_what_happened_without_a_stack_trace(
    client, method, path, data, status, message
):
    answer = client.request(method, path, data=data)
    assert answer.status_code == status
    assert page_message(answer.text).startswith(message)
    assert_no_stack_trace(answer.text)
    assert_page_headers(answer)


def test_an_internal_error_is_a_page_without_a_stack_trace(client, runtime, caplog):
    # A corrupt row (an invalid regular expression stored behind the registry's back).
    with runtime.engine.begin() as conn:
        conn.execute(
            insert(CasServiceRow).values(
                name="corrupt",
                match="regex",
                pattern="https://(broken",
                released_attributes=[],
                response_method="GET",
            )
        )
    browser = TestClient(
        client.app,
        base_url="https://sso.test",
        follow_redirects=False,
        raise_server_exceptions=False,
    )
    with caplog.at_level(logging.ERROR, logger="sso"):
        answer = browser.get("/login", params={"service": "https://app.test/"})
    assert answer.status_code == 500
    assert page_message(answer.text).startswith("Une erreur inattendue s'est produite.")
    assert_no_stack_trace(answer.text)
    assert "broken" not in answer.text
    assert_page_headers(answer)
    assert any(r.exc_info for r in caplog.records)  # the trace goes to the log only


# -- X-Forwarded-* --------------------------------------------------------------------------


def _logged_client_address(client, caplog, headers: dict[str, str]) -> str:
    page = client.get("/login")
    action, fields = read_form(page.text)
    fields.update(identifier="nobody", password="wrong")
    with caplog.at_level(logging.INFO, logger="sso.login"):
        client.post(action, data=fields, headers=headers)
    (record,) = [r for r in caplog.records if r.getMessage() == "academic login failed"]
    return record.client[0]


FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "http"}


@pytest.mark.parametrize(
    ("settings_overrides", "expected"),
    [
        ({}, "testclient"),
        ({"trusted_proxies": ["10.0.0.1"]}, "testclient"),
        ({"trusted_proxies": ["testclient"]}, "203.0.113.9"),
    ],
)
def test_forwarded_for_is_believed_only_from_trusted_proxies(client, caplog, expected):
    assert _logged_client_address(client, caplog, FORWARDED) == expected


@pytest.mark.parametrize("settings_overrides", [{"trusted_proxies": ["10.0.0.0/8"]}])
def test_proxy_middleware_is_configured_from_trusted_proxies(client):
    """The middleware the app installed, fed scopes from a trusted and an untrusted peer."""
    (middleware,) = [m for m in client.app.user_middleware if "ProxyHeaders" in m.cls.__name__]
    seen: list[tuple] = []

    async def endpoint(scope, receive, send):
        seen.append((scope["client"], scope["scheme"]))

    instance = middleware.cls(endpoint, *middleware.args, **middleware.kwargs)
    headers = [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-proto", b"https")]
    for peer in ("10.1.2.3", "192.0.2.1"):
        scope = {"type": "http", "client": (peer, 4000), "scheme": "http", "headers": headers}
        client.portal.call(instance, scope, None, None)
    assert seen == [(("203.0.113.9", 0), "https"), (("192.0.2.1", 4000), "http")]


def test_served_by_uvicorn_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path):
    """The real `sso serve` (uvicorn's own proxy handling is off; ours decides)."""
    port = free_port()
    env = {
        "SSO_SECRET_KEY": SECRET,
        "SSO_BASE_URL": f"http://{LOOPBACK}:{port}/",
        "SSO_DATABASE_URL": f"sqlite:///{tmp_path / 'sso.db'}",
        "SSO_VAR_DIR": str(tmp_path / "var"),
        "SSO_TRUSTED_PROXIES": json.dumps([LOOPBACK]),
        "FORWARDED_ALLOW_IPS": "*",  # uvicorn's own setting must not matter
    }
    command = [sys.executable, "-m", "sso", "serve", "--port", str(port), "--access-log"]
    with ServerProcess(
        command, env=env, ready_url=f"http://{LOOPBACK}:{port}/health", name="sso-proxy"
    ) as server:
        headers = {"X-Forwarded-For": "203.0.113.9"}
        url = f"http://{LOOPBACK}:{port}/health"
        with httpx.Client(trust_env=False) as trusted:
            assert trusted.get(url, headers=headers).status_code == 200
        untrusted_transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(transport=untrusted_transport, trust_env=False) as untrusted:
            assert untrusted.get(url, headers=headers).status_code == 200
        log = server.log_text()
    lines = [line for line in log.splitlines() if '"GET /health HTTP/1.1" 200' in line]
    assert any("203.0.113.9" in line for line in lines), log
    assert any("127.0.0.2" in line for line in lines), log


# -- settings -------------------------------------------------------------------------------


@pytest.fixture
def clean_environment(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("SSO_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("secret", [None, "change-me", "short-secret", "x" * 31])
def test_placeholder_or_short_secret_is_refused_outside_demo_mode(clean_environment, secret):
    values = {} if secret is None else {"secret_key": secret}
    with pytest.raises(ValidationError) as refused:
        Settings(**values)
    assert "SSO_SECRET_KEY must be set to a random value of 32+ characters" in str(refused.value)


def test_the_command_line_refuses_a_placeholder_secret_with_a_clear_message(clean_environment):
    from sso.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["migrate"])
    message = str(exited.value.code)
    assert message.startswith("sso: invalid settings:")
    assert "SSO_SECRET_KEY must be set" in message
    assert "Traceback" not in message


def test_demo_mode_accepts_the_placeholder_secret(clean_environment):
    assert Settings(demo=True).secret_key == "change-me"


def test_settings_are_read_from_sso_environment_variables(clean_environment):
    clean_environment.setenv("SSO_SECRET_KEY", SECRET)
    clean_environment.setenv("SSO_BASE_URL", "https://login.example.fr/cas")
    clean_environment.setenv("SSO_TRUSTED_PROXIES", '["10.0.0.1", "10.0.1.0/24"]')
    clean_environment.setenv("SSO_SESSION_IDLE_TIMEOUT", "600")
    clean_environment.setenv("SSO_DEFAULT_LANGUAGE", "en")
    settings = Settings()
    assert settings.secret_key == SECRET
    assert settings.base_url == "https://login.example.fr/cas/"
    assert settings.base_path == "/cas/"
    assert settings.secure_cookies
    assert settings.trusted_proxies == ["10.0.0.1", "10.0.1.0/24"]
    assert settings.session_idle_timeout == 600
    assert settings.default_language == "en"


def test_config_file_is_read_and_the_environment_overrides_it(clean_environment, tmp_path):
    config = tmp_path / "sso.toml"
    config.write_text(
        f'secret_key = "{SECRET}"\n'
        'base_url = "https://from-file.example.fr/"\n'
        "session_idle_timeout = 900\n"
        'trusted_proxies = ["192.0.2.10"]\n'
    )
    clean_environment.setenv("SSO_CONFIG_FILE", str(config))
    from_file = Settings()
    assert from_file.secret_key == SECRET
    assert from_file.base_url == "https://from-file.example.fr/"
    assert from_file.session_idle_timeout == 900
    assert from_file.trusted_proxies == ["192.0.2.10"]
    clean_environment.setenv("SSO_BASE_URL", "https://from-env.example.fr/")
    clean_environment.setenv("SSO_SESSION_IDLE_TIMEOUT", "1200")
    overridden = Settings()
    assert overridden.base_url == "https://from-env.example.fr/"
    assert overridden.session_idle_timeout == 1200
    assert overridden.trusted_proxies == ["192.0.2.10"]


def test_config_file_secret_is_checked_too(clean_environment, tmp_path):
    config = tmp_path / "sso.toml"
    config.write_text('secret_key = "change-me"\n')
    clean_environment.setenv("SSO_CONFIG_FILE", str(config))
    with pytest.raises(ValidationError, match="SSO_SECRET_KEY must be set"):
        Settings()


@pytest.mark.parametrize("base_url", ["sso.example.fr", "ftp://sso.example.fr/", "https://"])
def test_base_url_must_be_absolute_http(clean_environment, base_url):
    with pytest.raises(ValidationError, match="base_url must be an absolute http"):
        Settings(secret_key=SECRET, base_url=base_url)


def test_a_file_in_the_login_form_is_a_400_page(client):
    answer = client.post(
        "/login/academic",
        data={"identifier": "x", "csrf_token": "t", "pending": "p"},
        files={"password": ("password.txt", b"secret", "text/plain")},
    )
    assert answer.status_code == 400
    assert page_message(answer.text).startswith("La demande reçue est invalide.")
    assert_no_stack_trace(answer.text)
