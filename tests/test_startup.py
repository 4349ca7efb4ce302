"""serve's first second: the port is bound at once and /healthz answers "starting" (503, never a
200) over real loopback HTTP until the service's own site takes the socket over with no gap;
the schema check that every start makes costs one query and no Alembic when all is current."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web

from bot.startup import CannotBind, EarlyHealth, bind
from storage import migrate
from storage.db import Database

ROOT = Path(__file__).resolve().parent.parent


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


def test_a_starting_service_answers_healthz_with_starting_then_its_own_site_takes_over() -> None:
    sock = bind("127.0.0.1", 0)
    assert sock is not None
    port = sock.getsockname()[1]
    early = EarlyHealth(sock).start()
    try:
        status, body = get(port, "/healthz")
        assert status == 503 and json.loads(body)["status"] == "starting"  # answers, and does not say ok
        status, page = get(port, "/admin")
        assert status == 503 and "正在启动" in page

        async def take_over() -> list[tuple[int, str]]:
            async def healthz(request: web.Request) -> web.Response:
                return web.json_response({"status": "ok"})

            app = web.Application()
            app.router.add_get("/healthz", healthz)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.SockSite(runner, sock).start()
            early.stop()  # as the service does once its site is listening
            answers = [await asyncio.to_thread(get, port, "/healthz") for _ in range(5)]
            await runner.cleanup()
            return answers

        answers = asyncio.run(take_over())
    finally:
        early.stop()
        sock.close()
    assert all(status == 200 and json.loads(body)["status"] == "ok" for status, body in answers)


def test_a_port_in_use_cannot_be_bound_and_says_so_in_chinese() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CannotBind) as caught:
            bind("127.0.0.1", port)
    assert f"127.0.0.1:{port}" in str(caught.value) and "端口已被占用" in str(caught.value)


def test_the_newest_revision_is_read_from_the_files_as_alembic_reads_it(tmp_path: Path) -> None:
    assert migrate.cheap_head() == migrate.head()

    async def scenario() -> tuple[str | None, str | None, migrate.Upgrade]:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
        try:
            empty = await migrate.at_head(db.engine)
            await db.start()
            current = await migrate.at_head(db.engine)
            again = await db.start()  # the fast path: nothing to do
        finally:
            await db.stop()
        return empty, current, again

    empty, current, again = asyncio.run(scenario())
    assert empty is None and current == migrate.head()
    assert not again.changed and again.after == migrate.head()


def test_commands_that_only_read_the_schedules_snapshot_load_neither_the_database_nor_the_web_stack(
        tmp_path: Path) -> None:
    code = ("import sys\n"
            "from bot.cli import main\n"
            "try:\n"
            "    main(['upcoming', '--days', '3'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "heavy = ('sqlalchemy', 'aiohttp', 'alembic', 'jinja2', 'matplotlib')\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "REMINDBOT_VAR_DIR": str(tmp_path / "var"),
           "REMINDBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"}
    warm = subprocess.run([sys.executable, "-m", "bot", "validate"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)  # the first check builds the snapshot (templates: Jinja2)
    assert warm.returncode == 0, warm.stderr
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_the_holidays_computed_by_rule_are_kept_and_read_back_the_same(tmp_path: Path) -> None:
    from datetime import date

    from bot.scheduling import workdays

    workdays.keep_rule_holidays_in(tmp_path / "cache")
    try:
        workdays._rule_holidays.cache_clear()
        computed = workdays._rule_holidays(2035)
        assert computed and date(2035, 10, 1) in computed and "国庆" in computed[date(2035, 10, 1)]
        assert list((tmp_path / "cache").glob("rule-holidays-*.json"))
        workdays._rule_holidays.cache_clear()
        assert workdays._rule_holidays(2035) == computed  # from the file this time
        kept = next((tmp_path / "cache").glob("rule-holidays-*.json"))
        data = json.loads(kept.read_text(encoding="utf-8"))
        data["2035"]["2035-10-01"] = "国庆节（从缓存读出）"
        kept.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        workdays._rule_holidays.cache_clear()
        assert workdays._rule_holidays(2035)[date(2035, 10, 1)] == "国庆节（从缓存读出）"
        kept.write_text("not json", encoding="utf-8")  # a broken cache is computed again
        workdays._rule_holidays.cache_clear()
        assert workdays._rule_holidays(2035) == computed
        calendar = workdays.WorkCalendar()
        assert not calendar.is_workday(date(2035, 10, 1)) and calendar.info(date(2035, 10, 1)).provisional
    finally:
        workdays.keep_rule_holidays_in(None)
        workdays._rule_holidays.cache_clear()
