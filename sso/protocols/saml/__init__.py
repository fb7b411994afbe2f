"""SAML 2.0 identity provider: metadata, SSO, SLO, signing, encryption, NameIDs."""
