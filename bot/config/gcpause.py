"""The cyclic garbage collector paused while the schedules are built or unpickled.

Building (or unpickling) 10⁵ models creates a million objects and no cycles, and the collector
would otherwise walk the growing heap again and again (unpickling the 100,000-people snapshot:
9.6 s with it, 2.5 s without). Its first walk after such a load still costs a full pass over
them; a short-lived command (every ``remindbot`` command but ``serve``) sets :data:`FREEZE`, so
what was loaded moves to the collector's permanent generation instead (``gc.freeze()``: those
objects are still freed by reference counting, never scanned for cycles again). ``serve`` keeps
the default: a freeze there changed the timing of tests/test_lanes.py's SIGKILL test.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

FREEZE = False  # set by the CLI for commands that load once and exit


@contextmanager
def no_gc() -> Iterator[None]:
    """The collector paused for the block (nested blocks are fine); frozen after it when :data:`FREEZE`."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if FREEZE:
            gc.freeze()
        if was:
            gc.enable()
