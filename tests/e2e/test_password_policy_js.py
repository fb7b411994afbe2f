"""The password rules ticked live in a real browser (static/password-policy.js).

The page is the real include (templates/password_rules.html) around a "new password" and
"confirm" pair, served on loopback with our pages' Content-Security-Policy, so the script
must work with ``script-src 'self'`` and no inline code.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from jinja2 import ChoiceLoader, DictLoader, Environment, PackageLoader, select_autoescape
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect

from sso.accounts.policy import PasswordPolicy
from sso.web.i18n import translate
from sso.web.pages import PAGE_HEADERS
from tests.support.ports import LOOPBACK

pytestmark = pytest.mark.e2e

STATIC = Path(__file__).resolve().parents[2] / "sso" / "static"
FORM = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>Nouveau mot de passe</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/sso.css">
<link rel="stylesheet" href="/static/password-policy.css">
<script src="/static/password-policy.js" defer></script>
</head><body><main><form method="post" action="/nowhere">
<label for="new-password">Nouveau mot de passe</label>
<input id="new-password" name="new_password" type="password" autocomplete="new-password"
       required maxlength="{{ policy.max_length }}" aria-describedby="new-password-rules"
       data-policy-min-length="{{ policy.min_length }}"
       data-policy-min-classes="{{ policy.min_classes }}"
       data-policy-max-length="{{ policy.max_length }}"
       data-policy-confirm="confirm-password">
{% with password_id="new-password", confirm_id="confirm-password" %}
{%- include "password_rules.html" %}{% endwith %}
<label for="confirm-password">Confirmez le mot de passe</label>
<input id="confirm-password" name="confirm_password" type="password"
       autocomplete="new-password" required maxlength="{{ policy.max_length }}">
<button type="submit">Enregistrer</button>
</form></main></body></html>
"""


class _PageHandler(SimpleHTTPRequestHandler):
    """Files of one folder with our pages' security headers; quiet."""

    def end_headers(self) -> None:
        for name, value in PAGE_HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def form_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The form page with the policy's defaults, on a loopback HTTP server."""
    root = tmp_path_factory.mktemp("policy-page")
    (root / "static").mkdir()
    for name in ("sso.css", "password-policy.css", "password-policy.js"):
        (root / "static" / name).write_bytes((STATIC / name).read_bytes())
    env = Environment(
        loader=ChoiceLoader([DictLoader({"form.html": FORM}), PackageLoader("sso", "templates")]),
        autoescape=select_autoescape(default=True),
    )
    html = env.get_template("form.html").render(
        t=lambda key, **values: translate("fr", key, **values),
        policy=PasswordPolicy(min_length=12, min_classes=3),
    )
    (root / "form.html").write_text(html, "utf-8")
    server = ThreadingHTTPServer((LOOPBACK, 0), partial(_PageHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}/form.html"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def form(page: Page, form_url: str) -> Iterator[Page]:
    """The form loaded; the test fails if the browser reports any error (CSP included)."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(form_url)
    expect(page.locator(".password-rules.policy-live")).to_be_visible()
    yield page
    assert errors == []


def rule(page: Page, name: str):  # noqa: ANN201 - a Playwright Locator
    return page.locator(f'.password-rules li[data-rule="{name}"]')


def test_rules_start_unmet_and_tick_as_the_user_types(form: Page) -> None:
    for name in ("length", "classes", "match"):
        expect(rule(form, name)).to_have_class(re.compile(r"\bpolicy-unmet\b"))
    form.fill("#new-password", "kqvlzwxpmtrb")  # 12 characters, one class
    expect(rule(form, "length")).to_have_class(re.compile(r"\bpolicy-met\b"))
    expect(rule(form, "classes")).to_have_class(re.compile(r"\bpolicy-unmet\b"))
    form.fill("#new-password", "Kq7vLz2wXp9m")
    expect(rule(form, "classes")).to_have_class(re.compile(r"\bpolicy-met\b"))
    form.fill("#new-password", "Kq7vLz")
    expect(rule(form, "length")).to_have_class(re.compile(r"\bpolicy-unmet\b"))
    expect(rule(form, "classes")).to_have_class(re.compile(r"\bpolicy-met\b"))


def test_length_counts_characters_like_the_server(form: Page) -> None:
    form.fill("#new-password", "Kq7vLz2wXpe\u0301")  # 11 characters once é is composed
    expect(rule(form, "length")).to_have_class(re.compile(r"\bpolicy-unmet\b"))
    form.fill("#new-password", "Kq7vLz2wXp\U0001f600!")  # an emoji is one character
    expect(rule(form, "length")).to_have_class(re.compile(r"\bpolicy-met\b"))
    form.fill("#new-password", "Kq7vLz2wXp9m" * 11)  # maxlength keeps the first 128
    assert 120 < form.locator("#new-password").evaluate("input => input.value.length") <= 128
    expect(rule(form, "length")).to_have_class(re.compile(r"\bpolicy-met\b"))
    # A script (a password manager) may set a longer value: the rule says no.
    form.locator("#new-password").evaluate(
        "input => { input.value = 'Kq7vLz2wXp9m'.repeat(11);"
        " input.dispatchEvent(new Event('input')); }"
    )
    expect(rule(form, "length")).to_have_class(re.compile(r"\bpolicy-unmet\b"))


def test_the_confirmation_must_match(form: Page) -> None:
    form.fill("#new-password", "Le héron pêche 7 truites")
    form.fill("#confirm-password", "Le héron pêche 7 truite")
    expect(rule(form, "match")).to_have_class(re.compile(r"\bpolicy-unmet\b"))
    form.fill("#confirm-password", "Le héron pêche 7 truites")
    expect(rule(form, "match")).to_have_class(re.compile(r"\bpolicy-met\b"))
    form.fill("#new-password", "Le héron pêche 8 truites")
    expect(rule(form, "match")).to_have_class(re.compile(r"\bpolicy-unmet\b"))


def test_screen_readers_hear_the_changes(form: Page) -> None:
    status = form.locator("[data-policy-status]")
    expect(status).to_have_attribute("aria-live", "polite")
    expect(rule(form, "length").locator(".policy-state")).to_have_text("(pas encore respectée)")
    form.fill("#new-password", "Kq7vLz2wXp9m")
    expect(rule(form, "length").locator(".policy-state")).to_have_text("(respectée)")
    expect(status).to_contain_text("compter entre 12 et 128 caractères — respectée")
    expect(status).to_contain_text("types de caractères")


def test_server_rules_stay_text(form: Page) -> None:
    form.fill("#new-password", "Kq7vLz2wXp9m")
    for name in ("personal", "common"):
        expect(rule(form, name)).to_have_class("policy-server")
        expect(rule(form, name)).to_contain_text("vérifiée à l'envoi du formulaire")


def test_without_javascript_the_rules_are_plain_text(
    new_context: Callable[..., BrowserContext], form_url: str
) -> None:
    page = new_context(java_script_enabled=False).new_page()
    page.goto(form_url)
    expect(rule(page, "length")).to_have_text(re.compile("compter entre 12 et 128 caractères"))
    expect(
        page.locator(".password-rules li.policy-met, .password-rules li.policy-unmet")
    ).to_have_count(0)
    page.fill("#new-password", "Kq7vLz2wXp9m")
    expect(page.locator("#new-password")).to_have_value("Kq7vLz2wXp9m")
