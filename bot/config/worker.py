"""Checking the schedules folder in a child process, so a reload never stalls the running service.

``check_in_worker`` starts ``python -m bot.config.worker``, sends it the folder, the templates folder
and the limits as JSON on stdin, and reads back the pickled ``(schedules or None, issues)`` on stdout.
The event loop only waits on a pipe meanwhile, so the web and the dispatcher keep answering. A check
that outlives its timeout, or a service told to stop (the awaiting task is cancelled), kills the
child: no parse, however slow, can hold the service or its shutdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import sys
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bot.config.limits import Limits
from bot.config.models import Schedules
from bot.config.yamlsource import ConfigIssue

log = logging.getLogger(__name__)
Checked = tuple[Schedules | None, list[ConfigIssue]]
# The folder holding the ``bot`` package in use: the child must run the same code as its parent.
_CODE_ROOT = Path(__file__).resolve().parent.parent.parent


async def check_in_worker(path: Path, *, templates_dir: Path | None, limits: Limits,
                          timeout: float, cache_dir: Path | None = None) -> Checked:  # noqa: ASYNC109 (the child is killed, not just left)
    """``check_schedules`` run in a child process; ``timeout`` in seconds, after which it is killed.

    Never raises for a bad folder, a crash or a timeout: each is returned as an error issue naming
    the folder. Cancelling the awaiting task kills the child. ``cache_dir``: the snapshot cache
    (bot/config/snapshot.py) the child reads and writes; None: none.
    """
    label = _label(path)
    request = json.dumps({"path": str(path), "templates": str(templates_dir) if templates_dir else None,
                          "limits": asdict(limits), "cache": str(cache_dir) if cache_dir else None})
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.config.worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_child_env())
    except OSError as exc:  # no process could be started (memory, process limit)
        return None, [ConfigIssue(label, 1, 1, "", f"无法启动检查日程配置的子进程（{exc.strerror or exc}）")]
    try:
        out, err = await asyncio.wait_for(process.communicate(request.encode()), timeout)
    except TimeoutError:
        return None, [ConfigIssue(label, 1, 1, "", f"检查日程配置超过 {timeout:g} 秒仍未完成，已放弃"
                                  "（文件是否过大？上限可用 REMINDBOT_RELOAD_TIMEOUT_SECONDS 调整）")]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0 or not out:
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["（无输出）"]
        log.error("检查日程配置的子进程异常退出（退出码 %s）：%s", process.returncode, last[0][:300])
        why = "（被系统终止，可能是内存不足：文件是否过大？）" if process.returncode in (-9, 137) else ""
        return None, [ConfigIssue(label, 1, 1, "", f"检查日程配置时子进程异常退出（退出码 {process.returncode}）{why}，"
                                  "请查看服务日志")]
    # Rebuilding a large folder's models takes a moment: off the loop too (pydantic's
    # __setstate__ is Python code, so the loop's thread gets the interpreter in between).
    result: Checked = await asyncio.to_thread(pickle.loads, out)
    return result


def _label(path: Path) -> str:
    """The folder as other issues name files: relative to its parent (``schedules``), never absolute."""
    return path.name or str(path)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_CODE_ROOT), env.get("PYTHONPATH", "")]))
    return env


def main() -> None:
    """The child: read the request on stdin, write the pickled result on stdout."""
    from bot.config.snapshot import check_cached

    request: dict[str, Any] = json.loads(sys.stdin.buffer.read())
    templates, cache, path = request["templates"], request.get("cache"), Path(request["path"])
    try:
        result: Checked = check_cached(path, templates_dir=Path(templates) if templates else None,
                                       limits=Limits(**request["limits"]), cache_dir=Path(cache) if cache else None)
    except Exception as exc:  # a bug in a check: an error the admin sees (the traceback goes to the log)
        traceback.print_exc(file=sys.stderr)
        result = None, [ConfigIssue(_label(path), 1, 1, "", f"检查日程配置时出错（{type(exc).__name__}），"
                                    "配置未生效；请查看服务日志，并运行 remindbot validate 检查")]
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
