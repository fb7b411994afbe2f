"""Single logout (Appendix C): a back-channel POST to every service that joined the session.

Fire and forget: the user's logout never waits for a service, and a failing service is
logged, never retried in the request.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

import httpx

from sso.db import utcnow
from sso.protocols.cas.responses import render_logout_request
from sso.sessions.registry import LogoutTarget

log = logging.getLogger("sso.cas.logout")


class SingleLogout:
    """Sends CAS logout requests in the background."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client
        self._tasks: set[asyncio.Task[None]] = set()

    async def notify(self, targets: list[LogoutTarget]) -> None:
        """Start notifying every target; returns at once."""
        for target in targets:
            task = asyncio.create_task(self._send(target))
            self._tasks.add(task)  # keep a reference until done (asyncio drops weak ones)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, target: LogoutTarget) -> None:
        body = render_logout_request(
            request_id="LR-" + secrets.token_hex(16),
            issue_instant=utcnow(),
            session_index=target.ticket,
        )
        try:
            answer = await self._client.post(
                target.logout_url, data={"logoutRequest": body}, follow_redirects=False
            )
            log.info("single logout to %s: HTTP %s", target.logout_url, answer.status_code)
        except httpx.HTTPError as exc:
            log.warning("single logout to %s failed: %s", target.logout_url, exc)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for the logout requests under way (at shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
