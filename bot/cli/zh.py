"""click's own messages (usage errors, help headings) in Chinese.

click marks every message it prints with gettext (``_("Missing option")``), looked up at call time
through each click module's ``_`` and ``ngettext``. :func:`install` points those names at the
catalog below, so a missing option, a bad value, an unknown command or option reads in Chinese
for every command, with click's own wording as the fallback for anything not in the catalog.

A few messages click puts together outside its catalog, quoting names with ``repr`` ('fire') and
joining pieces with English punctuation (``Missing argument 'X'.``, ``No such command. Did you
mean…``): :func:`install` replaces those few functions too (:data:`_REWORDED`), so names are in
Chinese quotes (“fire”) as in every other message, and a did-you-mean follows as elsewhere
(``没有命令 “firee”，是不是 “fire”？``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from typing import Any

import click
import click.exceptions
import click.formatting
import click.types

CATALOG: dict[str, str] = {
    # errors
    "Error: {message}": "错误：{message}",
    "Try '{command} {option}' for help.": "用 “{command} {option}” 查看帮助。",
    "Missing argument": "缺少参数",
    "Missing option": "缺少选项",
    "Missing parameter": "缺少参数",
    "Missing {param_type}": "缺少{param_type}",
    "Missing parameter: {param_name}": "缺少参数：{param_name}",
    "Missing command.": "缺少命令（可用命令见 remindbot --help）。",
    "No such option {name!r}.": "没有选项 “{name}”",  # 。 or a did-you-mean: _no_such
    "No such command {name!r}.": "没有命令 “{name}”",
    "Invalid value: {message}": "值无效：{message}",
    "Invalid value for {param_hint}: {message}": "{param_hint} 的值无效：{message}",
    "Got unexpected extra argument ({args})": "多出了参数（{args}）",
    "Got unexpected extra arguments ({args})": "多出了参数（{args}）",
    "Option {name!r} requires an argument.": "选项 “{name}” 后面要写一个值。",
    "Option {name!r} requires {nargs} arguments.": "选项 “{name}” 后面要写 {nargs} 个值。",
    "Option {name!r} does not take a value.": "选项 “{name}” 不带值。",
    "Argument {name!r} takes {nargs} values.": "参数 “{name}” 需要 {nargs} 个值。",
    "Aborted!": "已取消。",
    "Could not open file {filename!r}: {message}": "无法打开文件 “{filename}”：{message}",
    "unknown error": "未知错误",
    "Value must be an iterable.": "值应为列表。",
    # values (a wrong choice: _invalid_choice)
    # Every DateTime option here takes a day (%Y-%m-%d); "2026-02-30" is refused with the same words.
    "{value!r} does not match the format {format}.": "“{value}” 不是有效的日期：日期应为 年-月-日，例如 2026-11-06。",
    "{value!r} does not match the formats {formats}.": "“{value}” 不是有效的日期：日期应为 年-月-日，例如 2026-11-06。",
    "{value} is not in the range {range}.": "{value} 不在范围 {range} 之内。",
    "{value!r} is not a valid {number_type}.": "“{value}” 不是有效的数字。",
    "{value!r} is not a valid boolean. Recognized values: {states}": "“{value}” 不是是/否值，可写：{states}",
    "{name} {filename!r} does not exist.": "{name} “{filename}” 不存在。",
    "{name} {filename!r} is a file.": "{name} “{filename}” 是文件，应为文件夹。",
    "{name} {filename!r} is a directory.": "{name} “{filename}” 是文件夹，应为文件。",
    "{name} {filename!r} is not readable.": "{name} “{filename}” 不可读。",
    "{name} {filename!r} is not writable.": "{name} “{filename}” 不可写。",
    "{name} {filename!r} is not executable.": "{name} “{filename}” 不可执行。",
    "file": "文件",
    "directory": "文件夹",
    "path": "路径",
    "Choose from:\n\t{choices}": "可选：\n\t{choices}",
    # help
    "Usage:": "用法：",
    "Options": "选项",
    "Commands": "命令",
    "Positional arguments": "参数",
    "Show this message and exit.": "显示本帮助并退出。",
    "Show the version and exit.": "显示版本并退出。",
    "%(prog)s, version %(version)s": "%(prog)s，版本 %(version)s",
    "default: {default}": "默认：{default}",
    "required": "必填",
    "env var: {var}": "环境变量：{var}",
    "(dynamic)": "（动态）",
    "deprecated": "已弃用",
}

_MODULES = ("click.core", "click.exceptions", "click.types", "click.parser", "click.formatting",
            "click.decorators", "click.termui", "click.utils")


def gettext(message: str) -> str:
    return CATALOG.get(message, message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return gettext(singular if n == 1 else plural)


def install() -> None:
    """Translate click's messages for this process (idempotent)."""
    for name in _MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "_"):
            module._ = gettext  # type: ignore[attr-defined]
        if hasattr(module, "ngettext"):
            module.ngettext = ngettext  # type: ignore[attr-defined]
    for owner, attribute, ours in _REWORDED:
        if hasattr(owner, attribute):  # another click version: its own wording, still translated above
            setattr(owner, attribute, ours)


_CLICK_QUOTED = re.compile(r"'(.*)'")


def quoted(name: Any) -> str:
    """A name in Chinese quotes: “--by”."""
    return f"“{name}”"


def _param_hints(hint: Sequence[str] | str | None) -> str | None:
    """Which parameter, as click names it for an error (``'--by' / '-b'``, or a list), in Chinese
    quotes: “--by” / “-b”."""
    if hint is None:
        return None
    pieces = hint.split(" / ") if isinstance(hint, str) else list(hint)
    return " / ".join(quoted(m[1] if (m := _CLICK_QUOTED.fullmatch(p)) else p) for p in pieces)


def _no_such(self: click.exceptions.NoSuchOption | click.exceptions.NoSuchCommand) -> str:
    """``没有选项 “--dry”，是不是 “--dry-run”？`` (click: ``… '--dry'. Did you mean '--dry-run'?``)."""
    from bot.config.hints import did_you_mean

    possible = sorted(self.possibilities or [])
    # An option the typed one begins (--dry of --dry-run) is what was meant; click's difflib also
    # offers merely similar ones (--yes), which misleads next to it.
    name = getattr(self, "option_name", None) or getattr(self, "name", None) or ""
    possible = [p for p in possible if name and p.startswith(name)] or possible
    return f"{self.message}{did_you_mean(possible) or '。'}"


def _no_such_command(self: click.exceptions.NoSuchCommand) -> str:
    """As :func:`_no_such`, then where the commands are listed (``remindbot db --help`` for db's)."""
    names, ctx = [], self.ctx
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return f"{_no_such(self)}可用命令见 {' '.join(['remindbot', *reversed(names)])} --help。"


def _missing(self: click.exceptions.MissingParameter) -> str:
    """``缺少参数 “提醒标识”。`` (click: ``Missing argument '提醒标识'.``), then what the type adds (the choices)."""
    param = self.param
    hint = self.param_hint if self.param_hint is not None else param.get_error_hint(self.ctx) if param else None
    kind = self.param_type or (param.param_type_name if param else "")
    text = f"缺少{_KIND_WORDS.get(kind, '参数')}"
    text += f" {_param_hints(hint)}。" if hint else "。"
    extra = param.type.get_missing_message(param=param, ctx=self.ctx) if param else None
    return text + (self.message or "") + (extra or "")


_KIND_WORDS = {"argument": "参数", "option": "选项", "parameter": "参数"}


def _invalid_choice(self: click.Choice, value: Any, ctx: click.Context | None) -> str:
    """``“xlsx” 不在可选值 “table”、“csv”、“markdown” 之中。`` (click quotes each with repr)."""
    return f"{quoted(value)} 不在可选值 {'、'.join(quoted(c) for c in self.choices)} 之中。"


_write_usage = click.formatting.HelpFormatter.write_usage


def _usage(self: click.formatting.HelpFormatter, prog: str, args: str = "", prefix: str | None = None) -> None:
    """``用法：remindbot fire …``: click's prefix is ``"Usage:" + " "``, and after a full-width colon
    that space is one too many."""
    _write_usage(self, prog, args, gettext("Usage:") if prefix is None else prefix)


def _heading(self: click.formatting.HelpFormatter, heading: str) -> None:
    """``选项：`` like ``用法：`` (click ends a heading with an ASCII colon)."""
    self.write(f"{'':>{self.current_indent}}{heading}：\n")


def _range(self: click.types._NumberRangeBase) -> str:
    """A number option's bounds in words, for its help (``[默认：30；1–3660]``) and its refusal
    (``0 不在范围 1–3660 之内。``); click writes ``1<=x<=3660``."""
    low = None if self.min is None else f"{'大于' if self.min_open else '不小于'} {self.min}"
    high = None if self.max is None else f"{'小于' if self.max_open else '不超过'} {self.max}"
    if low and high and not (self.min_open or self.max_open):
        return f"{self.min}–{self.max}"
    return "、".join(words for words in (low, high) if words)


_click_help_record = click.Option.get_help_record


def _help_record(self: click.Option, ctx: click.Context) -> tuple[str, str] | None:
    """An option's help line, its extras (default, range, environment variable, required) joined by a
    full-width semicolon as Chinese lists are: ``[默认：30；1–3660]`` (click joins them by ``; ``)."""
    if not hasattr(self, "get_help_extra"):  # a click before 8.2: its own line, still translated
        return _click_help_record(self, ctx)
    if self.hidden:
        return None
    extra = self.get_help_extra(ctx)
    items = [gettext("env var: {var}").format(var=", ".join(extra["envvars"]))] if "envvars" in extra else []
    if "default" in extra:
        items.append(gettext("default: {default}").format(default=_default_words(self, ctx, extra["default"])))
    items += [extra["range"]] if "range" in extra else []
    items += [gettext(extra["required"])] if "required" in extra else []
    shown = f"[{'；'.join(items)}]" if items else ""
    return self.get_help_spec(ctx), "  ".join(part for part in (self.help or "", shown) if part)


def _default_words(option: click.Option, ctx: click.Context, shown: str) -> str:
    """An option's default for its help: a yes/no flag's in Chinese, ``是`` or ``否`` (click shows a
    ``--notices/--no-notices`` pair's default as the option's name, ``notices``, and a lone flag's as
    ``True``); any other option's as click writes it (``shown``)."""
    if not option.is_bool_flag:
        return shown
    return "是" if option.get_default(ctx, call=True) else "否"


# (owner, attribute, replacement): the messages click composes outside its catalog
_REWORDED: tuple[tuple[Any, str, Any], ...] = (
    (click.types._NumberRangeBase, "_describe_range", _range),
    (click.Option, "get_help_record", _help_record),
    (click.formatting.HelpFormatter, "write_usage", _usage),
    (click.formatting.HelpFormatter, "write_heading", _heading),
    (click.exceptions, "_join_param_hints", _param_hints),
    (click.exceptions.NoSuchOption, "format_message", _no_such),
    (click.exceptions.NoSuchCommand, "format_message", _no_such_command),
    (click.exceptions.MissingParameter, "format_message", _missing),
    (click.types.Choice, "get_invalid_choice_message", _invalid_choice),
)


_TYPE_WORDS = {"text": "文本", "integer": "整数", "integer range": "整数", "float": "数字", "datetime": "YYYY-MM-DD",
               "path": "路径", "file": "文件", "directory": "文件夹"}


def chinese_metavars(group: click.Group) -> None:
    """"[OPTIONS]" and "COMMAND [ARGS]..." of the group in Chinese; each command's own words
    (and the value types, "TEXT", "INTEGER") are set by :func:`chinese_command` when it is loaded."""
    group.options_metavar = "[选项]"
    group.subcommand_metavar = "命令 [参数]..."


def chinese_command(command: click.Command) -> None:
    """One command's usage and value types in Chinese (idempotent)."""
    command.options_metavar = "[选项]"
    for param in command.params:
        words = _TYPE_WORDS.get(param.type.name)
        if isinstance(param, click.Option) and param.metavar is None and not param.is_flag and words:
            param.metavar = words
