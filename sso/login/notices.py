"""Mails to account holders: reset links, reminders and security notices.

Composed in the language of the page that caused them, addressed to the account's addresses
(the recovery address first: it is the one the user still reads when the academic mailbox is
out of reach), and queued in the outbox, so the request never waits for SMTP.
"""

from __future__ import annotations

import logging
from typing import Any

from sso.accounts.models import Account
from sso.login.runtime import Runtime

log = logging.getLogger("sso.notices")


def addresses(account: Account, *, recovery_only: bool = False) -> list[str]:
    """Where mail about this account goes: its recovery address, then its own."""
    found = [account.recovery_email] if account.recovery_email else []
    if not recovery_only and account.email and account.email not in found:
        found.append(account.email)
    return found


def masked_address(address: str) -> str:
    """An address as a notice shows it: "j***@example.org". A recovery address is often
    changed because someone else reads the old mailbox, and the notice goes there: the holder
    recognises their new address, the old mailbox's reader does not learn it."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


def send_notice(
    runtime: Runtime,
    account: Account,
    name: str,
    language: str,
    *,
    recovery_only: bool = False,
    **context: Any,  # noqa: ANN401 - the template's variables
) -> int:
    """Queue mail ``name`` for the account (blocking: one insert per address); how many."""
    mail = runtime.mails.compose(
        name,
        language,
        display_name=account.display_name or account.identifier,
        identifier=account.identifier,
        **context,
    )
    targets = addresses(account, recovery_only=recovery_only)
    for address in targets:
        runtime.outbox.enqueue(address, mail.subject, mail.text, mail.html)
    if not targets:
        log.warning("no address to send %s to account %s", name, account.id)
    return len(targets)
