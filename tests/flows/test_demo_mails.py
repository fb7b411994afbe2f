"""Demo mode: mails go to a maildir, and /demo/mails shows them with their links."""

from __future__ import annotations

import mailbox
import time

import pytest
from fastapi.testclient import TestClient

from sso.app import create_app
from sso.config import Settings
from sso.mail import maildir_path

TO = "jeanne.dupont@ac-test.fr"


@pytest.fixture
def settings_overrides():
    return {"demo": True, "mail_poll_seconds": 0.1}


def wait_for_maildir(settings: Settings, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        directory = maildir_path(settings)
        if directory.is_dir() and len(mailbox.Maildir(directory, create=False)) >= count:
            return
        assert time.monotonic() < deadline, f"fewer than {count} mail(s) in {directory}"
        time.sleep(0.05)


def test_a_mail_sent_in_demo_mode_is_on_the_mails_page(client, runtime, settings):
    assert client.get("/demo/mails").text.count('id="demo-no-mail"') == 1
    link = settings.url("password/reset?token=abc&lang=fr")
    runtime.mails.send(
        runtime.outbox,
        TO,
        "reset_link",
        "fr",
        display_name='Jeanne <script>alert("x")</script>',
        link=link,
        expires_hours=24,
    )
    wait_for_maildir(settings, 1)

    page = client.get("/demo/mails")
    assert page.status_code == 200
    assert "Choisir un nouveau mot de passe" in page.text
    assert TO in page.text
    # The link is clickable, and what is not a link stays text.
    assert f'<a href="{link.replace("&", "&amp;")}">' in page.text
    assert "<script>alert" not in page.text
    assert "Jeanne &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    assert page.headers["cache-control"] == "no-store"


def test_the_mails_page_lists_the_newest_first(client, runtime, settings):
    for number in range(3):
        runtime.outbox.enqueue(TO, f"mail {number}", f"texte {number}")
        wait_for_maildir(settings, number + 1)
        time.sleep(0.02)  # distinct filing times
    page = client.get("/demo/mails", params={"lang": "en"}).text
    assert "Mails sent (demo)" in page
    assert page.index("mail 2") < page.index("mail 1") < page.index("mail 0")


def test_no_mails_page_outside_demo_mode(settings):
    production = Settings(**{**settings.model_dump(), "demo": False})
    with TestClient(create_app(production), base_url="https://sso.test") as client:
        assert client.get("/demo/mails").status_code == 404
