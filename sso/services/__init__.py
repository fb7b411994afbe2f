"""The relying-party registry: CAS services (SAML SPs later) and their attribute release."""
