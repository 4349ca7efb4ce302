"""Where the dispatcher's CPU per message goes, beside the bare aiohttp loop, in one process.

Part 1 of ``bench/dispatch.py`` cut down (default 2,000 messages, 100 robots, concurrency 64, limits
off, SQLite file unless ``--database-url``), in phases: warm-up (both sides, so imports and statement
compilation are not counted), the bare loop, filling the outbox, the dispatcher. Reports per phase
and per message:

- each thread's CPU (``/proc/self/task/<tid>/schedstat``, ns on a CPU): the event loop's and
  aiosqlite's threads apart;
- with ``--calls``: call counts (cProfile) per message, the functions whose counts differ most
  between the dispatcher and the bare loop; with ``--opcodes``: bytecodes executed per message per
  function (``sys.settrace``, main thread; ~100x slower, so batches and waits are not the real ones);
- with ``--only bare|dispatcher``: one side only, for a sampling profiler (py-spy) run per side.

Under valgrind the phases are told apart by a dump between them: callgrind's client request
``CALLGRIND_DUMP_STATS_AT`` from a one-line C library given in ``CGDUMP`` (without it, ``os.getppid()``
is called for ``--dump-before=getppid``)::

    printf '#include <valgrind/callgrind.h>\\nvoid cg_dump(const char *l) { CALLGRIND_DUMP_STATS_AT(l); }\\n' \\
        > /tmp/cgdump.c && gcc -O1 -shared -fPIC -o /tmp/libcgdump.so /tmp/cgdump.c
    CGDUMP=/tmp/libcgdump.so valgrind --tool=callgrind --separate-threads=yes --compress-strings=no \\
        --callgrind-out-file=/tmp/cg/d.%p .venv/bin/python bench/dispatch_attrib.py
    callgrind_annotate /tmp/cg/d.<pid>.2-01   # the bare loop (dump 2), main thread

Dumps: 1 = setup and warm-up, 2 = bare loop, 3 = filling the outbox, 4 = the dispatcher (each round).
Either way a dump holds the calling (main) thread only; the database threads (aiosqlite's, one per
connection) are written when the process ends. The pool is emptied before and after each dispatcher
run, so its database threads are its own: the files of the last threads created
(``d.<pid>-<thread>``). Caveat: under valgrind the process runs ~50x slower while the dispatcher's
timers (heartbeat, lease renewal, polls) keep wall-clock time, so the dispatcher's count per message
is inflated by work a native run does far less often; compare runs of the same size only.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a plain checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchdb import close_db, open_db
from dispatch import CONCURRENCY, Server, body, ceiling, channels

from bot.delivery import outbox
from bot.delivery.dispatch import Dispatcher
from bot.platforms.wecom.config import WeComChannel
from bot.settings import Settings
from storage.db import Database


async def fill_outbox(db: Database, chans: list[WeComChannel], messages: int, run: str) -> None:
    """bench/dispatch.py's rows (same keys, bodies, robots), written in one bulk insert."""
    rows = [row for n in range(messages) for row in outbox.outbox_rows(
        dedupe_key=f"{run}/{n}", channel=chans[n % len(chans)], platform="wecom", bodies=[body(n)],
        occurrence_id=None, stage="test", summary=f"压测 {n}", now=None, dry_run=False)]
    async with db.session() as session:
        await outbox.insert_rows(session, rows)
        await session.commit()


def threads_ns() -> dict[int, tuple[str, int]]:
    """This process's threads: tid -> (name, ns spent on a CPU so far)."""
    seen: dict[int, tuple[str, int]] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            name = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
            ns = int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[0])
        except OSError:
            continue
        seen[int(tid)] = (name, ns)
    return seen


def report(phase: str, before: dict[int, tuple[str, int]], messages: int) -> None:
    """µs per message per thread since ``before`` (threads born since count from 0)."""
    after = threads_ns()
    main = os.getpid()
    parts: list[str] = []
    total = 0.0
    for tid, (name, ns) in sorted(after.items()):
        spent = (ns - before.get(tid, (name, 0))[1]) / 1e3 / messages
        if spent >= 0.05:
            total += spent
            parts.append(f"{'main' if tid == main else name + '/' + str(tid)} {spent:.1f}")
    print(f"{phase:>10}: {total:6.1f} µs/message  ({', '.join(parts)})", flush=True)


def _dumper() -> Callable[[bytes], object]:
    """``cg_dump(label)`` from the library in ``CGDUMP``, else ``os.getppid`` (see the module's doc)."""
    path = os.environ.get("CGDUMP")
    if not path:
        return lambda _: os.getppid()
    import ctypes

    return ctypes.CDLL(path).cg_dump  # type: ignore[no-any-return]


_DUMP = _dumper()


def marker(label: str) -> None:
    """A phase boundary under callgrind: every thread's counts so far dumped as ``label``, then zeroed."""
    _DUMP(label.encode())


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        db, schema = await open_db(args.database_url, Path(folder))
        server = await Server.start(limit=0, window=60.0)
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2)) as http:
                settings = Settings(send_concurrency=CONCURRENCY, var_dir=Path(folder))
                chans = channels(server, args.robots, "at", rate=10**9)
                by_id = {c.id: c for c in chans}
                warm = max(200, args.robots)
                await ceiling(http, chans, warm)
                await fill_outbox(db, chans, warm, "warm")
                await Dispatcher(db, settings, by_id.get, http).run_once()
                for round_ in range(args.rounds):
                    marker("setup" if round_ == 0 else "dispatcher")  # dump: setup, or the last round's dispatcher
                    profile = cProfile.Profile() if args.calls else Opcodes() if args.opcodes else None
                    before = threads_ns()
                    if profile:
                        profile.enable()
                    if args.only != "dispatcher":
                        await ceiling(http, chans, args.messages)
                    if profile:
                        profile.disable()
                    report("bare loop", before, args.messages)
                    bare = profile
                    marker("bare")  # dump: the bare loop
                    await fill_outbox(db, chans, args.messages, f"at{round_}")
                    marker("fill")  # dump: filling the outbox
                    await db.engine.dispose()  # the dispatcher's database threads are its own (see the doc)
                    profile = cProfile.Profile() if args.calls else Opcodes() if args.opcodes else None
                    before = threads_ns()
                    dispatcher = Dispatcher(db, settings, by_id.get, http)
                    if profile:
                        profile.enable()
                    stats = await dispatcher.run_once() if args.only != "bare" else dispatcher.stats
                    if profile:
                        profile.disable()
                    report("dispatcher", before, args.messages)
                    await db.engine.dispose()  # its threads end: callgrind writes their counts apart
                    print(f"{'':>10}  sent {stats.sent}, write batches {dispatcher._writer.batches}", flush=True)
                    if isinstance(profile, cProfile.Profile) and isinstance(bare, cProfile.Profile):
                        compare_calls(pstats.Stats(bare), pstats.Stats(profile), args.messages, args.top)
                    if isinstance(profile, Opcodes) and isinstance(bare, Opcodes):
                        compare_opcodes(bare, profile, args.messages, args.top)
                marker("dispatcher")  # dump: the last dispatcher
        finally:
            await server.stop()
            await close_db(db, schema)


class Opcodes:
    """Bytecodes executed per function (deterministic): ``sys.settrace`` with opcode events, this thread."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def _trace(self, frame: Any, event: str, _: Any) -> Any:
        if event == "call":
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
        elif event == "opcode":
            code = frame.f_code
            key = f"{Path(code.co_filename).name}:{code.co_firstlineno}:{code.co_name}"
            self.counts[key] = self.counts.get(key, 0) + 1
        return self._trace

    def enable(self) -> None:
        sys.settrace(self._trace)

    def disable(self) -> None:
        sys.settrace(None)


def compare_opcodes(bare: Opcodes, ours: Opcodes, messages: int, top: int) -> None:
    """Bytecodes per message per function, the dispatcher beside the bare loop, largest difference first;
    and per module."""
    a, b = bare.counts, ours.counts
    rows = sorted(set(a) | set(b), key=lambda k: -(b.get(k, 0) - a.get(k, 0)))
    print(f"{'opcodes/msg dispatcher':>24} {'bare':>8}  function")
    for k in rows[:top]:
        print(f"{b.get(k, 0) / messages:24.1f} {a.get(k, 0) / messages:8.1f}  {k}")
    modules: dict[str, list[float]] = {}
    for counts, i in ((a, 0), (b, 1)):
        for k, n in counts.items():
            modules.setdefault(k.split(":")[0], [0.0, 0.0])[i] += n / messages
    ranked = sorted(modules.items(), key=lambda kv: kv[1][0] - kv[1][1])[:25]
    print("per module (dispatcher, bare):", ", ".join(f"{m} {v[1]:.0f}/{v[0]:.0f}" for m, v in ranked))
    print(f"{'total opcodes/msg':>24}: dispatcher {sum(b.values()) / messages:.0f}, "
          f"bare {sum(a.values()) / messages:.0f}", flush=True)


def compare_calls(bare: pstats.Stats, ours: pstats.Stats, messages: int, top: int) -> None:
    """The functions whose calls per message differ most (ours - bare), with their own time's share."""
    def counts(stats: pstats.Stats) -> dict[str, tuple[float, float]]:
        table = stats.stats  # type: ignore[attr-defined]  # {(file, line, name): (cc, nc, tt, ct, callers)}
        return {f"{Path(k[0]).name}:{k[1]}:{k[2]}": (v[1] / messages, v[2] * 1e6 / messages) for k, v in table.items()}

    a, b = counts(bare), counts(ours)
    rows = sorted(set(a) | set(b), key=lambda k: -(b.get(k, (0, 0))[0] - a.get(k, (0, 0))[0]))
    print(f"{'calls/msg dispatcher':>22} {'bare':>6}  own µs/msg (profiled)  function")
    for k in rows[:top]:
        print(f"{b.get(k, (0, 0))[0]:22.2f} {a.get(k, (0, 0))[0]:6.2f}  {b.get(k, (0, 0))[1]:8.1f}  {k}")
    print(f"{'total calls/msg':>22}: dispatcher {sum(v[0] for v in b.values()):.0f}, "
          f"bare {sum(v[0] for v in a.values()):.0f}", flush=True)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: SQLite file)")
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--robots", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--calls", action="store_true", help="count calls per message (cProfile)")
    parser.add_argument("--opcodes", action="store_true", help="count bytecodes per function (settrace, main thread)")
    parser.add_argument("--only", choices=["bare", "dispatcher"], help="one side only (for a sampling profiler)")
    parser.add_argument("--top", type=int, default=60, help="functions listed with --calls")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(run(parse()))
