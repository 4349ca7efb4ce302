"""Benchmark: fire, a follow-up pass and the admin pages at a province's size, and their growth.

Run: ``.venv/bin/python bench/province.py [--database-url URL] [--people 100000] [--rounds 3]``.

Generates the province of ``bench/scale.py`` (people and units as CSV, 500 channels, one reminder
owed by a fifth of the people) and the one ten times smaller. Each round, on a fresh database
(SQLite file, or a fresh PostgreSQL schema):

* ``fire``: the owed reminder fired in this process (occurrence, expectations, one group message
  per channel): wall and CPU of this process per row written;
* every third expectation confirmed, then ``follow-up``: one pass over the others (claims,
  outbox rows, nudges), per row written; then its messages marked sent, so 催办次数 count, and
  (PostgreSQL) the tables analysed, as autovacuum does within a minute of a bulk load;
* ``pages``: ``remindbot serve --dry-run`` in its own process on that database; the occurrence's
  board (first page, page 50 of the unconfirmed, one bureau with its branches), the units page
  (first page, page 3, one bureau), the admin home (calendar feeds: a bounded list, and a search),
  the admin's list of leader pages (first page and the second), the leader page of the committee
  (every unit; and page 2 of its overdue list) and of one bureau, and ``/healthz`` as the baseline,
  fetched over loopback HTTP three times each: wall time per request, the server's CPU per
  request (``/proc``), and the page's size. ``healthz during leaders`` (``… leader committee``):
  ``/healthz`` asked while ``/admin/leaders`` (the committee leader's page) is being answered (a page
  that holds the event loop delays every request).

Prints min / median / max per size, and the growth of the median from the small province to the
large one (goal, issue 11: the follow-up pass ≤ ×11 for ×10 people; pages < 300 KB and ≤ 0.3 s).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a plain checkout
sys.path.insert(0, str(ROOT / "bench"))

from benchdb import close_db, open_db  # noqa: E402
from rounds import load, spread, timed  # noqa: E402
from scale import REMINDER, _cpu_seconds, free_port, generate  # noqa: E402

from bot.config.snapshot import load_for  # noqa: E402
from bot.confirming.confirmations import to_db_time  # noqa: E402
from bot.confirming.followup import FollowUps  # noqa: E402
from bot.delivery.render import Renderer  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from bot.scheduling.occurrences import fire  # noqa: E402
from bot.scheduling.timing import Due, Fire  # noqa: E402
from bot.scheduling.workdays import WorkCalendar  # noqa: E402
from bot.settings import Settings  # noqa: E402
from storage.models import Confirmation, Expectation, Nudge, Outbox  # noqa: E402

BJ = ZoneInfo("Asia/Shanghai")
DUE = datetime(2026, 11, 6, 9, 0, tzinfo=BJ)  # the first Friday of November 2026
FOLLOW = datetime(2026, 11, 9, 10, 0, tzinfo=BJ)  # Monday: the Saturday follow-up waits for working hours
USER, PASSWORD = "bench", "bench-admin-password-0123"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
PAGES = {
    "healthz": "/healthz",
    "board": "/admin/occurrences/{occ}",
    "board p50 unconfirmed": "/admin/occurrences/{occ}?status=pending&page=50",
    "units": "/admin/units?period=2026-11",
    "units p3": "/admin/units?period=2026-11&page=3",
    # a bureau's board and units with their branches (局1: u00001 and its ~100 branches), and the
    # admin home with its bounded feed list and a feed search
    "board 局1": "/admin/occurrences/{occ}?unit=" + quote("局1"),
    "units 局1": "/admin/units?period=2026-11&unit=" + quote("局1"),
    "home": "/admin/",
    "feed search": "/admin/upcoming?feed=" + quote("人员12345"),
    "leaders": "/admin/leaders",
    "leaders p2": "/admin/leaders?page=2",
    "leader committee": "{committee}",  # the leader over every unit (p000000: 20,000 at 100k)
    "leader committee late p2": "{committee}?late=2",
    "leader bureau": "{bureau}",  # a bureau's leader (p000001: 100 units)
    "healthz during leaders": "",  # /healthz asked while /admin/leaders is being answered
    "healthz during leader committee": "",  # … while the committee leader's page is being answered
}
DURING = {"healthz during leaders": "leaders", "healthz during leader committee": "leader committee"}


async def count(runtime: Runtime, model: type) -> int:
    from sqlalchemy import func

    async with runtime.db.session() as session:
        return int((await session.exec(select(func.count()).select_from(model))).one()[0])  # type: ignore[call-overload]


async def confirm_every_third(runtime: Runtime) -> None:
    et = Expectation.__table__  # type: ignore[attr-defined]
    async with runtime.db.session() as session:
        rows = (await session.exec(select(et.c.occurrence_id, et.c.person_id).order_by(et.c.id))).all()  # type: ignore[call-overload]
        confs = [{"occurrence_id": o, "person_id": p, "confirmed_at": to_db_time(DUE), "via": "link"}
                 for o, p in rows[::3]]
        await (await session.connection()).execute(insert(Confirmation.__table__), confs)  # type: ignore[attr-defined]
        await session.commit()


async def mark_followups_sent(runtime: Runtime) -> None:
    async with runtime.db.session() as session:
        await session.exec(update(Outbox).where(Outbox.stage.startswith("followup:"))  # type: ignore[attr-defined,call-overload]
                           .values(status="sent"))
        await session.commit()


async def analyze(runtime: Runtime) -> None:
    """PostgreSQL: statistics for the rows just written, as autovacuum has them a minute later
    (pages fetched seconds after a bulk load would otherwise be planned as for empty tables)."""
    from sqlalchemy import text

    async with runtime.db.session() as session:
        if (await session.connection()).dialect.name == "postgresql":
            await (await session.connection()).execute(text("ANALYZE expectation, confirmation, nudge, outbox"))
            await session.commit()


def get(port: int, path: str, keep: list[bytes] | None = None) -> tuple[float, int]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": AUTH})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        body = response.read()
        assert response.status == 200, (path, response.status)
    if keep is not None:
        keep.append(body)
    return time.perf_counter() - start, len(body)


def leader_paths(port: int) -> dict[str, str]:
    """The committee's and the first bureau's leader page paths, from the admin's list of leader pages."""
    body: list[bytes] = []
    get(port, "/admin/leaders", body)
    links = re.findall(r'class="leader-link" href="https?://[^/"]+(/l/[^"]+)"', body[0].decode())
    return {"committee": links[0], "bureau": links[1]}


def during(port: int, slow: str, quick: str) -> tuple[float, int]:
    """``quick`` fetched while ``slow`` is being answered: what a page holding the event loop costs
    every other request (wall and size of ``quick``)."""
    worker = threading.Thread(target=get, args=(port, slow))
    worker.start()
    time.sleep(0.05)  # the slow request reaches the server first
    try:
        return get(port, quick)
    finally:
        worker.join()


def pages(env: dict[str, str], port: int, occ: int, repeats: int) -> dict[str, list[tuple[float, float, int]]]:
    """(wall s, server CPU s, bytes) per page and request, from a served app on the round's database."""
    process = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--dry-run"], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600
        while True:
            if process.poll() is not None:
                raise SystemExit(f"serve exited: {process.stderr.read().decode()[-2000:] if process.stderr else ''}")
            try:
                get(port, "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("serve never answered /healthz") from None
                time.sleep(0.1)
        time.sleep(2.0)  # let the first reconcile pass settle
        out: dict[str, list[tuple[float, float, int]]] = {name: [] for name in PAGES}
        paths = leader_paths(port)
        for _ in range(repeats):
            for name, path in PAGES.items():
                before = _cpu_seconds(process.pid)
                if path:
                    wall, size = get(port, path.format(occ=occ, **paths))
                else:
                    wall, size = during(port, PAGES[DURING[name]].format(**paths), PAGES["healthz"])
                out[name].append((wall, _cpu_seconds(process.pid) - before, size))
        return out
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        if process.stderr:
            process.stderr.close()


async def one_round(args: argparse.Namespace, folder: Path, var: Path, people: int) -> dict[str, float]:
    db, schema = await open_db(args.database_url, var)
    url = args.database_url or f"sqlite+aiosqlite:///{var / 'bench.db'}"
    settings = Settings(schedules_dir=folder, var_dir=var, database_url=url, base_url="https://dj.example.gov.cn",
                        secret_key="bench-province-signing-key-0123456789")
    schedules = load_for(settings)
    runtime = Runtime(settings=settings, db=db, schedules=schedules, calendar=WorkCalendar(schedules.calendar),
                      renderer=Renderer(settings.templates_dir), clock=lambda: DUE)
    figures: dict[str, float] = {}
    try:
        due = Due(REMINDER, DUE, None, False, False, None)
        wall, cpu, result = await timed(fire(runtime, Fire(REMINDER, "due", DUE, due, None)))
        rows = await count(runtime, Expectation) + result.queued  # type: ignore[attr-defined]
        figures |= {"fire s wall": wall, "fire s CPU": cpu, "fire µs/row wall": wall * 1e6 / rows,
                    "fire µs/row CPU": cpu * 1e6 / rows}
        await confirm_every_third(runtime)
        runtime.clock = lambda: FOLLOW  # type: ignore[method-assign]
        wall, cpu, queued = await timed(FollowUps(runtime).run_once(FOLLOW))
        nudges = await count(runtime, Nudge)
        rows = int(queued) + nudges  # type: ignore[call-overload]
        figures |= {"follow-up s wall": wall, "follow-up s CPU": cpu, "follow-up µs/row wall": wall * 1e6 / rows,
                    "follow-up µs/row CPU": cpu * 1e6 / rows, "follow-up rows": rows}
        await mark_followups_sent(runtime)
        await analyze(runtime)
        port = free_port()
        env = {**os.environ, "REMINDBOT_SCHEDULES_DIR": str(folder), "REMINDBOT_VAR_DIR": str(var),
               "REMINDBOT_DATABASE_URL": url, "REMINDBOT_SECRET_KEY": "bench-province-signing-key-0123456789",
               "REMINDBOT_ADMIN_USER": USER, "REMINDBOT_ADMIN_PASSWORD": PASSWORD, "PORT": str(port),
               "REMINDBOT_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
        if schema:
            env["REMINDBOT_DATABASE_SCHEMA"] = schema
        for name, samples in pages(env, port, result.occurrence_id, args.repeats).items():  # type: ignore[attr-defined]
            figures[f"{name} s wall"] = statistics.median(s[0] for s in samples)
            figures[f"{name} s CPU"] = statistics.median(s[1] for s in samples)
            figures[f"{name} KB"] = max(s[2] for s in samples) / 1000
    finally:
        await close_db(db, schema)
    print("   " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()), flush=True)
    return figures


async def main(args: argparse.Namespace) -> int:
    kind = "PostgreSQL" if args.database_url else "SQLite file"
    print(f"province: database {kind}; {args.rounds} rounds; load {load()}; {os.cpu_count()} cores", flush=True)
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="remindbot-province-") as tmp:
        work = Path(tmp)
        sizes = [("small", args.people // 10), ("large", args.people)] if args.small else [("large", args.people)]
        for name, people in sizes:
            folder = work / name / "schedules"
            generate(folder, people, people // 5, 500, people // 5)
            print(f"[{name}] {people:,} people, {people // 5:,} units, 500 channels, {people // 5:,} owing "
                  f"(load {load()})", flush=True)
            results[name] = []
            for round_no in range(args.rounds):
                var = work / name / f"var{round_no}"
                var.mkdir(parents=True)
                results[name].append(await one_round(args, folder, var, people))
    for name, rounds in results.items():
        print(f"\n{name}: min / median / max over {len(rounds)} rounds")
        for key in rounds[0]:
            print(f"   {key:32s} {spread([r[key] for r in rounds], '{:.3f}')}")
    if "small" in results:
        print("\ngrowth small → large (×10 people), ratio of medians:")
        for key in ("fire s wall", "fire s CPU", "follow-up s wall", "follow-up s CPU", "board s wall",
                    "units s wall", "leaders s wall", "leader committee s wall", "leader bureau s wall"):
            big = statistics.median(r[key] for r in results["large"])
            small = statistics.median(r[key] for r in results["small"])
            print(f"   {key:32s} ×{big / small:.1f}")
    print(f"\nload after: {load()}")
    return 0


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: SQLite file)")
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="requests per page per round")
    parser.add_argument("--small", action=argparse.BooleanOptionalAction, default=True,
                        help="also the province ten times smaller, for the growth factor")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
