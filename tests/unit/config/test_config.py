"""Settings: defaults, refusal of unsafe values, environment and TOML file, nothing at import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from sso.config import PLACEHOLDER_SECRET, Settings, load_settings

SECRET = "a-real-secret-of-more-than-32-characters-0123456789"
PROJECT_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SSO_* variable of the developer's shell leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("SSO_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = Settings(secret_key=SECRET)

    assert settings.demo is False
    assert settings.base_url == "http://127.0.0.1:8000/"
    assert settings.database_url == "sqlite:///var/sso.db"
    assert settings.var_dir == Path("var")
    assert settings.trusted_proxies == []
    assert settings.session_idle_timeout == 7200
    assert settings.session_max_lifetime == 28800
    assert settings.service_ticket_lifetime == 10
    assert settings.login_form_lifetime == 1800
    assert settings.ca_bundle is None
    assert settings.default_language == "fr"
    assert settings.password_hash_concurrency == 0  # each worker's share of the CPUs
    assert settings.secure_cookies is False
    assert settings.base_path == "/"


def test_placeholder_secret_refused_outside_demo_mode() -> None:
    with pytest.raises(ValidationError, match="SSO_SECRET_KEY must be set") as caught:
        Settings()

    # The message tells the operator how to make a good one.
    assert "32+ characters" in str(caught.value)
    assert "secrets.token_urlsafe" in str(caught.value)


@pytest.mark.parametrize("secret", [PLACEHOLDER_SECRET, "", "x" * 31])
def test_short_or_placeholder_secret_refused(secret: str) -> None:
    with pytest.raises(ValidationError, match="SSO_SECRET_KEY"):
        Settings(secret_key=secret)


def test_secret_of_32_characters_accepted() -> None:
    assert Settings(secret_key="x" * 32).secret_key == "x" * 32


def test_demo_mode_accepts_the_placeholder_secret() -> None:
    settings = Settings(demo=True)

    assert settings.secret_key == PLACEHOLDER_SECRET


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://sso.example.org", "https://sso.example.org/"),
        ("https://sso.example.org/", "https://sso.example.org/"),
        ("https://example.org/cas", "https://example.org/cas/"),
    ],
)
def test_base_url_gets_a_trailing_slash(given: str, stored: str) -> None:
    settings = Settings(secret_key=SECRET, base_url=given)

    assert settings.base_url == stored
    assert settings.url("/login") == stored + "login"


def test_base_path_and_secure_cookies_follow_the_base_url() -> None:
    settings = Settings(secret_key=SECRET, base_url="https://example.org/cas")

    assert settings.base_path == "/cas/"
    assert settings.secure_cookies is True


@pytest.mark.parametrize(
    "base_url", ["sso.example.org", "/cas/", "ftp://sso.example.org/", "https://", "javascript:x"]
)
def test_invalid_base_url_refused(base_url: str) -> None:
    with pytest.raises(ValidationError, match="base_url must be an absolute http"):
        Settings(secret_key=SECRET, base_url=base_url)


def test_idle_timeout_longer_than_absolute_lifetime_refused() -> None:
    with pytest.raises(ValidationError, match="session_idle_timeout cannot exceed"):
        Settings(secret_key=SECRET, session_idle_timeout=3600, session_max_lifetime=1800)


def test_idle_timeout_equal_to_absolute_lifetime_accepted() -> None:
    settings = Settings(secret_key=SECRET, session_idle_timeout=1800, session_max_lifetime=1800)

    assert settings.session_idle_timeout == 1800


def test_unknown_setting_refused() -> None:
    with pytest.raises(ValidationError, match="secret_kee"):
        Settings(secret_key=SECRET, secret_kee="typo")


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSO_SECRET_KEY", SECRET)
    monkeypatch.setenv("SSO_BASE_URL", "https://sso.example.org")
    monkeypatch.setenv("SSO_SESSION_IDLE_TIMEOUT", "600")
    monkeypatch.setenv("SSO_TRUSTED_PROXIES", '["10.0.0.1", "10.0.0.2"]')
    monkeypatch.setenv("SSO_DEFAULT_LANGUAGE", "en")

    settings = Settings()

    assert settings.secret_key == SECRET
    assert settings.base_url == "https://sso.example.org/"
    assert settings.session_idle_timeout == 600
    assert settings.trusted_proxies == ["10.0.0.1", "10.0.0.2"]
    assert settings.default_language == "en"


@pytest.mark.parametrize(("given", "accepted"), [("3072", True), ("4096", True), ("1024", False)])
def test_saml_key_size_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, given: str, accepted: bool
) -> None:
    monkeypatch.setenv("SSO_SECRET_KEY", SECRET)
    monkeypatch.setenv("SSO_SAML_KEY_SIZE", given)
    if accepted:
        assert Settings().saml_key_size == int(given)
    else:
        with pytest.raises(ValidationError, match="saml_key_size"):
            Settings()


def test_demo_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSO_DEMO", "true")

    assert Settings().demo is True


def test_invalid_environment_value_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSO_SECRET_KEY", SECRET)
    monkeypatch.setenv("SSO_SERVICE_TICKET_LIFETIME", "3600")

    with pytest.raises(ValidationError, match="service_ticket_lifetime"):
        Settings()


def test_explicit_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSO_SECRET_KEY", SECRET)
    monkeypatch.setenv("SSO_LOG_LEVEL", "debug")

    assert load_settings(log_level="warning").log_level == "warning"


def _write_config(path: Path) -> Path:
    path.write_text(
        f'secret_key = "{SECRET}"\n'
        'base_url = "https://from-file.example.org"\n'
        'database_url = "postgresql+psycopg://sso@db/sso"\n'
        "session_idle_timeout = 900\n",
        encoding="utf-8",
    )
    return path


def test_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SSO_CONFIG_FILE", str(_write_config(tmp_path / "sso.toml")))

    settings = Settings()

    assert settings.secret_key == SECRET
    assert settings.base_url == "https://from-file.example.org/"
    assert settings.database_url == "postgresql+psycopg://sso@db/sso"
    assert settings.session_idle_timeout == 900


def test_environment_wins_over_the_config_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SSO_CONFIG_FILE", str(_write_config(tmp_path / "sso.toml")))
    monkeypatch.setenv("SSO_BASE_URL", "https://from-env.example.org/")

    settings = Settings()

    assert settings.base_url == "https://from-env.example.org/"
    assert settings.session_idle_timeout == 900  # still from the file


def test_unknown_key_in_the_config_file_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = _write_config(tmp_path / "sso.toml")
    config.write_text(config.read_text() + "secret_kee = 1\n")
    monkeypatch.setenv("SSO_CONFIG_FILE", str(config))

    with pytest.raises(ValidationError, match="secret_kee"):
        Settings()


def test_missing_config_file_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A mistyped SSO_CONFIG_FILE must not silently fall back to the defaults."""
    monkeypatch.setenv("SSO_CONFIG_FILE", str(tmp_path / "missing.toml"))
    monkeypatch.setenv("SSO_SECRET_KEY", SECRET)

    with pytest.raises(ValueError, match="missing.toml"):
        Settings()


def test_nothing_is_read_at_import_time(tmp_path: Path) -> None:
    """Importing the application with unusable settings in the environment must not fail."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSO_")}
    env.update(
        {
            "SSO_SECRET_KEY": "short",
            "SSO_BASE_URL": "not a url",
            "SSO_SESSION_IDLE_TIMEOUT": "not a number",
            "SSO_TRUSTED_PROXIES": "[not json",
            "SSO_CONFIG_FILE": str(tmp_path / "missing.toml"),
        }
    )
    proc = subprocess.run(
        [sys.executable, "-c", "import sso.app, sso.cli, sso.config; print('imported')"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "imported"
