"""The service's loops: failures that repeat every turn, and turns that a stop does not cut in half.

A loop that polls every second and fails every time (a table dropped, the database gone) logs the
first failure, then at most one reminder a minute saying how many more there were, and one line
when it works again. Use one :class:`RepeatedFailure` per loop.

A turn's database work is awaited through :func:`whole`, so the service's stop (a cancellation)
waits for it to commit or roll back instead of cancelling it inside its transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
STOP_GRACE_SECONDS = 5.0
log = logging.getLogger(__name__)


async def whole(work: Awaitable[T], what: str, grace: float = STOP_GRACE_SECONDS) -> T:
    """Await ``work``; if the caller is cancelled meanwhile, let ``work`` end first (up to ``grace``
    seconds), then re-raise the cancellation.

    Why: an SQLite statement cancelled inside its transaction can leave its connection holding the
    write lock, so every later write (the dispatcher giving back its lanes at stop, the next
    process) waits out the 30 s busy timeout; a SIGTERM then took over 30 s. Past ``grace`` the
    work is cancelled after all and a warning names ``what`` (Chinese, e.g. "催办检查").
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            task.cancel()
            log.warning("停止时%s %g 秒内未结束，已中断（未完成的部分下次继续）", what, grace)
        elif not task.cancelled() and task.exception() is not None:
            log.warning("停止时%s出错：%s", what, type(task.exception()).__name__)
        raise


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
