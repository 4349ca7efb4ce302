"""Benchmark: every command at a province's scale, beside a bare script doing the same step.

Generates, in a temporary folder, a province (default 100,000 people, 20,000 units, 500 channels,
one reminder owed by 20,000 secretaries) and one ten times smaller, people and units as CSV. Each
command runs as its own process (``python -m bot …``), like an admin runs it; so does the bare
step: a plain script that reads the same files (csv, PyYAML's C loader) and runs the same SQL
with sqlite3 (for ``serve``: an aiohttp server answering ``/healthz`` after the same reads).
Reported per step: wall time and peak RSS (``os.wait4`` of that very process), ratio to the bare
step (min / median / max over the rounds) and the growth from the small province to the large one.

Steps: ``validate`` on a cold cache (the files parsed), then with the snapshot (as every later
command starts), ``upcoming``, ``fire`` (channels without webhooks: recorded, never sent),
``status``, ``report``, ``preview``, and ``serve``: to the first answer of ``/healthz`` (any
status; remindbot's says 503 "starting" while it loads) and, as ``serve-ready``, to its first 200.
CPU time (user + system) of each process is reported beside the wall time: on a shared machine it
is the steadier figure. The project's bytecode is compiled first, as installing it does.

Usage: ``python bench/scale.py [--people 100000] [--rounds 3] [--small/--no-small] [--only report,status]``.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rounds import spread

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
REMINDER = "owed"
STEPS = ("validate-cold", "validate", "upcoming", "fire", "status", "report", "preview", "serve", "serve-ready")


# ------------------------------------------------------------------ the province


def generate(folder: Path, people: int, units: int, channels: int, secretaries: int) -> None:
    """units.csv, people.csv, channels.yaml, reminders.yaml under ``folder``."""
    folder.mkdir(parents=True)
    bureaus = max(1, units // 100)
    leaders = max(1, bureaus)
    with (folder / "units.csv").open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["标识", "名称", "上级单位", "分管领导"])
        out.writerow(["u00000", "工委", "", "p000000"])
        for i in range(1, units):
            if i <= bureaus:
                out.writerow([f"u{i:05d}", f"局{i}", "u00000", f"p{i:06d}"])
            else:
                out.writerow([f"u{i:05d}", f"支部{i}", f"u{1 + i % bureaus:05d}", ""])
    with (folder / "people.csv").open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["标识", "姓名", "单位", "角色", "手机", "企业微信", "所在群"])
        for i in range(people):
            if i < leaders + 1:
                unit, role = f"u{i % units:05d}", "leader"
            elif i < leaders + 1 + secretaries:
                unit, role = f"u{(i - leaders - 1) % units:05d}", "secretary"
            else:
                unit, role = f"u{i % units:05d}", "member"
            out.writerow([f"p{i:06d}", f"人员{i}", unit, role, f"138{i:08d}", f"user{i}",
                          f"c{i % channels:03d}"])
    lines = ["service: {admin_channel: c000}", "channels:"]
    lines += [f"  - {{id: c{i:03d}, name: 群{i}, platform: wecom, webhook: ''}}" for i in range(channels)]
    (folder / "channels.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    chans = ", ".join(f"c{i:03d}" for i in range(channels))
    (folder / "reminders.yaml").write_text(f"""reminders:
  - id: {REMINDER}
    title: 每月学习日
    when: {{monthly: {{weekday: fri, nth: 1}}, at: "09:00"}}
    notices: [3d, 1d]
    template: study_day
    recipients:
      channels: [{chans}]
      mention: {{roles: [secretary]}}
    confirm: {{deadline: 3wd, remind_every: 1d}}
  - id: duty
    title: 一岗双责
    when: {{quarterly: {{month: 1, day: 10}}, at: "09:00"}}
    recipients: {{channels: [c000], mention: {{roles: [leader]}}, per_person: true}}
  - id: monthly-report
    title: 月度通报
    kind: report
    when: {{monthly: {{day: 5}}, at: "10:00"}}
    recipients: {{channels: [c000]}}
""", encoding="utf-8")


# ------------------------------------------------------------------ measuring one process


@dataclass
class Run:
    seconds: float  # wall
    rss_mb: float  # peak resident set of that process
    cpu: float = 0.0  # user + system seconds of that process (steadier than wall on a shared machine)


def measure(argv: list[str], env: dict[str, str], *, expect_ok: bool = True) -> Run:
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if expect_ok and process.returncode != 0:
        err = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"{' '.join(argv)} failed ({process.returncode}): {err[-2000:]}")
    if process.stderr:
        process.stderr.close()
    return Run(elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure_serve(argv: list[str], env: dict[str, str], port: int) -> tuple[Run, Run]:
    """Time from start to the first answer of /healthz (any HTTP status: remindbot's says "starting",
    503, while it loads) and to its first 200 (ready to send); peak RSS over that life plus one
    second (ended by SIGTERM). CPU is the process's until each moment."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    first: tuple[float, float] | None = None
    ready: tuple[float, float] | None = None
    while time.perf_counter() - start < 600:
        if process.poll() is not None:
            raise SystemExit(f"serve exited: {process.stderr.read().decode()[-2000:] if process.stderr else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
                resp.read()
                ready = (time.perf_counter() - start, _cpu_seconds(process.pid))
                first = first or ready
                break
        except urllib.error.HTTPError as exc:  # answered, not ready yet (503 "starting", or a check failing)
            exc.read()
            first = first or (time.perf_counter() - start, _cpu_seconds(process.pid))
        except OSError:
            pass
        time.sleep(0.02)
    if first is None or ready is None:
        process.kill()
        raise SystemExit("serve never answered /healthz with 200")
    time.sleep(1.0)  # what the service holds once running (the first reconcile pass included)
    process.send_signal(signal.SIGTERM)
    _, _, usage = os.wait4(process.pid, 0)
    if process.stderr:
        process.stderr.close()
    rss = usage.ru_maxrss / 1024
    return Run(first[0], rss, first[1]), Run(ready[0], rss, ready[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process until now (/proc/<pid>/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ the bare steps


def bare_read(folder: Path) -> tuple[list[list[str]], list[list[str]], object]:
    import yaml

    with (folder / "people.csv").open(encoding="utf-8") as handle:
        people = list(csv.reader(handle))
    with (folder / "units.csv").open(encoding="utf-8") as handle:
        units = list(csv.reader(handle))
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    config = [yaml.load((folder / name).read_text(encoding="utf-8"), Loader=loader)
              for name in ("channels.yaml", "reminders.yaml")]
    return people, units, config


def bare(step: str, folder: Path, db: Path, port: int) -> None:
    """The same step as plainly as it can be written: same reads, same SQL."""
    import sqlite3

    people, units, _ = bare_read(folder)
    secretaries = [row for row in people[1:] if row[3] == "secretary"]
    if step in ("validate", "validate-cold", "upcoming", "preview"):
        by_channel: dict[str, list[list[str]]] = {}
        for row in secretaries:
            by_channel.setdefault(row[6], []).append(row)
        print(len(by_channel), len(units))
        return
    con = sqlite3.connect(db)
    if step == "fire":
        con.execute("CREATE TABLE IF NOT EXISTS bare_expectation (occurrence_id INT, person_id TEXT, person_name TEXT,"
                    " unit_id TEXT, next_followup_at TEXT, UNIQUE(occurrence_id, person_id))")
        con.execute("CREATE TABLE IF NOT EXISTS bare_outbox (dedupe_key TEXT UNIQUE, channel_id TEXT, body TEXT)")
        with con:
            con.executemany("INSERT OR IGNORE INTO bare_expectation VALUES (1, ?, ?, ?, '2026-01-01')",
                            [(r[0], r[1], r[2]) for r in secretaries])
            con.executemany("INSERT OR IGNORE INTO bare_outbox VALUES (?, ?, ?)",
                            [(f"bare/{i}", f"c{i:03d}", "{}") for i in range(500)])
    elif step == "status":
        rows = con.execute("SELECT e.person_id, e.person_name, c.confirmed_at FROM expectation e "
                           "LEFT JOIN confirmation c "
                           "ON c.occurrence_id = e.occurrence_id AND c.person_id = e.person_id "
                           "WHERE e.occurrence_id = (SELECT max(id) FROM occurrence)").fetchall()
        print(len(rows))
    elif step == "report":
        rows = con.execute("SELECT e.unit_id, count(*), count(c.person_id) FROM expectation e LEFT JOIN confirmation c "
                           "ON c.occurrence_id = e.occurrence_id AND c.person_id = e.person_id "
                           "GROUP BY e.unit_id").fetchall()
        print(len(rows))
    elif step == "serve":
        bare_serve(con, port)
    con.close()


def bare_serve(con: object, port: int) -> None:
    import asyncio

    from aiohttp import web

    async def healthz(request: web.Request) -> web.Response:
        con.execute("SELECT 1").fetchall()  # type: ignore[attr-defined]
        return web.json_response({"ok": True})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/healthz", healthz)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


# ------------------------------------------------------------------ one province, several rounds


@dataclass
class Figures:
    tool: dict[str, list[Run]] = field(default_factory=dict)
    bare: dict[str, list[Run]] = field(default_factory=dict)


def command(step: str, db: Path | None = None) -> list[str]:
    return {
        "validate-cold": ["validate"], "validate": ["validate"], "upcoming": ["upcoming", "--days", "31"],
        "fire": ["fire", REMINDER], "status": ["status", REMINDER], "report": ["report", "--period", fired_month(db)],
        "preview": ["preview", REMINDER], "serve": ["serve"],
    }[step]


def fired_month(db: Path | None) -> str:
    """The month (service's zone) of the occurrence ``fire`` recorded: the report counts its 20,000
    secretaries whatever the hour. ``current_month`` did only from the local 1st of the month to the
    first Friday (before 16:00 UTC on the last day of a month: an empty report, half the CPU)."""
    import sqlite3
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    if db is None or not db.exists():
        return "current_month"
    with sqlite3.connect(db) as con:
        row = con.execute("SELECT due_at FROM occurrence WHERE reminder_id = ? AND dry_run = 0 "
                          "ORDER BY id DESC LIMIT 1", (REMINDER,)).fetchone()
    if row is None:
        return "current_month"
    due = datetime.fromisoformat(row[0]).replace(tzinfo=UTC).astimezone(ZoneInfo("Asia/Shanghai"))
    return f"{due:%Y-%m}"


def run_province(name: str, people: int, units: int, channels: int, secretaries: int, rounds: int,
                 work: Path, only: tuple[str, ...] = STEPS) -> Figures:
    folder = work / name / "schedules"
    generate(folder, people, units, channels, secretaries)
    print(f"[{name}] {people:,} people, {units:,} units, {channels} channels, {secretaries:,} owing", flush=True)
    figures = Figures()
    for round_no in range(rounds):
        var = work / name / f"var{round_no}"
        db = var / "bot.db"
        var.mkdir(parents=True)
        port = free_port()
        env = {**os.environ, "REMINDBOT_SCHEDULES_DIR": str(folder), "REMINDBOT_VAR_DIR": str(var),
               "REMINDBOT_DATABASE_URL": f"sqlite+aiosqlite:///{db}", "REMINDBOT_SECRET_KEY": "bench-secret",
               "REMINDBOT_TEMPLATES_DIR": str(ROOT / "message_templates"), "PORT": str(port),
               "REMINDBOT_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
        if not {"validate-cold", "validate"} & set(only):
            # As in a full run, where they come first: every later command starts from the snapshot.
            measure([PY, "-m", "bot", "validate"], env)
        for step in STEPS:
            if step == "serve-ready":
                continue  # measured with "serve"
            if step not in only and not (step == "serve" and "serve-ready" in only):
                if step == "fire":  # status and report need its records: run, not measured
                    measure([PY, "-m", "bot", *command(step)], env)
                continue
            if step == "serve":
                tool, tool_ready = measure_serve([PY, "-m", "bot", "serve", "--dry-run"], env, port)
                base, base_ready = measure_serve([PY, __file__, "--bare", step, "--folder", str(folder),
                                                  "--db", str(db), "--port", str(port)], env, port)
                figures.tool.setdefault("serve-ready", []).append(tool_ready)
                figures.bare.setdefault("serve-ready", []).append(base_ready)
                _show(round_no, "serve-ready", tool_ready, base_ready)
            else:
                if step == "validate-cold":
                    shutil.rmtree(var / "cache", ignore_errors=True)
                tool = measure([PY, "-m", "bot", *command(step, db)], env)
                base = measure([PY, __file__, "--bare", step, "--folder", str(folder), "--db", str(db),
                                "--port", str(port)], env)
            figures.tool.setdefault(step, []).append(tool)
            figures.bare.setdefault(step, []).append(base)
            _show(round_no, step, tool, base)
    return figures


def _show(round_no: int, step: str, tool: Run, base: Run) -> None:
    load = os.getloadavg()[0]
    print(f"  round {round_no + 1} {step:14} {tool.seconds:7.2f} s (cpu {tool.cpu:6.2f}) {tool.rss_mb:4.0f} MB"
          f" | bare {base.seconds:6.2f} s (cpu {base.cpu:5.2f}) {base.rss_mb:4.0f} MB"
          f" | ×{tool.seconds / base.seconds:.2f} wall, ×{tool.cpu / max(base.cpu, 0.01):.2f} cpu | load {load:.1f}",
          flush=True)


def precompile() -> None:
    """Write the project's bytecode first (``__pycache__``), as installing the package does: with
    PYTHONDONTWRITEBYTECODE set (as in some shells and CI), every run would otherwise compile
    every module again, a cost no installed service pays."""
    import compileall

    for package in ("bot", "storage"):
        compileall.compile_dir(ROOT / package, quiet=1)


def table(name: str, f: Figures, only: tuple[str, ...] = STEPS) -> list[str]:
    head = ("| step | remindbot wall s | bare wall s | wall ratio | remindbot CPU s | bare CPU s | CPU ratio "
            "| peak RSS MB | bare RSS MB |")
    lines = [f"### {name} (min / median / max of the rounds)", "", head, "|---|---|---|---|---|---|---|---|---|"]
    for step in (s for s in STEPS if s in only):
        tool, base = f.tool[step], f.bare[step]
        walls = [t.seconds / b.seconds for t, b in zip(tool, base, strict=True)]
        cpus = [t.cpu / max(b.cpu, 0.01) for t, b in zip(tool, base, strict=True)]
        lines.append(f"| {step} | {spread([t.seconds for t in tool])} | {spread([b.seconds for b in base])} | "
                     f"{spread(walls)} | {spread([t.cpu for t in tool])} | {spread([b.cpu for b in base])} | "
                     f"{spread(cpus)} | {max(t.rss_mb for t in tool):.0f} | {max(b.rss_mb for b in base):.0f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small", action=argparse.BooleanOptionalAction, default=True,
                        help="also the province ten times smaller, for the growth factor")
    parser.add_argument("--bare")
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--db", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--only", help="measure only these steps, comma-separated (e.g. report,status;"
                        " fire still runs, unmeasured, when a later step needs its records, and validate"
                        " first, unmeasured, so that every step starts from the snapshot as in a full run)")
    args = parser.parse_args()
    only = tuple(args.only.split(",")) if args.only else STEPS
    if unknown := [s for s in only if s not in STEPS]:
        parser.error(f"unknown steps: {', '.join(unknown)}; known: {', '.join(STEPS)}")
    if args.bare:
        bare(args.bare, args.folder, args.db, args.port)
        return 0
    precompile()
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="remindbot-scale-") as tmp:
        work = Path(tmp)
        sizes = [("large", args.people)] + ([("small", args.people // 10)] if args.small else [])
        results = {}
        for name, people in sizes:
            results[name] = (people, run_province(name, people, people // 5, 500, people // 5, args.rounds, work,
                                                          only))
    out: list[str] = []
    for people, figures in results.values():
        out += ["", *table(f"{people:,} people", figures, only)]
    if "small" in results:
        out += ["", "### growth from the small province to the large one (median wall time)", "",
                "| step | ×wall | ×CPU | bare ×wall |", "|---|---|---|---|"]
        big, small = results["large"][1], results["small"][1]
        for step in (s for s in STEPS if s in only):
            def med(runs: list[Run], cpu: bool = False) -> float:
                return statistics.median(r.cpu if cpu else r.seconds for r in runs)
            out.append(f"| {step} | {med(big.tool[step]) / med(small.tool[step]):.1f} | "
                       f"{med(big.tool[step], True) / med(small.tool[step], True):.1f} | "
                       f"{med(big.bare[step]) / med(small.bare[step]):.1f} |")
    load = os.getloadavg()
    out += ["", f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
