"""CSRF tokens bound to the browser's CSRF cookie (signed double submit)."""

from __future__ import annotations

import hmac
from typing import Any

import pytest

from sso.security import csrf as csrf_module
from sso.security.csrf import CsrfProtection

SECRET = "csrf-test-secret-that-is-long-enough-0123456789"


@pytest.fixture
def csrf() -> CsrfProtection:
    return CsrfProtection(SECRET)


def test_token_for_its_cookie_accepted(csrf: CsrfProtection) -> None:
    cookie = csrf.new_cookie_value()

    assert csrf.is_valid(cookie, csrf.token_for(cookie))


def test_cookie_values_are_random(csrf: CsrfProtection) -> None:
    values = {csrf.new_cookie_value() for _ in range(1000)}

    assert len(values) == 1000
    assert all(len(v) >= 43 for v in values)  # 32 random bytes


def test_token_is_not_the_cookie_and_is_deterministic(csrf: CsrfProtection) -> None:
    cookie = csrf.new_cookie_value()

    assert csrf.token_for(cookie) != cookie
    assert csrf.token_for(cookie) == csrf.token_for(cookie)


def test_token_bound_to_its_cookie(csrf: CsrfProtection) -> None:
    token = csrf.token_for(csrf.new_cookie_value())

    assert not csrf.is_valid(csrf.new_cookie_value(), token)


def test_token_bound_to_the_secret_key(csrf: CsrfProtection) -> None:
    cookie = csrf.new_cookie_value()
    other_server = CsrfProtection(SECRET + "-other")

    assert not csrf.is_valid(cookie, other_server.token_for(cookie))


def test_submitting_the_cookie_itself_is_refused(csrf: CsrfProtection) -> None:
    cookie = csrf.new_cookie_value()

    assert not csrf.is_valid(cookie, cookie)


@pytest.mark.parametrize(
    ("cookie", "token"),
    [(None, "x"), ("", "x"), ("c", None), ("c", ""), (None, None)],
)
def test_missing_cookie_or_token_refused(
    csrf: CsrfProtection, cookie: str | None, token: str | None
) -> None:
    assert not csrf.is_valid(cookie, token)


def test_empty_cookie_refused_even_with_its_token(csrf: CsrfProtection) -> None:
    assert not csrf.is_valid("", csrf.token_for(""))


def test_wrong_token_refused(csrf: CsrfProtection) -> None:
    cookie = csrf.new_cookie_value()
    token = csrf.token_for(cookie)
    flipped = token[:-1] + ("0" if token[-1] != "0" else "1")

    assert not csrf.is_valid(cookie, flipped)
    assert not csrf.is_valid(cookie, token.upper())
    assert not csrf.is_valid(cookie, token[:-1])


def test_oversized_token_refused_before_comparison(
    csrf: CsrfProtection, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[Any] = []
    monkeypatch.setattr(
        csrf_module.hmac, "compare_digest", lambda a, b: compared.append((a, b)) or True
    )

    assert not csrf.is_valid("cookie", "a" * 129)
    assert compared == []


def test_constant_time_comparison_used(
    csrf: CsrfProtection, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(csrf_module.hmac, "compare_digest", spy)
    cookie = csrf.new_cookie_value()

    assert csrf.is_valid(cookie, csrf.token_for(cookie))
    assert not csrf.is_valid(cookie, "0" * 64)
    assert len(compared) == 2
    assert compared[1] == (csrf.token_for(cookie), "0" * 64)
