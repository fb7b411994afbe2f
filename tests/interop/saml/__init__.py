"""SAML 2.0 interop: independent service providers (pysaml2, Lasso) against our IdP."""
