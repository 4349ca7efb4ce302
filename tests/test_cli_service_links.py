"""``remindbot link`` / ``leader-link`` in a second terminal build links on the running service's
address (trial 12): the service was started with its own port, the command's environment has no
PORT and no REMINDBOT_BASE_URL. A real ``serve`` process and real commands on one SQLite file."""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import urlsplit

from tests.servehelp import Service, Workspace


def leader_link(workspace: Workspace, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", "leader-link", "zhao_ming"], env=workspace.env(**env),
                          cwd=workspace.root, capture_output=True, text=True, timeout=120, check=False)


def printed_url(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if "/l/" in line)


def test_leader_link_in_another_terminal_points_to_the_running_services_port(service: Service) -> None:
    assert service.port != 8080
    done = leader_link(service.workspace)

    assert done.returncode == 0, done.stderr
    url = printed_url(done.stdout)
    assert url.startswith(f"http://127.0.0.1:{service.port}/l/"), done.stdout
    assert "取自正在运行的服务" in done.stdout
    status, page = service.get(urlsplit(url).path)  # the leader can open it
    assert status == 200 and "赵明同志分管单位" in page, page[:500]


def test_a_base_url_set_for_the_command_wins_over_the_services(service: Service) -> None:
    done = leader_link(service.workspace, REMINDBOT_BASE_URL="https://remind.example.org/")

    assert printed_url(done.stdout).startswith("https://remind.example.org/l/"), done.stdout
    assert "取自正在运行的服务" not in done.stdout and "没有找到正在运行的服务" not in done.stdout


def test_without_a_running_service_the_command_says_which_address_it_assumed(workspace: Workspace) -> None:
    service = Service.start(workspace)
    try:
        service.wait_ready()
    finally:
        assert service.stop() == 0  # a clean stop removes its heartbeat
    done = leader_link(workspace)

    assert done.returncode == 0, done.stderr
    assert printed_url(done.stdout).startswith("http://127.0.0.1:8080/l/")
    assert "没有找到正在运行的服务" in done.stdout and "链接按默认地址 http://127.0.0.1:8080 生成" in done.stdout
    assert "REMINDBOT_BASE_URL" in done.stdout
