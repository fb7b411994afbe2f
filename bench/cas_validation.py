"""CAS service-ticket validations per second at /p3/serviceValidate.

Target: >= 2,000 validations/s with p99 < 25 ms at 32 concurrent connections (2 workers).

Tickets are issued beforehand straight through the registry (``SqlSessionRegistry.issue_ticket``)
for a registered service and written to a file; wrk (bench/validate.lua) sends each ticket
exactly once, each thread walking its own slice, and counts the answers that carry
``authenticationSuccess``.
"""

from __future__ import annotations

import argparse
import time

from harness import SERVICE_URL, Deployment, report, run_wrk, service_query
from sqlalchemy import func, select

from sso.sessions.models import TicketRow
from sso.sessions.registry import SsoSession

TARGET_RATE = 2000
TARGET_P99_MS = 25.0
WARM_UP_TICKETS = 3000


def issue_tickets(deployment: Deployment, session: SsoSession, count: int) -> list[str]:
    """``count`` service tickets for the bench service, one registry call each."""
    registry = deployment.sessions()
    return [
        registry.issue_ticket(session, kind="ST", service=SERVICE_URL, from_new_login=False)
        for _ in range(count)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=60_000, help="tickets for the timed run")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--endpoint", default="p3/serviceValidate")
    args = parser.parse_args()

    with Deployment("validation") as deployment:
        deployment.add_service()
        _cookie, session = deployment.open_session()
        started = time.perf_counter()
        warm = issue_tickets(deployment, session, WARM_UP_TICKETS)
        tickets = issue_tickets(deployment, session, args.tickets)
        issue_seconds = time.perf_counter() - started
        issued = len(warm) + len(tickets)
        (deployment.dir / "warm.txt").write_text("\n".join(warm) + "\n")
        (deployment.dir / "tickets.txt").write_text("\n".join(tickets) + "\n")

        deployment.start()
        url = f"{deployment.base_url}{args.endpoint}"
        path = f"/{args.endpoint}?{service_query()}&ticket="
        run_wrk(
            url,
            "validate.lua",
            connections=args.connections,
            seconds=2,
            script_args=(str(deployment.dir / "warm.txt"), path),
        )
        result = run_wrk(
            url,
            "validate.lua",
            connections=args.connections,
            seconds=args.seconds,
            script_args=(str(deployment.dir / "tickets.txt"), path),
        )
        deployment.server.stop()  # type: ignore[union-attr]
        with deployment.engine.connect() as conn:
            left = conn.execute(select(func.count()).select_from(TicketRow)).scalar_one()

    details = [
        result.describe(),
        f"{issued} tickets issued through the registry beforehand "
        f"({issued / issue_seconds:,.0f}/s, single connection); {issued - left} consumed, "
        f"{left} left unused",
        f"wrk -t2 -c{args.connections} -d{args.seconds}s on /{args.endpoint}, "
        f"{deployment.workers} workers",
    ]
    if result.exhausted:
        details.append(
            "the ticket list ran out before the end: the rate is a lower bound, use --tickets"
        )
    report(
        "CAS ticket validations",
        f"{result.ok_rate:,.0f}/s successful, p99 {result.p99_ms:.1f} ms",
        f">= {TARGET_RATE:,}/s with p99 < {TARGET_P99_MS:.0f} ms at {args.connections} connections",
        result.ok_rate >= TARGET_RATE and result.p99_ms < TARGET_P99_MS,
        details,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
