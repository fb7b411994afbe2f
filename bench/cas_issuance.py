"""CAS service tickets issued per second to a browser that already has an SSO session.

Target: >= 1,000 issuances/s (GET /login?service=... with the TGC cookie -> 302 to the
service with a new ST), 2 workers.
"""

from __future__ import annotations

import argparse

from harness import Deployment, report, run_wrk, service_query

TARGET_RATE = 1000
MAX_REQUESTS_PER_THREAD = 100_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    with Deployment("issuance") as deployment:
        deployment.add_service()
        cookie, _session = deployment.open_session()
        deployment.start()
        url = f"{deployment.base_url}login?{service_query()}"
        options = {
            "connections": args.connections,
            "script_args": (str(MAX_REQUESTS_PER_THREAD),),
            "headers": (f"Cookie: TGC={cookie}",),
        }
        run_wrk(url, "issue.lua", seconds=2, **options)  # warm-up, figures thrown away
        result = run_wrk(url, "issue.lua", seconds=args.seconds, **options)

    details = [
        result.describe(),
        f"wrk -t2 -c{args.connections} -d{args.seconds}s on GET /login?service=... with a TGC, "
        f"{deployment.workers} workers",
    ]
    if result.exhausted:
        details.append("a thread hit its request budget: the rate is a lower bound")
    report(
        "CAS ticket issuance with an SSO session",
        f"{result.ok_rate:,.0f}/s successful, p99 {result.p99_ms:.1f} ms",
        f">= {TARGET_RATE:,}/s",
        result.ok_rate >= TARGET_RATE,
        details,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
