"""Demo mode: two tiny relying platforms that use our CAS server as real clients would."""
