"""Benchmark: 2,000 confirmations through ``POST /c/<token>``, beside a bare one-insert handler.

Run: ``.venv/bin/python bench/confirm.py [--database-url URL]`` (default: a fresh SQLite file in a
temporary folder; with a PostgreSQL URL, a fresh schema that is dropped afterwards).

This process seeds one occurrence with 2,000 expected people (and a small warm-up occurrence),
builds a ``Runtime`` in code and serves ``bot.web.app.make_app(runtime)`` on a free loopback
port; beside it, a bare aiohttp app whose one POST handler reads the form and does one INSERT
through the same ``Database`` engine. The load comes from a second process
(``bench/_confirm_client.py``) so that on a 2-core machine client and server each get a core:
it posts every personal token once, as the confirm page's form does, with a bounded
concurrency, checks each answer and measures its latency. The same client code sends the same
number of requests, of the same shape, at the same concurrency to the bare handler.

Both servers first take a warm-up round (200 requests each, under occurrences of their own).
Prints requests/s, p50/p99 latency (client side, request sent to page read), CPU per request of
this server process (event loop and database threads) and of the client, how busy the whole
machine was (every process counts, PostgreSQL and anything else running too), and the ratio
remindbot / bare. No target is set; exits 1 only when a request failed or the database does
not hold exactly one confirmation per request afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import logging
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a plain checkout

from benchdb import close_db, open_db  # noqa: E402
from rounds import load, spread  # noqa: E402

from bot.config.models import Confirm, Recipients, Reminder, Schedules, Selector, Unit, When  # noqa: E402
from bot.confirming.confirmations import to_db_time  # noqa: E402
from bot.confirming.tokens import make_token  # noqa: E402
from bot.delivery.render import Renderer  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from bot.scheduling.workdays import WorkCalendar  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.web.app import make_app  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import Confirmation, Expectation, Occurrence  # noqa: E402

CLIENT = Path(__file__).resolve().parent / "_confirm_client.py"
SECRET_KEY = "bench-confirm-signing-key-0123456789"
REMINDER_ID = "study-day"
NOTE = "参加人数 23 人，缺席 2 人（出差）"
SUCCESS_TEXT = "已确认，谢谢"  # the "just confirmed" page; a replay or an error page lacks it
BARE_TEXT = "ok"
JOB_TIMEOUT = 60.0  # seconds; a stuck run fails instead of hanging


# ---------------------------------------------------------------- database and seed data


def person_id(n: int) -> str:
    return f"p{n:05d}"


def unit_id(n: int) -> str:
    return f"u{n // 10:04d}"  # ten people per branch, as in bench/load_schedules.py


async def seed_occurrence(db: Database, title: str, due_at: datetime, people: int) -> int:
    """One occurrence of the study day and ``people`` expectations, straight into the tables."""
    async with db.session() as session:
        occ = Occurrence(reminder_id=REMINDER_ID, due_at=to_db_time(due_at), title=title,
                         deadline_at=to_db_time(due_at + timedelta(days=3)),
                         fired_at=to_db_time(due_at), created_at=to_db_time(due_at))
        session.add(occ)
        await session.flush()
        assert occ.id is not None
        session.add_all(
            Expectation(occurrence_id=occ.id, person_id=person_id(n), person_name=f"人员{n}",
                        unit_id=unit_id(n), unit_name=f"第{n // 10 + 1}党支部", leader_ids=["leader"])
            for n in range(people)
        )
        await session.commit()
        return occ.id


async def count_confirmations(db: Database, occurrence_id: int) -> tuple[int, int]:
    """Rows and distinct people confirmed for one occurrence."""
    query = select(func.count(), func.count(func.distinct(Confirmation.person_id))).where(
        Confirmation.occurrence_id == occurrence_id  # type: ignore[arg-type]
    )
    async with db.engine.connect() as conn:
        rows, people = (await conn.execute(query)).one()
    return int(rows), int(people)


def schedules() -> Schedules:
    """A small organisation built in code: the handler only needs the reminder (its zone)."""
    study = Reminder(
        id=REMINDER_ID,
        title="每月学习日",
        when=When(monthly={"weekday": "fri", "nth": 1}, at="09:00"),
        recipients=Recipients(channels=["party"], mention=Selector(roles=["secretary"])),
        confirm=Confirm(deadline="3d"),
    )
    units = [Unit(id="org", name="市直机关工委")]
    return Schedules(units={u.id: u for u in units}, reminders={study.id: study})


# ---------------------------------------------------------------- the two servers


def make_bare_app(db: Database, occurrences: dict[str, int]) -> web.Application:
    """The floor: read the same form, one INSERT through the same engine, a two-byte answer.

    ``POST /<prefix>/<token>`` adds a confirmation row (a distinct person each time) under
    ``occurrences[prefix]``; the token in the URL and the form is only there to give the
    request the same shape as the real one.
    """
    numbers = itertools.count()
    table = Confirmation.__table__  # type: ignore[attr-defined]

    def handler(occurrence_id: int):  # type: ignore[no-untyped-def]
        async def confirm(request: web.Request) -> web.Response:
            form = await request.post()
            note = form.get("note")
            row = {"occurrence_id": occurrence_id, "person_id": f"bare{next(numbers):05d}",
                   "confirmed_at": to_db_time(datetime.now(UTC)), "via": "link",
                   "note": note if isinstance(note, str) else None}
            async with db.engine.begin() as conn:
                await conn.execute(insert(table).values(**row))
            return web.Response(text=BARE_TEXT)

        return confirm

    app = web.Application(client_max_size=64 * 1024)
    for prefix, occurrence_id in occurrences.items():
        app.router.add_post(f"/{prefix}/{{token}}", handler(occurrence_id))
    return app


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


async def serve(app: web.Application, sock: socket.socket) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)  # as bot.service runs it
    await runner.setup()
    await web.SockSite(runner, sock, backlog=1024).start()
    return runner


# ---------------------------------------------------------------- the client process


@dataclass
class Client:
    process: asyncio.subprocess.Process

    @classmethod
    async def start(cls) -> Client:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(CLIENT), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=1 << 20,
        )
        return cls(process)

    async def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(job, ensure_ascii=False).encode() + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), JOB_TIMEOUT)
        if not line:
            raise RuntimeError("the client process ended without an answer")
        return json.loads(line)  # type: ignore[no-any-return]

    async def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def job(name: str, base: str, prefix: str, tokens: list[str], concurrency: int,
        expect_text: str) -> dict[str, Any]:
    requests = [{"url": f"{base}/{prefix}/{t}", "form": {"token": t, "note": NOTE}} for t in tokens]
    return {"name": name, "concurrency": concurrency, "expect_status": 200,
            "expect_text": expect_text, "requests": requests}


def machine_cpu() -> tuple[int, int] | None:
    """(busy, total) jiffies of every core since boot; None where /proc/stat does not exist."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


async def measured(client: Client, work: dict[str, Any]) -> dict[str, Any]:
    """Run one job and add where the CPU went: this server process (event loop and database
    threads) per request, and the whole machine (client, server, PostgreSQL) busy share."""
    cpu, before = time.process_time(), machine_cpu()
    result = await client.run(work)
    result["server_cpu_ms"] = (time.process_time() - cpu) * 1000 / max(1, result["requests"])
    after = machine_cpu()
    result["machine_busy"] = (
        (after[0] - before[0]) / max(1, after[1] - before[1]) if before and after else float("nan")
    )
    return result


# ---------------------------------------------------------------- the run


@dataclass
class Occurrences:
    measured: int
    warmup: int
    bare: int
    bare_warmup: int


async def seed(db: Database, people: int, warmup: int) -> Occurrences:
    due = datetime.now(UTC).replace(microsecond=0)
    return Occurrences(
        measured=await seed_occurrence(db, "每月学习日", due, people),
        warmup=await seed_occurrence(db, "每月学习日（预热）", due - timedelta(days=30), warmup),
        # The bare handler writes its rows under occurrences of their own (no expectations).
        bare=await seed_occurrence(db, "基准", due - timedelta(days=60), 0),
        bare_warmup=await seed_occurrence(db, "基准（预热）", due - timedelta(days=90), 0),
    )


def tokens_for(occurrence_id: int, count: int) -> list[str]:
    now = datetime.now(UTC)
    return [make_token(SECRET_KEY, occurrence_id, person_id(n), now=now) for n in range(count)]


async def run(args: argparse.Namespace, db: Database,
              folder: Path) -> tuple[dict[str, Any], dict[str, Any], Occurrences]:
    occ = await seed(db, args.people, args.warmup)
    ours_sock, bare_sock = free_socket(), free_socket()
    base = f"http://127.0.0.1:{ours_sock.getsockname()[1]}"
    bare_base = f"http://127.0.0.1:{bare_sock.getsockname()[1]}"
    settings = Settings(secret_key=SECRET_KEY, base_url=base, database_url=db.url, var_dir=folder)
    runtime = Runtime(settings=settings, db=db, schedules=schedules(), calendar=WorkCalendar(),
                      renderer=Renderer(settings.templates_dir))
    bare_app = make_bare_app(db, {"bare": occ.bare, "warm": occ.bare_warmup})
    runners = [await serve(make_app(runtime), ours_sock), await serve(bare_app, bare_sock)]
    # As `remindbot serve` once ready (bot/cli/serve.py): what the start made is never scanned by the
    # garbage collector again. Both servers live in this process, so both are measured alike; without
    # it, a full collection over the imported modules stalled whichever run it fell in (60–140 ms).
    gc.freeze()
    client = await Client.start()
    try:
        if args.warmup:  # first requests pay for connections, template and statement compiling
            warm = tokens_for(occ.warmup, args.warmup)
            await client.run(job("warm-up", base, "c", warm, args.concurrency, SUCCESS_TEXT))
            await client.run(job("warm-up bare", bare_base, "warm", warm, args.concurrency, BARE_TEXT))
        # The bare handler gets the very same URLs' tokens and bodies, so requests match in size.
        tokens = tokens_for(occ.measured, args.people)
        bare = await measured(client, job("bare", bare_base, "bare", tokens, args.concurrency, BARE_TEXT))
        ours = await measured(client, job("remindbot", base, "c", tokens, args.concurrency, SUCCESS_TEXT))
    finally:
        await client.stop()
        for runner in runners:
            await runner.cleanup()
        gc.unfreeze()
    return ours, bare, occ


async def check_counts(db: Database, occ: Occurrences, args: argparse.Namespace) -> bool:
    expected = {"remindbot": (occ.measured, args.people), "bare": (occ.bare, args.people),
                "remindbot warm-up": (occ.warmup, args.warmup), "bare warm-up": (occ.bare_warmup, args.warmup)}
    ok = True
    for name, (occurrence_id, want) in expected.items():
        rows, people = await count_confirmations(db, occurrence_id)
        good = rows == people == want
        ok = ok and good
        print(f"   {name:17s} confirmations in the database: {rows} rows, {people} people "
              f"(expected {want}): {'OK' if good else 'WRONG'}")
    return ok


def line(label: str, r: dict[str, Any]) -> str:
    return (f"   {label:28s} {r['rps']:6.0f} req/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms"
            f"  max {r['max_ms']:6.1f} ms | CPU/req server {r['server_cpu_ms']:5.2f} ms,"
            f" client {r['client_cpu_ms']:4.2f} ms | machine busy {r['machine_busy']:4.0%}"
            f" | {r['ok']}/{r['requests']} ok")


def report(ours: dict[str, Any], bare: dict[str, Any]) -> bool:
    print(line("POST /c/<token> (remindbot)", ours))
    print(line("bare handler, one INSERT", bare))
    print(f"   ratio remindbot / bare: throughput {ours['rps'] / bare['rps']:.2f}, "
          f"p50 latency {ours['p50_ms'] / bare['p50_ms']:.2f}x, p99 latency {ours['p99_ms'] / bare['p99_ms']:.2f}x")
    ok = True
    for r in (ours, bare):
        if r["failures"]:
            ok = False
            print(f"   {r['name']}: failed requests {r['failures']}; "
                  f"first failing page's title: {r['first_failure']!r}")
    return ok


async def one_round(args: argparse.Namespace, number: int) -> tuple[bool, dict[str, float]]:
    print(f"-- round {number} (load {load()})")
    with tempfile.TemporaryDirectory() as tmp:
        db, schema = await open_db(args.database_url, Path(tmp))
        try:
            async with asyncio.timeout(args.time_limit):
                ours, bare, occ = await run(args, db, Path(tmp))
            ok = report(ours, bare)
            ok = await check_counts(db, occ, args) and ok
        except TimeoutError:
            print(f"FAILED: the run did not finish within {args.time_limit:g} s")
            return False, {}
        finally:
            await close_db(db, schema)
    return ok, {
        "throughput ratio": ours["rps"] / bare["rps"],
        "p99 ratio": ours["p99_ms"] / bare["p99_ms"],
        "CPU/req ratio": ours["server_cpu_ms"] / bare["server_cpu_ms"],
        "remindbot req/s": ours["rps"], "bare req/s": bare["rps"],
        "remindbot p99 ms": ours["p99_ms"], "bare p99 ms": bare["p99_ms"],
        "remindbot CPU ms/req": ours["server_cpu_ms"], "bare CPU ms/req": bare["server_cpu_ms"],
    }


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    kind = "PostgreSQL" if args.database_url else "SQLite file"
    print(f"confirmations: {args.people} people, concurrency {args.concurrency}, "
          f"warm-up {args.warmup} requests each; database: {kind}; client: a separate process; "
          f"{args.rounds} rounds")
    ok, figures = True, []
    for number in range(1, args.rounds + 1):
        good, found = await one_round(args, number)
        ok = ok and good
        if found:
            figures.append(found)
    if figures:
        print(f"summary over {len(figures)} rounds, min / median / max (load {load()}):")
        for key in figures[0]:
            print(f"   {key:22s} {spread([f[key] for f in figures])}")
    print("every request answered and recorded once" if ok else "FAILED: see above")
    return 0 if ok else 1


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: SQLite file)")
    parser.add_argument("--people", type=int, default=2_000, help="confirmations to post")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up requests per server")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each on a fresh database")
    parser.add_argument("--time-limit", type=float, default=100.0, help="seconds before giving up")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
