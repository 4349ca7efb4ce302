"""A real ``remindbot serve``: no token in any log line, a short admin password refused, exposure warned.

Tokens are signed with the service's real link key (its secret key and its database's nonce), sent
the ways a link can arrive broken: a request line and a header over aiohttp's 8190-byte limit
(aiohttp logs the first 100 bytes of such a line), and an ordinary open of the link.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys

import pytest
from servehelp import ROOT, STARTED, Service, Workspace, free_port

from bot.confirming.tokens import make_token
from storage.db import Database

SECRET_KEY = "serve-safety-secret-key-0001"


def raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


async def real_token(workspace: Workspace) -> str:
    db = Database(f"sqlite+aiosqlite:///{workspace.database}")
    await db.start()
    try:
        nonce = await db.instance_nonce()
    finally:
        await db.stop()
    return make_token(f"{SECRET_KEY}:{nonce}", 1, "wang_fang")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_token_reaches_any_log_line_even_from_an_over_long_request(workspace: Workspace, log_format: str) -> None:
    service = Service.start(workspace, env={"REMINDBOT_SECRET_KEY": SECRET_KEY,
                                            "REMINDBOT_LOG_FORMAT": log_format})
    try:
        service.wait_ready()
        token = asyncio.run(real_token(workspace))
        lines = [
            f"GET /c/{token}?from=chat&pad={'a' * 9000} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            f"GET /healthz HTTP/1.1\r\nHost: x\r\nReferer: https://x/c/{token}{'b' * 9000}\r\n"
            "Connection: close\r\n\r\n",
            f"G@T /c/{token} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            f"GET /c/{token} HTTP/1.1\r\nHost: x\r\nBad Header: {token}\r\nConnection: close\r\n\r\n",
            f"GET /c/{token} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ]
        for line in lines:
            answer = raw_request(service.port, line.encode())
            assert answer.startswith(b"HTTP/1."), answer[:200]
            assert token.encode() not in answer.split(b"\r\n\r\n", 1)[0]
        service.stop()  # each refusal is logged before its answer is written; stopping flushes the rest
        logged = service.stdout + service.stderr
        for part in (token, token.split(".")[-1], token.split(".")[0]):
            assert part not in logged, f"{part[:12]}… in the log:\n{logged[-3000:]}"
        assert "Traceback" not in logged
        assert "拒绝了来自 127.0.0.1 的无法解析的请求" in logged
        if log_format == "json":
            assert all(json.loads(line)["message"] for line in service.stdout.splitlines() if line)
    finally:
        service.kill()


def test_serve_refuses_an_admin_password_shorter_than_12_characters(workspace: Workspace) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--port", str(free_port())], cwd=ROOT, capture_output=True,
        text=True, env=workspace.env(REMINDBOT_ADMIN_PASSWORD="short-pw-11"), timeout=30, check=False,
    )
    assert result.returncode == 1
    assert "管理后台密码至少需要 12 个字符" in result.stderr
    assert "short-pw-11" not in result.stdout + result.stderr


def test_serve_warns_when_listening_everywhere_without_an_https_base_url(workspace: Workspace) -> None:
    service = Service.start(workspace, env={"REMINDBOT_HOST": "0.0.0.0"})
    try:
        service.wait_ready()
        service.wait_for_log(STARTED)
        assert service.stdout.count("正在监听所有网络地址（0.0.0.0）") == 1  # logged once, as soon as the port is bound
        assert "TLS 反向代理" in service.stdout
        # Counted with the other configuration warnings, and shown under 注意 on the admin pages.
        status, metrics = service.get("/metrics")
        assert status == 200 and 'remindbot_config_warnings{kind="host"} 1.0' in metrics, metrics
        assert "注意：</strong>正在监听所有网络地址（0.0.0.0）" in service.upcoming_page()
    finally:
        service.kill()


def test_serve_does_not_warn_behind_https_or_on_loopback(workspace: Workspace) -> None:
    for env in ({"REMINDBOT_HOST": "0.0.0.0", "REMINDBOT_BASE_URL": "https://dj.example.gov.cn"}, {}):
        service = Service.start(workspace, env=env)
        try:
            service.wait_ready()
            service.wait_for_log(STARTED)
            assert "正在监听所有网络地址" not in service.stdout
            assert 'remindbot_config_warnings{kind="host"} 0.0' in service.get("/metrics")[1]
        finally:
            service.kill()
