"""Identity questions: answers normalised then hashed, all three needed, constant work."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from sso.accounts.importer import import_accounts
from sso.accounts.models import Account
from sso.accounts.questions import (
    ANSWER_TOO_SHORT,
    DUPLICATE_QUESTION,
    MISSING_QUESTION,
    WRONG_COUNT,
    IdentityAnswer,
    IdentityQuestions,
    normalize_answer,
)
from sso.db import make_engine
from sso.security.passwords import PasswordHasher

PAIRS = [
    ("Nom de mon premier chat ?", "Félix le Chat"),
    ("Ville de naissance ?", "Aix-en-Provence"),
    ("Plat préféré ?", "Bouillabaisse"),
]


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__()
        self.verifications = 0

    def verify(self, password: str, stored_hash: str | None):
        self.verifications += 1
        return super().verify(password, stored_hash)


@pytest.fixture(scope="module")
def hasher() -> CountingHasher:
    return CountingHasher()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def account_id(engine: Engine, hasher: PasswordHasher) -> int:
    report = import_accounts(engine, hasher, "identifier,password\ncmartin,Demo-Martin-2026x\n")
    assert not report.errors
    with engine.connect() as conn:
        return conn.scalar(select(Account.id).where(Account.identifier == "cmartin"))


@pytest.fixture
def store(engine: Engine, hasher: PasswordHasher) -> IdentityQuestions:
    return IdentityQuestions(engine, hasher)


@pytest.mark.parametrize(
    ("typed", "normal"),
    [
        ("Félix", "felix"),
        ("  ÉLÉPHANT   rose ", "elephant rose"),
        ("Straße", "strasse"),
        ("ｆｅｌｉｘ", "felix"),  # full-width (NFKC)
        ("Noël\u00a0et\tÇa", "noel et ca"),
        ("ﬁn", "fin"),  # ligature
    ],
)
def test_answers_are_normalised(typed: str, normal: str) -> None:
    assert normalize_answer(typed) == normal


def test_answers_are_stored_hashed_and_match_however_typed(
    store: IdentityQuestions, engine: Engine, account_id: int
) -> None:
    store.set(account_id, PAIRS)

    with engine.connect() as conn:
        rows = conn.execute(select(IdentityAnswer).order_by(IdentityAnswer.position)).all()
    assert [row.position for row in rows] == [1, 2, 3]
    for row, (_question, answer) in zip(rows, PAIRS, strict=True):
        assert row.answer_hash.startswith("$argon2id$")
        assert answer.lower() not in row.answer_hash.lower()
        assert normalize_answer(answer) not in row.answer_hash
    assert store.questions(account_id) == [question for question, _answer in PAIRS]
    assert store.check(account_id, ["felix LE chat", " aix-en-provence", "BOUILLABAISSE"])


def test_all_three_must_match(store: IdentityQuestions, account_id: int) -> None:
    store.set(account_id, PAIRS)
    right = [answer for _question, answer in PAIRS]

    for wrong in range(3):
        answers = list(right)
        answers[wrong] = "tout faux"
        assert not store.check(account_id, answers)
    assert not store.check(account_id, right[:2])
    assert not store.check(account_id, [])


def test_checking_always_verifies_three_hashes(
    store: IdentityQuestions, hasher: CountingHasher, account_id: int
) -> None:
    store.set(account_id, PAIRS)
    for answers in (["faux", "faux", "faux"], [a for _q, a in PAIRS], ["x"]):
        before = hasher.verifications
        store.check(account_id, answers)
        assert hasher.verifications - before == 3
    before = hasher.verifications
    assert not store.check(account_id + 999, ["a", "b", "c"])  # no questions at all
    assert hasher.verifications - before == 3


def test_setting_replaces_every_question(store: IdentityQuestions, account_id: int) -> None:
    store.set(account_id, PAIRS)
    store.set(account_id, [("Q1 ?", "un un"), ("Q2 ?", "deux"), ("Q3 ?", "trois")])

    assert store.questions(account_id) == ["Q1 ?", "Q2 ?", "Q3 ?"]
    assert store.check(account_id, ["un  un", "DEUX", "trois"])
    assert not store.check(account_id, [a for _q, a in PAIRS])


@pytest.mark.parametrize(
    ("pairs", "reason"),
    [
        (PAIRS[:2], WRONG_COUNT),
        ([*PAIRS, ("Quatrième ?", "quatre")], WRONG_COUNT),
        ([("", "reponse"), *PAIRS[1:]], MISSING_QUESTION),
        ([("Même ?", "un un"), ("meme ?", "deux"), ("Q3 ?", "trois")], DUPLICATE_QUESTION),
        ([("Q1 ?", ""), *PAIRS[1:]], ANSWER_TOO_SHORT),
        ([("Q1 ?", "   "), *PAIRS[1:]], ANSWER_TOO_SHORT),
        ([("Q1 ?", " É\u0301b "), *PAIRS[1:]], ANSWER_TOO_SHORT),  # "eb" once folded
    ],
)
def test_incomplete_questions_are_refused(
    store: IdentityQuestions, account_id: int, pairs, reason: str
) -> None:
    store.set(account_id, PAIRS)

    with pytest.raises(ValueError, match=reason.replace(".", r"\.")):
        store.set(account_id, pairs)
    assert store.check(account_id, [a for _q, a in PAIRS])  # the old ones stay
