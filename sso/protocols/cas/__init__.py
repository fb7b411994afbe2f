"""CAS 1.0, 2.0 and 3.0 (CAS Protocol Specification 3.0.3) and its SAML 1.1 /samlValidate."""
