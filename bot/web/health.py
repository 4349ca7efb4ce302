"""``/healthz`` (can this instance send?) and ``/metrics`` (Prometheus text).

``/healthz`` answers 200 only when sending can work: the database answers, its schema is the one
this code needs (recorded revision == newest, and every table and column present), and the
scheduler's and dispatcher's loops have ticked within ``REMINDBOT_HEALTH_STALE_SECONDS``. Otherwise
503. The JSON body shows each check. A refused schedules reload is reported but is not a 503: the
last good schedules keep running.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.metrics import REGISTRY, refresh_from_database
from bot.runtime import Runtime
from bot.web.common import runtime_of
from storage import migrate

log = logging.getLogger(__name__)

REQUIRED_LOOPS = ("scheduler", "dispatcher")  # without these nothing is sent
CHECK_TIMEOUT_SECONDS = 5.0  # a database that does not answer within this is "unreachable"


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


def loop_check(last: datetime | None, now: datetime, bound: float) -> dict[str, Any]:
    """A loop is alive when its last tick (aware UTC) is at most ``bound`` seconds old."""
    if last is None:
        return {"ok": False, "last_tick": None, "message": "未运行"}
    age = (now - last).total_seconds()
    ok = age <= bound
    return {"ok": ok, "last_tick": _iso(last), "age_seconds": round(age, 1), "limit_seconds": bound,
            **({} if ok else {"message": f"已 {age:.0f} 秒没有运行（上限 {bound:g} 秒）"})}


async def database_checks(runtime: Runtime) -> dict[str, dict[str, Any]]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            state = await migrate.state(runtime.db.engine, runtime.db.schema)
    except Exception as exc:  # any failure means "not healthy"; the reason is logged, not shown
        log.warning("健康检查：数据库无法连接（%s）", type(exc).__name__)
        return {"database": {"ok": False, "message": "数据库无法连接"},
                "schema": {"ok": False, "message": "数据库无法连接，无法检查结构"}}
    if not state.ok:
        log.warning("健康检查：%s", state.describe())
    return {"database": {"ok": True}, "schema": state.as_json()}


async def healthz(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    now = runtime.clock()
    checks = await database_checks(runtime)
    bound = runtime.settings.health_stale_seconds
    for name in sorted({*REQUIRED_LOOPS, *runtime.ticks}):
        checks[name] = loop_check(runtime.ticks.get(name), now, bound)
    if runtime.settings.dry_run:  # a rehearsal sends nothing: no dispatcher runs, by design
        checks["dispatcher"] = {"ok": True, "last_tick": None, "message": "演练模式：不发送消息"}
    reload = runtime.reload
    # The count only: the error text quotes people's names, mobiles and units, and /healthz needs
    # no login; the details stay behind the admin login (banner, admin pages).
    checks["reload"] = {"ok": reload.ok, "since": _iso(reload.since), "error_count": len(reload.errors),
                        "last_good_at": _iso(reload.last_good_at)}
    ok = all(checks[name]["ok"] for name in ("database", "schema", *REQUIRED_LOOPS))
    body = {
        "status": "ok" if ok else "error",
        "database": "ok" if checks["database"]["ok"] else "unreachable",
        "reminders": len(runtime.schedules.reminders),
        "time": _iso(now),
        **schedules_health(runtime),
        "checks": checks,
    }
    return web.json_response(body, status=200 if ok else 503, dumps=_dumps)


def schedules_health(runtime: Runtime) -> dict[str, Any]:
    """``schedules``: "ok" or "error since <UTC ISO>" (the last reload was refused; the last good
    schedules still run, so the status stays 200) and ``schedule_errors``: how many errors."""
    state = runtime.reload
    if state.ok:
        return {"schedules": "ok", "schedule_errors": 0}
    return {"schedules": f"error since {_iso(state.since) or '?'}", "schedule_errors": len(state.errors)}


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format. Open without login (only counts with low-cardinality labels);
    ``REMINDBOT_METRICS_ENABLED=false`` turns it off (404)."""
    runtime = runtime_of(request)
    if not runtime.settings.metrics_enabled:
        raise web.HTTPNotFound()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await refresh_from_database(runtime.db, runtime.clock())
    except Exception as exc:  # the counters are still worth serving
        log.warning("metrics: database unreachable (%s)", type(exc).__name__)
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})
