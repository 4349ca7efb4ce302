"""Load schedules/: validate each file, merge, cross-check references, report every issue at once."""

from __future__ import annotations

import difflib
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from string import ascii_uppercase
from typing import TYPE_CHECKING, Any, get_args

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from bot.config.dated import calendar_of, unsent_once
from bot.config.hints import Hints, did_you_mean
from bot.config.ime import FULL_SPACE, ime_hint, list_meant, shown_value
from bot.config.issues import UNREADABLE_SHEET_SUFFIXES, group_repeats, with_entry_ids, with_headings
from bot.config.limits import Limits
from bot.config.models import Person, Reminder, ScheduleFile, Schedules, Selector, Unit, compact
from bot.config.sense import check_sense, once_dates
from bot.config.sheets import excel_number_hint, is_sheet, read_sheet, section_of, sheet_headings, sheet_location
from bot.config.yamlsource import (
    SOURCE_SUFFIXES,
    ConfigError,
    ConfigIssue,
    YamlDoc,
    dotted,
    file_label,
    key_location,
    locate_path_in,
    read_yaml,
    readable_text,
    scalar_at,
    schedule_files,
    within_entries,
)
from bot.platforms.registry import AppConfig, ChannelConfig

if TYPE_CHECKING:
    from bot.config.snapshot import FileCache

LIST_SECTIONS = ("units", "people", "channels", "apps", "reminders")
Reading = Callable[[Path], None]  # told the file (or folder) the check turns to: check_schedules(reading=…)
_ITEM_ADAPTERS = {
    "units": TypeAdapter(Unit),
    "people": TypeAdapter(Person),
    "channels": TypeAdapter(ChannelConfig),
    "apps": TypeAdapter(AppConfig),
    "reminders": TypeAdapter(Reminder),
}
SECRET_FIELDS = {"webhook", "secret", "token", "encoding_aes_key", "app_secret", "verification_token",
                 "encrypt_key", "signing_secret"}


def load_schedules(path: Path, *, env: Mapping[str, str] | None = None,
                   templates_dir: Path | None = None, limits: Limits | None = None) -> Schedules:
    """Load and validate a folder (or one file). Raises ConfigError listing every problem."""
    schedules, issues = check_schedules(path, env=env, templates_dir=templates_dir, limits=limits)
    errors = [i for i in issues if not i.warning]
    if errors or schedules is None:
        raise ConfigError(errors or issues)
    return schedules


def check_schedules(path: Path, *, env: Mapping[str, str] | None = None, templates_dir: Path | None = None,
                    limits: Limits | None = None, cache: FileCache | None = None,
                    now: datetime | None = None,
                    reading: Reading | None = None) -> tuple[Schedules | None, list[ConfigIssue]]:
    """Validate within ``limits`` (default: the documented defaults); return the schedules (None when
    invalid) and every issue, warnings included (one-off dates already past at ``now``, default the
    real time). ``cache`` (bot/config/snapshot.py) supplies files unchanged since an earlier check,
    parsed and validated; only the others are read again. ``reading`` is told each file before it is
    read and before it is validated, then ``path`` itself for the checks across files: a check that
    times out in a child process (bot/config/worker.py) names what it was doing."""
    issues: list[ConfigIssue] = []
    if not path.exists():
        return None, [ConfigIssue(str(path), 1, 1, "", "找不到这个文件或文件夹")]
    if not path.is_dir() and path.suffix.lower() not in SOURCE_SUFFIXES:
        return None, [ConfigIssue(file_label(path, path), 1, 1, "", not_schedules_message(path))]
    files = schedule_files(path)
    if not files:
        return None, [ConfigIssue(str(path), 1, 1, "", "文件夹中没有 .yaml（或人员、单位表格）文件")]
    roots = Roots()
    told = reading or _not_told
    parsed = _parse_files(files, path, os.environ if env is None else env, limits or Limits(), issues, roots, cache,
                          told)
    told(path)
    merged = _merge(parsed, issues)
    _unread_sheets_needed(files, path, merged, issues)
    _check_references(merged, parsed, issues, roots)
    check_sense(parsed, issues)
    dated = once_dates(parsed)
    issues.extend(unsent_once(dated, now or datetime.now(UTC), calendar_of(merged.calendar)))
    if templates_dir is not None:
        from bot.delivery.render import check_templates

        issues.extend(check_templates(merged, parsed, templates_dir))
    headings = {p.doc.label: sheet_headings(p.doc) for p in parsed if p.doc.sheet}
    ids = {p.doc.label: _entry_ids(p.doc.data) for p in parsed if not p.doc.sheet}
    issues[:] = group_repeats(with_entry_ids(with_headings(roots.fold(issues), headings), ids))
    if any(not i.warning for i in issues):
        return None, issues
    places = with_entry_ids([d.place for d in dated], ids)  # named as the warnings shown now are
    merged.dated = [replace(d, place=place) for d, place in zip(dated, places, strict=True)]
    return merged, issues


def _not_told(_: Path) -> None:
    """No one follows the check's progress."""


def _entry_ids(data: Any) -> dict[str, list[str | None]]:
    """Each YAML list section's entries' ids (None for an entry without a usable one)."""
    if not isinstance(data, dict):
        return {}
    return {section: [_usable_id(entry) for entry in entries]
            for section, entries in data.items() if isinstance(entries, list)}


def _usable_id(entry: Any) -> str | None:
    value = entry.get("id") if isinstance(entry, dict) else None
    return value if isinstance(value, str) and _ID_TOKEN.fullmatch(value) else None


def _unread_sheets_needed(files: list[Path], base: Path, merged: Schedules, issues: list[ConfigIssue]) -> None:
    """An unreadable sheet (.xls, .ods…) is skipped with a warning when it is a backup beside the real
    list; when nothing else in the folder lists its people (or units), it was the real list: an error,
    so the last good schedules keep running instead of schedules with nobody in them."""
    for file in files:
        section = section_of(file) if file.suffix.lower() in UNREADABLE_SHEET_SUFFIXES else None
        if section is None or getattr(merged, section):
            continue
        label = file_label(file, base)
        word = "人员" if section == "people" else "单位"
        for n, issue in enumerate(issues):
            if issue.file == label and issue.warning:
                issues[n] = replace(issue, warning=False, message=(
                    f"无法读取 {file.name}（{file.suffix} 格式），而日程中没有其他{word}：请用 Excel 或 WPS 打开，"
                    "另存为 .xlsx（Excel 工作簿）或 CSV UTF-8（逗号分隔）"))


def not_schedules_message(path: Path) -> str:
    """Why a file such as README.md is not read as schedules, and what is."""
    return (f"“{path.name}” 不是日程文件：日程是一个文件夹（如 schedules/），或其中的 .yaml、.yml 文件，"
            "或人员、单位表格（.csv、.xlsx）")


def _parse_files(files: list[Path], base: Path, env: Mapping[str, str], limits: Limits, issues: list[ConfigIssue],
                 roots: Roots, cache: FileCache | None, reading: Reading) -> list[Parsed]:
    """Each file read and validated on its own (or taken from ``cache``), within the limits across files."""
    entries: list[tuple[Path | None, dict[str, Any]]] = []
    rows_left = limits.sheet_rows
    for file in files:
        label = file_label(file, base)
        reading(file)
        # Spreadsheets are read afresh: csv reads 10⁵ rows faster than unpickling them would take.
        where = cache.key(file, label) if cache and not is_sheet(file) else None
        entry = cache.get(where, label) if cache else None
        if entry is None:
            read: list[ConfigIssue] = []
            doc = read_sheet(file, label, read, limits, rows_left) if is_sheet(file) \
                else read_yaml(file, label, env, read, limits)
            entry = {"doc": doc, "read": read, "valid": None}
        issues.extend(entry["read"])
        if entry["doc"] is not None and entry["doc"].sheet:
            rows_left -= sum(len(rows) for rows in entry["doc"].data.values())
        entries.append((where, entry))
    docs = within_entries([e["doc"] for _, e in entries if e["doc"] is not None], limits, issues)
    roots.add_dropped_files(files, base, docs, issues, limits)
    kept = {id(doc) for doc in docs}
    parsed = []
    for where, entry in entries:
        if id(entry["doc"]) not in kept:
            continue
        if entry["valid"] is None:
            reading(entry["doc"].path)
            own: list[ConfigIssue] = []
            own_roots = Roots()
            entry["valid"] = (_validate_doc(entry["doc"], own, own_roots), own, own_roots.entries)
            if cache:
                cache.put(where, entry)
        p, own, root_entries = entry["valid"]
        issues.extend(own)
        for k, v in root_entries.items():
            roots.entries.setdefault(k, v)
        parsed.append(p)
    return parsed


@dataclass
class Parsed:
    """A validated file: its good entries and, for each, its index in the YAML list."""

    doc: YamlDoc
    sf: ScheduleFile
    index: dict[str, list[int]] = field(default_factory=dict)

    def items(self, section: str) -> list[tuple[int, Any]]:
        return list(zip(self.index.get(section, []), getattr(self.sf, section), strict=True))


# ------------------------------------------------------------------ root causes and their cascades


_KIND_OF = {"频道": "channels", "人员": "people", "人员（或 unit_leaders）": "people", "单位": "units",
            "上级单位": "units", "角色": "roles", "提醒": "reminders"}
_KIND_WORD = {"channels": "频道", "people": "人员", "units": "单位", "roles": "角色", "reminders": "提醒"}
_ID_TOKEN = re.compile(r"[A-Za-z0-9_.-]+")
_SHOWN_CHARS = 80  # of an unknown reference quoted back: a 60 KB value is named, not printed whole


@dataclass
class Roots:
    """Files and entries that already failed, so references into them are not reported again.

    A reference to an entry whose own validation failed (a channel with a wrong field, a person
    with a bad mobile) is folded under that entry's first error ("另有 11 处引用了这个频道"), and
    a reference that may point into a file that could not be read at all under that file's error.
    The root causes are then listed first.
    """

    entries: dict[tuple[str, str], ConfigIssue] = field(default_factory=dict)
    files: list[tuple[set[str], ConfigIssue]] = field(default_factory=list)
    folded: dict[int, tuple[ConfigIssue, Counter[str]]] = field(default_factory=dict)  # id(root) -> counts

    def add_dropped_files(self, files: list[Path], base: Path, docs: list[YamlDoc],
                          issues: list[ConfigIssue], limits: Limits) -> None:
        loaded = {d.path for d in docs}
        for path in files:
            if path in loaded:
                continue
            label = file_label(path, base)
            root = next((i for i in issues if i.file == label and not i.warning), None)
            if root is not None:
                # At most the file's size limit is read: an oversized file's ids there still fold
                # the references to them; a pipe or device is not opened.
                bound = limits.sheet_bytes if is_sheet(path) else limits.file_bytes
                self.files.append((set(_ID_TOKEN.findall(readable_text(path, bound))), root))

    def add_entry(self, section: str, entry: Any, first_issue: ConfigIssue) -> None:
        if not isinstance(entry, dict):
            return
        if isinstance(entry.get("id"), str):
            self.entries.setdefault((section, entry["id"]), first_issue)
        roles = entry.get("roles") if section == "people" else None
        for role in roles if isinstance(roles, list) else []:
            if isinstance(role, str):
                self.entries.setdefault(("roles", role), first_issue)

    def absorb(self, kind: str, value: str) -> bool:
        """True when an unknown reference is explained by an earlier failure (and is counted there)."""
        root = self.entries.get((kind, value))
        word = _KIND_WORD.get(kind, "条目")
        if root is None:
            root = next((issue for tokens, issue in self.files if value in tokens), None)
            word = "文件"
        if root is None:
            return False
        self.folded.setdefault(id(root), (root, Counter()))[1][word] += 1
        return True

    def fold(self, issues: list[ConfigIssue]) -> list[ConfigIssue]:
        """Issues with the folded counts written into their roots; root causes first."""
        roots = {id(issue) for _, issue in self.files} | set(self.folded)
        out = []
        for issue in issues:
            is_root = id(issue) in roots
            counts = self.folded.get(id(issue), (issue, Counter()))[1]
            if counts["文件"]:
                issue = replace(issue, message=f"{issue.message}（另有 {counts['文件']} 处引用可能指向此文件中的"
                                               "条目，已略去；修好此文件后再检查）")
            elif counts:
                refs = "，".join(f"{n} 处引用了{'其' if word == '角色' else '这个'}{word}"
                                for word, n in counts.items())
                issue = replace(issue, message=f"{issue.message}（另有 {refs}，改好后它们随之生效）")
            out.append((not is_root, issue))
        # Errors before warnings; files holding a root cause first; each file's issues in row order.
        rooted = {issue.file for later, issue in out if not later}
        out.sort(key=lambda pair: (pair[1].warning, pair[1].file not in rooted, pair[1].file, pair[1].line,
                                   pair[1].column))
        return [issue for _, issue in out]


def _validate_doc(doc: YamlDoc, issues: list[ConfigIssue], roots: Roots) -> Parsed:
    """Validate a file item by item, so one bad entry does not hide problems in the others."""
    data = dict(doc.data)
    items = {k: data.pop(k) for k in LIST_SECTIONS if isinstance(data.get(k), list)}
    bad = _BadValues(doc)
    try:
        sf = ScheduleFile.model_validate(data)
    except ValidationError as exc:
        issues.extend(bad.instead(_pydantic_issues(doc, exc, ())))
        sf = ScheduleFile()
    parsed = Parsed(doc, sf)
    for section, values in items.items():
        adapter = _ITEM_ADAPTERS[section]
        good, where = [], []
        for index, value in enumerate(values):
            try:
                good.append(adapter.validate_python(value))
                where.append(index)
            except ValidationError as exc:
                found = bad.instead(_pydantic_issues(doc, exc, (section, index)))
                issues.extend(found)
                if found:
                    roots.add_entry(section, value, found[0])
        setattr(sf, section, good)
        parsed.index[section] = where
    issues.extend(bad.unused())
    return parsed


class _BadValues:
    """A value YAML could not construct (2026-02-30, read on as text: bot/config/yamlsource.py) is
    named by its own error in place of the field's (应为日期…); one the field accepts as text is
    still an error, given at the end."""

    def __init__(self, doc: YamlDoc) -> None:
        self.label = doc.label
        self.bad = {(i.line, i.column): i for i in doc.bad_values}
        self.used: set[tuple[int, int]] = set()

    def instead(self, found: list[ConfigIssue]) -> list[ConfigIssue]:
        if not self.bad:
            return found
        out = []
        for issue in found:
            where = (issue.line, issue.column)
            if issue.file == self.label and where in self.bad:
                if where in self.used:
                    continue
                self.used.add(where)
                issue = self.bad[where]
            out.append(issue)
        return out

    def unused(self) -> list[ConfigIssue]:
        return [issue for where, issue in self.bad.items() if where not in self.used]


# ------------------------------------------------------------------ pydantic errors, in Chinese


def _pydantic_issues(doc: YamlDoc, exc: ValidationError,
                     prefix: tuple[Any, ...]) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    seen: set[tuple[int, int, str]] = set()
    errors = exc.errors(include_url=False)
    # ``　title`` (a full-width space in the indent) is an unknown key whose error names the field meant:
    # that field's "missing" is the same mistake, not a second one.
    indented = {(*loc[:-1], str(loc[-1]).lstrip(FULL_SPACE + " ")) for err in errors
                if err["type"] == "extra_forbidden" and str((loc := tuple(err["loc"]))[-1]).startswith(FULL_SPACE)}
    meant = _meant_fields(doc, errors, prefix)
    for err in errors:
        if err["type"] == "missing" and (tuple(err["loc"]) in indented or tuple(err["loc"]) in meant):
            continue
        loc = [*prefix, *err["loc"]]
        kind = err["type"]
        path = _real_path(doc.data, loc)
        if kind.startswith("union_tag"):
            path.append("platform")
        if kind == "extra_forbidden":
            key = str(loc[-1])
            where = key_location(doc.tree, path[:-1], key) or locate_path_in(path, doc.tree)
            message = _unknown_field_message(doc, path[:-1], key, exc)
        else:
            where = locate_path_in(path, doc.tree)
            if doc.sheet and kind == "missing" and len(path) == 3 and isinstance(path[1], int):
                where = sheet_location(doc, path[1], str(path[2]))  # the empty cell, not the row's first
            message = _message(err, path, scalar_at(doc.tree, path))
        mark = (where[0], where[1], message)
        if mark in seen:  # unions repeat one problem once per member
            continue
        seen.add(mark)
        issues.append(ConfigIssue(doc.label, where[0], where[1], dotted(path), message))
    return issues


def _meant_fields(doc: YamlDoc, errors: Sequence[Mapping[str, Any]], prefix: tuple[Any, ...]) -> set[tuple[Any, ...]]:
    """The fields a misspelt key's hint names (``titel`` → ``title``), as error locations: that field's
    "missing" is the same typo, told once by the unknown key's 是不是 “title”？."""
    meant: set[tuple[Any, ...]] = set()
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] != "extra_forbidden" or str(loc[-1]).startswith(FULL_SPACE):
            continue
        key, parent = str(loc[-1]), _real_path(doc.data, [*prefix, *loc])[:-1]
        if _misindented_under(doc, parent, key):
            continue  # its message names the field it belongs beside, not a spelling
        hint = difflib.get_close_matches(key, _allowed_keys(parent, doc), n=1)
        if hint:
            meant.add((*loc[:-1], hint[0]))
    return meant


def _real_path(data: Any, loc: Sequence[Any]) -> list[Any]:
    """Drop pydantic's union-member labels from a location, keeping keys and indexes."""
    path: list[Any] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif last and isinstance(part, str) and isinstance(node, dict):
            path.append(part)  # a missing or unknown key
    return path


def _message(err: Mapping[str, Any], path: Sequence[Any], source: yaml.ScalarNode | None = None) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    secret = bool(path) and path[-1] in SECRET_FIELDS
    got = "" if secret else _shown(err.get("input"), source)
    if kind == "string_type" and not secret and source is not None and not source.style:
        if source.value in ("", "~", "null", "Null", "NULL"):
            return "应为文本，不能留空"
        return f"应为文本{got}{_quote_hint(source.value, err.get('input'))}"
    table = {
        "missing": "缺少必填字段",
        "int_type": f"应为整数{got}",
        "int_parsing": f"应为整数{got}",
        "int_from_float": f"应为整数{got}",
        "bool_type": f"应为 true 或 false{got}",
        "bool_parsing": f"应为 true 或 false{got}",
        "string_type": f"应为文本{got}",
        "list_type": _list_message(got, source, secret),
        "dict_type": f"应为映射（键: 值）{got}",
        "model_type": f"应为映射（键: 值）{got}",
        "model_attributes_type": f"应为映射（键: 值）{got}",
        "date_type": f"应为日期 YYYY-MM-DD{got}",
        "date_parsing": f"应为日期 YYYY-MM-DD{got}",
        "date_from_datetime_parsing": f"应为日期 YYYY-MM-DD{got}",
        "string_pattern_mismatch": _pattern_message(path, err.get("input"), source, got),
        "greater_than_equal": f"应不小于 {ctx.get('ge')}{got}",
        "less_than_equal": f"应不大于 {ctx.get('le')}{got}",
        "too_short": "不能为空",
        "union_tag_invalid": f"应为 {_expected(str(ctx.get('expected_tags', '')))} 之一，"
        f"而不是 {shown_value(str(ctx.get('tag')))}",
        "union_tag_not_found": "缺少 platform（wecom、dingtalk、feishu、lark、slack 或 generic）",
    }
    if kind in table:
        return table[kind]
    if kind in ("enum", "literal_error"):
        return f"应为 {_expected(ctx.get('expected', ''))} 之一{got}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error") or err["msg"]).removeprefix("Value error, ")
    return f"{err['msg']}{got}"


def _list_message(got: str, source: yaml.ScalarNode | None, secret: bool) -> str:
    """A list expected; a text with a Chinese comma is the list the admin meant, so show it written right."""
    if secret or source is None or source.style or (meant := list_meant(source.value)) is None:
        return f"应为列表（每项以 - 开头）{got}"
    comma = "中文逗号 “，”" if "，" in source.value else "顿号 “、”"
    return (f"应为列表，而不是 {shown_value(source.value)}：各项之间用了{comma}，YAML 把它们读成了一项；"
            f"请改成英文逗号并加方括号，写成 {meant}（或每项一行，以 - 开头）")


def _pattern_message(path: Sequence[Any], value: Any, source: yaml.ScalarNode | None, got: str) -> str:
    """What a patterned field expects, in words (a regular expression means nothing to an admin)."""
    field = path[-1] if path else None
    written = source.value if source is not None and source.value != "" else str(value)
    if field == "mobile":
        return f"应为 11 位手机号（如 13800000000），现在是 {shown_value(written)}{excel_number_hint(written)}"
    if field == "id":
        return (f"格式不对，只能使用字母、数字和 _ . -，现在是 {shown_value(written)}"
                f"{ime_hint(written) or excel_number_hint(written)}")
    return f"格式不对{got}"


def _expected(text: str) -> str:
    return text.replace("'", "").replace(" or ", "、").replace(", ", "、")


def _shown(value: Any, source: yaml.ScalarNode | None = None) -> str:
    """``，而不是 “…”`` quoting what the admin wrote (the file's text), not what YAML made of it: bounded,
    control characters escaped (:func:`bot.config.ime.shown_value`)."""
    if source is not None and source.value != "":
        return f"，而不是 {shown_value(source.value)}{ime_hint(source.value)}"
    if value is None or isinstance(value, (dict, list)):
        return ""
    text = str(value)
    return f"，而不是 {shown_value(text)}{ime_hint(text)}"


def _quote_hint(written: str, value: Any) -> str:
    """Why an unquoted value is not text, and the fix."""
    if isinstance(value, bool):
        why = f"不加引号时 YAML 把 {written} 读成了“是/否”"
    elif isinstance(value, int) and written.lstrip("+-").startswith("0") and len(written) > 1:
        why = f"不加引号时 YAML 把以 0 开头的 {written} 读成了数字 {value}"
    elif isinstance(value, (int, float)):
        why = "不加引号时 YAML 把它读成了数字"
    elif value is None:
        why = "不加引号时 YAML 把它读成了空值"
    else:
        why = "不加引号时 YAML 把它读成了其他类型（如日期）"
    return f"（{why}）；请加引号：\"{written}\""


def _unknown_field_message(doc: YamlDoc, parent: Sequence[Any], key: str,
                           exc: ValidationError) -> str:
    allowed = _allowed_keys(parent, doc)
    hint = difflib.get_close_matches(key, allowed, n=1)
    text = f"未知字段 “{key}”"
    if key.startswith(FULL_SPACE):  # indented with full-width spaces: YAML kept them in the key
        meant = key.lstrip(FULL_SPACE + " ")
        said = f"（本意是 “{meant}”）" if meant in allowed else ""
        return (f"{text}：开头是全角空格（中文输入法的空格），YAML 不把它当作缩进，而是当作键的一部分；"
                f"请删掉全角空格，用半角空格（英文输入法下的空格）缩进{said}")
    beside = _misindented_under(doc, parent, key)
    if beside:  # an exact field further up beats a near spelling here
        field, levels = beside
        more = "一级" if levels == 1 else f" {levels} 级"
        return f"{text}：{key} 应与 {field} 对齐（缩进多了{more}？）"
    if hint:
        return f"{text}，是不是 “{hint[0]}”？"
    if allowed:
        return f"{text}（可用字段：{'、'.join(sorted(allowed))}）"
    return text


def _misindented_under(doc: YamlDoc, parent: Sequence[Any], key: str) -> tuple[str, int] | None:
    """(the field ``key`` belongs beside, how many levels too deep) when ``key`` is a field of a mapping
    further up (``holiday:`` indented under ``when:``); None otherwise."""
    levels = 0
    for depth in range(len(parent) - 1, -1, -1):
        if isinstance(parent[depth], int):
            continue  # a list item: its mapping is the level above
        levels += 1
        if key in _allowed_keys(parent[:depth], doc):
            return str(parent[depth]), levels
    return None


def _allowed_keys(parent: Sequence[Any], doc: YamlDoc) -> list[str]:
    """Field names the model at ``parent`` accepts (for 'did you mean' hints)."""
    candidates: list[Any] = [ScheduleFile]
    node: Any = doc.data
    for part in parent:
        node = node[part] if isinstance(node, (dict, list)) else None
        if isinstance(part, int):
            continue
        candidates = _field_models(candidates, part)
    chosen = _pick_model(candidates, node)
    return [f.alias or name for name, f in chosen.model_fields.items()] if chosen else []


def _field_models(models: list[Any], name: str) -> list[Any]:
    """The model classes a field of any of ``models`` may hold (unwrapping lists and unions)."""
    out: list[Any] = []
    for model in models:
        field = model.model_fields.get(name)
        stack = [field.annotation] if field else []
        while stack:
            ann = stack.pop()
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                out.append(ann)
            stack.extend(a for a in get_args(ann) if not isinstance(a, FieldInfo))
    return out


def _pick_model(models: list[Any], node: Any) -> Any:
    """Among union members, the one whose ``platform`` tag matches the YAML mapping."""
    tag = node.get("platform") if isinstance(node, dict) else None
    for model in models:
        literal = model.model_fields.get("platform")
        if literal is None or tag is None or tag in get_args(literal.annotation):
            return model
    return None


# ------------------------------------------------------------------ merging and references


def _merge(parsed: list[Parsed], issues: list[ConfigIssue]) -> Schedules:
    merged = Schedules()
    first_seen: dict[tuple[str, str], str] = {}
    failed: dict[tuple[str, str], str] = {}  # ids of entries that failed validation, where they are
    for p in parsed:
        doc, sf = p.doc, p.sf
        if sf.service is not None:
            merged.service = sf.service
        if sf.calendar is not None:
            merged.calendar.holidays.extend(sf.calendar.holidays)
            merged.calendar.workdays.extend(sf.calendar.workdays)
            merged.calendar.covered_years.extend(sf.calendar.covered_years)
        for section in LIST_SECTIONS:
            target: dict[str, Any] = getattr(merged, section)
            for index, item in _in_file_order(p, section):
                line, col = sheet_location(doc, index, "id") if doc.sheet \
                    else locate_path_in((section, index, "id"), doc.tree)
                # An Excel file's place is its cell (B4), as its issues are shown; YAML's and CSV's the line.
                here = f"{doc.label}:{ConfigIssue(doc.label, line, col, '', '').place()}" \
                    if doc.label.lower().endswith(".xlsx") else f"{doc.label}:{line}"
                item_id = item.id if item is not None else p.doc.data[section][index]["id"]
                if item_id in target or (failed and (section, item_id) in failed):
                    where = first_seen.get((section, item_id)) or failed[(section, item_id)]
                    # The same file: its line alone. Another file: its label, which validate shows
                    # made openable as it shows the issue's own file (``elsewhere``).
                    label, _, at = where.rpartition(":")
                    same = label == doc.label
                    issues.append(ConfigIssue(doc.label, line, col, f"{section}[{index}].id",
                                              f"标识 “{item_id}” 重复，已在"
                                              + (f"本文件第 {at.lstrip(ascii_uppercase)} 行" if same
                                                 else f" {where} ") + "定义",
                                              elsewhere="" if same else label))
                    continue
                if item is None:  # failed validation (reported there); its id still counts as taken
                    failed[(section, item_id)] = here
                    continue
                target[item.id] = item
                if section in ("people", "units"):
                    compact(item)
                    if section == "people":
                        compact(item.ids)
                first_seen[(section, item.id)] = here
                merged.sources[f"{section}:{item.id}"] = here
    return merged


def _in_file_order(p: Parsed, section: str) -> list[tuple[int, Any]]:
    """(index, model) of a section's entries in file order, with (index, None) for an entry that
    failed validation but has a text id: a later entry with that id is still a duplicate, reported
    now rather than once the first entry's error is fixed."""
    valid = p.items(section)
    raw = p.doc.data.get(section)
    if not isinstance(raw, list) or len(valid) == len(raw):
        return valid
    good = dict(valid)
    return [(index, good.get(index)) for index, entry in enumerate(raw)
            if index in good or (isinstance(entry, dict) and isinstance(entry.get("id"), str))]


class _Refs:
    """Collects reference errors with the location of the offending value."""

    def __init__(self, doc: YamlDoc, issues: list[ConfigIssue], roots: Roots | None = None) -> None:
        self.doc = doc
        self.issues = issues
        self.roots = roots or Roots()
        self.names: dict[int, dict[str, str]] = {}
        self.hints: dict[int, Hints] = {}

    def check(self, path: tuple[Any, ...], values: str | Iterable[str], known: Mapping[str, Any],
              what: str) -> int:
        """Report unknown references; return how many were folded under an earlier failure.

        ``values`` is a list field's items, or one string for a single-valued field (whose error
        is then reported at the field itself, with no item index).
        """
        folded = 0
        single = isinstance(values, str)
        for i, value in enumerate([values] if isinstance(values, str) else values):
            if value in known:
                continue
            if self.roots.absorb(_KIND_OF.get(what, ""), value):
                folded += 1
                continue
            named = self._named(known, what).get(value)
            extra = "" if named else ime_hint(value) or did_you_mean(self._hints(known).meant(value))
            if named:
                word = _KIND_WORD.get(_KIND_OF.get(what, ""), what)
                extra = f"：这是{word} {named} 的名称，请填写{word}标识 “{named}”"
            why = "（没有人具有此角色）" if what == "角色" else ""
            shown = value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "…"
            self.error(path if single else (*path, i), f"未知的{what} “{shown}”{why}{extra}")
        return folded

    def _hints(self, known: Mapping[str, Any]) -> Hints:
        """The did-you-mean lookup for ``known`` (built once per kind: its alphabet is counted once)."""
        hints = self.hints.get(id(known))
        if hints is None:
            hints = self.hints[id(known)] = Hints(known.keys())
        return hints

    def _named(self, known: Mapping[str, Any], what: str) -> dict[str, str]:
        """Name -> id of the units or people in ``known`` whose name is unambiguous (built once per kind:
        an admin often writes a unit's name where its id belongs)."""
        if _KIND_OF.get(what) not in ("units", "people"):
            return {}
        key = id(known)
        if key not in self.names:
            counts = Counter(getattr(item, "name", None) for item in known.values())
            self.names[key] = {item.name: ident for ident, item in known.items()
                               if isinstance(getattr(item, "name", None), str) and counts[item.name] == 1}
        return self.names[key]

    def error(self, path: tuple[Any, ...], message: str) -> None:
        line, col = locate_path_in(path, self.doc.tree)
        self.issues.append(ConfigIssue(self.doc.label, line, col, dotted(path), message))


def _check_references(s: Schedules, parsed: list[Parsed], issues: list[ConfigIssue], roots: Roots) -> None:
    roles = {r for p in s.people.values() for r in p.roles}
    owners: dict[tuple[str, str], str] = {}  # (platform, user id) -> person id: a reply names one person
    for p in parsed:
        refs = _Refs(p.doc, issues, roots)
        sf = p.sf
        for i, person in p.items("people"):
            for platform, user_id in person.ids.model_dump().items():
                if not user_id:
                    continue
                first = owners.setdefault((platform, user_id), person.id)
                if first != person.id:
                    refs.error(("people", i, "ids", platform),
                               f"{platform} 标识 “{user_id}” 与人员 “{first}” 重复（回复确认靠它识别本人）")
        for i, unit in p.items("units"):
            if unit.parent is not None:
                refs.check(("units", i, "parent"), unit.parent, s.units, "上级单位")
            refs.check(("units", i, "leaders"), unit.leaders, s.people, "人员")
        for i, person in p.items("people"):
            if person.unit is not None:
                refs.check(("people", i, "unit"), person.unit, s.units, "单位")
            refs.check(("people", i, "channels"), person.channels or [], s.channels, "频道")
        for i, app in p.items("apps"):
            if app.answer_channel:
                refs.check(("apps", i, "answer_channel"), app.answer_channel, s.channels, "频道")
        if sf.service is not None and sf.service.admin_channel:
            refs.check(("service", "admin_channel"), sf.service.admin_channel, s.channels, "频道")
        for i, reminder in p.items("reminders"):
            _check_reminder(s, refs, ("reminders", i), reminder, roles)
        _check_invalid_entries(s, p, refs, roles)
    _check_unit_cycles(s, parsed, issues)
    _check_unselected_roles(parsed, issues, roles)


# References inside entries that failed validation are still checked, so one pass reports a typo
# in a field name and an unknown channel in the same reminder together.
RAW_REFERENCES: dict[str, tuple[tuple[tuple[str, ...], str, str], ...]] = {
    "units": ((("parent",), "units", "上级单位"), (("leaders",), "people", "人员")),
    "people": ((("unit",), "units", "单位"), (("channels",), "channels", "频道")),
    "reminders": (
        (("recipients", "channels"), "channels", "频道"),
        (("recipients", "mention", "people"), "people", "人员"),
        (("recipients", "mention", "units"), "units", "单位"),
        (("recipients", "mention", "roles"), "roles", "角色"),
        (("confirm", "who", "people"), "people", "人员"),
        (("confirm", "who", "units"), "units", "单位"),
        (("confirm", "who", "roles"), "roles", "角色"),
    ),
}


# The raw references above that hold one value; the others are lists.
_SINGLE_REFERENCES = frozenset({"parent", "unit"})


def _check_invalid_entries(s: Schedules, p: Parsed, refs: _Refs, roles: set[str]) -> None:
    known = {"units": s.units, "people": s.people, "channels": s.channels, "roles": {r: r for r in roles}}
    for section, checks in RAW_REFERENCES.items():
        raw = p.doc.data.get(section)
        if not isinstance(raw, list):
            continue
        valid = set(p.index.get(section, []))
        for index, entry in enumerate(raw):
            if index in valid or not isinstance(entry, dict):
                continue
            for path, kind, what in checks:
                value: Any = entry
                for key in path:
                    value = value.get(key) if isinstance(value, dict) else None
                if isinstance(value, str) and path[-1] not in _SINGLE_REFERENCES and list_meant(value):
                    continue  # a list written with a Chinese comma: its list error names the comma
                if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                    refs.check((section, index, *path), value, known[kind], what)


def _check_reminder(s: Schedules, refs: _Refs, at: tuple[Any, ...], r: Reminder,
                    roles: set[str]) -> None:
    refs.check((*at, "recipients", "channels"), r.recipients.channels, s.channels, "频道")
    before = len(refs.issues)
    folded = _check_selector(s, refs, (*at, "recipients", "mention"), r.recipients.mention, roles)
    failed = len(refs.issues) > before  # the selector's own error (a role typed wrong) says it already
    if r.confirm is not None:
        if r.confirm.who is not None:
            before = len(refs.issues)
            folded = _check_selector(s, refs, (*at, "confirm", "who"), r.confirm.who, roles)
            failed = len(refs.issues) > before
        who = r.confirm.who or r.recipients.mention
        # Nobody selected because the people it names failed: that failure is the one to fix.
        if not folded and not failed and (who.empty or (not who.all and not s.select(who))):
            refs.error((*at, "confirm"), "需要确认，但没有选中任何人（检查 confirm.who 或 recipients.mention）")
        targets = {**s.people, "unit_leaders": None}
        refs.check((*at, "confirm", "escalate_to"), r.confirm.escalate_to, targets,
                   "人员（或 unit_leaders）")
    if r.recipients.per_person and r.recipients.mention.empty:
        refs.error((*at, "recipients", "per_person"), "per_person 需要在 mention 中选出人员")
    if r.report is not None:
        refs.check((*at, "report", "reminders"), r.report.reminders, s.reminders, "提醒")
        refs.check((*at, "report", "units"), r.report.units, s.units, "单位")


def _check_selector(s: Schedules, refs: _Refs, at: tuple[Any, ...], sel: Selector,
                    roles: set[str]) -> int:
    """Check a selector's references; return how many were folded under an earlier failure."""
    return (refs.check((*at, "people"), sel.people, s.people, "人员")
            + refs.check((*at, "units"), sel.units, s.units, "单位")
            + refs.check((*at, "roles"), sel.roles, {r: r for r in roles}, "角色"))


# Roles the service selects itself, besides the reminders' selectors: a person with role admin may
# record on the command line (--by, bot/cli/confirmations.py) and is named in the admin pages' audit
# (bot/web/actions.py, bot/confirming/actions.py).
SERVICE_ROLES = frozenset({"admin"})
# How alike an unselected role must be to a selected one to be taken for its typo (difflib's ratio; a
# single typo counts whatever the length). 0.8 keeps a label such as deputy_secretary (0.72 against
# secretary) silent while secretry (0.94) is caught.
ROLE_TYPO_CUTOFF = 0.8
# Where a reminder selects people by role, as written (failed entries included: their roles are meant).
_ROLE_SELECTORS = (("recipients", "mention", "roles"), ("confirm", "who", "roles"))


def _check_unselected_roles(parsed: list[Parsed], issues: list[ConfigIssue], carried: set[str]) -> None:
    """A warning for each role people carry that nothing selects but that is close to a role something
    does select (``roles: [secretry]``): those people drop out of every reminder, silently otherwise.

    At the first person carrying it, counting the others. A role close to none stays silent:
    organisations label roles for later use. Costs nothing more when no role is unselected."""
    selected = _selected_roles(parsed)
    unselected = carried - selected
    if not unselected:
        return
    hints = Hints(selected)
    meant = {role: hint for role in unselected
             if (hint := hints.closest(role, cutoff=ROLE_TYPO_CUTOFF) or hints.typo(role))}
    if not meant:
        return
    first: dict[str, tuple[Parsed, int, int]] = {}
    carriers: Counter[str] = Counter()
    wanted = set(meant)
    for p in parsed:
        # zip, not p.items(): 100,000 pairs in a list set the collector off over the whole heap (0.25 s)
        for i, person in zip(p.index.get("people", []), p.sf.people, strict=True):
            if wanted.isdisjoint(person.roles):
                continue
            for j, role in enumerate(person.roles):
                if role in wanted and role not in first:
                    first[role] = (p, i, j)
            carriers.update(set(person.roles) & wanted)
    for role, (p, i, j) in first.items():  # in file order
        many = f"（{carriers[role]} 人具有此角色）" if carriers[role] > 1 else ""
        path = ("people", i, "roles", j)
        line, col = locate_path_in(path, p.doc.tree)
        issues.append(ConfigIssue(p.doc.label, line, col, dotted(path),
                                  f"角色 “{role}” 没有任何提醒使用{many}，是不是 “{meant[role]}”？", warning=True))


def _selected_roles(parsed: list[Parsed]) -> set[str]:
    """Every role a reminder's selector names (as written, valid or not) or the service selects itself."""
    selected = set(SERVICE_ROLES)
    for p in parsed:
        raw = p.doc.data.get("reminders")
        for entry in raw if isinstance(raw, list) else []:
            for path in _ROLE_SELECTORS:
                value: Any = entry
                for key in path:
                    value = value.get(key) if isinstance(value, dict) else None
                for role in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
                    if isinstance(role, str):
                        selected.add(role)
    return selected


def _check_unit_cycles(s: Schedules, parsed: list[Parsed], issues: list[ConfigIssue]) -> None:
    """Each loop in the parents once, at its first unit in file order, with its whole path.

    Units that merely sit under a loop are not blamed: their own parent is not the mistake.
    """
    reported: set[frozenset[str]] = set()
    for p in parsed:
        for i, unit in p.items("units"):
            path = [unit.id]
            parent = unit.parent
            while parent and parent in s.units and parent not in path:
                path.append(parent)
                parent = s.units[parent].parent
            if parent != unit.id or frozenset(path) in reported:
                continue  # no loop, or a loop above this unit, or one already reported
            reported.add(frozenset(path))
            loop = " → ".join([*path, unit.id])
            # the word the admin's file uses: the column's heading as written, or the YAML field
            field = sheet_headings(p.doc).get("parent", "上级单位") if p.doc.sheet else " parent"
            _Refs(p.doc, issues).error(("units", i, "parent"),
                                       f"上级单位形成了循环：{loop}（请改正其中一个单位的{field}）")
