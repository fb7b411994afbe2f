"""Fixtures of the browser tests: our server in demo mode, and Debian's Chromium.

The server is a real process (``python -m sso serve``) on 127.0.0.1 with a fresh SQLite
database, the demo accounts (``sso/demo/accounts.csv``) and the two demo platforms
(``/demo/webmail``, ``/demo/magistere``), which are real CAS clients of it. Chromium is driven
with Playwright's sync API; no browser is ever downloaded: ``/usr/bin/chromium`` is used, and
the tests are skipped when it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ports import LOOPBACK, free_port
from tests.support.processes import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Playwright's own waits (clicks, navigations, expect) give up after this many ms.
TIMEOUT_MS = 10_000

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@dataclass(frozen=True)
class DemoServer:
    """Our server in demo mode, as the browser reaches it."""

    base_url: str  # with a trailing slash
    process: ServerProcess

    def url(self, path: str) -> str:
        return self.base_url + path.lstrip("/")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.process.log_text().splitlines()[-lines:])


def _run(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        argv, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[2:])} failed ({done.returncode})\n{done.stdout}\n{done.stderr}"
        )


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """``sso migrate``, ``sso demo``, then ``sso serve`` on a free loopback port."""
    directory = tmp_path_factory.mktemp("e2e")
    port = free_port()
    base_url = f"http://{LOOPBACK}:{port}/"
    env = {
        "SSO_DEMO": "true",
        "SSO_BASE_URL": base_url,
        "SSO_DATABASE_URL": f"sqlite:///{directory / 'sso.db'}",
        "SSO_VAR_DIR": str(directory / "var"),
        "SSO_SERVICE_CACHE_SECONDS": "0",
    }
    python = sys.executable
    _run([python, "-m", "sso", "migrate"], env)
    _run([python, "-m", "sso", "demo"], env)
    process = ServerProcess(
        [python, "-m", "sso", "serve", "--host", LOOPBACK, "--port", str(port)],
        env=env,
        port=port,
        ready_url=base_url + "login",
        cwd=ROOT,
        name="sso",
        log_dir=directory / "logs",
    )
    process.start()
    try:
        yield DemoServer(base_url, process)
    finally:
        process.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[playwright_sync.Browser]:
    """Debian's Chromium, headless, launched once for the browser tests.

    Package scope, and the root conftest runs these tests last: while Playwright's sync API is
    open its event loop counts as running in this thread, so ``asyncio.run`` in any later test
    would fail.
    """
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with playwright_sync.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_context(
    browser: playwright_sync.Browser,
) -> Iterator[Callable[..., playwright_sync.BrowserContext]]:
    """``new_context(**options)``: a fresh browser profile (no cookies), closed after the test."""
    contexts: list[playwright_sync.BrowserContext] = []

    def make(**options: object) -> playwright_sync.BrowserContext:
        options.setdefault("locale", "fr-FR")
        context = browser.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context

    try:
        yield make
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def page(new_context: Callable[..., playwright_sync.BrowserContext]) -> playwright_sync.Page:
    """A page in a fresh French-speaking browser profile with JavaScript on."""
    return new_context().new_page()
