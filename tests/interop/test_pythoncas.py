"""python-cas (the library behind django-cas-ng and Flask-CAS) against our server.

Version 2 validates at /serviceValidate, 3 at /p3/serviceValidate, CAS_2_SAML_1_0 POSTs a SOAP
request to /samlValidate?TARGET=. Its CAS 1.0 client cannot work on Python 3 (it compares
bytes with str), so it is not tested.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.interop


def _values(value: object) -> list[str]:
    """python-cas gives a single value as a string and several as a list."""
    return list(value) if isinstance(value, list) else [str(value)]


@pytest.mark.parametrize("version", ["2", "3", "CAS_2_SAML_1_0"])
def test_login_through_the_form(cas_server, pythoncas_app, browser, whoami, version):
    app = pythoncas_app(version)

    visit = browser.visit(app.url, cas_server.user, cas_server.password)

    assert visit.typed_password, visit.describe()
    assert visit.response.status_code == 200, visit.describe() + cas_server.diagnostics()
    answer = visit.json()
    assert answer["user"] == cas_server.user, visit.describe()
    assert "ticket=ST-" in str(visit.response.url), visit.describe()
    attributes = answer["attributes"]
    if version == "2":
        assert attributes == {}
    elif version == "CAS_2_SAML_1_0":
        # CAS 3.0 section 4.2.1: no SAML attributes to a non-SSL TARGET, and the app is http.
        assert app.url.startswith("http://") and attributes == {}, attributes
    else:
        if version == "3":
            # CAS 3.0 section 2.5.5: protocol attributes come first.
            for name in ("authenticationDate", "isFromNewLogin"):
                assert name in attributes, attributes
            assert attributes["isFromNewLogin"] == "true", attributes
        for name, values in cas_server.attributes.items():
            assert _values(attributes.get(name)) == values, (name, attributes)
    assert whoami(browser, app, until=lambda a: True)["user"] == cas_server.user


@pytest.mark.parametrize("version", ["2", "3", "CAS_2_SAML_1_0"])
def test_second_client_logs_in_without_password(
    cas_server, phpcas_app, pythoncas_app, browser, version
):
    first = browser.visit(phpcas_app("3.0").url, cas_server.user, cas_server.password)
    assert first.typed_password and first.json()["user"] == cas_server.user, first.describe()

    second = browser.visit(pythoncas_app(version).url)

    assert not second.typed_password, second.describe()
    assert second.response.status_code == 200, second.describe() + cas_server.diagnostics()
    assert second.json()["user"] == cas_server.user, second.describe()
    if version == "3":
        assert second.json()["attributes"]["isFromNewLogin"] == "false"


def test_ticket_is_good_once(cas_server, pythoncas_app, browser):
    app = pythoncas_app("3")
    visit = browser.visit(app.url, cas_server.user, cas_server.password)
    assert visit.json()["user"] == cas_server.user, visit.describe()

    # Replaying the service ticket (e.g. a reloaded page) must not open a second session.
    replay = browser.http.get(str(visit.response.url))

    assert replay.status_code == 401, replay.text
    assert replay.json()["user"] is None


def test_single_logout_ends_every_session(cas_server, phpcas_app, pythoncas_app, browser, whoami):
    apps = [pythoncas_app("2"), pythoncas_app("3"), pythoncas_app("CAS_2_SAML_1_0")]
    apps.append(phpcas_app("3.0"))
    visit = browser.visit(apps[0].url, cas_server.user, cas_server.password)
    assert visit.json()["user"] == cas_server.user, visit.describe()
    for app in apps[1:]:
        visit = browser.visit(app.url)
        assert not visit.typed_password, visit.describe()
        assert visit.json()["user"] == cas_server.user, visit.describe()
    for app in apps:
        assert whoami(browser, app, until=lambda a: True)["user"] == cas_server.user

    logout = browser.get(cas_server.url("logout"))
    assert logout.status_code == 200, logout.text

    still = [
        str(app)
        for app in apps
        if whoami(browser, app, until=lambda a: a["user"] is None)["user"] is not None
    ]
    assert not still, f"still logged in after /logout: {still}\n{cas_server.diagnostics()}"
