"""Failed admin logins: logged (user name and address, never the password) and throttled per address.

After :data:`FREE_FAILURES` failures in a row from one client address, that address is refused
with 429 for :data:`FIRST_PAUSE` seconds, doubling with each further failure up to
:data:`LONGEST_PAUSE`; a successful login clears the count. While refused, credentials are not
even checked, so guessing does not go on behind the 429.

The address is the TCP peer: behind a reverse proxy every client shares the proxy's address, so a
guesser there slows everyone's logins down (and is still stopped), which is the safer side.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from bot.metrics import ADMIN_LOGIN_FAILURES

log = logging.getLogger(__name__)

FREE_FAILURES = 5
FIRST_PAUSE = 2.0  # seconds
LONGEST_PAUSE = 900.0  # seconds
FORGET_AFTER = 3600.0  # seconds without a failure
MAX_ADDRESSES = 10_000

monotonic = time.monotonic  # tests replace it


@dataclass
class _Record:
    failures: int = 0
    last: float = 0.0
    blocked_until: float = 0.0


class LoginThrottle:
    """Failure counts per client address, oldest first, bounded in size."""

    def __init__(self) -> None:
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def wait(self, address: str) -> float:
        """Seconds before ``address`` may try again; 0 when it may try now."""
        record = self._records.get(address)
        if record is None:
            return 0.0
        now = monotonic()
        if now - record.last > FORGET_AFTER:
            del self._records[address]
            return 0.0
        return max(0.0, record.blocked_until - now)

    def failed(self, address: str, user: str) -> None:
        """Count a failure and log it (user name as typed, shortened; never the password)."""
        now = monotonic()
        record = self._records.pop(address, None) or _Record()
        if now - record.last > FORGET_AFTER:
            record = _Record()
        record.failures += 1
        record.last = now
        pause = 0.0
        if record.failures >= FREE_FAILURES:
            pause = min(LONGEST_PAUSE, FIRST_PAUSE * 2 ** (record.failures - FREE_FAILURES))
            record.blocked_until = now + pause
        self._records[address] = record
        while len(self._records) > MAX_ADDRESSES:
            self._records.popitem(last=False)
        ADMIN_LOGIN_FAILURES.inc()
        shown = user[:64] + ("…" if len(user) > 64 else "")
        log.warning("管理后台登录失败：用户名 “%s”，来自 %s（连续第 %d 次）%s", _printable(shown), address,
                    record.failures,
                    f"，该地址暂停登录 {pause:.0f} 秒" if pause else "")

    def succeeded(self, address: str) -> None:
        self._records.pop(address, None)


def _printable(text: str) -> str:
    """``text`` with each unprintable character (a newline, an escape) written as Python escapes it
    (``\\n``): a typed user name cannot forge or break a log line, and Chinese stays as typed."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
