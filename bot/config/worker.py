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
READING_MARK = b"remindbot-check-reading: "  # the child's progress lines on stderr, one per file


async def check_in_worker(path: Path, *, templates_dir: Path | None, limits: Limits,
                          timeout: float, cache_dir: Path | None = None) -> Checked:  # noqa: ASYNC109 (the child is killed, not just left)
    """``check_schedules`` run in a child process; ``timeout`` in seconds, after which it is killed.

    Never raises for a bad folder, a crash or a timeout: each is returned as an error issue naming
    the folder (a timeout: the file the child was checking, :func:`timed_out`). Cancelling the
    awaiting task kills the child. ``cache_dir``: the snapshot cache (bot/config/snapshot.py) the
    child reads and writes; None: none.
    """
    label = _label(path)
    progress = _Progress()
    request = json.dumps({"path": str(path), "templates": str(templates_dir) if templates_dir else None,
                          "limits": asdict(limits), "cache": str(cache_dir) if cache_dir else None})
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.config.worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_child_env())
    except OSError as exc:  # no process could be started (memory, process limit)
        return None, [ConfigIssue(label, 1, 1, "", f"无法启动检查日程配置的子进程（{exc.strerror or exc}）")]
    try:
        out, err = await asyncio.wait_for(_exchange(process, request.encode(), progress), timeout)
    except TimeoutError:
        return None, [timed_out(path, progress.file, timeout, limits)]
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


class _Progress:
    """The last file (or the folder, for the checks across files) the child said it turned to."""

    def __init__(self) -> None:
        self.file: Path | None = None
        self.errors = bytearray()  # the child's stderr without the progress lines
        self._pending = b""

    def feed(self, chunk: bytes) -> None:
        """Take a piece of the child's stderr: progress lines are remembered, the rest kept for the log."""
        lines = (self._pending + chunk).split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            if line.startswith(READING_MARK):
                self.file = Path(os.fsdecode(line.removeprefix(READING_MARK)))
            else:
                self.errors += line + b"\n"

    def end(self) -> bytes:
        """The child's stderr without the progress lines, once it is closed."""
        if self._pending:
            self.feed(b"\n")
        return bytes(self.errors)


async def _exchange(process: asyncio.subprocess.Process, request: bytes, progress: _Progress) -> tuple[bytes, bytes]:
    """``process.communicate(request)``, the child's stderr read as it comes so that ``progress`` knows
    what the child was checking should it be killed (communicate keeps it until the end)."""
    stdin, stdout, stderr = process.stdin, process.stdout, process.stderr
    assert stdin is not None and stdout is not None and stderr is not None  # all three are pipes

    async def errors() -> bytes:
        while chunk := await stderr.read(65536):
            progress.feed(chunk)
        return progress.end()

    async def send() -> None:
        try:
            stdin.write(request)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the child died first: its exit code and stderr say why
        finally:
            stdin.close()

    out, err, _ = await asyncio.gather(stdout.read(), errors(), send())
    await process.wait()
    return out, err


# A file whose check outlives the timeout is "too large" only from this share of its size limit on.
NEAR_LIMIT = 0.75


def timed_out(folder: Path, file: Path | None, timeout: float, limits: Limits) -> ConfigIssue:
    """The error for a check killed after ``timeout`` seconds, at the file it was checking (``file``;
    None: before the first, or the folder: the checks across files). "文件过大" only for a file near its
    size limit: a smaller one holds something slow to check, and saying "too large" would mislead."""
    raise_it = "（检查时限可用 REMINDBOT_RELOAD_TIMEOUT_SECONDS 调整）"
    if file is None or (file == folder and not folder.is_file()):
        return ConfigIssue(_label(folder), 1, 1, "", f"检查日程配置超过 {timeout:g} 秒仍未完成，已放弃{raise_it}")
    from bot.config.yamlsource import file_label  # PyYAML: only once a check has timed out

    label = file_label(file, folder)  # as other issues name it (schedules/people.yaml)
    try:
        size = file.stat().st_size
    except OSError:  # removed meanwhile
        size = None
    from bot.config.limits import megabytes
    from bot.config.sheets import is_sheet

    bound = limits.sheet_bytes if is_sheet(file) else limits.file_bytes
    said = f"检查这个文件超过 {timeout:g} 秒仍未完成，已放弃"
    if size is not None and size >= bound * NEAR_LIMIT:
        return ConfigIssue(label, 1, 1, "", f"{said}：文件过大（{megabytes(size)}，接近上限 {megabytes(bound)}），"
                           f"请拆分或精简文件{raise_it}")
    shown = f"（文件 {megabytes(size)}，未接近上限 {megabytes(bound)}）" if size is not None else ""
    return ConfigIssue(label, 1, 1, "", f"{said}{shown}：请检查其中是否有异常的内容，"
                       f"如极长的一行、大量未成对的括号或引号，可运行 remindbot validate 查看{raise_it}")


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
                                       limits=Limits(**request["limits"]), cache_dir=Path(cache) if cache else None,
                                       reading=_announce)
    except Exception as exc:  # a bug in a check: an error the admin sees (the traceback goes to the log)
        traceback.print_exc(file=sys.stderr)
        result = None, [ConfigIssue(_label(path), 1, 1, "", f"检查日程配置时出错（{type(exc).__name__}），"
                                    "配置未生效；请查看服务日志，并运行 remindbot validate 检查")]
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()


def _announce(file: Path) -> None:
    """Tell the parent, on stderr, which file the check turns to (read back by _Progress)."""
    sys.stderr.buffer.write(READING_MARK + os.fsencode(file) + b"\n")
    sys.stderr.buffer.flush()


if __name__ == "__main__":
    main()
