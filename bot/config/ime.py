"""Punctuation a Chinese input method types where YAML wants ASCII: the full-width colon, comma,
space, quotes and brackets. Named in words so the admin sees which character to retype, not only that a
value or a line is wrong. Imports nothing of PyYAML: the value parsers (bot/config/spans.py) use it."""

from __future__ import annotations

import re

FULL_SPACE = "\u3000"
# character -> (its name, what to type instead)
_MARKS = {
    "：": ("中文冒号 “：”", "英文冒号 “:”"),
    "，": ("中文逗号 “，”", "英文逗号 “,”"),
    "、": ("顿号 “、”", "英文逗号 “,”"),
    FULL_SPACE: ("全角空格", "半角空格（英文输入法下的空格）"),
    "“": ("中文引号 “”", "英文引号 \"\""),
    "”": ("中文引号 “”", "英文引号 \"\""),
    "［": ("全角方括号 “［］”", "英文方括号 “[]”"),
    "］": ("全角方括号 “［］”", "英文方括号 “[]”"),
    "｛": ("全角花括号 “｛｝”", "英文花括号 “{}”"),
    "｝": ("全角花括号 “｛｝”", "英文花括号 “{}”"),
}
# A line that starts (after ASCII spaces and an optional "- ") with a key ended by the full-width
# colon, before any ASCII ": " — ``title：每月学习日``; a value such as ``note: 议题：学习`` is not one.
_KEY_COLON = re.compile(r"^[ ]*(?:-[ ]+)?[^\s:：#'\"“”\[\]{},]+(：)")
# The same inside braces: ``{roles：[secretary]}``.
_FLOW_KEY_COLON = re.compile(r"\{(?:[^}]*?,)?[ ]*[^\s:：#'\"“”\[\]{},]+(：)")
_FLOW_COMMA = re.compile(r"[\[{][^\]}]*?(，)")
_LEADING_FULL_SPACE = re.compile(r"^[ ]*(\u3000)")
_CHINESE_QUOTE = re.compile(r"(?:^|:[ ]+|-[ ]+|[\[,{][ ]*)([“”])")


def ime_hint(value: str) -> str:
    """``（用了中文逗号 “，”，请改成英文逗号 “,”）`` for the first such character in ``value``; "" when none."""
    for char in value:
        if char in _MARKS:
            name, instead = _MARKS[char]
            return f"（用了{name}，请改成{instead}）"
    return ""


def quoted(value: str) -> str:
    """``value`` in Chinese quotes for a message, once: a value the admin already put in them is shown as is."""
    return value if value.startswith("“") and value.endswith("”") else f"“{value}”"


def list_meant(value: str) -> str | None:
    """``[a, b]`` for ``a，b`` (or ``a、b``): the flow list an admin meant when the input method typed
    its comma; None when ``value`` has no such comma."""
    if not any(comma in value for comma in "，、"):
        return None
    return "[" + ", ".join(part.strip() for part in re.split("[，、]", value)) + "]"


QUOTE_WORDS = "值用了中文引号 “”，YAML 不把它当作引号：请改成英文引号 \"\"，或去掉引号"
COMMA_WORDS = "括号里的各项之间用了中文逗号 “，”，YAML 不认：请改成英文逗号 “,”"


def line_mistake(line: str) -> tuple[int, str] | None:
    """(0-based column, message) of an input-method character that breaks YAML on this line, or None.

    In order of what breaks first: indentation with full-width spaces, a key ended by the full-width
    colon, a value opened with a Chinese quote (YAML reads it as text, so a ": " inside still splits it),
    a full-width comma inside brackets or braces.
    """
    if (m := _LEADING_FULL_SPACE.match(line)) is not None:
        return m.start(1), ("缩进用了全角空格（中文输入法的空格），YAML 不认："
                            "请删掉后用半角空格（英文输入法下的空格）重新缩进")
    if (m := _KEY_COLON.match(line) or _FLOW_KEY_COLON.search(line)) is not None:
        return m.start(1), "键后面用了中文冒号 “：”，YAML 不认：请改成英文冒号和空格 “: ”"
    if (m := _CHINESE_QUOTE.search(line)) is not None:
        return m.start(1), QUOTE_WORDS
    if (m := _FLOW_COMMA.search(line)) is not None:
        return m.start(1), COMMA_WORDS
    return None
