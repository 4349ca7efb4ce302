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
# What may not be part of a key besides white space (the class ``[^\s:：#'"“”\[\]{},]`` of _KEY_COLON).
_NOT_KEY = frozenset(":：#'\"“”[]{},")
# The characters the flow scan (:func:`_flow_mistakes`) stops at; the rest of a line is skipped in C.
_FLOW_MARKS = re.compile(r"[\[\]{}，：]")
_LEADING_FULL_SPACE = re.compile(r"^[ ]*(\u3000)")
_CHINESE_QUOTE = re.compile(r"(?:^|:[ ]+|-[ ]+|[\[,{][ ]*)([“”])")


def ime_hint(value: str) -> str:
    """``（用了中文逗号 “，”，请改成英文逗号 “,”）`` for the first such character in ``value``; "" when none."""
    for char in value:
        if char in _MARKS:
            name, instead = _MARKS[char]
            return f"（用了{name}，请改成{instead}）"
    return ""


def mark_words(char: str) -> str:
    """``用了中文逗号 “，”，YAML 不认：请改成英文逗号 “,”`` for one of the characters above."""
    name, instead = _MARKS[char]
    return f"用了{name}，YAML 不认：请改成{instead}"


def quoted(value: str) -> str:
    """``value`` in Chinese quotes for a message, once: a value the admin already put in them is shown as is."""
    return value if value.startswith("“") and value.endswith("”") else f"“{value}”"


VALUE_CHARS = 40  # characters of a wrong value a message quotes; the rest said as …
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown_value(value: str, chars: int = VALUE_CHARS) -> str:
    """A wrong value as a message quotes it: at most ``chars`` characters (then …), a control character
    written as an escape (``\\n``, ``\\x1b``: a terminal never runs it, a line never breaks), in Chinese
    quotes (:func:`quoted`): ``“=cmd|"/c calc"!A1”``."""
    cut = value if len(value) <= chars else value[:chars] + "…"
    return quoted(_CONTROL.sub(_escape, cut))


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    code = ord(char)
    return _ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def list_meant(value: str) -> str | None:
    """``[a, b]`` for ``a，b`` (or ``a、b``): the flow list an admin meant when the input method typed
    its comma; None when ``value`` has no such comma."""
    if not any(comma in value for comma in "，、"):
        return None
    return "[" + ", ".join(part.strip() for part in re.split("[，、]", value)) + "]"


KEY_COLON_WORDS = "键后面用了中文冒号 “：”，YAML 不认：请改成英文冒号和空格 “: ”"
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
    key_colon, flow_comma = _flow_mistakes(line)
    if (m := _KEY_COLON.match(line)) is not None:
        key_colon = m.start(1)  # a key at the line's start comes first, as the parser meets it
    if key_colon is not None:
        return key_colon, KEY_COLON_WORDS
    if (m := _CHINESE_QUOTE.search(line)) is not None:
        return m.start(1), QUOTE_WORDS
    if flow_comma is not None:
        return flow_comma, COMMA_WORDS
    return None


def _flow_mistakes(line: str) -> tuple[int | None, int | None]:
    """(column of the first key ended by "：" inside braces — ``{roles：[secretary]}``, ``{a: 1, b：2}`` —,
    column of the first "，" inside brackets or braces — ``[3d，1d]``), 0-based; None for none.

    One pass from left to right, remembering whether a bracket is open: time linear in the line's
    length whatever it holds (searching from every "[" or "{" for what follows took minutes on a long
    line of unclosed brackets). A "：" is looked at backwards only as far as its key and the spaces
    before it, which no other "：" shares.
    """
    brace_open = False  # a "{" not yet closed by "}"
    bracket_open = False  # a "[" or "{" not yet closed by "]" or "}"
    key_colon = flow_comma = None
    for m in _FLOW_MARKS.finditer(line):
        char, at = m.group(), m.start()
        if char in "[{":
            bracket_open = True
            brace_open = brace_open or char == "{"
        elif char in "]}":
            bracket_open = False
            brace_open = brace_open and char == "]"
        elif char == "，":
            if bracket_open and flow_comma is None:
                flow_comma = at
        elif brace_open and key_colon is None and _after_flow_key(line, at):
            key_colon = at
            break  # it comes before any comma in what line_mistake says
    return key_colon, flow_comma


def _after_flow_key(line: str, colon: int) -> bool:
    """Whether the "：" at ``colon`` ends a key that starts a flow entry: a key, spaces, then "{" or ","."""
    at = colon
    while at > 0 and not line[at - 1].isspace() and line[at - 1] not in _NOT_KEY:
        at -= 1
    if at == colon:
        return False
    while at > 0 and line[at - 1] == " ":
        at -= 1
    return at > 0 and line[at - 1] in "{,"
