"""Security primitives: random tokens, password hashing, CSRF and signed tokens."""
