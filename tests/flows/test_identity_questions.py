"""Recovery by personal identity questions ("m'auto dépanner"): choosing them while logged in,
answering them for a one-time code at the recovery address, then a new password. Mails are
read from the outbox table, except the notice that questions were set: that one is read as
delivered, by a real SMTP server on loopback.
"""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from sso.accounts.models import LoginThrottle
from sso.accounts.questions import IdentityAnswer, IdentityQuestions
from sso.app import create_app
from sso.audit import AuditEvent
from sso.login.questions import SUGGESTED_QUESTIONS, decoy_questions, router
from sso.mail import OutboxMail
from tests.support.cas_login import log_in
from tests.support.live_server import SsoServer
from tests.support.login_form import read_form
from tests.support.ports import LOOPBACK
from tests.support.timing import assert_comparable, settle_when, time_alternately

SERVICE = "https://app.test/cas/callback"
PASSWORD = "Demo-Martin-2026x"
STRONG = "Calanques-Sainte-Victoire-13!"
PAIRS = [
    ("Nom de mon premier chat ?", "Félix"),
    ("Ville de naissance ?", "Aix-en-Provence"),
    ("Plat préféré ?", "Bouillabaisse"),
]
RIGHT = ["FELIX", "aix-en-provence", " bouillabaisse "]


@pytest.fixture
def client(settings):
    """The app with the questions' routes (until sso.app includes them itself)."""
    app = create_app(settings)
    if not any(getattr(route, "path", "").endswith("/recover/questions") for route in app.routes):
        app.include_router(router, prefix=settings.base_path.rstrip("/"))
    with TestClient(app, base_url="https://sso.test", follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def settings_overrides(smtp_port):
    """Mail goes to a loopback port, where the tests that read it delivered run ``smtp``."""
    return {"smtp_host": LOOPBACK, "smtp_port": smtp_port}


@pytest.fixture
def service(add_service):
    return add_service(SERVICE)


@pytest.fixture
def academic(add_account):
    return add_account(
        "cmartin",
        PASSWORD,
        given_name="Claire",
        surname="Martin",
        email="claire.martin@ac-aix-marseille.fr",
        recovery_email="claire@perso.test",
    )


def _account(runtime, identifier: str):
    account = runtime.accounts.find(identifier)
    assert account is not None
    return account


def _set_questions(runtime, identifier: str, pairs=PAIRS) -> None:
    IdentityQuestions(runtime.engine, runtime.accounts.hasher).set(
        _account(runtime, identifier).id, pairs
    )


@pytest.fixture
def with_questions(runtime, academic):
    _set_questions(runtime, academic)
    return academic


def _mails(runtime) -> list[OutboxMail]:
    with runtime.engine.connect() as conn:
        return list(conn.execute(select(OutboxMail).order_by(OutboxMail.id)).all())


def _events(runtime, identifier: str) -> list[str]:
    with runtime.engine.connect() as conn:
        return list(
            conn.scalars(
                select(AuditEvent.event)
                .where(AuditEvent.identifier == identifier)
                .order_by(AuditEvent.id)
            )
        )


def _code_from(mail: OutboxMail) -> str:
    match = re.search(r"\b(\d{8})\b", mail.text_body)
    assert match, mail.text_body
    return match.group(1)


def _questions_page(client, identifier: str):
    page = client.get("/recover/questions")
    assert page.status_code == 200
    action, fields = read_form(page.text, "recover-questions")
    return client.post(action, data={**fields, "identifier": identifier})


def _shown_questions(html: str) -> list[str]:
    return re.findall(r'<label for="answer_\d" class="question">(.*?)</label>', html)


def _answer(client, identifier: str, answers: list[str]):
    page = _questions_page(client, identifier)
    assert page.status_code == 200, page.text
    action, fields = read_form(page.text, "answer-questions")
    answered = dict(zip(("answer_1", "answer_2", "answer_3"), answers, strict=True))
    return client.post(action, data={**fields, **answered})


def _reset(client, code_page, code: str, password: str = STRONG, confirm: str | None = None):
    action, fields = read_form(code_page.text, "questions-reset")
    return client.post(
        action,
        data={
            **fields,
            "code": code,
            "new_password": password,
            "confirm_password": password if confirm is None else confirm,
        },
    )


def _shape(response) -> str:
    """The page without its per-request tokens."""
    return re.sub(r'name="(csrf_token|token)" value="[^"]*"', "", response.text)


# -- Choosing the questions -------------------------------------------------------------------
def test_setting_questions_needs_a_session(client):
    assert client.get("/account/questions").status_code == 303
    answer = client.get("/account/questions")
    assert answer.headers["location"].endswith("/login")


def test_setting_questions_needs_the_current_password(client, runtime, service, academic):
    log_in(client, "cmartin", PASSWORD, service=SERVICE)
    page = client.get("/account/questions")
    assert page.status_code == 200
    action, fields = read_form(page.text, "account-questions")
    typed = {}
    for n, (question, answer) in enumerate(PAIRS, start=1):
        typed[f"question_{n}"] = question
        typed[f"answer_{n}"] = answer

    wrong = client.post(action, data={**fields, **typed, "current_password": "nope"})
    short = client.post(
        action, data={**fields, **typed, "answer_2": "ab", "current_password": PASSWORD}
    )
    done = client.post(action, data={**fields, **typed, "current_password": PASSWORD})

    assert wrong.status_code == 400 and "Le mot de passe actuel est incorrect." in wrong.text
    assert short.status_code == 400 and "au moins 3 caractères" in short.text
    assert done.status_code == 303 and done.headers["location"].endswith("?saved=1")
    store = IdentityQuestions(runtime.engine, runtime.accounts.hasher)
    account_id = _account(runtime, "cmartin").id
    assert store.questions(account_id) == [question for question, _answer in PAIRS]
    assert store.check(account_id, RIGHT)
    assert _events(runtime, "cmartin")[-1] == "questions_set"
    saved = client.get(done.headers["location"])
    assert "Vos questions personnelles sont enregistrées." in saved.text
    assert PAIRS[0][0] in saved.text and PAIRS[0][1] not in saved.text  # never the answers


def _typed(pairs) -> dict[str, str]:
    typed = {}
    for n, (question, answer) in enumerate(pairs, start=1):
        typed[f"question_{n}"] = question
        typed[f"answer_{n}"] = answer
    return typed


def test_setting_or_changing_the_questions_is_told_to_both_addresses(
    smtp, client, runtime, service, academic
):
    log_in(client, "cmartin", PASSWORD, service=SERVICE)
    changed = [*PAIRS[:2], ("Couleur préférée ?", "Turquoise")]
    for pairs in (PAIRS, changed):
        action, fields = read_form(client.get("/account/questions").text, "account-questions")
        data = {**fields, **_typed(pairs), "current_password": PASSWORD}
        assert client.post(action, data=data).status_code == 303

    notices = smtp.wait_for(4)
    subject = "Les questions personnelles de votre compte académique ont été enregistrées"
    told: dict[str, list[str]] = {}
    for notice, recipients in zip(notices, smtp.recipients, strict=True):
        assert notice["Subject"] == subject
        text = notice.get_body(("plain",)).get_content()
        html = notice.get_body(("html",)).get_content().replace("&#39;", "'")
        said = "choisies" if "viennent d'être choisies" in text else "modifiées"
        told.setdefault(said, []).extend(recipients)
        for part in (text, html):
            assert f"viennent d'être {said}" in part and "cmartin" in part
            assert re.search(r"\d\d/\d\d/\d{4} \d\d:\d\d UTC", part)
            assert "testclient" in part  # the network address and browser
            assert "contactez l'assistance" in part
            assert "https://sso.test/recover/password" in part
            for question, answer in changed:
                assert question not in part and answer not in part  # nothing of them
    both = ["claire.martin@ac-aix-marseille.fr", "claire@perso.test"]
    assert {said: sorted(to) for said, to in told.items()} == {"choisies": both, "modifiées": both}
    assert _events(runtime, "cmartin")[-2:] == ["questions_set", "questions_set"]


def test_refused_questions_are_not_told(client, runtime, service, academic):
    log_in(client, "cmartin", PASSWORD, service=SERVICE)
    action, fields = read_form(client.get("/account/questions").text, "account-questions")

    wrong = client.post(action, data={**fields, **_typed(PAIRS), "current_password": "nope"})

    assert wrong.status_code == 400
    assert _mails(runtime) == []
    assert "questions_set" not in _events(runtime, "cmartin")


# -- Recovering with them ---------------------------------------------------------------------
def test_right_answers_send_a_code_that_resets_the_password(
    client, runtime, service, with_questions
):
    log_in(client, "cmartin", PASSWORD, service=SERVICE)
    old_session = client.cookies.get("TGC")
    client.cookies.delete("TGC")

    questions = _questions_page(client, " CMartin ")
    assert _shown_questions(questions.text) == [question for question, _answer in PAIRS]
    code_page = _answer(client, "cmartin", RIGHT)

    assert code_page.status_code == 200
    assert "Si vos réponses sont justes" in code_page.text
    [mail] = _mails(runtime)
    assert mail.to_address == "claire@perso.test"  # the recovery address only
    done = _reset(client, code_page, _code_from(mail))

    assert done.status_code == 200, done.text
    assert "Mot de passe changé" in done.text
    assert runtime.sessions.find_session(old_session) is None  # every session ended
    assert _events(runtime, "cmartin")[-1] == "password_reset"
    with runtime.engine.connect() as conn:
        detail = conn.scalar(select(AuditEvent.detail).where(AuditEvent.event == "password_reset"))
    assert detail == {"method": "questions"}
    # Then the "password changed" notice, to both addresses.
    assert {m.to_address for m in _mails(runtime)[1:]} == {
        "claire@perso.test",
        "claire.martin@ac-aix-marseille.fr",
    }
    assert log_in(client, "cmartin", STRONG, service=SERVICE).status_code == 302
    client.cookies.delete("TGC")
    assert log_in(client, "cmartin", PASSWORD, service=SERVICE).status_code == 401


def test_wrong_answers_send_nothing_and_get_the_same_page(client, runtime, with_questions):
    right = _answer(client, "cmartin", RIGHT)
    wrong = _answer(client, "cmartin", ["Felix", "Marseille", "Bouillabaisse"])

    assert wrong.status_code == right.status_code == 200
    assert _shape(wrong) == _shape(right)
    assert len(_mails(runtime)) == 1  # the right answers' code only
    assert _events(runtime, "cmartin") == ["questions_failed"]


def test_an_unknown_identifier_gets_decoys_and_the_same_pages(
    client, runtime, settings, with_questions, add_account
):
    add_account("bnoquest", PASSWORD, recovery_email="b@perso.test")
    real = _questions_page(client, "cmartin")
    unknown = _questions_page(client, "nobody")
    again = _questions_page(client, "NoBody ")
    without = _questions_page(client, "bnoquest")

    decoys = _shown_questions(unknown.text)
    assert len(decoys) == 3 and len(set(decoys)) == 3
    assert set(decoys) <= set(SUGGESTED_QUESTIONS)
    assert decoys == _shown_questions(again.text) == decoy_questions(settings.secret_key, "nobody")
    assert len(_shown_questions(without.text)) == 3
    assert _shown_questions(without.text) == decoy_questions(settings.secret_key, "bnoquest")
    for page in (unknown, without):
        assert page.status_code == real.status_code == 200
        shape = _shape(page)
        for question in _shown_questions(page.text):
            shape = shape.replace(question, "Q")
        real_shape = _shape(real)
        for question, _typed in PAIRS:
            real_shape = real_shape.replace(question, "Q")
        assert shape == real_shape
    answered = _answer(client, "nobody", ["a", "b", "c"])
    assert answered.status_code == 200 and "Si vos réponses sont justes" in answered.text
    assert _mails(runtime) == []


def test_the_answers_alone_never_change_the_password(client, runtime, with_questions):
    code_page = _answer(client, "cmartin", RIGHT)
    before = _account(runtime, "cmartin").password_hash

    for code in ("", "00000000", "not-a-code"):
        refused = _reset(client, code_page, code)
        assert refused.status_code == 400
        assert "Ce code n&#39;est pas valable" in refused.text
    assert _account(runtime, "cmartin").password_hash == before


def test_the_code_works_once(client, runtime, with_questions):
    code_page = _answer(client, "cmartin", RIGHT)
    code = _code_from(_mails(runtime)[0])

    assert _reset(client, code_page, code).status_code == 200
    replay = _reset(client, code_page, code, password=STRONG + "x")
    assert replay.status_code == 400
    assert runtime.accounts.hasher.verify(STRONG, _account(runtime, "cmartin").password_hash).ok


def test_the_code_dies_after_five_wrong_tries(client, runtime, with_questions):
    code_page = _answer(client, "cmartin", RIGHT)
    code = _code_from(_mails(runtime)[0])
    wrong = f"{(int(code) + 1) % 10**8:08d}"

    for _ in range(5):
        assert _reset(client, code_page, wrong).status_code == 400
    assert _reset(client, code_page, code).status_code == 400  # the right one, too late
    assert runtime.accounts.hasher.verify(PASSWORD, _account(runtime, "cmartin").password_hash).ok


def test_a_refused_password_keeps_the_accepted_code(client, runtime, with_questions):
    code_page = _answer(client, "cmartin", RIGHT)
    code = _code_from(_mails(runtime)[0])

    weak = _reset(client, code_page, code, password="azerty")
    assert weak.status_code == 400 and "ne peut pas être accepté" in weak.text
    assert 'name="code"' not in weak.text  # the code is spent: its acceptance is carried
    action, fields = read_form(weak.text, "questions-reset")
    done = client.post(action, data={**fields, "new_password": STRONG, "confirm_password": STRONG})
    assert done.status_code == 200, done.text
    # The acceptance dies with the change.
    again = client.post(
        action, data={**fields, "new_password": STRONG + "y", "confirm_password": STRONG + "y"}
    )
    assert again.status_code == 400
    assert runtime.accounts.hasher.verify(STRONG, _account(runtime, "cmartin").password_hash).ok


def test_three_wrong_sets_of_answers_stop_the_questions_for_a_day(client, runtime, with_questions):
    for _ in range(3):
        _answer(client, "cmartin", ["faux", "faux", "faux"])

    refused = _answer(client, "cmartin", RIGHT)

    assert refused.status_code == 200 and "Si vos réponses sont justes" in refused.text
    assert _mails(runtime) == []
    assert _events(runtime, "cmartin") == ["questions_failed"] * 3


def test_wrong_answers_count_against_the_address(client, runtime, with_questions):
    before = runtime.throttle.blocked("testclient")
    with runtime.engine.connect() as conn:
        start = conn.scalar(select(LoginThrottle.failures)) or 0
    _answer(client, "cmartin", ["faux", "faux", "faux"])
    with runtime.engine.connect() as conn:
        after = conn.scalar(select(LoginThrottle.failures))
    assert not before
    assert after == start + 2  # the identifier step, and the wrong answers


def test_an_account_without_recovery_address_gets_no_mail(client, runtime, add_account):
    add_account("pdurand", PASSWORD, email="pierre.durand@ac-aix-marseille.fr")
    _set_questions(runtime, "pdurand")

    answered = _answer(client, "pdurand", RIGHT)

    assert answered.status_code == 200
    assert _mails(runtime) == []  # not even to the academic address
    with runtime.engine.connect() as conn:
        assert conn.scalar(select(IdentityAnswer.id).limit(1)) is not None


def test_the_forms_need_their_csrf_token(client, runtime, service, with_questions):
    for path in (
        "/recover/questions",
        "/recover/questions/answer",
        "/recover/questions/reset",
        "/account/questions",
    ):
        answer = client.post(path, data={"identifier": "cmartin"})
        assert answer.status_code == 403, (path, answer.status_code)
    log_in(client, "cmartin", PASSWORD, service=SERVICE)
    assert client.post("/account/questions", data={"current_password": PASSWORD}).status_code == 403
    assert _mails(runtime) == []


def test_a_forged_step_token_is_refused(client, with_questions):
    page = _questions_page(client, "cmartin")
    action, fields = read_form(page.text, "answer-questions")

    forged = client.post(action, data={**fields, "token": "x" + fields["token"]})

    assert forged.status_code == 400


# -- Timing: the same speed for an account and for an unknown identifier ----------------------
# Every recovery request counts against the address: the throttle would stop the rounds.
TIMING = {"ip_failure_limit": 10_000}


def _answer_form(browser, identifier: str) -> tuple[str, dict[str, str]]:
    page = browser.get("/recover/questions")
    action, fields = read_form(page.text, "recover-questions")
    questions = browser.post(action, data={**fields, "identifier": identifier})
    return read_form(questions.text, "answer-questions")


@pytest.mark.parametrize("settings_overrides", [TIMING])
def test_the_questions_come_as_fast_for_an_account_as_for_an_unknown_identifier(
    settings, runtime, with_questions
):
    with SsoServer(settings, **TIMING) as server, httpx.Client(base_url=server.url) as browser:
        action, fields = read_form(browser.get("/recover/questions").text, "recover-questions")
        timings = time_alternately(
            lambda: browser.post(action, data={**fields, "identifier": "cmartin"}),
            lambda: browser.post(action, data={**fields, "identifier": "nobody"}),
            settle=settle_when(lambda: True),
        )

    def shape(page) -> str:
        text = _shape(page)
        for question in _shown_questions(page.text):
            text = text.replace(question, "Q")
        return text

    answers = timings.first_responses + timings.second_responses
    assert {answer.status_code for answer in answers} == {200}
    assert len({shape(answer) for answer in answers}) == 1
    assert_comparable(timings)


@pytest.mark.parametrize("settings_overrides", [TIMING])
def test_answers_get_their_page_as_fast_for_an_account_as_for_an_unknown_identifier(
    settings, runtime, with_questions
):
    """For the account, three argon2id verifications and a mailed code; for the unknown
    identifier, a failure counted: both after the page is sent."""
    sent = {"account": 0}
    with SsoServer(settings, **TIMING) as server, httpx.Client(base_url=server.url) as browser:
        account_action, account_fields = _answer_form(browser, "cmartin")
        unknown_action, unknown_fields = _answer_form(browser, "nobody")
        right = dict(zip(("answer_1", "answer_2", "answer_3"), RIGHT, strict=True))

        def answer_for_the_account():
            sent["account"] += 1
            return browser.post(account_action, data={**account_fields, **right})

        timings = time_alternately(
            answer_for_the_account,
            lambda: browser.post(unknown_action, data={**unknown_fields, **right}),
            rounds=20,
            settle=settle_when(lambda: len(_mails(runtime)) >= sent["account"]),
        )

    answers = timings.first_responses + timings.second_responses
    assert {answer.status_code for answer in answers} == {200}
    assert len({_shape(answer) for answer in answers}) == 1
    assert len(_mails(runtime)) == sent["account"]  # a code for each right set, none for nobody
    assert_comparable(timings)
