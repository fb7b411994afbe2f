"""The timing comparison fails on a consistent, noticeable difference, not on noise."""

import random

import pytest

from tests.support.timing import Timings, assert_comparable, time_alternately


def _timings(first, second) -> Timings:
    return Timings(list(first), list(second), [], [])


def test_equal_kinds_with_noise_are_comparable():
    noise = random.Random(7)
    first = [0.005 + noise.uniform(-0.002, 0.002) for _ in range(30)]
    second = [0.005 + noise.uniform(-0.002, 0.002) for _ in range(30)]
    assert_comparable(_timings(first, second))


def test_a_millisecond_more_in_every_round_is_caught():
    noise = random.Random(7)
    second = [0.005 + noise.uniform(-0.0003, 0.0003) for _ in range(30)]
    first = [duration + 0.001 + noise.uniform(-0.0003, 0.0003) for duration in second]
    with pytest.raises(AssertionError, match="slower in 30 of 30 rounds"):
        assert_comparable(_timings(first, second))


def test_a_consistent_but_tiny_difference_passes():
    second = [0.005] * 30
    first = [0.0051] * 30  # 0.1 ms: below the floor
    assert_comparable(_timings(first, second))


def test_medians_twice_apart_fail_even_without_a_consistent_sign():
    first = [0.012] * 30
    second = [0.005] * 20 + [0.020] * 10  # the first slower in only 20 rounds
    with pytest.raises(AssertionError, match="slower in 20 of 30 rounds"):
        assert_comparable(_timings(first, second))


def test_the_order_flips_each_round_and_warm_up_is_left_out():
    sent: list[str] = []

    def send(kind):
        def post():
            sent.append(kind)
            return kind

        return post

    timings = time_alternately(send("a"), send("b"), rounds=3, warm_up=1)
    assert sent == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert timings.first_responses == ["a"] * 3 and len(timings.second) == 3
