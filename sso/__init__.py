"""sso: the single-sign-on server of an education authority (CAS and SAML 2.0 identity provider)."""

__version__ = "0.1.0"
