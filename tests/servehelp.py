"""Run ``remindbot serve`` as a real subprocess on loopback, against copies of the shipped folders.

Loaded as a pytest plugin (see conftest.py): the ``workspace`` and ``service`` fixtures are here.

Every wait polls with a deadline instead of sleeping a fixed time: a slow machine only makes a test
slower, never wrong, and a broken service fails within the bound instead of hanging the suite.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
WAIT_SECONDS = 20.0
# A reload is a check in a child process (a Python start, the folder read and validated): 1 s on a quiet
# machine, 9 s measured with two CPU burners beside the suite on 2 cores. The service itself gives the
# check Settings.reload_timeout_seconds (60 s) before abandoning it; a test waits as long as the service would.
RELOAD_WAIT_SECONDS = 60.0
POLL_SECONDS = 0.05
ADMIN_USER = "admin"
ADMIN_PASSWORD = "test-admin-password"
RELOADED = "日程配置已重新加载"
REFUSED = "未生效；继续使用上一次有效的配置"
STARTED = "remindbot 已启动"
STOPPING = "正在停止"
STOPPED = "已停止"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for: {what}")
        time.sleep(POLL_SECONDS)


@dataclass
class Workspace:
    """Copies of schedules/ and message_templates/ plus a database and var dir, all under tmp_path."""

    root: Path
    schedules: Path
    templates: Path
    database: Path
    var: Path

    @classmethod
    def create(cls, tmp_path: Path) -> Workspace:
        schedules = tmp_path / "schedules"
        templates = tmp_path / "message_templates"
        shutil.copytree(ROOT / "schedules", schedules)
        shutil.copytree(ROOT / "message_templates", templates)
        return cls(tmp_path, schedules, templates, tmp_path / "x.db", tmp_path / "var")

    def env(self, **extra: str) -> dict[str, str]:
        """The parent's environment without any remindbot setting, pointed at this workspace."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDBOT_") and k != "PORT"}
        env.update(
            REMINDBOT_DATABASE_URL=f"sqlite+aiosqlite:///{self.database}",
            REMINDBOT_SCHEDULES_DIR=str(self.schedules),
            REMINDBOT_TEMPLATES_DIR=str(self.templates),
            REMINDBOT_VAR_DIR=str(self.var),
            REMINDBOT_HOST="127.0.0.1",
            REMINDBOT_ADMIN_USER=ADMIN_USER,
            REMINDBOT_ADMIN_PASSWORD=ADMIN_PASSWORD,
            PYTHONUNBUFFERED="1",
            # `python -m bot` must run this checkout's code (a worktree's), not the installed copy.
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
        )
        env.update(extra)
        return env

    def replace(self, name: str, text: str) -> None:
        """Swap a schedules file in one rename, so the watcher never reads a half-written file."""
        staging = self.root / "staging"
        staging.mkdir(exist_ok=True)
        draft = staging / name
        draft.write_text(text, encoding="utf-8")
        os.replace(draft, self.schedules / name)

    def edit(self, name: str, old: str, new: str) -> None:
        text = (self.schedules / name).read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {name}"
        self.replace(name, text.replace(old, new, 1))

    def validate(self) -> subprocess.CompletedProcess[str]:
        """``remindbot validate`` on this workspace's schedules, as an admin would run it (from the app folder,
        so paths are printed relative to it, as the service logs them)."""
        return subprocess.run(
            [sys.executable, "-m", "bot", "validate", str(self.schedules)],
            env=self.env(), cwd=self.root, capture_output=True, text=True, timeout=60, check=False,
        )


@dataclass
class Service:
    """A running ``python -m bot serve``; its stdout and stderr go to files read while it runs."""

    workspace: Workspace
    port: int
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    stopped_in: float | None = field(default=None)

    @classmethod
    def start(cls, workspace: Workspace, *extra_args: str, name: str = "serve",
              env: dict[str, str] | None = None) -> Service:
        """Start ``serve``; ``name`` names its output files (several instances), ``env`` adds settings."""
        port = free_port()
        out = workspace.root / f"{name}.stdout"
        err = workspace.root / f"{name}.stderr"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve", "--port", str(port), *extra_args],
                env=workspace.env(**(env or {})), cwd=workspace.root, stdout=stdout, stderr=stderr,
            )
        return cls(workspace, port, process, out, err)

    # ------------------------------------------------------------ output

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def log_count(self, text: str) -> int:
        return self.stdout.count(text)

    def wait_for_log(self, text: str, count: int = 1, timeout: float | None = None) -> None:
        """Until ``text`` is logged ``count`` times; a reload's line (:data:`RELOADED`) within the reload's
        own bound (:data:`RELOAD_WAIT_SECONDS`), anything else within :data:`WAIT_SECONDS`."""
        if timeout is None:
            timeout = RELOAD_WAIT_SECONDS if text == RELOADED else WAIT_SECONDS
        wait_until(lambda: self.log_count(text) >= count or self._died(),
                   f"{count}× {text!r} in the service's stdout", timeout)
        assert self.log_count(text) >= count, f"service exited early:\n{self.output()}"

    def output(self) -> str:
        return f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"

    def _died(self) -> bool:
        return self.process.poll() is not None

    # ------------------------------------------------------------ HTTP

    def get(self, path: str, *, admin: bool = False) -> tuple[int, str]:
        """GET over loopback; returns (status, body) for error statuses too."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if admin:
            token = base64.b64encode(f"{ADMIN_USER}:{ADMIN_PASSWORD}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8")

    def health(self) -> tuple[int, dict[str, Any]]:
        status, body = self.get("/healthz")
        return status, json.loads(body)

    def upcoming_page(self) -> str:
        status, body = self.get("/admin/upcoming", admin=True)
        assert status == 200, body
        return body

    def wait_ready(self) -> None:
        """Until /healthz answers (or the process exits, which fails with its output)."""

        def answered() -> bool:
            if self._died():
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.output()}")
            try:
                return self.get("/healthz")[0] == 200
            except OSError:  # not listening yet
                return False

        wait_until(answered, f"GET /healthz on port {self.port}")

    # ------------------------------------------------------------ stopping

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit; records how long the stop took."""
        began = time.monotonic()
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"serve did not stop within {timeout:.0f} s of {sig.name}:\n"
                                 f"{self._stacks()}{self.output()}") from None
        finally:
            self.stopped_in = time.monotonic() - began
        return code

    def _stacks(self) -> str:
        """The hung process's thread stacks, where py-spy is installed (a diagnosis for CI logs)."""
        spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        if spy is None:
            return ""
        dump = subprocess.run([spy, "dump", "--pid", str(self.process.pid)], capture_output=True,
                              text=True, timeout=30, check=False)
        return f"--- py-spy dump ---\n{dump.stdout}{dump.stderr}\n"

    def kill(self) -> None:
        """Teardown: never leave a server behind, whatever the test did."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def error_lines(validate_stdout: str) -> list[str]:
    """The per-issue lines ``remindbot validate`` printed (``file:line:col: 错误 …``)."""
    return [line for line in validate_stdout.splitlines() if ": 错误" in line]


def where(path: Path, text: str) -> str:
    """``line:column`` (1-based) of the first ``text`` in a file, as validation messages print it."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text in line:
            return f"{number}:{line.index(text) + 1}"
    raise AssertionError(f"{text!r} not in {path}")


def reminder_count(folder: Path) -> int:
    """How many reminders a valid schedules folder defines (so edits to the shipped ones don't break tests)."""
    from bot.config.loader import load_schedules

    return len(load_schedules(folder, templates_dir=ROOT / "message_templates", env={}).reminders)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace.create(tmp_path)


@pytest.fixture
def service(workspace: Workspace) -> Iterator[Service]:
    running = Service.start(workspace)
    try:
        running.wait_ready()
        yield running
    finally:
        running.kill()
