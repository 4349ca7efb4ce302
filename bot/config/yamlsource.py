"""Reading YAML with line numbers (PyYAML's node tree, C parser where built) and locating fields."""

from __future__ import annotations

import calendar
import codecs
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from bot.config.issues import (  # noqa: F401  (re-exported: the loader, the CLI and tests import them here)
    _ENV_RE,
    SOURCE_SUFFIXES,
    YAML_SUFFIXES,
    ConfigError,
    ConfigIssue,
    schedule_files,
)
from bot.config.limits import Limits, entries_message, scan, size_message
from bot.config.sourcefile import NotRead, read_prefix, read_source
from bot.config.yamlerrors import (
    FULL_SPACE_LINE_WORDS,
    LEAD,
    full_space_lines,
    issue_at,
    syntax_issue,
    text_top_mistake,
)


@dataclass
class YamlDoc:
    """A parsed file: plain data for validation plus the node tree for locating fields."""

    path: Path
    label: str  # the path as shown to the admin
    tree: yaml.Node
    data: Any
    sheet: bool = False  # a people/units spreadsheet (bot/config/sheets.py): rows and columns, not YAML
    # Values YAML could not construct (2026-02-30), read as text so the rest is still checked; their
    # errors are given where the file is validated, in place of the field's own (bot/config/loader.py).
    bad_values: tuple[ConfigIssue, ...] = ()


@dataclass
class _Conv:
    label: str
    env: Mapping[str, str]
    issues: list[ConfigIssue]
    root: yaml.Node


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path, label: str, env: Mapping[str, str], issues: list[ConfigIssue],
              limits: Limits | None = None) -> YamlDoc | None:
    """Parse one file within ``limits``; None (with issues) when it cannot be used."""
    limits = limits or Limits()
    text = _read_text(path, label, limits, issues)
    if text is None:
        return None
    refusal = scan(text, limits)
    if refusal is not None:
        issues.append(issue_at(label, text, refusal.line - 1, refusal.column - 1, refusal.message))
        return None
    loader = _LOADER(text)
    bad: list[ConfigIssue] = []
    try:
        tree = loader.get_single_node()
        data = loader.construct_document(tree) if tree is not None else {}
    except yaml.MarkedYAMLError as exc:
        issues.append(syntax_issue(label, text, exc))
        return None
    except yaml.YAMLError as exc:
        issues.append(ConfigIssue(label, 1, 1, "", f"YAML 无法解析，请检查缩进、冒号和引号（解析器的说明：“{exc}”）"))
        return None
    except (ValueError, TypeError, OverflowError):
        # A value the YAML types reject (e.g. the date 2026-13-01): name it and its line, then read
        # the file on with it as text, so the file's other errors are listed too, not hidden by it.
        data = _without_bad_values(label, tree, issues, bad)
        if data is None:
            return None
    finally:
        loader.dispose()
    if tree is None:
        tree = yaml.MappingNode("tag:yaml.org,2002:map", [])
    if (mistake := text_top_mistake(text, tree)) is not None:
        issues.append(issue_at(label, text, mistake[0], mistake[1], LEAD + mistake[2]))
        return None
    if not isinstance(tree, yaml.MappingNode) or not isinstance(data, dict):
        issues.append(ConfigIssue(label, 1, 1, "", "文件顶层应为映射（例如 reminders: …），而不是列表或文本"))
        return None
    _duplicate_keys(tree, (), label, issues, set())
    issues.extend(ConfigIssue(label, line + 1, column + 1, dotted(path), FULL_SPACE_LINE_WORDS, warning=True)
                  for line, column, path in full_space_lines(text, tree))
    data = _plain(data, (), _Conv(label, env, issues, tree))
    return YamlDoc(path, label, tree, data, bad_values=tuple(bad))


def _read_text(path: Path, label: str, limits: Limits, issues: list[ConfigIssue]) -> str | None:
    """The file's text: its size is looked at before it is read, and no more than the limit is read
    (the file may grow meanwhile); a pipe or device is never opened (``bot/config/sourcefile.py``)."""
    try:
        raw = read_source(path, limits.file_bytes, lambda size: size_message(size, limits))
    except NotRead as exc:  # too large, not a regular file, removed or unreadable since listed
        issues.append(ConfigIssue(label, 1, 1, "", str(exc)))
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        issues.append(ConfigIssue(label, 1, 1, "", not_utf8_message(raw)))
        return None


def _without_bad_values(label: str, tree: yaml.Node, issues: list[ConfigIssue], bad: list[ConfigIssue]) -> Any:
    """The file's data with each value YAML cannot construct (its error put in ``bad``) read as its
    text; None when no such value is found (the file is then not used, the error in ``issues``)."""
    found = _bad_values(label, tree)
    if not found:
        issues.append(ConfigIssue(label, 1, 1, "", "文件中有无法识别的值"))
        return None
    bad.extend(issue for issue, _ in found)
    for _, node in found:
        _stand_in(node)
    try:
        return yaml.constructor.SafeConstructor().construct_document(tree)
    except (ValueError, TypeError, OverflowError, yaml.YAMLError):  # not expected: every bad scalar is text now
        return None


_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")


def _stand_in(node: yaml.Node) -> None:
    """Make a bad scalar constructible; its error is already recorded. A date is moved to the nearest
    real one (2026-02-30 → 2026-02-28), so the field still holds a date and the entry raises no
    second, misleading error (a date range read as another form); anything else is read as text."""
    match = _DATE.fullmatch(str(node.value).strip()) if node.tag.endswith("timestamp") else None
    if match is not None and int(match[1]) >= 1:
        year, month = int(match[1]), min(max(int(match[2]), 1), 12)
        day = min(max(int(match[3]), 1), calendar.monthrange(year, month)[1])
        node.value = f"{year:04d}-{month:02d}-{day:02d}"
        return
    node.tag = "tag:yaml.org,2002:str"


def _bad_values(label: str, tree: yaml.Node) -> list[tuple[ConfigIssue, yaml.Node]]:
    """Every scalar YAML cannot construct (e.g. 2026-02-30), each named by its field like other errors."""
    constructor = yaml.constructor.SafeConstructor()
    stack: list[tuple[yaml.Node, tuple[Any, ...]]] = [(tree, ())]
    seen: set[int] = set()
    found: list[tuple[ConfigIssue, yaml.Node]] = []
    while stack:
        node, path = stack.pop()
        if id(node) in seen:  # an alias: its anchor's node is checked once
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in reversed(node.value):  # popped in file order
                stack.append((value, (*path, str(key.value))))
                stack.append((key, path))  # a bad key belongs to the mapping that holds it
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in reversed(list(enumerate(node.value))))
        else:
            try:
                constructor.construct_object(node, deep=True)
            except (ValueError, TypeError, OverflowError, yaml.YAMLError):
                what = "日期不存在或格式不对，应为真实的日期 YYYY-MM-DD" if node.tag.endswith("timestamp") \
                    else "无法识别的值"
                mark = node.start_mark
                found.append((ConfigIssue(label, mark.line + 1, mark.column + 1, dotted(path),
                                          f"{what}：“{node.value}”"), node))
    return found


def _duplicate_keys(node: yaml.Node, path: tuple[Any, ...], label: str, issues: list[ConfigIssue],
                    seen_nodes: set[int]) -> None:
    """PyYAML keeps the last of two equal keys silently; an admin must hear about it.

    An alias is the very node of its anchor: each node is walked once (``seen_nodes`` holds ids),
    so aliases never multiply the walk, and its duplicates are reported once, where they are written.
    """
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                issues.append(ConfigIssue(label, key.start_mark.line + 1, key.start_mark.column + 1,
                                          dotted((*path, name)), f"键 “{name}” 重复出现，只能写一次"))
            seen.add(name)
            _duplicate_keys(value, (*path, name), label, issues, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _duplicate_keys(item, (*path, i), label, issues, seen_nodes)


def _plain(node: Any, path: tuple[Any, ...], conv: _Conv) -> Any:
    """Substitute ${VAR} and ${VAR:-default} in every string value; keys become strings."""
    if isinstance(node, dict):
        return {str(k): _plain(v, (*path, str(k)), conv) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, (*path, i), conv) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        return _substitute(node, path, conv)
    return node


def _substitute(text: str, path: tuple[Any, ...], conv: _Conv) -> str:
    def repl(m: re.Match[str]) -> str:
        name, default = m[1], m[2]
        if name in conv.env:
            return conv.env[name]
        if default is not None:
            return default
        line, col = locate_path_in(path, conv.root)
        conv.issues.append(ConfigIssue(
            conv.label, line, col, dotted(path),
            f"环境变量 {name} 未设置（可在启动前 export {name}=…，或写成 ${{{name}:-}} 表示可留空）",
        ))
        return ""

    return _ENV_RE.sub(repl, text)


# ------------------------------------------------------------------ files that cannot be read


_GUESSES = (("GBK", "gbk"), ("Big5", "big5"), ("GB18030", "gb18030"))


def guess_encoding(raw: bytes) -> tuple[str, str] | None:
    """(name shown to the admin, Python codec) of bytes that are not UTF-8, or None.

    Byte-order marks settle UTF-16/32. Otherwise the Chinese codecs are tried in turn: text from a
    simplified-Chinese Windows editor decodes as GBK into common (GB2312) characters, while Big5
    bytes read as GBK give rare ones, so GBK is only named when every character is a common one.
    """
    for bom, name, codec in ((codecs.BOM_UTF32_LE, "UTF-32", "utf-32"), (codecs.BOM_UTF32_BE, "UTF-32", "utf-32"),
                             (codecs.BOM_UTF16_LE, "UTF-16", "utf-16"), (codecs.BOM_UTF16_BE, "UTF-16", "utf-16")):
        if raw.startswith(bom):
            return name, codec
    if raw.count(0) > len(raw) // 4:
        return "UTF-16", "utf-16-le" if raw[1:2] == b"\0" else "utf-16-be"
    for name, codec in _GUESSES:
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            continue
        if codec == "gbk" and not _all_common(text):
            continue
        return name, codec
    return None


def _all_common(text: str) -> bool:
    try:
        text.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def not_utf8_message(raw: bytes) -> str:
    guess = guess_encoding(raw)
    if guess is None:
        return "文件不是 UTF-8 编码，请用编辑器另存为 UTF-8"
    return f"文件不是 UTF-8 编码：看起来是 {guess[0]} 编码，请另存为 UTF-8"


def readable_text(path: Path, limit: int) -> str:
    """A file's text as well as it can be read (UTF-8, else the guessed encoding), never raising: its
    first ``limit`` bytes (a file refused as too large is not read whole); "" for a pipe or device."""
    raw = read_prefix(path, limit)
    guess = guess_encoding(raw) if not _is_utf8(raw) else None
    return raw.decode(guess[1] if guess else "utf-8", errors="replace")


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


ENTRY_SECTIONS = ("units", "people", "channels", "reminders")


def within_entries(docs: list[YamlDoc], limits: Limits, issues: list[ConfigIssue]) -> list[YamlDoc]:
    """The docs, or none (with an issue at the first entry past the bound) when they hold too many."""
    total = 0
    for doc in docs:
        if doc.sheet:
            continue  # bounded by the sheets' own row limit
        for section in ENTRY_SECTIONS:
            items = doc.data.get(section)
            if not isinstance(items, list):
                continue
            if total + len(items) > limits.entries:
                index = limits.entries - total
                line, col = locate_path_in((section, index), doc.tree)
                issues.append(ConfigIssue(doc.label, line, col, f"{section}[{index}]", entries_message(limits)))
                return []
            total += len(items)
    return docs


def openable(path: Path, cwd: Path | None = None) -> str:
    """A path the admin can open from where they are: relative to the current folder when under it
    (and that folder is not the root), else absolute."""
    full = _resolved_parent(path)
    here = (cwd or Path.cwd()).resolve()
    if here == Path(here.anchor):
        return str(full)  # from "/" a relative "tmp/x.yaml" reads as a lost slash, not as a path
    try:
        return str(full.relative_to(here))
    except ValueError:
        return str(full)


def shown_issue(issue: ConfigIssue, base: Path, *, absolute: bool = False) -> ConfigIssue:
    """``issue`` with its file as an openable path (its label is relative to ``base``'s parent folder),
    and so the other file its message names (:attr:`ConfigIssue.elsewhere`): both written one way.

    One rule for every command (``validate``, ``serve``, reload lines, the admin banner): ``absolute``
    (the folder was given as an absolute path) shows absolute paths, the same from any folder; else
    relative to the current folder when under it (:func:`openable`)."""
    parent = label_root(base)

    def shown(label: str) -> str:  # a template's label is already absolute: openable, as before
        return str(parent / label) if absolute and not Path(label).is_absolute() else openable(parent / label)

    message = issue.message
    if issue.elsewhere:
        message = message.replace(issue.elsewhere, shown(issue.elsewhere), 1)
    return replace(issue, file=shown(issue.file), message=message)


def shown_issues(issues: Sequence[ConfigIssue], base: Path, *, absolute: bool = False) -> list[ConfigIssue]:
    return [shown_issue(issue, base, absolute=absolute) for issue in issues]


def file_label(path: Path, base: Path) -> str:
    """``path`` (``base`` or a file listed under it) as issues name it: relative to the folder's parent
    (``schedules/people.yaml``). A symlink is named as it sits in the folder, not by its target: that is
    the name the admin sees there (the target may be elsewhere, or another file of the folder)."""
    try:
        return str(_resolved_parent(path).relative_to(label_root(base)))
    except ValueError:
        return str(path)


def label_root(base: Path) -> Path:
    """The folder labels are relative to: the schedules folder's parent (the folder resolved, as
    always); for a single file given, its own folder (the file, maybe a symlink, keeps its name)."""
    return base.resolve().parent if base.is_dir() else _resolved_parent(base).parent


def _resolved_parent(path: Path) -> Path:
    """``path`` absolute with its folders' symlinks resolved but not its own last part (a symlinked file
    keeps its own name)."""
    if path.name in ("", ".", ".."):
        return path.resolve()
    return path.absolute().parent.resolve() / path.name


def dotted(path: Sequence[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _child(node: yaml.Node, part: Any) -> tuple[yaml.Node, yaml.Node] | None:
    """(key node or item node, value node) for one path part, or None when absent."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if str(key.value) == str(part):
                return key, value
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item = node.value[part]
        return item, item
    return None


def locate_path_in(path: Sequence[Any], tree: yaml.Node) -> tuple[int, int]:
    """Line and column (1-based) of the deepest node of ``path`` found in the tree.

    Path parts that are not in the tree (pydantic's union tags, a missing key) are passed over,
    so the location falls back to the nearest enclosing node.
    """
    mark = tree.start_mark
    node = tree
    for part in path:
        found = _child(node, part)
        if found is None:
            continue
        key, value = found
        nested = isinstance(value, (yaml.MappingNode, yaml.SequenceNode)) and len(value.value) > 0
        mark = key.start_mark if nested else value.start_mark
        node = value
    return mark.line + 1, mark.column + 1


def scalar_at(tree: yaml.Node, path: Sequence[Any]) -> yaml.ScalarNode | None:
    """The scalar node exactly at ``path`` (every part present), for quoting what the admin wrote."""
    node = tree
    for part in path:
        found = _child(node, part)
        if found is None:
            return None
        node = found[1]
    return node if isinstance(node, yaml.ScalarNode) else None


def key_location(tree: yaml.Node, path: Sequence[Any], key: str) -> tuple[int, int] | None:
    """Where an (unknown) key sits, when the mapping at ``path`` holds it."""
    node = tree
    for part in path:
        found = _child(node, part)
        if found is None:
            return None
        node = found[1]
    found = _child(node, key)
    if found is None:
        return None
    return found[0].start_mark.line + 1, found[0].start_mark.column + 1


def written_field(path: Path, section: str, entry_id: str, key: str,
                  limits: Limits | None = None) -> yaml.ScalarNode | None:
    """An entry's field as written in its file, before ${VAR} substitution (None when absent, or the
    file is now over ``limits``' size or not a regular file)."""
    bound = (limits or Limits()).file_bytes
    try:
        tree = yaml.compose(read_source(path, bound, str).decode("utf-8"), Loader=yaml.SafeLoader)
    except (NotRead, UnicodeDecodeError, yaml.YAMLError):
        return None
    items = _child(tree, section) if tree is not None else None
    if items is None or not isinstance(items[1], yaml.SequenceNode):
        return None
    for item in items[1].value:
        written_id = scalar_at(item, ["id"])
        if written_id is not None and written_id.value == entry_id:
            return scalar_at(item, [key])
    return None


def env_names(text: str) -> list[str]:
    """The environment variables a ${VAR} or ${VAR:-default} text refers to."""
    return [m[1] for m in _ENV_RE.finditer(text)]
