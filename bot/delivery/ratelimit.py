"""Per-robot rate limits: at most N sends in any window of W seconds, by waiting, never failing.

Why not a leaky bucket (aiolimiter): a bucket of capacity N that drains at N/W per second lets
N requests through at once and then keeps admitting more as it drains, so up to about 2N can
land inside one W-second window. The platforms count a strict sliding window (WeCom: 20 in any
minute, failed sends included), so this module keeps the send times themselves and waits until
the oldest one leaves the window.

A send is recorded when its answer arrives, not when it starts: the platform saw the request
no later than that, so spacing recorded times by W spaces the platform's arrivals by at least W.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.platforms.base import ChannelBase, Limits


@dataclass(frozen=True)
class Rule:
    limit: int  # sends allowed ...
    window: float  # ... in any window of this many seconds


class SlidingWindow:
    """One exact sliding-window counter. Pure: every method takes ``now`` (monotonic seconds)."""

    def __init__(self, rule: Rule) -> None:
        if rule.limit < 1 or rule.window <= 0:
            raise ValueError("a rate rule needs limit >= 1 and window > 0")
        self.rule = rule
        self._times: deque[float] = deque()

    def delay(self, now: float) -> float:
        """Seconds to wait before one more send keeps every window within the limit."""
        self._forget(now)
        if len(self._times) < self.rule.limit:
            return 0.0
        # The send that is `limit` places back must leave the window first.
        return self._times[-self.rule.limit] + self.rule.window - now

    def room(self, now: float) -> int:
        """Sends allowed at once from ``now`` (without waiting)."""
        self._forget(now)
        return self.rule.limit - len(self._times)

    def record(self, now: float) -> None:
        self._times.append(now)
        self._forget(now)

    def times(self) -> list[float]:
        """The send times that can still decide a delay (oldest first)."""
        return list(self._times)

    def _forget(self, now: float) -> None:
        # Keep at most `limit` times: older ones can no longer decide a delay.
        horizon = now - self.rule.window
        while self._times and (self._times[0] <= horizon or len(self._times) > self.rule.limit):
            self._times.popleft()


class RobotLimiter:
    """All the rules of one robot (for example 100 a minute and 5 a second on Feishu)."""

    def __init__(
        self, rules: Iterable[Rule], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.windows = [SlidingWindow(rule) for rule in rules]
        self._clock = clock

    def delay(self, now: float) -> float:
        return max((w.delay(now) for w in self.windows), default=0.0)

    def room(self) -> int:
        """Sends allowed right now, one after the other, without waiting (0 when a pause is due)."""
        now = self._clock()
        return min((w.room(now) for w in self.windows), default=1 << 30)

    def pause(self) -> float:
        """Seconds to wait, from now, before the next send is allowed."""
        return self.delay(self._clock())

    async def wait(self) -> None:
        """Wait until one more send is allowed. Callers send one at a time per robot."""
        pause = self.delay(self._clock())
        if pause > 0:
            # A hair over the exact time so the platform's own clock agrees the slot is free.
            await asyncio.sleep(pause + 0.001)

    def record(self) -> None:
        """Count a send, at the time its answer (or failure) arrived."""
        now = self._clock()
        for window in self.windows:
            window.record(now)

    def seed(self, times: Iterable[float]) -> None:
        """Count earlier sends (times on this limiter's clock), e.g. the robot's stored window."""
        for at in sorted(times):
            for window in self.windows:
                window.record(at)

    def recent(self) -> list[float]:
        """The longest rule's send times (oldest first): what to store so another owner can resume."""
        longest = max(self.windows, key=lambda w: w.rule.window, default=None)
        return longest.times() if longest is not None else []


def rules_for(channel: ChannelBase, limits: Limits, window_seconds: float) -> list[Rule]:
    """The channel's ``rate_per_minute`` (or the platform's) per window, plus any per-second cap.

    ``window_seconds`` is the length of the "minute" (Settings.rate_window_seconds; tests
    shorten it). A per-second cap stays one real second: it is a separate platform rule.
    """
    rules = [Rule(channel.rate_per_minute or limits.per_minute, window_seconds)]
    if limits.per_second:
        rules.append(Rule(limits.per_second, 1.0))
    return rules
