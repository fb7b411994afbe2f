"""Personal identity questions ("m'auto dépanner"): three questions the holder chose, with
their answers, for recovering access without the NUMEN.

Answers are normalised (NFKC, case-folded, accents stripped, spaces collapsed: "  Éléphant
rose" and "elephant ROSE" are the same answer) and stored as argon2id hashes only. Checking
always verifies three hashes, whether the account has questions or not, so the time taken
says nothing. The answers alone never change a password: they only send a one-time code to
the recovery address (sso.login.questions).
"""

from __future__ import annotations

import datetime as dt
import unicodedata

from sqlalchemy import Engine, ForeignKey, Integer, String, UniqueConstraint, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from sso.db import Base, UtcDateTime, utcnow
from sso.security.passwords import PasswordHasher

QUESTION_COUNT = 3
MIN_ANSWER_LENGTH = 3
MAX_QUESTION_LENGTH = 256
MAX_ANSWER_LENGTH = 256

# Why questions are refused (the ValueError's message: a locale key).
MISSING_QUESTION = "questions.error.question_missing"
DUPLICATE_QUESTION = "questions.error.question_duplicate"
QUESTION_TOO_LONG = "questions.error.question_too_long"
ANSWER_TOO_SHORT = "questions.error.answer_too_short"
WRONG_COUNT = "questions.error.count"


class IdentityAnswer(Base):
    """One of an account's questions, with its answer's hash."""

    __tablename__ = "identity_answers"
    __table_args__ = (UniqueConstraint("account_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(String(MAX_QUESTION_LENGTH))
    answer_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


def normalize_answer(text: str) -> str:
    """The form an answer is hashed in: NFKC, case-folded, without accents, single spaces."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    decomposed = unicodedata.normalize("NFKD", folded)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(unicodedata.normalize("NFC", stripped).split())


def _hashed_form(answer: str) -> str:
    # Bounded before and after folding (an NFKC expansion cannot make it grow unbounded).
    return normalize_answer(answer[: MAX_ANSWER_LENGTH * 2])[:MAX_ANSWER_LENGTH]


def _clean_question(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


class IdentityQuestions:
    """The ``identity_answers`` table (blocking: run off the event loop; hashing is slow)."""

    def __init__(self, engine: Engine, hasher: PasswordHasher) -> None:
        self._engine = engine
        self._hasher = hasher

    def set(self, account_id: int, pairs: list[tuple[str, str]]) -> None:
        """Replace the account's questions by ``pairs`` (question, answer); ValueError, with a
        locale key as its message, when they are not three, distinct, with real answers."""
        if len(pairs) != QUESTION_COUNT:
            raise ValueError(WRONG_COUNT)
        questions = [_clean_question(question) for question, _answer in pairs]
        answers = [_hashed_form(answer) for _question, answer in pairs]
        if any(not question for question in questions):
            raise ValueError(MISSING_QUESTION)
        if any(len(question) > MAX_QUESTION_LENGTH for question in questions):
            raise ValueError(QUESTION_TOO_LONG)
        if len({normalize_answer(question) for question in questions}) != QUESTION_COUNT:
            raise ValueError(DUPLICATE_QUESTION)
        if any(len(answer) < MIN_ANSWER_LENGTH for answer in answers):
            raise ValueError(ANSWER_TOO_SHORT)
        hashes = [self._hasher.hash(answer) for answer in answers]
        now = utcnow()
        with self._engine.begin() as conn:
            conn.execute(delete(IdentityAnswer).where(IdentityAnswer.account_id == account_id))
            conn.execute(
                IdentityAnswer.__table__.insert(),
                [
                    {
                        "account_id": account_id,
                        "position": position,
                        "question": question,
                        "answer_hash": answer_hash,
                        "created_at": now,
                    }
                    for position, (question, answer_hash) in enumerate(
                        zip(questions, hashes, strict=True), start=1
                    )
                ],
            )

    def _rows(self, account_id: int) -> list[tuple[str, str]]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(IdentityAnswer.question, IdentityAnswer.answer_hash)
                .where(IdentityAnswer.account_id == account_id)
                .order_by(IdentityAnswer.position)
            ).all()
        return [(row.question, row.answer_hash) for row in rows]

    def questions(self, account_id: int) -> list[str]:
        """The account's questions in their order; empty when it has none."""
        return [question for question, _hash in self._rows(account_id)]

    def check(self, account_id: int, answers: list[str]) -> bool:
        """Whether every answer matches its question. Always three verifications (against a
        dummy hash when something is missing), whatever matched before."""
        rows = self._rows(account_id)
        complete = len(rows) == QUESTION_COUNT and len(answers) == QUESTION_COUNT
        matched = complete
        for position in range(QUESTION_COUNT):
            answer = answers[position] if position < len(answers) else ""
            stored = rows[position][1] if complete else None
            ok = self._hasher.verify(_hashed_form(answer), stored).ok
            matched = matched and ok
        return matched
