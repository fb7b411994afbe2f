"""Comparing how long two kinds of request take, robustly enough for a busy CI machine.

    timings = time_alternately(matching, unknown, settle=settle_when(mails_arrived))
    assert_comparable(timings)

Each round sends one request of each kind, the order flipping from round to round (ab ba ab
…), so a change of load hits both alike; ``settle`` runs after each request, untimed: until
the background work it started is done, so that work never slows the next request.

The work a recovery form must not wait for can be as small as a millisecond (a mail composed
and two inserts on SQLite): a ratio of medians loose enough for a loaded machine would never
see it. So a difference fails the test when it is consistent and real: one kind slower in so
many rounds that chance would do it less than once in 1/CHANCE runs (a sign test on the
rounds), and by more than FLOOR and SHARE of the faster median. Load makes rounds noisy, which
hides a small difference rather than inventing one. Medians more than RATIO apart fail too.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

CHANCE = 1e-4
FLOOR = 0.0005  # seconds
SHARE = 0.10
RATIO = 2.0


@dataclass(frozen=True)
class Timings:
    """Each kind's durations (seconds) and responses, round by round."""

    first: list[float]
    second: list[float]
    first_responses: list[httpx.Response]
    second_responses: list[httpx.Response]

    @property
    def medians(self) -> tuple[float, float]:
        return statistics.median(self.first), statistics.median(self.second)

    @property
    def differences(self) -> list[float]:
        """First minus second, in each round."""
        return [a - b for a, b in zip(self.first, self.second, strict=True)]

    def __str__(self) -> str:
        first, second = self.medians
        differences = self.differences
        first_slower = sum(difference > 0 for difference in differences)
        return (
            f"medians {first * 1000:.2f} ms and {second * 1000:.2f} ms; the first slower in "
            f"{first_slower} of {len(differences)} rounds, by "
            f"{statistics.median(differences) * 1000:+.2f} ms (median)"
        )


def _timed(send: Callable[[], httpx.Response]) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = send()
    return time.perf_counter() - started, response


def time_alternately(
    first: Callable[[], httpx.Response],
    second: Callable[[], httpx.Response],
    *,
    rounds: int = 30,
    warm_up: int = 2,
    settle: Callable[[], None] = lambda: None,
) -> Timings:
    """Send ``rounds`` requests of each kind, alternating, after ``warm_up`` untimed rounds."""
    timings = Timings([], [], [], [])
    for round_number in range(warm_up + rounds):
        pair = [
            (first, timings.first, timings.first_responses),
            (second, timings.second, timings.second_responses),
        ]
        if round_number % 2:
            pair.reverse()
        for send, durations, responses in pair:
            duration, response = _timed(send)
            settle()
            if round_number >= warm_up:
                durations.append(duration)
                responses.append(response)
    return timings


def settle_when(
    done: Callable[[], bool], *, pause: float = 0.02, timeout: float = 30.0
) -> Callable[[], None]:
    """A ``settle``: wait until ``done()`` (the background work seen in the database), then
    ``pause`` more, for the work nothing shows (an unknown identifier looked up in vain, the
    mail sender's turn)."""

    def settle() -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"the background work was not done after {timeout:.0f}s")
            time.sleep(0.002)
        time.sleep(pause)

    return settle


def _by_chance(rounds: int, most: int) -> float:
    """How likely ``most`` or more of ``rounds`` coin flips land the same side (either)."""
    tail = sum(math.comb(rounds, k) for k in range(most, rounds + 1)) / 2**rounds
    return min(1.0, 2 * tail)


def assert_comparable(timings: Timings) -> None:
    """Neither kind is consistently and noticeably slower than the other."""
    differences = timings.differences
    first_slower = sum(difference > 0 for difference in differences)
    most = max(first_slower, len(differences) - first_slower)
    faster, slower = sorted(timings.medians)
    consistent = _by_chance(len(differences), most) < CHANCE
    noticeable = abs(statistics.median(differences)) > max(FLOOR, SHARE * faster)
    assert not (consistent and noticeable), str(timings)
    assert slower <= faster * RATIO, str(timings)
