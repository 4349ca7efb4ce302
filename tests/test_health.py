"""`/healthz` tells whether sending can work, and a database that cannot be used at start says so plainly.

Real `remindbot serve` subprocesses on loopback; the schema is damaged from outside with sqlite3,
as an operator's mistake or a half-applied upgrade would.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from typing import Any

import pytest

from storage import migrate
from tests.servehelp import Service, Workspace, free_port, wait_until

UNHEALTHY_WITHIN = 10.0  # seconds: /healthz must notice at its next request, this is a generous bound


def damage(workspace: Workspace, *statements: str) -> None:
    with sqlite3.connect(workspace.database) as conn:
        for statement in statements:
            conn.execute(statement)


def wait_unhealthy(service: Service) -> dict[str, Any]:
    def failing() -> dict[str, Any] | None:
        status, body = service.health()
        return body if status == 503 else None

    body = wait_until(failing, "/healthz answering 503", timeout=UNHEALTHY_WITHIN)
    assert body["status"] == "error"
    return body  # type: ignore[no-any-return]


def test_healthz_shows_each_check_when_sending_can_work(service: Service) -> None:
    status, body = service.health()
    assert status == 200 and body["status"] == "ok"
    checks = body["checks"]
    assert checks["database"]["ok"] and checks["schema"]["ok"]
    assert checks["schema"]["version"] == checks["schema"]["head"] == migrate.head()
    for loop in ("scheduler", "dispatcher"):
        assert checks[loop]["ok"] and checks[loop]["age_seconds"] <= checks[loop]["limit_seconds"]
    assert checks["reload"]["ok"] is True


def test_healthz_answers_503_when_a_table_is_dropped(service: Service, workspace: Workspace) -> None:
    damage(workspace, "DROP TABLE nudge")
    body = wait_unhealthy(service)
    assert body["checks"]["schema"]["missing"] == ["nudge"]
    assert "缺少 nudge" in body["checks"]["schema"]["message"]


def test_healthz_answers_503_when_a_column_is_missing(service: Service, workspace: Workspace) -> None:
    damage(workspace, "ALTER TABLE delivery_attempt DROP COLUMN detail")
    body = wait_unhealthy(service)
    assert body["checks"]["schema"]["missing"] == ["delivery_attempt.detail"]


def test_healthz_answers_503_when_the_schema_is_behind(service: Service, workspace: Workspace) -> None:
    damage(workspace, "DELETE FROM alembic_version")  # as if no migration had been applied
    body = wait_unhealthy(service)
    assert body["checks"]["schema"]["version"] is None
    assert "remindbot db upgrade" in body["checks"]["schema"]["message"]


def test_healthz_answers_503_when_every_table_is_gone(service: Service, workspace: Workspace) -> None:
    with sqlite3.connect(workspace.database) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        conn.execute("PRAGMA foreign_keys = OFF")
        for table in tables:
            conn.execute(f'DROP TABLE "{table}"')
    body = wait_unhealthy(service)
    assert not body["checks"]["schema"]["ok"]


# ---------------------------------------------------------------- a database that cannot be used at start


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    port = free_port()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    return port


def serve_against(workspace: Workspace, url: str, wait_seconds: str = "3") -> tuple[int, str, float]:
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--port", str(free_port())],
        env=workspace.env(REMINDBOT_DATABASE_URL=url, REMINDBOT_DB_START_TIMEOUT_SECONDS=wait_seconds),
        cwd=workspace.root, capture_output=True, text=True, timeout=120, check=False,
    )
    return result.returncode, result.stdout + result.stderr, time.monotonic() - began


@pytest.mark.parametrize("user", ["remindbot:S3cret-Passw0rd", "remindbot"])
def test_an_unreachable_database_gives_one_chinese_line_retries_then_exits(workspace: Workspace, user: str) -> None:
    port = closed_port()
    code, output, took = serve_against(workspace, f"postgresql+asyncpg://{user}@127.0.0.1:{port}/remindbot")
    assert code == 1
    assert "Traceback" not in output and "S3cret-Passw0rd" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    told = [line for line in lines if "无法连接数据库" in line and "继续重试" in line]
    assert len(told) == 1, output  # one line while it retries, not one per attempt
    assert f"127.0.0.1:{port}" in told[0] and "连接被拒绝" in told[0] and "3 秒内" in told[0]
    assert "放弃启动" in lines[-1] and f"127.0.0.1:{port}" in lines[-1]
    assert took >= 3.0  # it did retry for the configured time


def test_a_malformed_database_url_is_one_chinese_line_without_a_traceback(workspace: Workspace) -> None:
    code, output, _ = serve_against(workspace, "postgres//remindbot:S3cret-Passw0rd@db")
    assert code == 1
    assert "Traceback" not in output and "S3cret-Passw0rd" not in output
    assert "REMINDBOT_DATABASE_URL 无效" in output and len(output.strip().splitlines()) == 1
