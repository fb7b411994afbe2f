"""A user in a real browser: first login with the NUMEN, and a locked account reset by mail.

Our server runs as its own process in demo mode; the demo platforms are real CAS clients, and
the mails it "sends" are filed in a maildir that the demo page ``/demo/mails`` lists, links
clickable, as a newcomer reads them. Delivery is asynchronous (outbox, then a sender), so the
mails page is reloaded until the expected mail shows.

Each test uses its own demo account (tests share one server, in any order): ``jmoreau`` for
the first login, ``pdurand`` for the lockout (``cmartin``, whose demo password the CAS tests
log in with, must keep it).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Locator, Page, expect

if TYPE_CHECKING:
    from tests.e2e.conftest import DemoServer

pytestmark = pytest.mark.e2e

FAILED_FR = "Identifiant ou mot de passe incorrect."
NEW_PASSWORD = "Grenoble-Vercors-73!"  # 12+ characters, 4 classes, nothing personal
# Mail goes through the outbox and a sender: give it this long to reach the maildir.
MAIL_WAIT = 10.0
# Single logout is fire-and-forget on the server: give it this long to reach the platforms.
SLO_WAIT = 5.0

# First login (sso/demo/accounts.csv): no password, the NUMEN is the temporary one.
NEWCOMER = "jmoreau"
NEWCOMER_NUMEN = "12E0000004JMO"

# The lockout journey.
LOCKED_USER = "pdurand"
LOCKED_PASSWORD = "Demo-Durand-2026"
LOCKED_NUMEN = "12E0000002PDU"
LOCKED_RECOVERY = "paul.durand@perso-demo.fr"


def path_of(url: str) -> str:
    return urlsplit(url).path


def blue_button(page: Page) -> Locator:
    return page.locator("#academic-login").get_by_role("button", name="Connexion")


def expect_login_page(page: Page, server: DemoServer, service: str | None = None) -> None:
    assert path_of(page.url) in ("/login", "/login/academic"), page.url
    assert page.url.startswith(server.base_url), page.url
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion")
    expect(blue_button(page)).to_be_visible()
    if service:
        expect(page.locator("p.service")).to_contain_text(service)


def log_in(page: Page, identifier: str, password: str) -> None:
    page.get_by_label("Identifiant").fill(identifier)
    page.get_by_label("Mot de passe").fill(password)
    with page.expect_navigation():
        blue_button(page).click()


def expect_demo_user(page: Page, server: DemoServer, platform: str, user: str) -> None:
    assert page.url == server.url(f"demo/{platform}"), page.url
    expect(page.locator("#demo-user")).to_contain_text(user)
    table = page.locator("table.attributes")
    expect(table.locator("tr", has=page.locator("th", has_text="uid"))).to_contain_text(user)


def new_password_field(page: Page) -> Locator:
    return page.get_by_label("Nouveau mot de passe", exact=True)


def confirm_field(page: Page) -> Locator:
    return page.get_by_label("Confirmez le nouveau mot de passe")


def rule(page: Page, name: str) -> Locator:
    return page.locator(f"#new-password-rules li[data-rule='{name}']")


def choose_password(page: Page, password: str, confirmation: str, button: str) -> None:
    """Type a new password twice (as a user does, so the live rules see it) and send it."""
    new_password_field(page).fill("")
    new_password_field(page).press_sequentially(password)
    confirm_field(page).fill("")
    confirm_field(page).press_sequentially(confirmation)
    with page.expect_navigation():
        page.get_by_role("button", name=button).click()


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


def wait_for_mail(page: Page, server: DemoServer, subject: str, to: str) -> Locator:
    """The demo mails page, reloaded until a mail with this subject to this address shows;
    the newest such mail (the page lists the newest first)."""
    deadline = time.monotonic() + MAIL_WAIT
    while True:
        page.goto(server.url("demo/mails"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Courriels envoyés (démo)")
        mails = (
            page.locator("article.demo-mail")
            .filter(has=page.get_by_role("heading", level=2, name=subject, exact=True))
            .filter(has=page.locator("p.service", has_text=to))
        )
        if mails.count():
            return mails.first
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no mail {subject!r} to {to} after {MAIL_WAIT}s\n{server.log_tail()}"
            )
        time.sleep(0.25)


def test_first_login_replaces_the_numen_and_continues_to_the_platform(
    page: Page, demo_server: DemoServer
) -> None:
    # 1. M@gistère sends us to the login page; the NUMEN opens the forced change, no ticket.
    page.goto(demo_server.url("demo/magistere"))
    expect_login_page(page, demo_server, "M@gistère (démo)")
    log_in(page, NEWCOMER, NEWCOMER_NUMEN)
    expect(page.get_by_role("heading", level=1)).to_have_text("Choisissez votre mot de passe")
    expect(page.locator("main")).to_contain_text(f"Première connexion du compte {NEWCOMER}")
    expect(page.locator("p.service")).to_contain_text("M@gistère (démo)")
    assert "ticket=" not in page.url, page.url

    # 2. The rules are ticked live as the user types.
    new_password_field(page).press_sequentially("azerty")
    expect(rule(page, "length")).to_have_class(re.compile(r"\bpolicy-unmet\b"))
    expect(rule(page, "classes")).to_have_class(re.compile(r"\bpolicy-unmet\b"))

    # 3. A weak password is refused, each reason listed; the page stays the same.
    choose_password(page, "azerty", "azerty", "Enregistrer le mot de passe")
    expect(page.get_by_role("heading", level=1)).to_have_text("Choisissez votre mot de passe")
    problems = page.locator("#password-problems")
    expect(problems).to_be_visible()
    expect(problems).to_have_attribute("role", "alert")
    expect(problems).to_contain_text("Ce mot de passe ne peut pas être accepté")
    expect(problems.locator("li").filter(has_text="trop court")).to_have_count(1)
    expect(new_password_field(page)).to_have_value("")

    # 4. A strong one, typed twice: every live rule met, then back on M@gistère, logged in.
    new_password_field(page).press_sequentially(NEW_PASSWORD)
    confirm_field(page).press_sequentially(NEW_PASSWORD)
    for name in ("length", "classes", "match"):
        expect(rule(page, name)).to_have_class(re.compile(r"\bpolicy-met\b"))
    with page.expect_navigation(url=demo_server.url("demo/magistere")):
        page.get_by_role("button", name="Enregistrer le mot de passe").click()
    expect_demo_user(page, demo_server, "magistere", NEWCOMER)

    # 5. Log out; the NUMEN no longer opens anything, the new password goes straight through.
    page.get_by_role("link", name="Se déconnecter").click()
    page.wait_for_load_state()
    assert asks_for_login(page, demo_server, "magistere", SLO_WAIT), (
        f"M@gistère still logged in {SLO_WAIT}s after logout\n{demo_server.log_tail()}"
    )
    expect_login_page(page, demo_server, "M@gistère (démo)")
    log_in(page, NEWCOMER, NEWCOMER_NUMEN)
    expect(page.get_by_role("alert")).to_have_text(FAILED_FR)
    log_in(page, NEWCOMER, NEW_PASSWORD)
    expect_demo_user(page, demo_server, "magistere", NEWCOMER)


def test_locked_account_reset_by_mail_then_login(page: Page, demo_server: DemoServer) -> None:
    # 1. Three wrong passwords: each time the very same generic answer.
    page.goto(demo_server.url("demo/webmail"))
    expect_login_page(page, demo_server, "Webmail (démo)")
    answers = []
    for attempt in range(3):
        log_in(page, LOCKED_USER, f"not-the-password-{attempt}")
        expect(page.get_by_role("alert")).to_have_text(FAILED_FR)
        expect_login_page(page, demo_server)
        expect(page.get_by_label("Identifiant")).to_have_value(LOCKED_USER)
        answers.append(page.locator("main").inner_text())
    # 2. Now locked: the right password gets that same answer too (the lock is told by mail).
    log_in(page, LOCKED_USER, LOCKED_PASSWORD)
    expect(page.get_by_role("alert")).to_have_text(FAILED_FR)
    answers.append(page.locator("main").inner_text())
    assert len(set(answers)) == 1, answers
    assert path_of(page.url) == "/login/academic", page.url

    mails = page.context.new_page()
    locked = wait_for_mail(
        mails, demo_server, "Votre compte académique est verrouillé", LOCKED_RECOVERY
    )
    expect(locked).to_contain_text(LOCKED_USER)
    expect(locked.locator("a[href$='/recover/password']").first).to_be_visible()

    # 3. "Mot de passe oublié ?" from the login page: identifier + NUMEN. A wrong NUMEN gets
    # the very same answer as the right one (nothing tells whether they matched).
    page.get_by_role("link", name="Mot de passe oublié ?").click()
    page.wait_for_load_state()
    assert path_of(page.url) == "/recover/password", page.url
    expect(page.get_by_role("heading", level=1)).to_have_text("Mot de passe oublié")
    confirmations = []
    for numen in ("12E0000009XYZ", LOCKED_NUMEN):
        page.goto(demo_server.url("recover/password"))
        page.get_by_label("Identifiant").fill(LOCKED_USER)
        page.get_by_label("NUMEN").fill(numen)
        with page.expect_navigation():
            page.get_by_role("button", name="Recevoir un lien").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Mot de passe oublié")
        expect(page.locator("p.message")).to_contain_text(
            "Si l'identifiant et le NUMEN correspondent à un compte"
        )
        confirmations.append(page.locator("main").inner_text())
    assert confirmations[0] == confirmations[1], confirmations

    # 4. The reset link arrives at the recovery address; following it opens the form.
    reset_mail = wait_for_mail(
        mails, demo_server, "Choisir un nouveau mot de passe", LOCKED_RECOVERY
    )
    link = reset_mail.locator("a[href*='/recover/reset?token=']")
    expect(link).to_have_count(1)
    reset_url = link.get_attribute("href")
    assert reset_url and reset_url.startswith(demo_server.url("recover/reset?token=")), reset_url
    with mails.expect_navigation():
        link.click()
    expect(mails.get_by_role("heading", level=1)).to_have_text("Nouveau mot de passe")
    expect(mails.locator("main")).to_contain_text(
        f"Choisissez le nouveau mot de passe du compte {LOCKED_USER}."
    )

    # 5. A new password, typed twice: done, the account is unlocked.
    choose_password(mails, NEW_PASSWORD, NEW_PASSWORD, "Enregistrer le mot de passe")
    expect(mails.get_by_role("heading", level=1)).to_have_text("Mot de passe changé")
    expect(mails.locator("p.message")).to_contain_text("votre compte est débloqué")
    expect(mails.get_by_role("link", name="Se connecter")).to_be_visible()

    # 6. The webmail, with the new password.
    page.goto(demo_server.url("demo/webmail"))
    expect_login_page(page, demo_server, "Webmail (démo)")
    log_in(page, LOCKED_USER, NEW_PASSWORD)
    expect_demo_user(page, demo_server, "webmail", LOCKED_USER)

    # 7. The link served once: a second time it is the invalid-link page.
    mails.goto(reset_url)
    expect(mails.get_by_role("heading", level=1)).to_have_text("Lien invalide")
    expect(mails.locator("p.message")).to_contain_text("Ce lien n'est plus valable")
    expect(mails.locator("#new-password")).to_have_count(0)
