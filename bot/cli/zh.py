"""click's own messages (usage errors, help headings) in Chinese.

click marks every message it prints with gettext (``_("Missing option")``), looked up at call time
through each click module's ``_`` and ``ngettext``. :func:`install` points those names at the
catalog below, so a missing option, a bad value, an unknown command or option reads in Chinese
for every command, with click's own wording as the fallback for anything not in the catalog.
"""

from __future__ import annotations

import importlib

import click

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
    "No such option {name!r}.": "没有选项 {name!r}。",
    "No such command {name!r}.": "没有命令 {name!r}（可用命令见 remindbot --help）。",
    "Did you mean {possibility}?": "是不是 {possibility}？",
    "(Did you mean one of: {possibilities}?)": "（是不是其中之一：{possibilities}？）",
    "Invalid value: {message}": "值无效：{message}",
    "Invalid value for {param_hint}: {message}": "{param_hint} 的值无效：{message}",
    "Got unexpected extra argument ({args})": "多出了参数（{args}）",
    "Got unexpected extra arguments ({args})": "多出了参数（{args}）",
    "Option {name!r} requires an argument.": "选项 {name!r} 后面要写一个值。",
    "Option {name!r} requires {nargs} arguments.": "选项 {name!r} 后面要写 {nargs} 个值。",
    "Option {name!r} does not take a value.": "选项 {name!r} 不带值。",
    "Argument {name!r} takes {nargs} values.": "参数 {name!r} 需要 {nargs} 个值。",
    "Aborted!": "已取消。",
    "Could not open file {filename!r}: {message}": "无法打开文件 {filename!r}：{message}",
    "unknown error": "未知错误",
    "Value must be an iterable.": "值应为列表。",
    # values
    "{value!r} is not {choice}.": "{value!r} 不是 {choice}。",
    "{value!r} is not one of {choices}.": "{value!r} 不在可选值 {choices} 之中。",
    # Every DateTime option here takes a day (%Y-%m-%d); "2026-02-30" is refused with the same words.
    "{value!r} does not match the format {format}.": "{value!r} 不是有效的日期：日期应为 年-月-日，例如 2026-11-06。",
    "{value!r} does not match the formats {formats}.": "{value!r} 不是有效的日期：日期应为 年-月-日，例如 2026-11-06。",
    "{value} is not in the range {range}.": "{value} 不在范围 {range} 之内。",
    "{value!r} is not a valid {number_type}.": "{value!r} 不是有效的数字。",
    "{value!r} is not a valid boolean. Recognized values: {states}": "{value!r} 不是是/否值，可写：{states}",
    "{name} {filename!r} does not exist.": "{name} {filename!r} 不存在。",
    "{name} {filename!r} is a file.": "{name} {filename!r} 是文件，应为文件夹。",
    "{name} {filename!r} is a directory.": "{name} {filename!r} 是文件夹，应为文件。",
    "{name} {filename!r} is not readable.": "{name} {filename!r} 不可读。",
    "{name} {filename!r} is not writable.": "{name} {filename!r} 不可写。",
    "{name} {filename!r} is not executable.": "{name} {filename!r} 不可执行。",
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
