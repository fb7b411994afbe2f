"""A user in a real browser: SAML single sign-on from a SAML SP, the same session serving a
CAS platform, and one logout for both.

The SP is the demo's "Bibliothèque numérique" (``sso/demo/saml_sp.py``): it sends a
Redirect-binding AuthnRequest, receives our signed Response by the browser's auto-POST and
shows the attributes it read from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_browser_cas import (
    PASSWORD,
    USER,
    asks_for_login,
    expect_demo_user,
    log_in,
    path_of,
)

if TYPE_CHECKING:
    from tests.e2e.conftest import DemoServer

pytestmark = pytest.mark.e2e


def test_saml_sp_then_cas_platform_on_one_session(page: Page, demo_server: DemoServer) -> None:
    login_pages: list[str] = []
    page.on(
        "response",
        lambda r: (
            login_pages.append(r.url)
            if path_of(r.url) == "/saml/sso/redirect" and r.status == 200
            else None
        ),
    )

    # 1. The SAML SP sends us an AuthnRequest; the blue door logs us in; the SP shows what
    # our signed assertion said.
    page.goto(demo_server.url("demo/saml-sp"))
    expect_login_page_at_sso(page, demo_server)
    log_in(page, USER, PASSWORD)
    page.wait_for_load_state()
    assert page.url == demo_server.url("demo/saml-sp"), page.content()[:2000]
    table = page.locator("table.attributes")
    expect(page.locator("#demo-user")).not_to_be_empty()
    for name, value in (
        ("mail", "claire.martin@ac-demo.fr"),
        ("givenName", "Claire"),
        ("eduPersonPrincipalName", "cmartin@127.0.0.1"),
        ("supannEntiteAffectation", "Lycée Champollion"),
    ):
        expect(table.locator("tr", has=page.locator("th", has_text=name)).first).to_contain_text(
            value
        )

    # 2. A CAS platform logs us in on the same SSO session: no password.
    page.goto(demo_server.url("demo/webmail"))
    expect_demo_user(page, demo_server, "webmail")
    assert len(login_pages) == 1, login_pages

    # 3. One logout: our logout page tells the SAML SP through a hidden frame.
    page.goto(demo_server.url("logout"))
    expect(page.locator("iframe.logout-frame")).to_have_count(1)
    page.goto(demo_server.url("demo/saml-sp"))
    expect_login_page_at_sso(page, demo_server)
    assert asks_for_login(page, demo_server, "webmail", 5.0)


def expect_login_page_at_sso(page: Page, server: DemoServer) -> None:
    """Our login page, reached through the SAML SSO endpoint."""
    assert path_of(page.url) == "/saml/sso/redirect", page.url
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion")
    expect(page.locator("p.service")).to_contain_text("Bibliothèque numérique")
