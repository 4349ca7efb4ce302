"""The collector's young generation sized for the dispatcher's sends while it runs.

CPython collects its youngest generation when the tracked objects allocated since the last
collection, minus those freed, exceed ``threshold0`` (700 by default); a free while that count is
0 is not counted. The dispatcher's budget of unrecorded sends (see :mod:`bot.delivery.dispatch`)
makes its sends come in waves: answers arrive and their requests' objects are freed while the
workers wait for the next commit, then the commit lets a whole batch of workers start their next
requests at once. So the frees land on a count already at 0 and each wave's allocations trigger a
collection: one about every 14 messages (the bare aiohttp loop of ``bench/dispatch.py``: one
every 220). Each collection finds the requests in flight alive and promotes them, and about every
tenth promotion triggers a walk of the whole heap (modules, the loaded schedules). That cost
about 45–55 µs of CPU per message on SQLite and PostgreSQL, a fifth of the dispatcher's total.

While a dispatcher runs, ``threshold0`` is at least :data:`YOUNG_PER_SEND` objects per send that
may be in flight (``send_concurrency``), so a wave fits in the young generation; the other
thresholds and the collector itself are unchanged (objects in reference cycles are still
collected, only later), and the old threshold comes back when the last dispatcher stops.
"""

from __future__ import annotations

import gc

# Tracked objects one send allocates while in flight (aiohttp's request, response, parser,
# timers, futures and coroutines, and the dispatcher's own), measured at about 50; with margin.
YOUNG_PER_SEND = 100

_saved: tuple[int, int, int] | None = None
_users = 0


def widen(sends: int) -> None:
    """A dispatcher starts with up to ``sends`` sends in flight: widen the young generation."""
    global _saved, _users
    current = gc.get_threshold()
    if _users == 0:
        _saved = current
    _users += 1
    want = YOUNG_PER_SEND * max(1, sends)
    if current[0] and current[0] < want:  # 0: automatic collection was switched off, leave it so
        gc.set_threshold(want, *current[1:])


def restore() -> None:
    """A dispatcher stopped: when it was the last, give the collector back its thresholds."""
    global _saved, _users
    if _users == 0:
        return
    _users -= 1
    if _users == 0 and _saved is not None:
        gc.set_threshold(*_saved)
        _saved = None
