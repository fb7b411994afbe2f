"""Settings: one object, read from the environment (``SSO_*``) and an optional config file.

Nothing here is read at import time: ``Settings()`` is built by the command line or the tests
and passed down to ``create_app``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PLACEHOLDER_SECRET = "change-me"  # noqa: S105 - the value we refuse outside demo mode


class Settings(BaseSettings):
    """Every setting of the server, with its default. Documented in README.md."""

    model_config = SettingsConfigDict(env_prefix="SSO_", extra="forbid")

    demo: bool = Field(False, description="Demo mode: demo data, demo relying platform, maildir.")
    base_url: str = Field(
        "http://127.0.0.1:8000/",
        description="Public base URL the users' browsers and relying platforms see.",
    )
    database_url: str = Field("sqlite:///var/sso.db", description="SQLAlchemy database URL.")
    secret_key: str = Field(PLACEHOLDER_SECRET, description="Key for CSRF and signed tokens.")
    var_dir: Path = Field(Path("var"), description="Where the server keeps its files.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses whose X-Forwarded-For/-Proto headers are believed.",
    )
    session_idle_timeout: int = Field(7200, ge=60, description="SSO session idle timeout (s).")
    session_max_lifetime: int = Field(28800, ge=60, description="SSO session absolute limit (s).")
    service_ticket_lifetime: int = Field(10, ge=1, le=300, description="ST/PT lifetime (s).")
    login_form_lifetime: int = Field(1800, ge=60, description="How long a login form stays usable.")
    ca_bundle: Path | None = Field(
        None, description="CA bundle for outbound TLS (proxy callbacks, SMTP); system CAs if unset."
    )
    backchannel_timeout: float = Field(5.0, gt=0, description="Timeout of outbound calls (s).")
    default_language: Literal["fr", "en"] = "fr"
    password_hash_concurrency: int = Field(
        0,
        ge=0,
        description="Password hashes each worker computes at once (0: its share of the CPUs).",
    )
    service_cache_seconds: float = Field(
        2.0, ge=0, description="How long each worker caches the service registry."
    )
    log_level: str = "info"

    # Outbound mail (sso/mail.py): SMTP, or a maildir under var_dir in demo mode.
    mail_from: str = Field(
        "Authentification académique <no-reply@localhost>", description="From: of our mails."
    )
    mail_delivery: Literal["smtp", "maildir"] | None = Field(
        None, description="How mail leaves: smtp, or maildir (var_dir/mail); demo: maildir."
    )
    smtp_host: str = Field("localhost", description="SMTP server.")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port.")
    smtp_security: Literal["none", "starttls", "ssl"] = Field(
        "none", description="none, starttls (usually port 587) or ssl (usually 465)."
    )
    smtp_username: str = Field("", description="SMTP login; no authentication when empty.")
    smtp_password: str = Field("", description="SMTP password.")
    smtp_timeout: float = Field(10.0, gt=0, description="SMTP connection timeout (s).")
    mail_poll_seconds: float = Field(5.0, gt=0, description="How often the sender looks.")
    mail_retry_seconds: int = Field(
        30, ge=1, description="First back-off after a failed delivery; doubles, capped at 1 h."
    )
    mail_give_up_seconds: int = Field(
        259200, ge=60, description="A mail still undelivered after this long is given up."
    )

    # Academic accounts: passwords, first login, lockout, recovery.
    password_min_length: int = Field(12, ge=8, le=128, description="Shortest new password.")
    password_min_classes: int = Field(
        3, ge=1, le=4, description="Character classes (lower, upper, digit, other) required."
    )
    temporary_password_days: int = Field(
        14, ge=1, le=365, description="Life of a temporary password (NUMEN, helpdesk)."
    )
    lockout_threshold: int = Field(3, ge=1, le=100, description="Failures that lock an account.")
    lockout_mode: Literal["helpdesk", "temporary"] = Field(
        "helpdesk", description="helpdesk: locked until unlocked; temporary: escalating locks."
    )
    lockout_base_seconds: int = Field(
        300, ge=1, description="First temporary lock; doubles with each lock, capped at 24 h."
    )
    ip_failure_limit: int = Field(
        30, ge=1, description="Failed logins one client address may make per window."
    )
    ip_failure_window_seconds: int = Field(900, ge=1, description="That window (s).")
    reset_link_lifetime: int = Field(86400, ge=300, description="Life of a reset link (s).")
    recovery_code_lifetime: int = Field(
        900, ge=60, description="Life of a one-time recovery code (s)."
    )
    device_cookie_days: int = Field(
        400, ge=1, description="Life of the cookie that recognises a known device."
    )

    # SAML 2.0 identity provider (sso/protocols/saml).
    saml_entity_id: str = Field(
        "", description="Our SAML entityID; base_url + 'saml/metadata' when empty."
    )
    saml_key_file: Path | None = Field(
        None, description="Signing key (PEM); generated under var_dir/saml/ when unset."
    )
    saml_cert_file: Path | None = Field(
        None, description="Its certificate (PEM); generated with the key when unset."
    )
    saml_key_size: int = Field(
        2048,
        description="RSA size of a generated signing key: 2048 is good until 2030 (ANSSI, NIST),"
        " 3072 beyond, at about three times the signing cost.",
    )
    saml_next_cert_file: Path | None = Field(
        None,
        description="Rollover: the next certificate, published in metadata before it is used.",
    )
    saml_crypto_backend: Literal["inprocess", "xmlsec1"] = Field(
        "inprocess", description="Who signs and encrypts: the xmlsec binding, or xmlsec1."
    )
    saml_sign_metadata: bool = Field(True, description="Sign our metadata document.")
    saml_metadata_valid_days: int = Field(
        7, ge=1, le=365, description="validUntil of our metadata, in days from now."
    )
    saml_name: str = Field(
        "Authentification académique", description="Display name of our IdP (mdui)."
    )
    saml_logo_url: str = Field("", description="Logo of our IdP in metadata (mdui); none if empty.")
    saml_encrypt_assertions: bool = Field(
        False,
        description="Encrypt assertions (AES-GCM) to every SP that publishes an encryption key.",
    )
    saml_require_signed_requests: bool = Field(
        False, description="Refuse unsigned AuthnRequests from every SP, whatever its metadata."
    )
    saml_response_lifetime: int = Field(
        300, ge=30, le=3600, description="NotOnOrAfter of assertions, seconds from issue."
    )
    saml_scope: str = Field(
        "", description="Scope of ePPN and scoped affiliations; base_url's host when empty."
    )

    # SAML service provider registry (sso/services/saml_registry.py).
    saml_sp_cache_seconds: float = Field(
        2.0, ge=0, description="How long each worker caches the approved SAML SPs."
    )
    saml_sp_metadata_max_bytes: int = Field(
        1024 * 1024, ge=4096, le=64 * 1024 * 1024, description="Largest SP metadata accepted."
    )
    saml_sp_refresh_seconds: int = Field(
        3600, ge=60, description="Longest delay between two refreshes of SP metadata by URL."
    )
    saml_sp_refresh_min_seconds: int = Field(
        300, ge=10, description="Shortest delay between refreshes, and the retry after a failure."
    )
    saml_sp_registration_limit: int = Field(
        10, ge=1, description="SP registrations one client address may submit per window."
    )
    saml_sp_registration_window_seconds: int = Field(3600, ge=1, description="That window (s).")
    saml_sp_registration_private_urls: bool = Field(
        False,
        description="Let public registrations name metadata URLs on private addresses (tests).",
    )

    @property
    def mail_transport(self) -> str:
        """Where mail goes: the setting, else a maildir in demo mode and SMTP otherwise."""
        return self.mail_delivery or ("maildir" if self.demo else "smtp")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment wins over the optional TOML file named by ``SSO_CONFIG_FILE``."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("SSO_CONFIG_FILE")
        if config_file:
            # A mistyped path must not silently fall back to the defaults.
            if not Path(config_file).is_file():
                raise ValueError(f"SSO_CONFIG_FILE {config_file!r} names no file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @field_validator("saml_key_size")
    @classmethod
    def _key_size_is_one_we_make(cls, value: int) -> int:
        if value not in (2048, 3072, 4096):
            raise ValueError("saml_key_size must be 2048, 3072 or 4096")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url_is_absolute(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("base_url must be an absolute http(s) URL")
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Settings:
        if not self.demo:
            if self.secret_key == PLACEHOLDER_SECRET or len(self.secret_key) < 32:
                raise ValueError(
                    "SSO_SECRET_KEY must be set to a random value of 32+ characters "
                    "outside demo mode (e.g. `python -c 'import secrets; "
                    "print(secrets.token_urlsafe(48))'`)"
                )
        if self.session_idle_timeout > self.session_max_lifetime:
            raise ValueError("session_idle_timeout cannot exceed session_max_lifetime")
        return self

    @property
    def secure_cookies(self) -> bool:
        """Cookies are ``Secure`` whenever the public URL is HTTPS."""
        return self.base_url.startswith("https://")

    @property
    def base_path(self) -> str:
        """The path part of the public URL: the cookies' path."""
        return urlsplit(self.base_url).path or "/"

    def url(self, path: str) -> str:
        """An absolute public URL for one of our own paths (never built from the Host header)."""
        return self.base_url + path.lstrip("/")


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment, with explicit overrides (for tests and CLI)."""
    return Settings(**overrides)
