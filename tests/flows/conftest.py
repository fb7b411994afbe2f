"""Fixtures for the journeys that read mail as it is delivered.

A module whose tests read delivered mail points the server at ``smtp_port``:

    @pytest.fixture
    def settings_overrides(smtp_port):
        return {"smtp_host": LOOPBACK, "smtp_port": smtp_port}

and the tests that read it ask for ``smtp``; the others leave the port without a listener,
and their mail in the outbox.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.ports import free_port
from tests.support.smtp import SmtpServer


@pytest.fixture
def smtp_port() -> int:
    """A loopback port for the test's SMTP server."""
    return free_port()


@pytest.fixture
def smtp(smtp_port: int) -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) listening on ``smtp_port``, keeping what it receives."""
    with SmtpServer(smtp_port) as server:
        yield server
