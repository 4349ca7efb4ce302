"""The sliding-window limiter: never more than N in any window, by waiting, never by failing."""

from __future__ import annotations

import json

import pytest

from bot.delivery.ratelimit import RobotLimiter, Rule, SlidingWindow, rules_for
from bot.platforms.base import Limits
from bot.platforms.wecom.config import WeComChannel


def most_in_any_window(times: list[float], window: float) -> int:
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


def simulate(rules: list[Rule], sends: int, duration: float = 0.0) -> list[float]:
    """Send as soon as allowed, each send taking ``duration``; returns the answer times."""
    clock = [0.0]
    limiter = RobotLimiter(rules, clock=lambda: clock[0])
    times = []
    for _ in range(sends):
        clock[0] += max(0.0, limiter.delay(clock[0])) + duration
        limiter.record()
        times.append(clock[0])
    return times


def test_first_n_sends_go_at_once() -> None:
    window = SlidingWindow(Rule(20, 60.0))
    for _ in range(20):
        assert window.delay(0.0) == 0.0
        window.record(0.0)
    assert window.delay(0.0) == 60.0


def test_next_send_waits_for_the_oldest_to_leave_the_window() -> None:
    window = SlidingWindow(Rule(2, 10.0))
    window.record(0.0)
    window.record(4.0)
    assert window.delay(5.0) == pytest.approx(5.0)
    assert window.delay(10.5) == 0.0
    window.record(10.5)
    assert window.delay(11.0) == pytest.approx(3.0)  # 4.0 + 10 - 11


def test_burst_never_exceeds_the_limit_in_any_window() -> None:
    times = simulate([Rule(20, 60.0)], sends=95, duration=0.05)
    assert most_in_any_window(times, 60.0) == 20


def test_leaky_bucket_shape_is_not_allowed_to_double_up_across_a_window_edge() -> None:
    # 20 at t=0 and 20 more as soon as allowed: the second batch starts one full window later.
    times = simulate([Rule(20, 1.0)], sends=40)
    assert times[20] >= times[0] + 1.0
    assert most_in_any_window(times, 1.0) == 20


def test_both_rules_of_a_platform_hold_together() -> None:
    times = simulate([Rule(100, 60.0), Rule(5, 1.0)], sends=120, duration=0.01)
    assert most_in_any_window(times, 1.0) <= 5
    assert most_in_any_window(times, 60.0) <= 100


def test_channel_rate_overrides_the_platform_limit_and_window_is_configurable() -> None:
    channel = WeComChannel(id="c", name="群", platform="wecom", rate_per_minute=10)
    assert rules_for(channel, Limits(max_bytes=1, per_minute=20), 1.0) == [Rule(10, 1.0)]


def test_platform_per_second_cap_is_added() -> None:
    channel = WeComChannel(id="c", name="群", platform="wecom")
    limits = Limits(max_bytes=1, per_minute=100, per_second=5)
    assert rules_for(channel, limits, 60.0) == [Rule(100, 60.0), Rule(5, 1.0)]


def test_a_rule_without_room_is_refused_at_construction() -> None:
    with pytest.raises(ValueError):
        SlidingWindow(Rule(0, 60.0))


def test_the_stored_window_holds_each_time_to_the_millisecond_never_earlier_through_seed_sends_and_forgetting() -> None:
    """The window stored with the results is kept as text (each time encoded once): it must stay the
    longest rule's times, each to the millisecond and never earlier than the send (a later owner
    seeded from it must not send sooner than the platform allows), whatever was seeded or dropped."""
    clock = [1_764_000_000.0]
    limiter = RobotLimiter([Rule(5, 1.0), Rule(3, 10.0), Rule(4, 10.0)], clock=lambda: clock[0])
    assert limiter.recent_json() == "[]"
    limiter.seed([clock[0] - 12, clock[0] - 3, 1_763_999_999])  # stored times, ints among them
    for step in [0.1234567, 0.0004, 0.0009, 0.5, 2.0, 3.3333333, 9.75, 0.001, 0.25, 15.0]:
        clock[0] += step
        limiter.pause()  # forgets what left the windows
        limiter.record()
        stored = json.loads(limiter.recent_json())
        assert len(stored) == len(limiter.recent())
        for kept, exact in zip(stored, limiter.recent(), strict=True):
            assert exact <= kept <= exact + 0.001 + 1e-6
            assert kept == round(kept, 3)
        if step == 0.25:
            assert len(limiter.recent()) == 3  # the first longest rule (3 in 10 s) is the one stored
    assert len(limiter.recent()) == 1  # the others left the window
    # A limiter seeded from what was stored waits at least as long as the one that stored it.
    again = RobotLimiter([Rule(3, 10.0)], clock=lambda: clock[0])
    again.seed(json.loads(limiter.recent_json()))
    assert again.pause() >= RobotLimiter([Rule(3, 10.0)], clock=lambda: clock[0]).pause()
    assert RobotLimiter([]).recent_json() == "[]"
