"""Load client for ``bench/confirm.py``: runs in its own process, driven over stdin/stdout.

Each line on stdin is one job (JSON)::

    {"name": "...", "concurrency": 32, "expect_status": 200, "expect_text": "...",
     "requests": [{"url": "http://127.0.0.1:PORT/c/TOKEN", "form": {"token": "...", "note": "..."}}]}

and the answer is one JSON line on stdout: request count, wall time, requests/s, latency
percentiles (ms) and failures. The client stops at end of input. It posts each form the way a
browser posts the confirm page's form: ``application/x-www-form-urlencoded`` UTF-8 fields, and
``Origin: null`` with no Referer, because the page's Referrer-Policy is ``no-referrer``.
Stdlib and aiohttp only, so the process starts fast and measures nothing of the server's code.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
import time
from collections import Counter
from typing import Any

import aiohttp

BROWSER_HEADERS = {
    "Origin": "null",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "zh-CN,zh;q=0.9",
    "User-Agent": "Mozilla/5.0 (remindbot bench)",
}
TITLE = re.compile(r"<title>(.*?)</title>", re.S)
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


async def run_job(http: aiohttp.ClientSession, job: dict[str, Any]) -> dict[str, Any]:
    requests: list[dict[str, Any]] = job["requests"]
    expect_status, expect_text = job["expect_status"], job["expect_text"]
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    first_failure: list[str] = []
    queue = iter(requests)

    async def worker() -> None:
        for item in queue:  # a shared iterator: each request is taken by exactly one worker
            started = time.perf_counter()
            try:
                async with http.post(item["url"], data=item["form"], headers=BROWSER_HEADERS) as answer:
                    page = await answer.text()
                    status = answer.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures[type(exc).__name__] += 1
                continue
            latencies.append(time.perf_counter() - started)
            if status != expect_status or expect_text not in page:
                failures[f"HTTP {status}" if status != expect_status else "unexpected page"] += 1
                if not first_failure:  # the title only: a confirm page's form holds its token
                    title = TITLE.search(page)
                    first_failure.append(title.group(1) if title else page[:80])

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(job["concurrency"])))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    ordered = sorted(latencies)
    return {
        "name": job["name"],
        "requests": len(requests),
        "ok": len(requests) - sum(failures.values()),
        "failures": dict(failures),
        "first_failure": first_failure[0] if first_failure else "",
        "elapsed_s": elapsed,
        "rps": len(requests) / elapsed if elapsed else 0.0,
        "client_cpu_ms": cpu * 1000 / max(1, len(requests)),
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "max_ms": (ordered[-1] if ordered else float("nan")) * 1000,
    }


async def main() -> None:
    loop = asyncio.get_running_loop()
    # One session for every job: connections warmed up by one job are reused by the next.
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT) as http:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            result = await run_job(http, json.loads(line))
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
