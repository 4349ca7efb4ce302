"""The cyclic garbage collector paused while the schedules are built or unpickled.

Building (or unpickling) 10⁵ models creates a million objects and no cycles, and the collector
would otherwise walk the growing heap again and again (unpickling the 100,000-people snapshot:
9.6 s with it, 2.5 s without). Its first walk after such a load still costs a full pass over
them; a short-lived command (every ``remindbot`` command but ``serve``) sets :data:`FREEZE`, so
what was loaded moves to the collector's permanent generation instead (``gc.freeze()``: those
objects are still freed by reference counting, never scanned for cycles again).

``serve`` holds the collector paused (:func:`pause`) from the moment its command is chosen until the
service is ready, then freezes what the start made (modules, classes, the schedules: objects that
live as long as the process or are freed by reference counting) and enables it again
(:func:`release`); from then on it collects as usual.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

FREEZE = False  # set by the CLI for commands that load once and exit
_held = False  # the collector was enabled when pause() disabled it: release() enables it again


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


def pause() -> None:
    """Disable the collector until :func:`release` (nothing to do when it is already disabled)."""
    global _held
    if gc.isenabled():
        gc.disable()
        _held = True


def release(*, freeze: bool = False) -> None:
    """Enable the collector again if :func:`pause` disabled it; ``freeze``: first move every object
    that exists now to the permanent generation (``gc.freeze()``), so it is never scanned again."""
    global _held
    if not _held:
        return
    _held = False
    if freeze:
        gc.freeze()
    gc.enable()
