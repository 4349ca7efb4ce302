"""Reading one schedules source file (YAML or spreadsheet) safely, for every reader of the folder.

A file is looked at with ``os.stat`` before it is opened: a named pipe, a device or a socket (also
behind a symlink: ``x.yaml -> /dev/zero``) is refused without being opened (opening a pipe blocks until
someone writes to it; a device never ends), and a file over its size limit is refused without being
read. What is opened is checked again on the open descriptor (``fstat``), and at most ``limit + 1``
bytes are read: the file may be swapped or grow between the look and the read.

No PyYAML here: the snapshot cache (``bot/config/snapshot.py``) hashes files through it too.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

BLOCK = 1 << 20  # bytes read at a time (1 MiB): a file is never asked for in one huge read
_TARGET_CHARS = 200  # of a symlink's target quoted back
# O_NONBLOCK: should a pipe be swapped in after the look, opening it returns at once instead of
# waiting for a writer (it then fails the fstat check). Not on Windows, which has no pipes in folders.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)

_KINDS = ((stat.S_ISFIFO, "命名管道"), (stat.S_ISCHR, "字符设备"), (stat.S_ISBLK, "块设备"),
          (stat.S_ISSOCK, "套接字"), (stat.S_ISDIR, "文件夹"))


class NotRead(Exception):
    """A source file not read. ``str(exc)`` says why, in Chinese, for an issue at the file's line 1."""


def regular_stat(path: Path) -> os.stat_result:
    """``path``'s status (through a symlink) when it is a regular file; never opens it.

    Raises :class:`NotRead` for a special file (pipe, device, socket), a symlink whose target is
    missing, or a file that cannot be looked at (permissions)."""
    try:
        found = os.stat(path)
    except FileNotFoundError as exc:
        if path.is_symlink():
            raise NotRead(f"是一个链接，但它指向的 “{_target(path)}” 不存在，未读取；"
                          "请改正链接，或把它移出日程文件夹") from exc
        raise NotRead(cannot_read_message(exc)) from exc
    except OSError as exc:
        raise NotRead(cannot_read_message(exc)) from exc
    if not stat.S_ISREG(found.st_mode):
        raise NotRead(not_regular_message(path, found.st_mode))
    return found


def open_source(path: Path, limit: int, too_large: Callable[[int], str]) -> BinaryIO:
    """``path`` opened for reading (binary, unbuffered), once it is known to be a regular file of at
    most ``limit`` bytes; ``too_large(size in bytes)`` words the refusal of a larger one. Raises
    :class:`NotRead`. The caller closes the file (``with open_source(...) as handle``)."""
    size = regular_stat(path).st_size
    if size > limit:
        raise NotRead(too_large(size))
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:  # removed or made unreadable since the look
        raise NotRead(cannot_read_message(exc)) from exc
    handle = os.fdopen(fd, "rb", buffering=0)
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):  # swapped for a pipe or device since the look
            raise NotRead(not_regular_message(path, found.st_mode))
        if found.st_size > limit:  # grown since the look
            raise NotRead(too_large(found.st_size))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # a regular file: back to plain reads
    except BaseException:
        handle.close()
        raise
    return handle  # type: ignore[return-value]  (a FileIO is a binary file)


def read_source(path: Path, limit: int, too_large: Callable[[int], str]) -> bytes:
    """The bytes of the regular file ``path``, read only when it holds at most ``limit`` bytes, and
    never more than ``limit + 1`` of them (one more shows it grew while read). Raises :class:`NotRead`
    with the reason (``too_large(size in bytes)`` for a file over the limit)."""
    with open_source(path, limit, too_large) as handle:
        try:
            raw = read_at_most(handle, limit + 1)
        except OSError as exc:
            raise NotRead(cannot_read_message(exc)) from exc
        if len(raw) > limit:
            raise NotRead(too_large(max(len(raw), os.fstat(handle.fileno()).st_size)))
    return raw


def read_prefix(path: Path, limit: int) -> bytes:
    """Up to ``limit`` bytes from the start of the regular file ``path`` whatever its size; ``b""`` for
    a special file or one that cannot be read. For looking into a file already refused (its ids)."""
    try:
        with open_source(path, 1 << 62, str) as handle:
            return read_at_most(handle, limit)
    except (NotRead, OSError):
        return b""


def read_at_most(handle: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes from ``handle``, read a block at a time (a short read is not the end)."""
    chunks: list[bytes] = []
    left = size
    while left > 0 and (chunk := handle.read(min(left, BLOCK))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def cannot_read_message(exc: OSError) -> str:
    return f"无法读取文件（{exc.strerror or type(exc).__name__}）"


def not_regular_message(path: Path, mode: int) -> str:
    """Why a pipe, device or socket (``mode``: its ``st_mode``) named like a schedules file was not read."""
    kind = next((word for test, word in _KINDS if test(mode)), "特殊文件")
    link = f"，是指向 “{_target(path)}” 的链接" if path.is_symlink() else ""
    return (f"不是普通文件（{kind}{link}），未读取；日程文件夹中只应放日程文件和人员、单位表格，"
            "请把它移出日程文件夹")


def _target(path: Path) -> str:
    """A symlink's target as written in it, shortened to :data:`_TARGET_CHARS` characters."""
    try:
        target = os.readlink(path)
    except OSError:
        return "？"
    return target if len(target) <= _TARGET_CHARS else target[:_TARGET_CHARS] + "……"
