"""Academic accounts as the seeds describe them: first login with the NUMEN and the forced
change, lockout ("trois tentatives, puis rideau"), per-address throttling, forgotten password
and identifier (enumeration-safe), expired temporary passwords, notices and the activity log.

Mails are read from the outbox table here, except the recovery-address notice: that one is
read as delivered, by a real SMTP server on loopback.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select, update

from sso.accounts.importer import import_accounts
from sso.accounts.models import Account, RecoveryToken
from sso.audit import AuditEvent
from sso.mail import OutboxMail
from tests.support.cas_login import log_in, ticket_from
from tests.support.live_server import SsoServer
from tests.support.login_form import read_form
from tests.support.ports import LOOPBACK
from tests.support.smtp import links_in
from tests.support.timing import assert_comparable, settle_when, time_alternately

SERVICE = "https://app.test/cas/callback?next=/home"
NUMEN = "12E0123456ABC"
STRONG = "Vercors-Chartreuse-38!"
FAILED_FR = "Identifiant ou mot de passe incorrect."


@pytest.fixture
def settings_overrides(smtp_port):
    """Mail goes to a loopback port, where the tests that read it delivered run ``smtp``."""
    return {"smtp_host": LOOPBACK, "smtp_port": smtp_port}


@pytest.fixture
def service(add_service):
    return add_service(SERVICE, name="M@gistère")


@pytest.fixture
def academic(add_account):
    """An academic account with a password, a NUMEN, a birth date and a recovery address."""
    return add_account(
        "cmartin",
        "Demo-Martin-2026x",
        given_name="Claire",
        surname="Martin",
        email="claire.martin@ac-test.fr",
        recovery_email="claire@perso.test",
        numen=NUMEN,
        birth_date="1982-03-14",
    )


@pytest.fixture
def newcomer(add_account):
    """An academic account imported with its NUMEN only: first login to come."""
    return add_account(
        "jmoreau",
        "",
        given_name="Jeanne",
        surname="Moreau",
        recovery_email="jeanne@perso.test",
        numen="12e 0123456 xyz",
    )


def _account(runtime, identifier: str) -> Account:
    account = runtime.accounts.find(identifier)
    assert account is not None
    return account


def _mails(runtime, to: str | None = None) -> list[OutboxMail]:
    with runtime.engine.connect() as conn:
        rows = conn.execute(select(OutboxMail).order_by(OutboxMail.id)).all()
    return [row for row in rows if to is None or row.to_address == to]


def _events(runtime, identifier: str) -> list[str]:
    with runtime.engine.connect() as conn:
        return list(
            conn.scalars(
                select(AuditEvent.event)
                .where(AuditEvent.identifier == identifier)
                .order_by(AuditEvent.id)
            )
        )


def _link(body: str, path: str) -> str:
    match = re.search(rf"https://sso\.test/{path}\?token=[A-Za-z0-9-]+", body)
    assert match, body
    return match.group(0)


# -- First login with the NUMEN ---------------------------------------------------------------
def test_first_login_with_the_numen_forces_a_change_then_continues_to_the_service(
    client, runtime, service, newcomer
):
    # The initial password is the NUMEN in upper case, however the file wrote it.
    answer = log_in(client, "jmoreau", "12E0123456XYZ", service=SERVICE)

    assert answer.status_code == 200, answer.text
    assert "Choisissez votre mot de passe" in answer.text
    assert "ticket=" not in answer.headers.get("location", "")
    assert "TGC" not in answer.cookies  # no SSO session before the change
    action, fields = read_form(answer.text, "password-change")

    weak = client.post(
        action, data={**fields, "new_password": "azerty", "confirm_password": "azerty"}
    )
    assert weak.status_code == 400
    assert "ne peut pas être accepté" in weak.text
    action, fields = read_form(weak.text, "password-change")
    done = client.post(action, data={**fields, "new_password": STRONG, "confirm_password": STRONG})

    assert done.status_code == 302, done.text
    assert done.headers["location"].startswith(SERVICE + "&ticket=ST-")
    account = _account(runtime, "jmoreau")
    assert not account.must_change_password and account.password_expires_at is None
    assert ["password_changed", "login_succeeded"] == _events(runtime, "jmoreau")[-2:]
    assert [m.subject for m in _mails(runtime, "jeanne@perso.test")]  # "password changed" notice
    # The change form cannot be replayed once used.
    replay = client.post(
        action, data={**fields, "new_password": STRONG + "x", "confirm_password": STRONG + "x"}
    )
    assert replay.status_code == 400


def test_the_new_password_may_not_contain_the_numen_or_be_the_old_one(client, service, newcomer):
    answer = log_in(client, "jmoreau", "12E0123456XYZ", service=SERVICE)
    action, fields = read_form(answer.text, "password-change")

    with_numen = "Ab-" + "12e0123456xyz" + "!"
    refused = client.post(
        action, data={**fields, "new_password": with_numen, "confirm_password": with_numen}
    )
    same = client.post(
        action,
        data={**fields, "new_password": "12E0123456XYZ", "confirm_password": "12E0123456XYZ"},
    )

    assert refused.status_code == 400 and "NUMEN" in refused.text
    assert same.status_code == 400


def test_a_mismatched_confirmation_is_refused(client, service, newcomer):
    answer = log_in(client, "jmoreau", "12E0123456XYZ", service=SERVICE)
    action, fields = read_form(answer.text, "password-change")

    refused = client.post(
        action, data={**fields, "new_password": STRONG, "confirm_password": STRONG + "?"}
    )

    assert refused.status_code == 400


def test_an_expired_temporary_password_is_refused_with_the_way_to_reset(
    client, runtime, service, newcomer
):
    with runtime.engine.begin() as conn:
        conn.execute(
            update(Account)
            .where(Account.identifier == "jmoreau")
            .values(password_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        )

    answer = log_in(client, "jmoreau", "12E0123456XYZ", service=SERVICE)

    assert answer.status_code == 403
    assert "expiré" in answer.text and "/recover/password" in answer.text
    # A wrong password on the same account still gets only the generic answer.
    wrong = log_in(client, "jmoreau", "not-the-numen", service=SERVICE)
    assert wrong.status_code == 401 and FAILED_FR in wrong.text


def test_the_numen_is_never_stored_or_logged_in_clear(client, runtime, caplog, academic, newcomer):
    caplog.set_level("DEBUG")
    _ask_reset(client, "cmartin", NUMEN)
    _ask_identifier(client, NUMEN, "Martin", "1982-03-14")
    log_in(client, "jmoreau", "12E0123456XYZ")
    report = import_accounts(
        runtime.engine,
        runtime.accounts.hasher,
        "identifier,numen\nbad,12E0123456ABCD\n",
        numen_key=runtime.accounts.numen_key,
    )

    with runtime.engine.connect() as conn:
        stored = [
            str(conn.execute(select(table)).all())
            for table in (Account, AuditEvent, RecoveryToken, OutboxMail)
        ]
    for numen in (NUMEN, "12E0123456XYZ", "12E0123456ABCD"):
        assert numen not in "".join(stored)
        assert numen.lower() not in "".join(stored).lower()
        assert numen not in caplog.text
        assert numen not in str(report.errors)
    assert report.errors  # the malformed NUMEN is refused, without being echoed
    assert _account(runtime, "cmartin").numen_hash  # a digest is kept, for recovery


# -- Lockout ----------------------------------------------------------------------------------
def test_three_failures_lock_the_account_with_the_same_message_and_a_mail(
    client, runtime, service, academic
):
    answers = [log_in(client, "cmartin", f"wrong-{i}", service=SERVICE) for i in range(3)]
    right = log_in(client, "cmartin", "Demo-Martin-2026x", service=SERVICE)

    assert [a.status_code for a in answers] == [401, 401, 401]
    assert right.status_code == 401  # locked: even the right password fails…
    assert all(FAILED_FR in a.text for a in [*answers, right])  # …with the one generic message
    assert "bloqu" not in right.text.lower()
    account = _account(runtime, "cmartin")
    assert account.locked_at is not None and account.locked_until is None  # helpdesk mode
    assert "account_locked" in _events(runtime, "cmartin")
    locked_mails = [m for m in _mails(runtime) if "/recover/password" in m.text_body]
    assert {m.to_address for m in locked_mails} == {"claire@perso.test", "claire.martin@ac-test.fr"}

    # The helpdesk unlocks (sso accounts unlock): the right password works again.
    runtime.accounts.unlock("cmartin")
    again = log_in(client, "cmartin", "Demo-Martin-2026x", service=SERVICE)
    assert again.status_code == 302 and "ticket=ST-" in again.headers["location"]


def test_a_success_resets_the_failure_count(client, service, academic, runtime):
    for _ in range(2):
        log_in(client, "cmartin", "wrong", service=SERVICE)
    assert log_in(client, "cmartin", "Demo-Martin-2026x", service=SERVICE).status_code == 302
    client.cookies.delete("TGC")  # a new login page, not SSO
    for _ in range(2):
        log_in(client, "cmartin", "wrong", service=SERVICE)

    assert _account(runtime, "cmartin").locked_at is None
    assert log_in(client, "cmartin", "Demo-Martin-2026x", service=SERVICE).status_code == 302


@pytest.mark.parametrize(
    "settings_overrides", [{"lockout_mode": "temporary", "lockout_base_seconds": 60}]
)
def test_temporary_locks_escalate_and_end_by_themselves(client, runtime, service, academic):
    for _ in range(3):
        log_in(client, "cmartin", "wrong", service=SERVICE)
    first = _account(runtime, "cmartin")
    assert first.locked_until is not None
    assert (
        dt.timedelta(seconds=55) < first.locked_until - first.locked_at <= dt.timedelta(seconds=60)
    )

    # The lock runs out; three more failures lock for twice as long.
    with runtime.engine.begin() as conn:
        conn.execute(
            update(Account).where(Account.id == first.id).values(locked_until=first.locked_at)
        )
    for _ in range(3):
        log_in(client, "cmartin", "wrong", service=SERVICE)
    second = _account(runtime, "cmartin")
    assert (
        dt.timedelta(seconds=115)
        < second.locked_until - second.locked_at
        <= dt.timedelta(seconds=120)
    )


@pytest.mark.parametrize("settings_overrides", [{"ip_failure_limit": 4}])
def test_one_address_cannot_go_on_failing_across_accounts(client, service, add_account):
    for i in range(4):
        add_account(f"user{i}", "Right-Password-2026")
        assert log_in(client, f"user{i}", "wrong", service=SERVICE).status_code == 401

    throttled = log_in(client, "user0", "Right-Password-2026", service=SERVICE)

    assert throttled.status_code == 429
    assert "Trop de tentatives" in throttled.text


def test_unknown_identifiers_lock_nothing_and_leave_no_account_event(client, runtime, service):
    for _ in range(5):
        assert log_in(client, "nobody", "wrong", service=SERVICE).status_code == 401
    with runtime.engine.connect() as conn:
        assert conn.execute(select(AuditEvent)).all() == []


# -- Forgotten password -----------------------------------------------------------------------
def _ask_reset(client, identifier: str, numen: str):
    page = client.get("/recover/password")
    action, fields = read_form(page.text, "forgot-password")
    return client.post(action, data={**fields, "identifier": identifier, "numen": numen})


def _reset_links(runtime) -> list[str]:
    return [
        _link(m.text_body, "recover/reset")
        for m in _mails(runtime)
        if "recover/reset" in m.text_body
    ]


def test_a_reset_link_goes_to_the_recovery_address_and_works_once(client, runtime, academic):
    answer = _ask_reset(client, " CMartin ", NUMEN.lower())

    assert answer.status_code == 200
    [mail] = [m for m in _mails(runtime) if "recover/reset" in m.text_body]
    assert mail.to_address == "claire@perso.test"  # the recovery address only
    link = _link(mail.text_body, "recover/reset")
    with runtime.engine.connect() as conn:
        stored = conn.scalars(select(RecoveryToken.token_hash)).all()
    assert urlsplit(link).query.removeprefix("token=") not in str(stored)  # stored hashed

    form = client.get(link.removeprefix("https://sso.test"))
    assert form.status_code == 200
    action, fields = read_form(form.text, "reset-password")
    done = client.post(action, data={**fields, "new_password": STRONG, "confirm_password": STRONG})
    assert done.status_code == 200 and "Mot de passe changé" in done.text
    assert "TGC" not in done.cookies  # no automatic login

    assert client.get(link.removeprefix("https://sso.test")).status_code == 400
    again = client.post(
        action, data={**fields, "new_password": STRONG + "2", "confirm_password": STRONG + "2"}
    )
    assert again.status_code == 400
    assert log_in(client, "cmartin", STRONG).status_code == 200  # the session page
    assert "password_reset" in _events(runtime, "cmartin")


def test_only_the_latest_link_works(client, runtime, academic):
    _ask_reset(client, "cmartin", NUMEN)
    _ask_reset(client, "cmartin", NUMEN)
    older, newer = _reset_links(runtime)

    assert client.get(older.removeprefix("https://sso.test")).status_code == 400
    assert client.get(newer.removeprefix("https://sso.test")).status_code == 200


def test_an_expired_link_is_refused(client, runtime, academic):
    _ask_reset(client, "cmartin", NUMEN)
    [link] = _reset_links(runtime)
    with runtime.engine.begin() as conn:
        conn.execute(update(RecoveryToken).values(expires_at=dt.datetime.now(dt.UTC)))

    answer = client.get(link.removeprefix("https://sso.test"))

    assert answer.status_code == 400 and "/recover/password" in answer.text


def test_the_answer_is_the_same_whether_the_data_matched_or_not(client, runtime, academic):
    matched = _ask_reset(client, "cmartin", NUMEN)
    wrong_numen = _ask_reset(client, "cmartin", "12E9999999ZZZ")
    unknown = _ask_reset(client, "nobody", NUMEN)

    def body(answer):
        return re.sub(r'name="csrf_token" value="[^"]*"', "", answer.text)

    assert matched.status_code == wrong_numen.status_code == unknown.status_code == 200
    assert body(matched) == body(wrong_numen) == body(unknown)
    assert len(_reset_links(runtime)) == 1


def test_a_reset_unlocks_the_account_and_ends_its_sessions(client, runtime, service, academic):
    logged_in = log_in(client, "cmartin", "Demo-Martin-2026x", service=SERVICE)
    assert logged_in.status_code == 302
    other_browser_cookie = client.cookies.get("TGC")
    client.cookies.delete("TGC")  # what follows happens in another browser
    for _ in range(3):
        log_in(client, "cmartin", "wrong", service=SERVICE)
    assert _account(runtime, "cmartin").locked_at is not None

    _ask_reset(client, "cmartin", NUMEN)
    [link] = _reset_links(runtime)
    form = client.get(link.removeprefix("https://sso.test"))
    action, fields = read_form(form.text, "reset-password")
    client.post(action, data={**fields, "new_password": STRONG, "confirm_password": STRONG})

    assert _account(runtime, "cmartin").locked_at is None
    assert runtime.sessions.find_session(other_browser_cookie) is None
    answer = log_in(client, "cmartin", STRONG, service=SERVICE)
    assert answer.status_code == 302 and ticket_from(answer.headers["location"])


def test_the_reset_form_applies_the_policy(client, runtime, academic):
    _ask_reset(client, "cmartin", NUMEN)
    [link] = _reset_links(runtime)
    form = client.get(link.removeprefix("https://sso.test"))
    action, fields = read_form(form.text, "reset-password")

    weak = client.post(
        action, data={**fields, "new_password": "Martin2026!!", "confirm_password": "Martin2026!!"}
    )

    assert weak.status_code == 400
    assert client.get(link.removeprefix("https://sso.test")).status_code == 200  # not used up


# -- Forgotten identifier ---------------------------------------------------------------------
def _ask_identifier(client, numen: str, surname: str, birth_date: str):
    page = client.get("/recover/identifier")
    action, fields = read_form(page.text, "forgot-identifier")
    return client.post(
        action, data={**fields, "numen": numen, "surname": surname, "birth_date": birth_date}
    )


def test_the_identifier_is_mailed_when_numen_name_and_birth_date_match(client, runtime, academic):
    answers = [
        _ask_identifier(client, NUMEN, "MARTÍN", "1982-03-14"),  # case and accents ignored
        _ask_identifier(client, NUMEN, "Martin", "1982-03-15"),
        _ask_identifier(client, NUMEN, "Dupont", "1982-03-14"),
        _ask_identifier(client, "12E9999999ZZZ", "Martin", "1982-03-14"),
    ]

    assert {a.status_code for a in answers} == {200}
    assert len({re.sub(r'value="[^"]*"', "", a.text) for a in answers}) == 1
    reminders = [m for m in _mails(runtime) if "cmartin" in m.text_body]
    assert [m.to_address for m in reminders] == ["claire@perso.test"]
    assert "identifier_reminded" in _events(runtime, "cmartin")


# -- Notices and activity ---------------------------------------------------------------------
def test_a_new_device_gets_a_notice_and_a_known_one_does_not(client, runtime, service, academic):
    assert log_in(client, "cmartin", "Demo-Martin-2026x", service=SERVICE).status_code == 302
    assert _mails(runtime) == []  # the account's first device: nothing to warn about
    client.cookies.delete("TGC")
    assert log_in(client, "cmartin", "Demo-Martin-2026x", service=SERVICE).status_code == 302
    assert _mails(runtime) == []  # the same browser (its device cookie)

    client.cookies.delete("sso_device")
    client.cookies.delete("TGC")
    assert log_in(client, "cmartin", "Demo-Martin-2026x", service=SERVICE).status_code == 302

    assert len(_mails(runtime, "claire@perso.test")) == 1
    assert "new_device" in _events(runtime, "cmartin")


def test_the_account_page_lists_the_activity(client, runtime, service, academic):
    log_in(client, "cmartin", "wrong", service=SERVICE)
    log_in(client, "cmartin", "Demo-Martin-2026x", service=SERVICE)

    page = client.get("/account")

    assert page.status_code == 200
    assert "Mon activité" in page.text
    assert "Échec de connexion" in page.text and "Connexion réussie" in page.text
    assert "testclient" in page.text  # the address the events came from


def test_the_account_page_needs_a_session(client):
    answer = client.get("/account")
    assert answer.status_code == 303 and answer.headers["location"].endswith("/login")


def test_changing_the_password_from_the_account_page_ends_the_other_sessions(
    client, runtime, service, academic
):
    log_in(client, "cmartin", "Demo-Martin-2026x", service=SERVICE)
    first_cookie = client.cookies.get("TGC")
    client.cookies.delete("TGC")
    log_in(client, "cmartin", "Demo-Martin-2026x", service=SERVICE)
    page = client.get("/account")
    action, fields = read_form(page.text, "account-password")

    wrong = client.post(
        action,
        data={
            **fields,
            "current_password": "nope",
            "new_password": STRONG,
            "confirm_password": STRONG,
        },
    )
    assert wrong.status_code == 400
    done = client.post(
        action,
        data={
            **fields,
            "current_password": "Demo-Martin-2026x",
            "new_password": STRONG,
            "confirm_password": STRONG,
        },
    )

    assert done.status_code == 303
    assert runtime.sessions.find_session(first_cookie) is None
    assert runtime.sessions.find_session(client.cookies.get("TGC")) is not None


def test_recovery_forms_need_their_csrf_token(client, academic):
    for path in (
        "/recover/password",
        "/recover/identifier",
        "/recover/reset",
        "/account/password",
        "/login/password",
    ):
        answer = client.post(path, data={"identifier": "cmartin", "numen": NUMEN})
        assert answer.status_code in (400, 403), (path, answer.status_code)


def test_a_new_recovery_address_counts_once_confirmed_from_itself(
    client, runtime, service, academic
):
    log_in(client, "cmartin", "Demo-Martin-2026x", service=SERVICE)
    page = client.get("/account")
    action, fields = read_form(page.text, "account-recovery-email")

    wrong = client.post(
        action,
        data={**fields, "recovery_email": "new@perso.test", "current_password": "nope"},
    )
    invalid = client.post(
        action,
        data={
            **fields,
            "recovery_email": "not an address",
            "current_password": "Demo-Martin-2026x",
        },
    )
    sent = client.post(
        action,
        data={
            **fields,
            "recovery_email": "new@perso.test",
            "current_password": "Demo-Martin-2026x",
        },
    )

    assert wrong.status_code == invalid.status_code == 400
    assert sent.status_code == 303
    assert _account(runtime, "cmartin").recovery_email == "claire@perso.test"  # not yet
    [mail] = _mails(runtime, "new@perso.test")
    link = _link(mail.text_body, "account/confirm-email")
    confirmed = client.get(link.removeprefix("https://sso.test"))
    assert confirmed.status_code == 200 and "new@perso.test" in confirmed.text
    assert _account(runtime, "cmartin").recovery_email == "new@perso.test"
    assert "recovery_email_changed" in _events(runtime, "cmartin")
    assert client.get(link.removeprefix("https://sso.test")).status_code == 400  # once


def _ask_recovery_email(client, address: str, password: str = "Demo-Martin-2026x"):
    page = client.get("/account")
    action, fields = read_form(page.text, "account-recovery-email")
    data = {**fields, "recovery_email": address, "current_password": password}
    return client.post(action, data=data)


def _parts(message) -> tuple[str, str]:
    """A delivered mail's plain text and HTML."""
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def test_a_changed_recovery_address_is_told_to_the_former_one_and_the_academic_one(
    smtp, client, runtime, service, academic
):
    log_in(client, "cmartin", "Demo-Martin-2026x", service=SERVICE)
    assert _ask_recovery_email(client, "claire.nouvelle@perso.test").status_code == 303
    [confirmation] = smtp.wait_for(1)
    assert smtp.recipients == [["claire.nouvelle@perso.test"]]  # the new address only, so far
    [link] = [url for url in links_in(_parts(confirmation)[0]) if "confirm-email" in url]

    assert client.get(link.removeprefix("https://sso.test")).status_code == 200

    notices = smtp.wait_for(3)[1:]
    assert sorted(smtp.recipients[1:]) == [["claire.martin@ac-test.fr"], ["claire@perso.test"]]
    for notice in notices:
        assert notice["Subject"] == "L'adresse de secours de votre compte académique a été modifiée"
        text, html = _parts(notice)
        for part in (text, html):
            assert "cmartin" in part
            assert "c***@perso.test" in part  # recognisable by its holder…
            assert "claire.nouvelle" not in part  # …not given away to the former mailbox
            assert re.search(r"\d\d/\d\d/\d{4} \d\d:\d\d UTC", part)
            assert "testclient" in part  # the network address and browser it came from
            assert "contactez l'assistance" in part.replace("&#39;", "'")
            assert "https://sso.test/account" in part
        assert all(url.startswith("https://sso.test/") for url in links_in(text))
        assert "/recover/password" not in text  # a reset link would go to the new address
    assert _events(runtime, "cmartin")[-1] == "recovery_email_changed"


def test_a_first_recovery_address_is_told_to_the_academic_one_and_a_same_one_to_nobody(
    client, runtime, service, add_account
):
    add_account("pdurand", "Demo-Durand-2026x", email="paul.durand@ac-test.fr")
    log_in(client, "pdurand", "Demo-Durand-2026x", service=SERVICE)

    for _ in range(2):  # set, then confirmed again unchanged
        _ask_recovery_email(client, "paul@perso.test", "Demo-Durand-2026x")
        link = _link(_mails(runtime, "paul@perso.test")[-1].text_body, "account/confirm-email")
        assert client.get(link.removeprefix("https://sso.test")).status_code == 200

    [notice] = _mails(runtime, "paul.durand@ac-test.fr")
    assert "est désormais p***@perso.test" in notice.text_body
    assert len(_mails(runtime, "paul@perso.test")) == 2  # the two confirmations, no notice
    assert _account(runtime, "pdurand").recovery_email == "paul@perso.test"


# -- Timing: the answer leaves before the matching --------------------------------------------
# Every recovery request counts against the address: the throttle would stop the rounds.
TIMING = {"ip_failure_limit": 10_000}


def _without_csrf(answer) -> str:
    return re.sub(r'name="csrf_token" value="[^"]*"', "", answer.text)


def _count(runtime, event: str) -> int:
    with runtime.engine.connect() as conn:
        return conn.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.event == event))


def _time_form(settings, runtime, page: str, form_id: str, matching: dict, unknown: dict, event):
    """Post the form on ``page`` to the real server with matching and unknown data, in turns;
    after each answer, wait for the ``event`` the matching ones log last in the background."""
    sent = {"matching": 0}
    with SsoServer(settings, **TIMING) as server, httpx.Client(base_url=server.url) as browser:
        action, fields = read_form(browser.get(page).text, form_id)

        def post_matching():
            sent["matching"] += 1
            return browser.post(action, data={**fields, **matching})

        return time_alternately(
            post_matching,
            lambda: browser.post(action, data={**fields, **unknown}),
            settle=settle_when(lambda: _count(runtime, event) >= sent["matching"]),
        )


@pytest.mark.parametrize("settings_overrides", [TIMING])
def test_forgot_password_answers_alike_and_as_fast_whether_the_data_matched_or_not(
    settings, runtime, academic
):
    timings = _time_form(
        settings,
        runtime,
        "/recover/password",
        "forgot-password",
        {"identifier": "cmartin", "numen": NUMEN},
        {"identifier": "nobody", "numen": NUMEN},
        "reset_requested",
    )

    answers = timings.first_responses + timings.second_responses
    assert {answer.status_code for answer in answers} == {200}
    assert len({_without_csrf(answer) for answer in answers}) == 1
    assert_comparable(timings)


@pytest.mark.parametrize("settings_overrides", [TIMING])
def test_forgot_identifier_answers_alike_and_as_fast_whether_the_data_matched_or_not(
    settings, runtime, academic
):
    timings = _time_form(
        settings,
        runtime,
        "/recover/identifier",
        "forgot-identifier",
        {"numen": NUMEN, "surname": "Martin", "birth_date": "1982-03-14"},
        {"numen": "12E9999999ZZZ", "surname": "Martin", "birth_date": "1982-03-14"},
        "identifier_reminded",
    )

    answers = timings.first_responses + timings.second_responses
    assert {answer.status_code for answer in answers} == {200}
    assert len({_without_csrf(answer) for answer in answers}) == 1
    assert_comparable(timings)
