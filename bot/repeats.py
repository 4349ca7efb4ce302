"""Failures that repeat every turn of a loop, logged without flooding the log.

A loop that polls every second and fails every time (a table dropped, the database gone) logs the
first failure, then at most one reminder a minute saying how many more there were, and one line
when it works again. Use one :class:`RepeatedFailure` per loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RepeatedFailure:
    """The log lines of one loop's failures: the first, a reminder every ``every_seconds`` at most, the recovery.

    ``what`` is the Chinese sentence head (``领取机器人通道失败，稍后重试``); ``clock`` gives
    seconds (monotonic by default; tests pass their own).
    """

    def __init__(self, logger: logging.Logger, what: str, *, every_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger, self.what, self.every, self.clock = logger, what, every_seconds, clock
        self.failures = 0  # in a row
        self._unsaid = 0  # since the last line
        self._said_at = 0.0

    def failed(self, exc: BaseException) -> None:
        """Count a failure; log it when it is the first, or when the last line is ``every_seconds`` old."""
        self.failures += 1
        now = self.clock()
        reason = type(exc).__name__
        if self.failures == 1:
            self.logger.warning("%s：%s（若持续失败，每 %.0f 秒最多再提醒一次）", self.what, reason, self.every)
        elif now - self._said_at >= self.every:
            self.logger.warning("%s：仍在失败，上次提醒后又失败 %d 次（连续 %d 次）：%s", self.what,
                                self._unsaid + 1, self.failures, reason)
        else:
            self._unsaid += 1
            return
        self._unsaid = 0
        self._said_at = now

    def ok(self) -> None:
        """The loop turn worked: say so once if it had been failing."""
        if self.failures > 1:
            self.logger.info("%s：已恢复（此前连续失败 %d 次）", self.what.split("，")[0], self.failures)
        elif self.failures == 1:
            self.logger.info("%s：已恢复", self.what.split("，")[0])
        self.failures = self._unsaid = 0
