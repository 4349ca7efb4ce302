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

**Last good**: per schedules folder, the snapshot of the last check that passed without errors
(validate, the service's start, a reload, any command), with the time of that check:
``last-good-<folder>.json`` names it, ``last-good-<folder>-<key>.pickle`` is that snapshot (a hard
link to it, a copy where links fail), both replaced atomically, mode 0600. When the folder has errors,
``serve`` starts on it and the read/record commands run on it (:func:`load_or_last_good`), saying so;
nothing that sends runs on it. Written by other code (a new version), it cannot be read: then there
is none, as on a first start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bot
from bot.config.dated import as_of
from bot.config.gcpause import no_gc
from bot.config.issues import _ENV_RE, YAML_SUFFIXES, ConfigError, ConfigIssue, schedule_files
from bot.config.limits import DEFAULT_SHEET_BYTES, Limits, scan
from bot.config.models import Schedules
from bot.config.sourcefile import NotRead, open_source, read_source

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
                 templates_dir: Path | None = None, limits: Limits | None = None,
                 now: datetime | None = None, reading: Callable[[Path], None] | None = None) -> Checked:
    """``check_schedules`` through the cache in ``cache_dir`` (None: no cache). Same result, same issues,
    one-off dates already past at ``now`` (default the real time) included, whenever the snapshot was made.
    ``reading``: told each file the check turns to (``check_schedules``'s), not called on a snapshot hit."""
    now = now or datetime.now(UTC)
    with no_gc():
        schedules, issues = _check_cached(path, cache_dir=cache_dir, env=env, templates_dir=templates_dir,
                                          limits=limits, now=now, reading=reading)
    return schedules, as_of(issues, schedules, now)


def _check_cached(path: Path, *, cache_dir: Path | None, env: Mapping[str, str] | None,
                  templates_dir: Path | None, limits: Limits | None, now: datetime,
                  reading: Callable[[Path], None] | None) -> Checked:
    limits = limits or Limits()
    env = os.environ if env is None else env
    if cache_dir is None or not path.exists():
        return _check(path, env=env, templates_dir=templates_dir, limits=limits, now=now, reading=reading)
    files = schedule_files(path)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        key = _snapshot_key(path, files, env, templates_dir, limits)
    except OSError as exc:
        log.warning("日程配置缓存不可用（%s），直接检查", exc.strerror or exc)
        return _check(path, env=env, templates_dir=templates_dir, limits=limits, now=now, reading=reading)
    where = cache_dir / f"snapshot-{key}.pickle"
    found = _read(where)
    if _is_checked(found):
        STATS.snapshot_hits += 1
        keep_last_good(cache_dir, path, key, found[0], env=env, limits=limits)
        return found
    files_cache = FileCache(cache_dir, env, limits)
    result = _check(path, env=env, templates_dir=templates_dir, limits=limits, cache=files_cache, now=now,
                    reading=reading)
    if result[0] is not None:
        _write(where, result)
        keep_last_good(cache_dir, path, key, result[0], env=env, limits=limits)
        _prune(cache_dir, "snapshot-*.pickle", keep=KEEP_SNAPSHOTS)
    files_cache.prune()
    return result


def _is_checked(found: Any) -> bool:
    return isinstance(found, tuple) and len(found) == 2 and isinstance(found[0], Schedules)


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


def load_or_last_good(settings: Settings) -> tuple[Schedules, Refused | None]:
    """The schedules as :func:`load_for`; when the folder has errors, its last good schedules and the
    refusal (for the read/record commands: they say so and go on). Raises ConfigError when there is
    no last good entry (a first start, or written by other code)."""
    schedules, issues = check_for(settings)
    if schedules is not None:
        return schedules, None
    errors = [i for i in issues if not i.warning] or issues
    last = last_good_for(settings)
    if last is None:
        raise ConfigError(errors)
    return last.schedules, Refused(errors, last)


def current_secrets(schedules: Schedules, folder: Path, env: Mapping[str, str],
                    limits: Limits | None = None, kept: Mapping[str, Mapping[str, str]] | None = None) -> int:
    """Give the last good ``schedules``' channels and apps the secrets of the current environment
    (webhooks, signing secrets, app secrets: every ``SecretStr`` field): the copy holds each ``${VAR}``
    as it was when it was checked, so a secret set or rotated since would be ignored until the folder
    is fixed. Reads ``channels:`` and ``apps:`` as written in the folder's YAML files that still parse
    within the loader's bounds (``limits``: size, aliases, nesting); an entry found in none of them (its
    file is the broken one) takes ``kept``, its ``${VAR}``s as written when the copy was checked
    (:func:`written_secrets`). Returns how many entries changed; never logs a value."""
    seen: set[str] = set()
    changed = dict.fromkeys(_SECTIONS, 0)
    for section, entry in _written_entries(folder, limits or Limits()):
        models = _models(schedules, section)
        model = models.get(entry.get("id"))  # type: ignore[arg-type]
        if model is None:
            continue
        seen.add(_kept_key(section, model.id))
        changed[section] += _refresh(models, model.id, _templates(entry, type(model)), env)
    for key, templates in (kept or {}).items():
        section, ident = _kept_section(key)
        if section not in _SECTIONS or key in seen:
            continue
        models = _models(schedules, section)
        if ident in models:
            changed[section] += _refresh(models, ident, templates, env)
    if changed["channels"]:
        log.info("上一次有效的配置中 %d 个频道的 webhook 或密钥已按当前环境变量更新", changed["channels"])
    if changed["apps"]:
        log.info("上一次有效的配置中 %d 个应用的密钥已按当前环境变量更新", changed["apps"])
    return sum(changed.values())


def written_secrets(schedules: Schedules, folder: Path, env: Mapping[str, str],
                    limits: Limits | None = None) -> dict[str, dict[str, str]]:
    """Entry key -> its secrets as written (``${VAR}`` texts), read from the folder just checked good
    into ``schedules``: kept with the last good entry, so a channel or app whose file is broken later
    still takes the environment of then. Keys: a channel's id (as before apps were kept too), an app's
    ``apps:<id>`` (ids cannot hold a colon). Only a text that gives the checked value in ``env`` is
    kept (a file changed since the check is not trusted)."""
    kept: dict[str, dict[str, str]] = {}
    for section, entry in _written_entries(folder, limits or Limits()):
        model = _models(schedules, section).get(entry.get("id"))  # type: ignore[arg-type]
        if model is None:
            continue
        checked = model.model_dump()
        templates = {key: text for key, text in _templates(entry, type(model)).items()
                     if _same_secret(checked.get(key), _resolved(text, env))}
        if templates:
            kept[_kept_key(section, model.id)] = templates
    return kept


# The sections whose entries can hold secrets written as ``${VAR}`` (channels first: a channel's kept
# key is its bare id, as the entries of earlier versions were written).
_SECTIONS = ("channels", "apps")


def _models(schedules: Schedules, section: str) -> dict[str, Any]:
    return schedules.channels if section == "channels" else schedules.apps


def _kept_key(section: str, ident: str) -> str:
    return ident if section == "channels" else f"{section}:{ident}"


def _kept_section(key: str) -> tuple[str, str]:
    section, _, ident = key.rpartition(":")
    return (section or "channels"), ident


def _same_secret(checked: Any, resolved: str) -> bool:
    value = checked.get_secret_value() if hasattr(checked, "get_secret_value") else checked
    return value == resolved or (value is None and resolved == "")


def _written_entries(folder: Path, bounds: Limits) -> list[tuple[str, dict[str, Any]]]:
    """The ``channels:`` and ``apps:`` entries (section, dict with ``${VAR}``s unsubstituted) of the
    folder's YAML files that hold a ``${`` and parse within the loader's bounds; the others are skipped
    (the check reports them)."""
    import yaml

    entries: list[tuple[str, dict[str, Any]]] = []
    for file in schedule_files(folder):
        if file.suffix not in (".yaml", ".yml"):
            continue
        try:
            # An oversized file, a pipe or device: the check refuses it too, the copy's values stay.
            text = read_source(file, bounds.file_bytes, str).decode("utf-8")
            # Only files with a ${VAR} are parsed: a province's people file costs seconds and has none.
            doc = yaml.safe_load(text) if "${" in text and scan(text, bounds) is None else None
        except (NotRead, UnicodeError, yaml.YAMLError):
            continue
        for section in _SECTIONS:
            written = doc.get(section) if isinstance(doc, dict) else None
            entries += [(section, e) for e in (written if isinstance(written, list) else []) if isinstance(e, dict)]
    return entries


def _templates(entry: Mapping[str, Any], model: type[Any]) -> dict[str, str]:
    secret = _secret_fields(model)
    return {key: value for key, value in entry.items()
            if isinstance(value, str) and "${" in value and key in secret}


@cache
def _secret_fields(model: type[Any]) -> frozenset[str]:
    """The fields of a channel or app class that hold secrets: every ``SecretStr`` one (webhook and
    signing secret, an app's token, AES key, app secret…), so a platform's new secret is covered."""
    fields = getattr(model, "model_fields", {})
    return frozenset(name for name, info in fields.items() if "SecretStr" in str(info.annotation)) | (
        _SECRET_KEYS & frozenset(fields))


def _refresh(models: dict[str, Any], ident: str, templates: Mapping[str, str], env: Mapping[str, str]) -> int:
    """Substitute ``templates`` from ``env`` into the channel or app ``ident``; 1 when that changed it."""
    model = models[ident]
    update = {key: _resolved(text, env) for key, text in templates.items()}
    if not update:
        return 0
    try:
        fresh = type(model).model_validate({**model.model_dump(), **update})
    except ValueError:  # the value in the environment is wrong: the reload will say so; keep the copy's
        return 0
    if fresh == model:
        return 0
    models[ident] = fresh
    return 1


_SECRET_KEYS = frozenset({"webhook", "secret", "token"})


def _resolved(text: str, env: Mapping[str, str]) -> str:
    """``${VAR}`` / ``${VAR:-default}`` as the loader substitutes them (an unset one without default: "")."""
    return _ENV_RE.sub(lambda m: env.get(m[1], m[2] if m[2] is not None else ""), text)


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
        bound = limits.sheet_bytes if file.suffix.lower() not in YAML_SUFFIXES else limits.file_bytes
        digest.update(f"|{file}|".encode() + _file_key(file, env, buffer, bound).encode())
    if templates_dir is not None:
        digest.update(f"|templates:{templates_dir.resolve()}".encode())
        if templates_dir.is_dir():
            for template in sorted(templates_dir.rglob("*")):
                if template.is_file():  # hashed a block at a time: a huge file is not held whole
                    digest.update(f"|{template.relative_to(templates_dir)}|".encode())
                    with template.open("rb") as handle:
                        digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()[:40]


def _file_key(file: Path, env: Mapping[str, str], buffer: bytearray, bound: int = DEFAULT_SHEET_BYTES) -> str:
    """:func:`_content_key` of a file's bytes, read a block at a time into ``buffer``: a province's 6 MB
    of sheets are hashed without a copy of each file in memory (its new pages cost more than the hash).
    A file with a ``$`` anywhere is read whole, for the names of its ``${VAR}``s. A file the check
    will refuse unread (over ``bound`` bytes, a pipe or device, gone) is not read: its key is what
    ``stat`` says of it (the check's result is not kept then, so no snapshot is found under it)."""
    digest = hashlib.sha256()
    view = memoryview(buffer)
    try:
        with open_source(file, bound, str) as handle:
            while size := handle.readinto(buffer):
                if buffer.find(b"$", 0, size) >= 0:
                    return _content_key(read_source(file, bound, str), env)
                digest.update(view[:size])
    except NotRead:
        return _unread_key(file)
    return digest.hexdigest()


def _unread_key(file: Path) -> str:
    """A key for a file not read: its kind, size, inode and change times (or that it cannot be looked at)."""
    try:
        found = os.stat(file)
    except OSError as exc:
        return f"unread:{exc.errno}"
    return f"unread:{found.st_mode}:{found.st_size}:{found.st_ino}:{found.st_mtime_ns}:{found.st_ctime_ns}"


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
        """Where ``path``'s entry is kept; None (not kept: the check reads the file and says why) for a
        file over the size limit, a pipe or device, or one that cannot be read."""
        try:
            raw = read_source(path, self.limits.file_bytes, str)
        except NotRead:
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


# ---------------------------------------------------------------- the last good schedules


@dataclass(frozen=True)
class LastGood:
    """A folder's last schedules that passed a check without errors, and when (aware UTC)."""

    schedules: Schedules
    warnings: list[ConfigIssue]
    checked_at: datetime
    # channel id / ``apps:<id>`` -> its secrets as written then (``${VAR}`` texts, :func:`written_secrets`)
    written: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Refused:
    """A check that found ``errors`` (ConfigIssues, no warnings), answered with ``last``."""

    errors: list[ConfigIssue]
    last: LastGood


def last_good_for(settings: Settings, path: Path | None = None) -> LastGood | None:
    """The last good schedules of ``path`` (default: the settings' schedules folder), with the current
    environment's webhooks and secrets (:func:`current_secrets`), or None: no
    cache (``REMINDBOT_SCHEDULES_CACHE=false``), never checked good, or written by other code."""
    cache_dir = cache_dir_for(settings.var_dir, settings.schedules_cache)
    found = last_good(cache_dir, path or settings.schedules_dir) if cache_dir is not None else None
    if found is not None:
        current_secrets(found.schedules, path or settings.schedules_dir, os.environ, Limits.from_settings(settings),
                        kept=found.written)
    return found


def last_good_checked_at(settings: Settings, path: Path | None = None) -> datetime | None:
    """When the last good schedules of ``path`` (default: the schedules folder) were checked, or None
    (as :func:`last_good_for`); reads the entry's first line, not the schedules."""
    cache_dir = cache_dir_for(settings.var_dir, settings.schedules_cache)
    folder = path or settings.schedules_dir
    pointer = _pointer(cache_dir / _last_good_name(folder, None)) if cache_dir is not None else None
    if cache_dir is None or pointer is None:
        return None
    try:
        with (cache_dir / _last_good_name(folder, pointer[0])).open("rb") as handle:
            readable = handle.readline() == code_version().encode() + b"\n"
    except OSError:
        return None
    return pointer[1] if readable else None


def last_good(cache_dir: Path, path: Path, now: datetime | None = None) -> LastGood | None:
    """The last good entry of the folder ``path`` in ``cache_dir`` (None: there is none to read), its
    warnings as of ``now`` (one-off dates past by then; default the real time).
    A second look when the entry was replaced between reading its pointer and its snapshot."""
    with no_gc():
        for _ in range(2):
            pointer = _pointer(cache_dir / _last_good_name(path, None))
            if pointer is None:
                return None
            where = cache_dir / _last_good_name(path, pointer[0])
            if not where.exists():
                continue
            found = _read(where, quiet=True)
            written = _pointer_data(cache_dir / _last_good_name(path, None)).get("written")
            kept = {str(k): {str(n): str(t) for n, t in v.items()} for k, v in written.items()
                    if isinstance(v, dict)} if isinstance(written, dict) else {}
            if not _is_checked(found):
                return None
            return LastGood(found[0], as_of(found[1], found[0], now), pointer[1], kept)
    return None


def keep_last_good(cache_dir: Path, path: Path, key: str, schedules: Schedules | None = None, *,
                   env: Mapping[str, str] | None = None, limits: Limits | None = None,
                   now: datetime | None = None) -> None:
    """Make the snapshot ``key`` (just read or written in ``cache_dir``: ``schedules``) the folder's last
    good entry, checked at ``now``, with its channels' and apps' ``${VAR}``s as written (:func:`written_secrets`,
    read only when the entry changes); nothing to do when it already is (one small read per command)."""
    folder = _folder_tag(path)
    name, target = cache_dir / f"last-good-{folder}.json", cache_dir / f"last-good-{folder}-{key}.pickle"
    known = _pointer(name)
    if known is not None and known[0] == key and target.exists():
        return
    try:
        _link_or_copy(cache_dir / f"snapshot-{key}.pickle", target)
        stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
        written = written_secrets(schedules, path, os.environ if env is None else env, limits) if schedules else {}
        with tempfile.NamedTemporaryFile("w", dir=cache_dir, prefix=".tmp-", delete=False) as handle:
            json.dump({"key": key, "checked_at": stamp, "written": written}, handle)
        os.chmod(handle.name, 0o600)
        os.replace(handle.name, name)
    except OSError as exc:
        log.warning("无法保存上一次有效的日程配置（%s）", exc.strerror or exc)
        return
    for stale in cache_dir.glob(f"last-good-{folder}-*.pickle"):
        if stale != target:
            stale.unlink(missing_ok=True)


def _last_good_name(path: Path, key: str | None) -> str:
    """``last-good-<folder>.json`` (key None) or ``last-good-<folder>-<key>.pickle``."""
    folder = _folder_tag(path)
    return f"last-good-{folder}.json" if key is None else f"last-good-{folder}-{key}.pickle"


def _folder_tag(path: Path) -> str:
    """16 hex digits naming a schedules folder (by its resolved path) among the entries."""
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]


def _pointer(where: Path) -> tuple[str, datetime] | None:
    """(snapshot key, checked at) from a last-good pointer, or None when absent or unreadable."""
    try:
        data = _pointer_data(where)
        return str(data["key"]), datetime.fromisoformat(data["checked_at"])
    except (ValueError, KeyError, TypeError):
        return None


def _pointer_data(where: Path) -> dict[str, Any]:
    """A last-good pointer's JSON object ({} when absent or unreadable)."""
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` becomes ``source``'s content in one rename: a hard link (no copy of a province's
    snapshot), or a copy (mode 0600) where the file system has none."""
    temporary = target.with_name(f".tmp-{os.getpid()}-{target.name}")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
        os.chmod(temporary, 0o600)
    os.replace(temporary, target)


def fallback_note(refused: Refused) -> str:
    """What a command running on the last good schedules prints first (stderr): the errors' count,
    where to see them, and the time of the check it runs on (the service's zone)."""
    return (f"日程配置有 {len(refused.errors)} 处错误（运行 remindbot validate 查看）。\n"
            f"以下按上一次有效的配置（{checked_text(refused.last.checked_at)} 检查通过）执行")


def checked_text(checked_at: datetime) -> str:
    """When the last good schedules were checked, in the service's zone: ``2026-11-30 22:40``, as the
    log's stamps and the admin pages' banner write it (:func:`bot.logs.minute`)."""
    from bot.logs import minute

    return minute(checked_at)


# ---------------------------------------------------------------- cache files


def _read(where: Path, *, quiet: bool = False) -> Any:
    """A cache entry, or None when absent; an unreadable one is deleted and counted (``quiet``: not logged).

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
        if not quiet:
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
