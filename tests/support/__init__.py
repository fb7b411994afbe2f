"""Reusable test infrastructure: ports, PostgreSQL, TLS, recording HTTP server, processes.

Everything here binds to 127.0.0.1 only, so tests never expose anything beyond loopback.
"""
