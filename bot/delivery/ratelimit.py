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
    """One exact sliding-window counter. Pure: every method takes ``now`` (monotonic seconds).

    ``as_text``: also keep each time's JSON text, made once when it is recorded, for :meth:`json`
    (the window is stored with the results; encoding all its floats each time cost more than the
    database write of it). The text is the time to the millisecond, rounded up, so a stored time is
    never earlier than the send: another owner seeded from it never sends sooner than allowed
    (``%.3f`` costs a third of a float's shortest ``repr``)."""

    def __init__(self, rule: Rule, *, as_text: bool = False) -> None:
        if rule.limit < 1 or rule.window <= 0:
            raise ValueError("a rate rule needs limit >= 1 and window > 0")
        self.rule = rule
        self._times: deque[float] = deque()
        self._texts: deque[str] | None = deque() if as_text else None

    def delay(self, now: float) -> float:
        """Seconds to wait before one more send keeps every window within the limit."""
        self._forget(now)
        if len(self._times) < self.rule.limit:
            return 0.0
        # The send that is `limit` places back must leave the window first.
        return self._times[-self.rule.limit] + self.rule.window - now

    def delay_room(self, now: float) -> tuple[float, int]:
        """:meth:`delay` and :meth:`room` at ``now``, the window cleared of old times once."""
        self._forget(now)
        times, limit = self._times, self.rule.limit
        if len(times) < limit:
            return 0.0, limit - len(times)
        return times[-limit] + self.rule.window - now, 0

    def room(self, now: float) -> int:
        """Sends allowed at once from ``now`` (without waiting)."""
        self._forget(now)
        return self.rule.limit - len(self._times)

    def record(self, now: float) -> None:
        self._times.append(now)
        if self._texts is not None:
            self._texts.append(_ms_up(now))
        self._forget(now)

    def times(self) -> list[float]:
        """The send times that can still decide a delay (oldest first)."""
        return list(self._times)

    def json(self) -> str:
        """:meth:`times` as a JSON list of epoch seconds, each to the millisecond, rounded up."""
        texts = self._texts if self._texts is not None else map(_ms_up, self._times)
        return "[" + ", ".join(texts) + "]"

    def _forget(self, now: float) -> None:
        # Keep at most `limit` times: older ones can no longer decide a delay.
        horizon = now - self.rule.window
        times, texts = self._times, self._texts
        while times and (times[0] <= horizon or len(times) > self.rule.limit):
            times.popleft()
            if texts is not None:
                texts.popleft()


def _ms_up(at: float) -> str:
    """``at`` (seconds) as JSON to the millisecond, never below it (half a millisecond up, then rounded)."""
    return "%.3f" % (at + 0.0005)


class RobotLimiter:
    """All the rules of one robot (for example 100 a minute and 5 a second on Feishu)."""

    def __init__(
        self, rules: Iterable[Rule], clock: Callable[[], float] = time.monotonic
    ) -> None:
        rules = list(rules)
        # The longest rule's times are what is stored (``recent``): that window keeps them as text too.
        longest = max(range(len(rules)), key=lambda i: rules[i].window, default=-1)
        self.windows = [SlidingWindow(rule, as_text=i == longest) for i, rule in enumerate(rules)]
        self._longest = self.windows[longest] if rules else None
        self._only = self.windows[0] if len(self.windows) == 1 else None  # the common case: one rule
        self._clock = clock

    def delay(self, now: float) -> float:
        if self._only is not None:
            return self._only.delay(now)
        return max((w.delay(now) for w in self.windows), default=0.0)

    def room(self) -> int:
        """Sends allowed right now, one after the other, without waiting (0 when a pause is due)."""
        now = self._clock()
        if self._only is not None:
            return self._only.room(now)
        return min((w.room(now) for w in self.windows), default=1 << 30)

    def pause(self) -> float:
        """Seconds to wait, from now, before the next send is allowed."""
        return self.delay(self._clock())

    def pause_room(self) -> tuple[float, int]:
        """(:meth:`pause`, :meth:`room`) at one reading of the clock: what a sender asks before each send."""
        now = self._clock()
        if self._only is not None:
            return self._only.delay_room(now)
        pairs = [w.delay_room(now) for w in self.windows]
        if not pairs:
            return 0.0, 1 << 30
        return max(p for p, _ in pairs), min(r for _, r in pairs)

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
        return self._longest.times() if self._longest is not None else []

    def recent_json(self) -> str:
        """:meth:`recent` as JSON text to store (each time to the millisecond, rounded up), without
        encoding every time anew."""
        return self._longest.json() if self._longest is not None else "[]"


def rules_for(channel: ChannelBase, limits: Limits, window_seconds: float) -> list[Rule]:
    """The channel's ``rate_per_minute`` (or the platform's) per window, plus any per-second cap.

    ``window_seconds`` is the length of the "minute" (Settings.rate_window_seconds; tests
    shorten it). A per-second cap stays one real second: it is a separate platform rule.
    """
    rules = [Rule(channel.rate_per_minute or limits.per_minute, window_seconds)]
    if limits.per_second:
        rules.append(Rule(limits.per_second, 1.0))
    return rules
