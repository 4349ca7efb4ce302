"""Writing a command's ``--output`` file: a path that cannot be written is a Chinese error naming it."""

from __future__ import annotations

import errno
from pathlib import Path

import click

# errno -> why, in words an admin acts on (the OS's own text is English)
_WHY = {
    errno.ENOENT: "所在的文件夹不存在",
    errno.ENOTDIR: "路径中有一段不是文件夹",
    errno.EACCES: "没有写入权限",
    errno.EPERM: "没有写入权限",
    errno.EISDIR: "这是一个文件夹，请写文件名",
    errno.EROFS: "文件系统是只读的",
    errno.ENOSPC: "磁盘空间不足",
    errno.ENAMETOOLONG: "文件名太长",
}


def write_output(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``; when that fails, say so in Chinese (the path and why) and exit 1."""
    try:
        path.write_bytes(data)
    except OSError as exc:
        why = _WHY.get(exc.errno or 0) or exc.strerror or type(exc).__name__
        click.echo(f"无法写入 {path}：{why}。请换一个可以写入的路径（-o/--output）。", err=True)
        raise SystemExit(1) from None
