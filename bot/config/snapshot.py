"""The validated schedules, kept under ``var/cache/`` so they are parsed once, not once per command.

Two levels, both keyed by content hashes, never by timestamps:

- **Snapshot**: the whole validated result ``(Schedules, warnings)``, keyed by the code version, the
  limits, the folder, every file's path and SHA-256 (plus the values of the ``${VAR}``s it names),
  and the message templates' hashes. Every command and the service start from it: with nothing
  changed, a command unpickles one file instead of parsing and validating the folder.
- **Per YAML file**: each file's parsed document (node tree with line numbers), its validated entries
  and the issues they raised, keyed by the same things for that one file. When a file changes, only
  it is parsed and validated again; the cross-file steps (merge, references, sense checks, templates)
  run over the cached pieces. Spreadsheets are not kept per file: the csv module reads 100,000 rows
  (and pydantic validates them) faster than pickle could bring them back (measured: 2.8 s against 7.6 s).

The cyclic garbage collector is paused while a check runs or a snapshot is unpickled (``bot/config/gcpause.py``):
those build a million objects and no cycles, and the collector's repeated walks of the growing heap
tripled the time (unpickling the 100,000-people snapshot: 9.6 s with it, 2.5 s without).

Both are pickles written atomically (temporary file, then rename, mode 0600: they hold the
webhooks as substituted from the environment, like the database beside them). A cache entry that
cannot be read (truncated, from other code, anything) is deleted and the folder is checked afresh:
the cache can make a command faster, never wrong. ``REMINDBOT_SCHEDULES_CACHE=false`` turns it off.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bot
from bot.config.gcpause import no_gc
from bot.config.issues import _ENV_RE, ConfigError, ConfigIssue, schedule_files
from bot.config.limits import Limits
from bot.config.models import Schedules

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)
Checked = tuple[Schedules | None, list[ConfigIssue]]
_CODE = Path(__file__).resolve().parent.parent  # the bot package
KEEP_SNAPSHOTS = 3
BLOCK = 1 << 20  # bytes read at a time to hash a file
FILE_ENTRY_DAYS = 7.0  # per-file entries unused this long are removed


@dataclass
class Stats:
    """What the last checks in this process did (for tests and logs): files parsed, snapshot hits."""

    parsed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    snapshot_hits: int = 0
    ignored: int = 0  # unreadable cache entries, deleted


STATS = Stats()


@cache
def code_version() -> str:
    """A hash of the code that decides what a valid snapshot is (config, platforms, templates' checks)."""
    return code_digest(_CODE)


def code_digest(package: Path) -> str:
    """24 hex digits over the version and every ``.py`` under ``package``'s ``config/`` and
    ``platforms/`` (each platform's folder included: its ``config.py`` holds YAML models) and
    ``delivery/render.py``, each by its path relative to ``package``."""
    digest = hashlib.sha256(bot.__version__.encode())
    for folder in ("config", "platforms"):
        for source in sorted((package / folder).rglob("*.py")):
            digest.update(source.relative_to(package).as_posix().encode() + source.read_bytes())
    digest.update((package / "delivery" / "render.py").read_bytes())
    return digest.hexdigest()[:24]


def cache_dir_for(var_dir: Path, enabled: bool = True) -> Path | None:
    return var_dir / "cache" if enabled else None


def check_cached(path: Path, *, cache_dir: Path | None, env: Mapping[str, str] | None = None,
                 templates_dir: Path | None = None, limits: Limits | None = None) -> Checked:
    """``check_schedules`` through the cache in ``cache_dir`` (None: no cache). Same result, same issues."""
    with no_gc():
        return _check_cached(path, cache_dir=cache_dir, env=env, templates_dir=templates_dir, limits=limits)


def _check_cached(path: Path, *, cache_dir: Path | None, env: Mapping[str, str] | None,
                  templates_dir: Path | None, limits: Limits | None) -> Checked:
    limits = limits or Limits()
    env = os.environ if env is None else env
    if cache_dir is None or not path.exists():
        return _check(path, env=env, templates_dir=templates_dir, limits=limits)
    files = schedule_files(path)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        key = _snapshot_key(path, files, env, templates_dir, limits)
    except OSError as exc:
        log.warning("日程配置缓存不可用（%s），直接检查", exc.strerror or exc)
        return _check(path, env=env, templates_dir=templates_dir, limits=limits)
    where = cache_dir / f"snapshot-{key}.pickle"
    found = _read(where)
    if isinstance(found, tuple) and len(found) == 2 and isinstance(found[0], Schedules):
        STATS.snapshot_hits += 1
        return found
    files_cache = FileCache(cache_dir, env, limits)
    result = _check(path, env=env, templates_dir=templates_dir, limits=limits, cache=files_cache)
    if result[0] is not None:
        _write(where, result)
        _prune(cache_dir, "snapshot-*.pickle", keep=KEEP_SNAPSHOTS)
    files_cache.prune()
    return result


def _check(path: Path, **kwargs: Any) -> Checked:
    """``check_schedules``, imported only when the snapshot cannot answer (the loader, sheets, Jinja2)."""
    from bot.config.loader import check_schedules

    return check_schedules(path, **kwargs)


def load_for(settings: Settings) -> Schedules:
    """The service's schedules (folder, templates, limits and cache as the settings say). Raises ConfigError."""
    schedules, issues = check_for(settings)
    if schedules is None:
        raise ConfigError([i for i in issues if not i.warning] or issues)
    return schedules


def check_for(settings: Settings, path: Path | None = None, templates_dir: Path | None = None) -> Checked:
    from bot.scheduling.workdays import keep_rule_holidays_in

    cache_dir = cache_dir_for(settings.var_dir, settings.schedules_cache)
    keep_rule_holidays_in(cache_dir)  # the calendar's computed years beside the snapshot
    return check_cached(path or settings.schedules_dir, cache_dir=cache_dir,
                        templates_dir=templates_dir or settings.templates_dir, limits=Limits.from_settings(settings))


def _snapshot_key(path: Path, files: list[Path], env: Mapping[str, str], templates_dir: Path | None,
                  limits: Limits) -> str:
    digest = hashlib.sha256(f"{code_version()}|{path.resolve()}|{sorted(asdict(limits).items())}".encode())
    buffer = bytearray(BLOCK)
    for file in files:
        digest.update(f"|{file}|".encode() + _file_key(file, env, buffer).encode())
    if templates_dir is not None:
        digest.update(f"|templates:{templates_dir.resolve()}".encode())
        if templates_dir.is_dir():
            for template in sorted(templates_dir.rglob("*")):
                if template.is_file():
                    digest.update(f"|{template.relative_to(templates_dir)}|".encode() + template.read_bytes())
    return digest.hexdigest()[:40]


def _file_key(file: Path, env: Mapping[str, str], buffer: bytearray) -> str:
    """:func:`_content_key` of a file's bytes, read a block at a time into ``buffer``: a province's 6 MB
    of sheets are hashed without a copy of each file in memory (its new pages cost more than the hash).
    A file with a ``$`` anywhere is read whole, for the names of its ``${VAR}``s."""
    digest = hashlib.sha256()
    view = memoryview(buffer)
    with file.open("rb", buffering=0) as handle:
        while size := handle.readinto(buffer):
            if buffer.find(b"$", 0, size) >= 0:
                return _content_key(file.read_bytes(), env)
            digest.update(view[:size])
    return digest.hexdigest()


def _content_key(raw: bytes, env: Mapping[str, str]) -> str:
    """The file's hash and the environment values its ``${VAR}``s take (YAML only substitutes them)."""
    digest = hashlib.sha256(raw)
    if b"$" in raw and b"${" in raw:  # a byte is looked for at memory speed, two at a fifth of it (6 MB: 5 ms)
        names = sorted(set(_ENV_RE.findall(raw.decode("utf-8", "replace"))))
        for name, _ in names:
            digest.update(f"|{name}={env.get(name)!r}".encode())
    return digest.hexdigest()


class FileCache:
    """Per-file results for ``check_schedules``: a file's doc, validated entries and their issues."""

    def __init__(self, folder: Path, env: Mapping[str, str], limits: Limits) -> None:
        self.folder, self.env, self.limits = folder, env, limits
        self.used: set[Path] = set()

    def key(self, path: Path, label: str, extra: str = "") -> Path | None:
        try:
            raw = path.read_bytes()
        except OSError:
            return None
        text = f"{code_version()}|{label}|{sorted(asdict(self.limits).items())}|{extra}|{_content_key(raw, self.env)}"
        return self.folder / f"file-{hashlib.sha256(text.encode()).hexdigest()[:40]}.pickle"

    def get(self, where: Path | None, label: str) -> Any:
        found = _read(where) if where is not None else None
        if found is not None:
            assert where is not None
            self.used.add(where)
            STATS.reused.append(label)
        else:
            STATS.parsed.append(label)
        return found

    def put(self, where: Path | None, value: Any) -> None:
        if where is not None:
            _write(where, value)
            self.used.add(where)

    def prune(self) -> None:
        now = time.time()
        for entry in self.folder.glob("file-*.pickle"):
            try:
                if entry in self.used:
                    os.utime(entry)
                elif now - entry.stat().st_mtime > FILE_ENTRY_DAYS * 86400:
                    entry.unlink()
            except OSError:
                continue


def _read(where: Path) -> Any:
    """A cache entry, or None when absent; an unreadable one is deleted and counted.

    Streamed from the file (not read into one bytes object first): 30 MB less at the peak."""
    try:
        handle = where.open("rb")
    except OSError:
        return None
    try:
        with handle:
            if handle.readline() != code_version().encode() + b"\n":
                raise ValueError("written by other code")
            return pickle.load(handle)
    except Exception as exc:  # whatever is wrong with it, it is only a cache
        STATS.ignored += 1
        log.warning("忽略无法读取的日程配置缓存 %s（%s），重新检查", where.name, type(exc).__name__)
        where.unlink(missing_ok=True)
        return None


def _write(where: Path, value: Any) -> None:
    try:
        body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        with tempfile.NamedTemporaryFile(dir=where.parent, prefix=".tmp-", delete=False) as handle:
            handle.write(code_version().encode() + b"\n" + body)
        os.chmod(handle.name, 0o600)
        os.replace(handle.name, where)
    except (OSError, pickle.PicklingError, RecursionError, TypeError) as exc:
        log.warning("无法写入日程配置缓存（%s）", exc)


def _prune(folder: Path, pattern: str, *, keep: int) -> None:
    entries = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in entries[keep:]:
        stale.unlink(missing_ok=True)
