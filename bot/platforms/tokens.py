"""App access tokens: fetched once, cached until shortly before they expire, one refresh at a time.

Every sender of an app shares one :class:`TokenCache` (the runtime's). ``get`` answers from the
cache while the token has more than ``margin`` seconds left; otherwise the first caller fetches and
everyone else waits on the same per-app lock (single flight), then reads what it stored, so a burst
of a hundred senders costs one fetch. ``invalidate(key, token)`` drops the token a platform called
invalid, and only that one: of several senders told so at once, the first refreshes and the others
find the new token already there.

Why in memory per process, not in the database: a token is a bearer credential, and a database
(with its backups and read replicas) is a place where credentials should not lie; fetching one costs
one HTTP call per app per about two hours per instance, and the platforms allow several valid tokens
at once (WeCom and DingTalk answer the same token while it is valid, Feishu issues a new one in the
last 30 minutes while the old still works), so instances need not share. The lanes (bot/delivery/lanes.py)
already give one app's messages to one instance at a time.

Times are ``clock()`` seconds (monotonic by default).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

MARGIN_SECONDS = 300.0  # refresh this long before the platform's expiry

Fetch = Callable[[], Awaitable[tuple[str, float]]]  # -> (token, lifetime in seconds)


@dataclass(frozen=True)
class _Entry:
    value: str
    refresh_at: float  # clock seconds after which the token is fetched anew


class TokenCache:
    """Access tokens per app key; see the module docstring."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, margin: float = MARGIN_SECONDS) -> None:
        self._clock, self._margin = clock, margin
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches: Counter[str] = Counter()  # key -> fetches made (for tests and `apps check`)

    @staticmethod
    def key(platform: str, app_id: str, *credentials: str) -> str:
        """A cache key that changes when the app's credentials change (a reload with a new secret)."""
        digest = hashlib.sha256("\0".join(credentials).encode()).hexdigest()[:12]
        return f"{platform}:{app_id}:{digest}"

    def _fresh(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry.refresh_at:
            return entry.value
        return None

    async def get(self, key: str, fetch: Fetch) -> str:
        """The cached token, or one fetched now (one fetch at a time per key). Raises what ``fetch`` raises."""
        token = self._fresh(key)
        if token is not None:
            return token
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            token = self._fresh(key)  # fetched by whoever held the lock before us
            if token is not None:
                return token
            value, lifetime = await fetch()
            self.fetches[key] += 1
            keep = lifetime - self._margin if lifetime > 2 * self._margin else lifetime / 2
            refresh_at = math.inf if math.isinf(lifetime) else self._clock() + max(keep, 0.0)
            self._entries[key] = _Entry(value, refresh_at)
            return value

    def invalidate(self, key: str, token: str) -> None:
        """The platform called ``token`` invalid: drop it, unless it was replaced already."""
        entry = self._entries.get(key)
        if entry is not None and entry.value == token:
            del self._entries[key]
