"""phpCAS 1.6 (Debian's php-cas, as Moodle uses it) against our server, over real HTTP(S).

phpCAS validates CAS 2.0 tickets at /serviceValidate, 3.0 at /p3/serviceValidate and SAML 1.1
at /samlValidate?TARGET=, and ends its PHP session when our server POSTs a logoutRequest.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.interop


def _values(value: object) -> list[str]:
    """phpCAS gives a single value as a string and several as a list."""
    return list(value) if isinstance(value, list) else [str(value)]


@pytest.mark.parametrize("version", ["2.0", "3.0", "S1"])
def test_login_through_the_form(cas_server, phpcas_app, browser, whoami, version):
    app = phpcas_app(version)

    visit = browser.visit(app.url, cas_server.user, cas_server.password)

    assert visit.typed_password, visit.describe()
    assert visit.response.status_code == 200, visit.describe() + cas_server.diagnostics()
    answer = visit.json()
    assert answer["user"] == cas_server.user, visit.describe()
    # The page is reached with a validated ticket (phpCAS then redirects to drop it).
    assert any("ticket=ST-" in step for step in visit.history), visit.describe()
    attributes = answer["attributes"]
    if version == "2.0":
        assert attributes == {}
    elif version == "S1":
        # CAS 3.0 section 4.2.1: no SAML attributes to a non-SSL TARGET, and the app is http.
        assert app.url.startswith("http://") and attributes == {}, attributes
    else:
        for name, values in cas_server.attributes.items():
            assert _values(attributes.get(name)) == values, (name, attributes)
    # The PHP session holds the login: no new trip to the CAS server.
    assert whoami(browser, app, until=lambda a: True)["user"] == cas_server.user


def test_second_client_logs_in_without_password(cas_server, phpcas_app, browser):
    first = browser.visit(phpcas_app("3.0").url, cas_server.user, cas_server.password)
    assert first.typed_password and first.json()["user"] == cas_server.user, first.describe()

    second = browser.visit(phpcas_app("S1").url)

    assert not second.typed_password, second.describe()
    assert second.response.status_code == 200, second.describe() + cas_server.diagnostics()
    assert second.json()["user"] == cas_server.user, second.describe()


def test_unknown_ticket_is_refused(cas_server, phpcas_app, browser):
    app = phpcas_app("3.0")

    response = browser.http.get(app.url + "?ticket=ST-0000000000000000000000000000000000")

    assert response.status_code == 401, response.text
    assert response.json()["user"] is None
    assert browser.http.get(app.whoami_url).json()["user"] is None


def test_single_logout_ends_the_php_sessions(cas_server, phpcas_app, browser, whoami):
    apps = [phpcas_app("2.0"), phpcas_app("3.0")]
    visit = browser.visit(apps[0].url, cas_server.user, cas_server.password)
    assert visit.json()["user"] == cas_server.user, visit.describe()
    visit = browser.visit(apps[1].url)
    assert not visit.typed_password and visit.json()["user"] == cas_server.user, visit.describe()
    for app in apps:
        assert whoami(browser, app, until=lambda a: True)["user"] == cas_server.user

    logout = browser.get(cas_server.url("logout"))
    assert logout.status_code == 200, logout.text

    for app in apps:
        answer = whoami(browser, app, until=lambda a: a["user"] is None)
        assert answer["user"] is None, (
            f"{app} still logged in after /logout\n{cas_server.diagnostics()}"
        )
    # The SSO session is gone too: the next visit asks for the password again.
    again = browser.visit(apps[0].url)
    assert again.response.status_code == 200 and not again.typed_password
    assert "identifier" in again.response.text, again.describe()


def test_local_logout_redirects_to_the_server(cas_server, phpcas_app, browser, whoami):
    app = phpcas_app("3.0")
    visit = browser.visit(app.url, cas_server.user, cas_server.password)
    assert visit.json()["user"] == cas_server.user, visit.describe()

    response = browser.http.get(app.logout_url)

    assert response.status_code == 302
    assert response.headers["location"].startswith(cas_server.url("logout")), response.headers
    assert whoami(browser, app, until=lambda a: True)["user"] is None
