"""Several ``remindbot serve`` instances sharing one burst through robot lanes, on PostgreSQL.

Run: ``.venv/bin/python bench/multi_instance.py [--database-url URL] [--instances 1 2 3]``.

For each instance count: a fresh schema, N real ``python -m bot serve`` processes, and the fake
WeCom server of ``bench/dispatch.py`` in its own process (rate limits off: every channel allows
far more than the run can send). 20,000 outbox rows over 500 robots are written in one
transaction, as a firing would; the clock runs from that commit until every row is marked sent.
Reports throughput, each instance's share (rows it sent), repeats seen by the server, and the
machine's load average (the figures only compare within one run on one machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import aiohttp
from sqlalchemy import func
from sqlmodel import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a plain checkout

from dispatch import Server, body  # the fake WeCom server (a subprocess)

from bot.delivery import outbox
from bot.platforms.wecom.config import WeComChannel
from storage.db import Database
from storage.models import Outbox

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def channels(server: Server, robots: int) -> list[WeComChannel]:
    return [
        WeComChannel(id=f"b{i:03d}", name=f"第{i}支部群", platform="wecom", format="text",
                     webhook=f"{server.base}/cgi-bin/webhook/send?key=multi-{i}", rate_per_minute=10**9)
        for i in range(robots)
    ]


def workspace(folder: Path, chans: list[WeComChannel]) -> tuple[Path, Path]:
    schedules, templates = folder / "schedules", folder / "message_templates"
    shutil.copytree(ROOT / "schedules", schedules)
    shutil.copytree(ROOT / "message_templates", templates)
    lines = ["channels:"]
    for c in chans:
        lines += [f"  - id: {c.id}", f"    name: {c.name}", "    platform: wecom",
                  f"    webhook: {c.webhook_url()}", "    format: text", "    rate_per_minute: 1000000000"]
    (schedules / "bench.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return schedules, templates


def start(
    folder: Path, n: int, url: str, schema: str, schedules: Path, templates: Path
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDBOT_")}
    env.update(REMINDBOT_DATABASE_URL=url, REMINDBOT_DATABASE_SCHEMA=schema,
               REMINDBOT_SCHEDULES_DIR=str(schedules), REMINDBOT_TEMPLATES_DIR=str(templates),
               REMINDBOT_VAR_DIR=str(folder / "var"), REMINDBOT_HOST="127.0.0.1", REMINDBOT_LOG_LEVEL="WARNING",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])))
    with (folder / f"serve-{n}.log").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--port", str(port)], env=env, cwd=folder,
            stdout=out, stderr=out)
    return process, port


def wait_ready(port: int, process: subprocess.Popen[bytes], bound: float = 120.0) -> None:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"instance on port {port} did not answer /healthz")


async def fill(db: Database, chans: list[WeComChannel], messages: int) -> None:
    async with db.session() as session:
        for n in range(messages):
            channel = chans[n % len(chans)]
            await outbox.enqueue(session, dedupe_key=f"multi/{n}", channel=channel, platform="wecom",
                                 bodies=[body(n)], stage="test", summary=f"压测 {n}")
        await session.commit()


async def sent(db: Database) -> dict[str, int]:
    async with db.session() as session:
        query = (select(func.coalesce(Outbox.lease_owner, ""), func.count())
                 .where(Outbox.status == "sent", Outbox.stage == "test").group_by(Outbox.lease_owner))
        return dict((await session.exec(query)).all())


async def run(args: argparse.Namespace, instances: int, http: aiohttp.ClientSession) -> dict[str, object]:
    server = await Server.start(limit=0, window=60.0)
    db = Database(args.database_url, schema=f"bench_{uuid.uuid4().hex[:10]}")
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        try:
            await db.create_schema()
            await db.start()
            await db.instance_nonce()
            chans = channels(server, args.robots)
            schedules, templates = workspace(folder, chans)
            started = [start(folder, n, args.database_url, db.schema or "", schedules, templates)
                       for n in range(instances)]
            processes = [p for p, _ in started]
            for process, port in started:
                await asyncio.to_thread(wait_ready, port, process)
            await server.reset(http)
            load_before = os.getloadavg()[0]
            await fill(db, chans, args.messages)
            began = time.perf_counter()
            while sum((shares := await sent(db)).values()) < args.messages:
                if time.perf_counter() - began > args.timeout:
                    raise SystemExit(f"not all sent within {args.timeout:g} s: {shares}")
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - began
            seen = await server.stats(http)
            pids = {p.pid: n for n, p in enumerate(processes)}
            by_instance = {pids.get(int(owner.split(":")[1]), -1): count for owner, count in shares.items() if owner}
            return {"instances": instances, "seconds": elapsed, "rate": args.messages / elapsed,
                    "shares": [by_instance.get(n, 0) for n in range(instances)],
                    "repeats": seen["received"] - args.messages, "load": (load_before, os.getloadavg()[0])}
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)
            await db.drop_schema()
            await db.stop()
            await server.stop()


async def main(args: argparse.Namespace) -> int:
    print(f"{args.messages} messages over {args.robots} robots, rate limits off, PostgreSQL; "
          f"fake WeCom server in its own process; {os.cpu_count()} CPU cores")
    rows = []
    async with aiohttp.ClientSession() as http:
        for instances in args.instances:
            rows.append(await run(args, instances, http))
    print("| instances | time | throughput | share per instance | repeats | load avg (before → after) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        shares = " / ".join(f"{n:,}" for n in r["shares"])  # type: ignore[attr-defined]
        before, after = r["load"]  # type: ignore[misc]
        print(f"| {r['instances']} | {r['seconds']:.1f} s | {r['rate']:,.0f}/s | {shares} | {r['repeats']} | "
              f"{before:.1f} → {after:.1f} |")
    return 0


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("REMINDBOT_TEST_PG_URL", DEFAULT_PG))
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--robots", type=int, default=500)
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
