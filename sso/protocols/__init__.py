"""The protocols the server speaks to relying parties (CAS, SAML), each in its own package."""
