"""Benchmark: firing one reminder owed by N secretaries, then one follow-up pass over them.

Run: ``.venv/bin/python bench/fire.py [--database-url URL] [--people 20000] [--rounds 3]``.

Each round builds a fresh database (SQLite file, or a fresh PostgreSQL schema) and a generated
organisation: N secretaries in N/4 branches, a group chat and a channel with personal links (one
message per person there). It then times, wall and CPU of this process (event loop and database
threads), per row written:

* ``fire``: the occurrence, N expectations and N + 1 outbox rows (rendering included);
* ``fire again``: the same fire, which must write nothing (idempotent);
* ``follow-up``: the first follow-up round for all N (claims, N + 1 outbox rows, N nudges).

Prints min / median / max over the rounds with the machine's load. Exits 1 when a round wrote
the wrong number of rows. Goal (issue 11): at most 0.1 ms per row on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a plain checkout

from benchdb import close_db, open_db  # noqa: E402
from rounds import load, spread, timed  # noqa: E402

from bot.config.limits import Limits  # noqa: E402
from bot.config.loader import load_schedules  # noqa: E402
from bot.confirming.followup import FollowUps  # noqa: E402
from bot.delivery.render import Renderer  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from bot.scheduling.occurrences import fire  # noqa: E402
from bot.scheduling.timing import Due, Fire  # noqa: E402
from bot.scheduling.workdays import WorkCalendar  # noqa: E402
from bot.settings import Settings  # noqa: E402
from storage.models import Expectation, Nudge, Outbox  # noqa: E402

BJ = ZoneInfo("Asia/Shanghai")
DUE = datetime(2026, 11, 3, 9, 0, tzinfo=BJ)  # a Tuesday; the follow-up is due the next day
FOLLOW = datetime(2026, 11, 4, 9, 0, tzinfo=BJ)


def world_yaml(people: int) -> str:
    lines = ["units:", "  - {id: gw, name: 市直机关工委}"]
    lines += [f"  - {{id: b{u:05d}, name: 第{u:05d}党支部, parent: gw}}" for u in range(people // 4 + 1)]
    lines.append("people:")
    lines += [f"  - {{id: s{i:06d}, name: 书记{i:06d}, roles: [secretary], unit: b{i // 4:05d}, "
              f"mobile: \"139{i:08d}\"}}" for i in range(people)]
    lines += [
        "channels:",
        '  - {id: group, name: 党务工作群, platform: generic, webhook: "https://oa.example.gov.cn/hook/g"}',
        '  - {id: oa, name: 协同办公待办, platform: generic, personal_links: true, '
        'webhook: "https://oa.example.gov.cn/hook/oa"}',
        "reminders:",
        "  - id: study",
        "    title: 每月学习日",
        '    when: {monthly: {weekday: tue, nth: 1}, at: "09:00"}',
        "    recipients: {channels: [group, oa], mention: {roles: [secretary]}}",
        "    confirm: {deadline: 3d, remind_every: 1d}",
    ]
    return "\n".join(lines) + "\n"


async def count(runtime: Runtime, model: type) -> int:
    async with runtime.db.session() as session:
        return (await session.exec(select(func.count()).select_from(model))).one()  # type: ignore[no-any-return]


async def one_round(args: argparse.Namespace, folder: Path) -> tuple[bool, dict[str, float]]:
    (folder / "schedules").mkdir()
    (folder / "schedules" / "world.yaml").write_text(world_yaml(args.people), encoding="utf-8")
    settings = Settings(schedules_dir=folder / "schedules", var_dir=folder / "var", base_url="https://dj.example.gov.cn",
                        secret_key="bench-fire-signing-key-0123456789")
    limits = Limits(file_bytes=1 << 30, entries=10 * args.people + 100)  # a province is bigger than the defaults
    schedules = load_schedules(settings.schedules_dir, templates_dir=settings.templates_dir, limits=limits)
    db, schema = await open_db(args.database_url, folder)
    clock = lambda: DUE  # noqa: E731
    runtime = Runtime(settings=settings, db=db, schedules=schedules, calendar=WorkCalendar(schedules.calendar),
                      renderer=Renderer(ROOT / "message_templates"), clock=clock)
    due = Due("study", DUE, None, False, False, None)
    job = Fire("study", "due", DUE, due, None)
    try:
        wall, cpu, first = await timed(fire(runtime, job))
        again_wall, again_cpu, again = await timed(fire(runtime, job))
        follow_wall, follow_cpu, queued = await timed(FollowUps(runtime).run_once(FOLLOW))
        rows = args.people + args.people + 1  # expectations, outbox rows
        follow_rows = args.people + 1 + args.people  # outbox rows, nudges
        found = (first.queued, again.queued, queued, await count(runtime, Expectation),  # type: ignore[attr-defined]
                 await count(runtime, Nudge), await count(runtime, Outbox))
        # the group chat's follow-up may come in parts (a platform's cap on mentions per message)
        wanted = (args.people + 1, 0, queued, args.people, args.people, args.people + 1 + queued)
        ok = found == wanted and queued >= args.people + 1
        if not ok:
            print(f"   rows (fire, again, follow-up, expectations, nudges, outbox): {found}, wanted {wanted}")
    finally:
        await close_db(db, schema)
    figures = {
        "fire µs/row wall": wall * 1e6 / rows, "fire µs/row CPU": cpu * 1e6 / rows,
        "fire again s wall": again_wall, "fire again s CPU": again_cpu,
        "follow-up µs/row wall": follow_wall * 1e6 / follow_rows,
        "follow-up µs/row CPU": follow_cpu * 1e6 / follow_rows,
        "fire s wall": wall, "follow-up s wall": follow_wall,
    }
    print(f"-- {'OK' if ok else 'WRONG ROW COUNTS'}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))
    return ok, figures


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    kind = "PostgreSQL" if args.database_url else "SQLite file"
    print(f"fire: {args.people} people ({args.people} expectations, {args.people + 1} outbox rows), "
          f"then one follow-up pass; database: {kind}; {args.rounds} rounds (load {load()})")
    ok, all_figures = True, []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            good, figures = await one_round(args, Path(tmp))
        ok = ok and good
        all_figures.append(figures)
    print(f"summary, min / median / max (load {load()}):")
    for key in all_figures[0]:
        print(f"   {key:24s} {spread([f[key] for f in all_figures], '{:.2f}')}")
    return 0 if ok else 1


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: SQLite file)")
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
