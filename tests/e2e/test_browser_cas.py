"""A user in a real browser: CAS single sign-on and single logout across the demo platforms.

Our server runs as its own process in demo mode; its two demo platforms (webmail and
M@gistère) are CAS clients that validate tickets over real HTTP and accept single-logout POSTs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, Response, expect

if TYPE_CHECKING:
    from tests.e2e.conftest import DemoServer

pytestmark = pytest.mark.e2e

USER = "cmartin"
PASSWORD = "Demo-Martin-2026"  # sso/demo/accounts.csv
FAILED_FR = "Identifiant ou mot de passe incorrect."
FAILED_EN = "Wrong identifier or password."
# Single logout is fire-and-forget on the server: give it this long to reach the platforms.
SLO_WAIT = 5.0


def path_of(url: str) -> str:
    return urlsplit(url).path


def blue_button(page: Page) -> Locator:
    return page.locator("#academic-login").get_by_role("button", name="Connexion")


def expect_login_page(page: Page, server: DemoServer) -> None:
    """Our login page, in French, with the blue door only."""
    # /login when sent by a platform, /login/academic when the form's answer is the page again.
    assert path_of(page.url) in ("/login", "/login/academic"), page.url
    assert page.url.startswith(server.base_url), page.url
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion")
    door = page.locator("section.door-academic")
    expect(door).to_be_visible()
    expect(door.get_by_role("heading", level=2)).to_have_text("Personnels de l'académie")
    # Each field is reachable by its label (accessibility), and the button says "Connexion".
    expect(page.get_by_label("Identifiant")).to_be_visible()
    expect(page.get_by_label("Mot de passe")).to_be_visible()
    expect(blue_button(page)).to_be_visible()
    expect(blue_button(page)).to_have_class(re.compile(r"\bblue\b"))
    # The violet (federated) and direct (invited) doors do not exist yet: no dead buttons.
    expect(page.locator(".door-federated, .door-invited, .button.violet")).to_have_count(0)
    expect(page.get_by_text("Connexion directe")).to_have_count(0)


def log_in(page: Page, identifier: str, password: str) -> None:
    page.get_by_label("Identifiant").fill(identifier)
    page.get_by_label("Mot de passe").fill(password)
    with page.expect_navigation():
        blue_button(page).click()


def expect_demo_user(page: Page, server: DemoServer, platform: str) -> None:
    """The demo platform's page, showing the user and the attributes CAS released."""
    assert page.url == server.url(f"demo/{platform}"), page.url
    expect(page.locator("#demo-user")).to_contain_text(USER)
    table = page.locator("table.attributes")
    expect(table.locator("tr", has=page.locator("th", has_text="uid"))).to_contain_text(USER)
    expect(table.locator("tr", has=page.locator("th", has_text="mail"))).to_contain_text(
        "claire.martin@ac-demo.fr"
    )
    expect(table.locator("tr", has=page.locator("th", has_text="givenName"))).to_contain_text(
        "Claire"
    )


def asks_for_login(page: Page, server: DemoServer, platform: str, wait: float) -> bool:
    """Reload a demo platform until it sends the browser to our login page (or time is up)."""
    deadline = time.monotonic() + wait
    while True:
        page.goto(server.url(f"demo/{platform}"))
        if path_of(page.url) == "/login":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def test_single_sign_on_then_single_logout(page: Page, demo_server: DemoServer) -> None:
    login_pages: list[str] = []

    def record_login_page(response: Response) -> None:
        if path_of(response.url) == "/login" and response.status == 200:
            login_pages.append(response.url)

    page.on("response", record_login_page)

    # 1. The webmail sends us to the login page; the blue door logs us in and back.
    page.goto(demo_server.url("demo/webmail"))
    expect_login_page(page, demo_server)
    expect(page.locator("p.service")).to_contain_text("Webmail (démo)")
    log_in(page, USER, PASSWORD)
    expect_demo_user(page, demo_server, "webmail")
    assert len(login_pages) == 1, login_pages

    # 2. M@gistère opens on the same SSO session: no login page, no password.
    with page.expect_navigation(url=demo_server.url("demo/magistere")):
        page.get_by_role("link", name="Ouvrir M@gistère (démo)").click()
    expect_demo_user(page, demo_server, "magistere")
    assert len(login_pages) == 1, f"asked for a password again: {login_pages}"

    # 3. Logging out ends the session on the server and, by single logout, on both platforms.
    # The demo's link is /logout?service=<platform>: a registered service, so the browser goes
    # back to it; by then single logout has usually ended its session and it asks for a login.
    # The platform's own session ends only through single logout (the link does not clear it).
    page.get_by_role("link", name="Se déconnecter").click()
    page.wait_for_load_state()
    assert path_of(page.url) in ("/logout", "/login", "/demo/magistere"), page.url
    # Without a service, /logout is our own page, which says what happened and what to do.
    page.goto(demo_server.url("logout"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Déconnexion")
    expect(page.locator("p.message")).to_have_text(
        "Vous êtes déconnecté. Pour plus de sécurité, fermez votre navigateur."
    )
    for platform in ("webmail", "magistere"):
        assert asks_for_login(page, demo_server, platform, SLO_WAIT), (
            f"{platform} still logged in {SLO_WAIT}s after logout: single logout did not "
            f"reach it\n{demo_server.log_tail()}"
        )
        expect_login_page(page, demo_server)


def test_wrong_password_gets_one_generic_error_in_the_users_language(
    page: Page, demo_server: DemoServer
) -> None:
    page.goto(demo_server.url("demo/webmail"))
    log_in(page, "pdurand", "not-the-password")
    error = page.get_by_role("alert")
    expect(error).to_have_text(FAILED_FR)
    expect_login_page(page, demo_server)
    # The identifier is kept, the password is not.
    expect(page.get_by_label("Identifiant")).to_have_value("pdurand")
    expect(page.get_by_label("Mot de passe")).to_have_value("")
    # An unknown identifier gets the very same answer: nothing tells which one was wrong.
    log_in(page, "nobody-here", "not-the-password")
    expect(page.get_by_role("alert")).to_have_text(FAILED_FR)

    # English on demand: the language link keeps the CAS request (its service) and the
    # choice holds for the form's answer (language cookie).
    page.goto(demo_server.url("demo/webmail"))
    with page.expect_navigation():
        page.get_by_role("link", name="English").click()
    assert "service=" in page.url and "lang=en" in page.url, page.url
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.locator("p.service")).to_have_text("To access: Webmail (démo)")
    page.get_by_label("Identifier").fill("ableu")
    page.get_by_label("Password").fill("not-the-password")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(FAILED_EN)
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_login_works_without_javascript(
    new_context: Callable[..., BrowserContext], demo_server: DemoServer
) -> None:
    page = new_context(java_script_enabled=False).new_page()
    page.goto(demo_server.url("demo/magistere"))
    expect_login_page(page, demo_server)
    log_in(page, USER, PASSWORD)
    expect_demo_user(page, demo_server, "magistere")


@pytest.mark.parametrize(
    ("name", "viewport"),
    [("desktop", {"width": 1280, "height": 800}), ("phone", {"width": 390, "height": 844})],
)
def test_login_page_layout(
    new_context: Callable[..., BrowserContext],
    demo_server: DemoServer,
    tmp_path: Path,
    name: str,
    viewport: dict[str, int],
) -> None:
    """The page fits the screen, the blue door is in sight; screenshots kept in tmp_path."""
    page = new_context(viewport=viewport).new_page()
    page.goto(demo_server.url("demo/webmail"))
    expect_login_page(page, demo_server)
    page.screenshot(path=str(tmp_path / f"login-{name}.png"), full_page=True)
    log_in(page, "jdupont", "not-the-password")  # no such account: nobody gets locked out
    expect(page.get_by_role("alert")).to_be_visible()
    page.screenshot(path=str(tmp_path / f"login-error-{name}.png"), full_page=True)

    # No sideways scrolling, and the blue button is on the first screen without scrolling.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"page is {overflow}px wider than a {viewport['width']}px screen"
    box = blue_button(page).bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= viewport["height"], box
    assert box["height"] >= 44, f"blue button too small a target: {box}"
