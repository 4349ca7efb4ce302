"""A real ``remindbot serve`` process takes a WeCom reply: fire, reply over loopback, ``status``.

The shipped schedules plus an ``apps:`` file; 王芳 (WeCom userid ``WangFang``) replies in the app
chat; the answer is WeCom's encrypted passive reply, and ``remindbot status`` (another process)
shows the confirmation via chat with its note. The service still stops within seconds.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
import uuid
import xml.etree.ElementTree as ET

from bot.confirming.inbound import short_code
from tests.fakes import chat
from tests.servehelp import Service, Workspace

TOKEN = "serve-wecom-token"
KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
CORP = "ww-serve-corp"
APPS = f"""apps:
  - id: gw-app
    platform: wecom
    corp_id: {CORP}
    token: {TOKEN}
    encoding_aes_key: {KEY}
"""


def run(workspace: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], env=workspace.env(), cwd=workspace.root,
                          capture_output=True, text=True, timeout=120, check=False)


def test_serve_records_a_wecom_reply_and_status_shows_it(workspace: Workspace) -> None:
    (workspace.schedules / "apps.yaml").write_text(APPS, encoding="utf-8")
    fired = run(workspace, "fire", "study-day", "--date", "2026-11-06", "--yes")
    assert fired.returncode == 0, fired.stderr
    occurrence = int(re.findall(r"记录号 (\d+)", run(workspace, "status", "study-day").stdout)[0])

    service = Service.start(workspace)
    try:
        service.wait_ready()
        inner = chat.wecom_app_xml("WangFang", f"已完成 {short_code(occurrence)} 参加23人", uuid.uuid4().hex, CORP)
        query, body = chat.wecom_post(TOKEN, KEY, CORP, inner, str(int(time.time())))
        request = urllib.request.Request(f"http://127.0.0.1:{service.port}/callback/wecom/gw-app?{query}",
                                         data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            reply = ET.fromstring(response.read().decode())
        plain, corp = chat.wecom_decrypt(KEY, reply.findtext("Encrypt") or "")
        assert corp == CORP
        answer = ET.fromstring(plain).findtext("Content") or ""
        assert "已登记 王芳" in answer and "参加23人" in answer
        assert TOKEN not in service.output() and KEY not in service.output()
    finally:
        assert service.stop() == 0
        service.kill()
    assert service.stopped_in is not None and service.stopped_in < 10

    shown = run(workspace, "status", "study-day")
    wang = next(line for line in shown.stdout.splitlines() if "王芳" in line)
    assert "群内回复" in wang and "参加23人" in wang
