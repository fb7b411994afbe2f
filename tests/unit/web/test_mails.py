"""Composing mails: both languages, absolute links from base_url, HTML escaped."""

from __future__ import annotations

import pytest
from jinja2 import UndefinedError

from sso.config import Settings
from sso.web.mails import Mails

SECRET = "test-secret-key-that-is-long-enough-0123456789"
BASE_URL = "https://sso.ac-test.fr/auth/"


@pytest.fixture
def settings() -> Settings:
    return Settings(base_url=BASE_URL, secret_key=SECRET, database_url="sqlite://")


@pytest.fixture
def mails(settings: Settings) -> Mails:
    return Mails(settings)


def contexts(settings: Settings) -> dict[str, dict[str, object]]:
    """A context for every mail, its links built by settings.url as callers must."""
    reset = settings.url("password/reset?token=abc&lang=fr")
    person = {"display_name": "Jeanne Dupont"}
    return {
        "reset_link": {**person, "link": reset, "expires_hours": 24},
        "identifier_reminder": {
            **person,
            "identifier": "jdupont",
            "login_url": settings.url("login"),
        },
        "account_locked": {
            **person,
            "identifier": "jdupont",
            "mode": "helpdesk",
            "until": "",
            "reset_url": reset,
        },
        "password_changed": {
            **person,
            "identifier": "jdupont",
            "when": "02/12/2026 10:15",
            "address": "192.0.2.7",
            "reset_url": reset,
        },
        "new_device": {
            **person,
            "identifier": "jdupont",
            "when": "02/12/2026 10:15",
            "address": "192.0.2.7",
            "browser": "Firefox sur Linux",
        },
        "recovery_code": {**person, "code": "482913", "expires_minutes": 15},
        "confirm_recovery_email": {**person, "link": settings.url("recovery/confirm?t=xyz")},
        "recovery_email_changed": {
            **person,
            "identifier": "jdupont",
            "new_address": "j***@perso.test",
            "when": "02/12/2026 10:15",
            "address": "192.0.2.7",
            "browser": "Firefox sur Linux",
            "account_url": settings.url("account"),
        },
        "questions_set": {
            **person,
            "identifier": "jdupont",
            "changed": False,
            "when": "02/12/2026 10:15",
            "address": "192.0.2.7",
            "browser": "Firefox sur Linux",
            "reset_url": reset,
        },
    }


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize(
    "name",
    [
        "reset_link",
        "identifier_reminder",
        "account_locked",
        "password_changed",
        "new_device",
        "recovery_code",
        "confirm_recovery_email",
        "recovery_email_changed",
        "questions_set",
    ],
)
def test_every_mail_renders_translated_in_both_languages(mails, settings, name, language):
    mail = mails.compose(name, language, **contexts(settings)[name])
    for part in (mail.subject, mail.text, mail.html):
        assert "mail." not in part  # no catalogue key left untranslated
    assert "Jeanne Dupont" in mail.text and "Jeanne Dupont" in mail.html
    assert f'<html lang="{language}">' in mail.html
    assert BASE_URL in mail.text and BASE_URL in mail.html
    assert "\n" not in mail.subject


def test_french_and_english_differ(mails, settings):
    context = contexts(settings)["reset_link"]
    french, english = (
        mails.compose("reset_link", "fr", **context),
        mails.compose("reset_link", "en", **context),
    )
    assert french.subject == "Choisir un nouveau mot de passe"
    assert english.subject == "Choose a new password"
    assert "Bonjour Jeanne Dupont," in french.text and "Hello Jeanne Dupont," in english.text


def test_a_language_we_do_not_speak_falls_back_to_the_default(mails, settings):
    mail = mails.compose("reset_link", "de", **contexts(settings)["reset_link"])
    assert mail.subject == "Choisir un nouveau mot de passe"


def test_links_are_absolute_on_the_public_base_url(mails, settings):
    mail = mails.compose("reset_link", "fr", **contexts(settings)["reset_link"])
    link = "https://sso.ac-test.fr/auth/password/reset?token=abc&lang=fr"
    assert link in mail.text.splitlines()
    assert 'href="https://sso.ac-test.fr/auth/password/reset?token=abc&amp;lang=fr"' in mail.html
    assert "24" in mail.text


def test_html_escapes_what_it_is_given_and_text_keeps_it(mails, settings):
    context = {**contexts(settings)["new_device"], "browser": '<script>alert("x")</script>'}
    context["display_name"] = "Jeanne <b>Dupont</b>"
    mail = mails.compose("new_device", "en", **context)
    assert "<script>" not in mail.html and "<b>Dupont" not in mail.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in mail.html
    assert "Jeanne &lt;b&gt;Dupont&lt;/b&gt;" in mail.html
    assert '<script>alert("x")</script>' in mail.text  # plain text: nothing to escape


def test_account_locked_says_what_to_do_in_each_mode(mails, settings):
    context = contexts(settings)["account_locked"]
    helpdesk = mails.compose("account_locked", "en", **context)
    assert "contact your academy's helpdesk" in helpdesk.text
    temporary = mails.compose(
        "account_locked", "en", **{**context, "mode": "temporary", "until": "02/12/2026 11:00"}
    )
    assert "usable again from 02/12/2026 11:00" in temporary.text
    soon = mails.compose("account_locked", "fr", **{**context, "mode": "temporary"})
    assert "dans quelques minutes" in soon.text


def test_security_mails_tell_what_to_do_if_it_was_not_you(mails, settings):
    for name in (
        "password_changed",
        "new_device",
        "account_locked",
        "recovery_email_changed",
        "questions_set",
    ):
        mail = mails.compose(name, "en", **contexts(settings)[name])
        assert "If this was not you" in mail.text and "helpdesk" in mail.text


def test_the_questions_notice_says_whether_they_were_set_or_changed(mails, settings):
    context = contexts(settings)["questions_set"]
    first = mails.compose("questions_set", "fr", **context)
    again = mails.compose("questions_set", "fr", **{**context, "changed": True})
    assert "viennent d'être choisies" in first.text and "modifiées" not in first.text
    assert "viennent d'être modifiées" in again.text
    assert "viennent d&#39;être modifiées" in again.html


def test_a_context_value_forgotten_by_a_caller_fails_loudly(mails):
    with pytest.raises(UndefinedError):
        mails.compose("reset_link", "fr", display_name="Jeanne", expires_hours=24)
