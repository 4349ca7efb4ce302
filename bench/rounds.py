"""What every benchmark reports beside its figures: the machine's load, and min / median / max of rounds."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


def load() -> str:
    """The machine's load averages (1, 5, 15 min), as ``uptime`` shows them."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """``min / median / max`` of the rounds, each formatted with ``fmt``."""
    ordered = sorted(values)
    return " / ".join(fmt.format(v) for v in (ordered[0], statistics.median(ordered), ordered[-1]))


async def timed(step: Awaitable[T]) -> tuple[float, float, T]:
    """Await ``step``; return (wall seconds, this process's CPU seconds, its result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = await step
    return time.perf_counter() - wall, time.process_time() - cpu, result
