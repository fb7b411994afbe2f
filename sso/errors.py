"""The root of every exception the server raises on purpose."""


class SsoError(Exception):
    """Base of the project's exception tree."""


class ConfigurationError(SsoError):
    """Settings that cannot be used (e.g. a placeholder secret outside demo mode)."""
