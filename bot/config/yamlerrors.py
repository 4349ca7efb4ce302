"""PyYAML's (libyaml's) syntax errors in Chinese, at the place the admin must change.

The parser's own words are English and name its grammar ("did not find expected '-' indicator");
an admin needs the mistake and the fix. A recognised problem is said in Chinese alone; an unknown
one gets a Chinese lead-in with the parser's text as a quoted detail. Before that, the lines
around the problem are searched for what a Chinese input method types where YAML wants ASCII
(bot/config/ime.py): that character, at its own line and column, is the mistake to name.
"""

from __future__ import annotations

import bisect
import re

import yaml

from bot.config.ime import COMMA_WORDS, FULL_SPACE, QUOTE_WORDS, line_mistake, mark_words
from bot.config.issues import ConfigIssue
from bot.config.limits import DEPTH_WORDS, SYNTAX_LEAD, Limits, scan

LEAD = SYNTAX_LEAD
# Lines above the problem searched for an input-method character: the parser notices a broken
# key or indentation at the next token, which may be a line or two further down.
_LINES_BEFORE = 3
_YAML_TAG = "tag:yaml.org,2002:"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# A line inside a quoted value that reads as YAML structure: a key, or a list item.
_KEYLIKE = re.compile(r"^[ ]*(?:- |[^\s:#'\"]+:(?: |$))")

# An unfinished flow list or mapping: (the parser's problem, words, how it ends).
_UNFINISHED = (("did not find expected ',' or ']'", "方括号列表没有写完（缺少 , 或 ]）", "列表要以 ] 结束"),
               ("did not find expected ',' or '}'", "花括号映射没有写完（缺少 , 或 }）", "映射要以 } 结束"))
# What an input method types inside brackets in place of a separator or the closing one.
_FLOW_IME = re.compile("[，、］｝]")
AFTER_QUOTE_WORDS = "引号结束后同一行还有别的内容：引号应包住整个值"

# (fragment of the parser's problem, words); first match wins.
_PROBLEMS = (
    ("mapping values are not allowed",
     "这里不能出现冒号：值里含 “: ” 时请给整个值加英文引号，否则检查这一行和上一行的缩进"),
    ("could not find expected ':'", "缺少冒号：键和值之间应为英文冒号加空格（键: 值）"),
    (_UNFINISHED[0][0], _UNFINISHED[0][1]),
    (_UNFINISHED[1][0], _UNFINISHED[1][1]),
    ("did not find expected '-' indicator", "列表的缩进不一致：同一列表的每一项都以 - 开头，并且 - 要上下对齐"),
    ("did not find expected key", "缩进不一致或缺少 - （同一层的项要对齐）"),
    ("expected <block end>", "缩进不一致（同一层的项要对齐）"),
    ("did not find expected node content", "这里缺少值（检查 - 或冒号后面的内容）"),
    ("block sequence entries are not allowed", "这里不能开始一个列表：- 开头的列表项要另起一行并缩进"),
    ("mapping keys are not allowed", "这里不能出现键（检查缩进和冒号）"),
    ("found unexpected ':'", "这里不能出现冒号：值里含冒号时请给整个值加英文引号"),
    ("tab character", "不能用 Tab 缩进，请用空格"),
    ("found unknown escape character",
     "双引号里有无法识别的转义（\\ 后面的字符）：含 \\ 的值（如 Windows 路径）请改用单引号"),
    ("found unexpected end of stream", "文件在未写完的地方结束（检查引号、括号是否成对）"),
    ("did not find expected comment or line break", AFTER_QUOTE_WORDS),
    # libyaml's own bound (1,000 levels, met before our MAX_DEPTH check sees the events): same words.
    ("exceeded maximum nesting depth", DEPTH_WORDS),
    ("found unexpected document indicator", "--- 或 ... 只能单独占一行；值里有它们时请加引号"),
    ("found undefined alias", "引用了未定义的锚点（*名称）"),
    ("found duplicate anchor", "锚点（&名称）重复定义：同一文件中每个锚点名只能用一次"),
    ("but found another document", "一个文件只能有一份内容：请删去多余的 ---（或分成两个文件）"),
    ("control characters are not allowed", "文件中有不可见的控制字符，请删除（常见于从网页或文档复制的内容）"),
    ("invalid Unicode character", "文件中有无效的字符，请删除"),
    ("for merging", "合并（<<）只能引用映射（&名称 定义的键: 值）"),
    ("found unhashable key", "键不能是列表或映射"),
)


def syntax_issue(label: str, text: str, exc: yaml.MarkedYAMLError) -> ConfigIssue:
    """One issue for a file the parser refused: the input-method character that broke it when there
    is one near the problem, else the problem in Chinese; always file:line:column (1-based)."""
    problem = exc.problem or exc.context or ""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line if mark else 0
    opened = _quote_run_on(text, line)
    if opened is not None:  # the quote the parser read on through the lines below
        at_line, at_col, closed = opened
        # The parser's own words for where it stopped (缩进不一致…) are a consequence, not the cause: left out.
        return issue_at(label, text, at_line, at_col, LEAD + (
            f"这里的引号没有在本行结束（缺少结束的引号）：YAML 把后面直到第 {closed + 1} 行那个引号为止的内容"
            f"都当成了这个值，因此在第 {line + 1} 行报错"))
    found = _ime_in_unfinished_flow(text, problem, exc.context_mark) or _text_after_quote(text, mark)
    if found is None:
        found = _ime_near(text, line, exc.context_mark)
    if found is not None:
        at_line, at_col, words = found
        return issue_at(label, text, at_line, at_col, LEAD + words)
    if "exceeded maximum nesting depth" in problem and mark is not None:
        return _too_deep(label, text, mark)
    if exc.context_mark is not None and ("could not find expected ':'" in problem
                                         or ("end of stream" in problem and "quoted" in (exc.context or ""))):
        mark = exc.context_mark  # where the key without its colon, or the unclosed quote, starts
    words = in_words(problem, exc.context or "", _char_at(text, mark))
    return issue_at(label, text, mark.line if mark else 0, mark.column if mark else 0, LEAD + words)


def _too_deep(label: str, text: str, mark: yaml.Mark) -> ConfigIssue:
    """Nesting past libyaml's own bound (1,000 flow levels), which it meets before any event reaches our
    scan: worded as our bound, at the place the level past it (65th) opens, like a file nested less deep.
    The text before the parser's mark holds fewer levels than its bound, so the scan reads it (linear)."""
    refusal = scan(text[:mark.index], Limits())
    if refusal is not None and refusal.message == LEAD + DEPTH_WORDS:
        return issue_at(label, text, refusal.line - 1, refusal.column - 1, refusal.message)
    return issue_at(label, text, mark.line, mark.column, LEAD + DEPTH_WORDS)


_SOURCE_CHARS = 200


def issue_at(label: str, text: str, line: int, column: int, message: str) -> ConfigIssue:
    """An issue of no field at ``line``, ``column`` (0-based) of ``text``, that line's text kept (stripped):
    the admin notice knows the problem by it, not by a number an edit above it changes."""
    lines = text.splitlines()
    # bounded: a 400 KB line is known by its start (the key is a digest; the issue is pickled and kept)
    source = lines[line].strip()[:_SOURCE_CHARS] if 0 <= line < len(lines) else ""
    return ConfigIssue(label, line + 1, column + 1, "", message, source=source)


def in_words(problem: str, context: str = "", char: str = "") -> str:
    """The parser's problem in Chinese (no English when recognised). ``context`` is the parser's
    "while scanning …" and ``char`` the character at the problem, when known."""
    if "could not determine a constructor for the tag" in problem or "undefined tag handle" in problem:
        return _tag_words(problem)
    if "cannot start any token" in problem:
        return _bad_start(char)
    if "found unexpected end of stream" in problem and "quoted" in context:
        return "引号没有成对（缺少结束的引号）"
    said = f"{context} {problem}"  # a duplicate anchor's problem is only "second occurrence"
    for fragment, words in _PROBLEMS:
        if fragment in said:
            return words
    return f"无法解析这里，请检查缩进、冒号和引号（解析器的说明：“{problem}”）" if problem \
        else "无法解析这里，请检查缩进、冒号和引号"


def _tag_words(problem: str) -> str:
    """A ``!!python/...`` (or any ``!``) tag: refused by design, whatever it names."""
    tag = problem.rpartition("tag ")[2].strip("'\"")
    shown = "!!" + tag.removeprefix(_YAML_TAG) if tag.startswith(_YAML_TAG) else tag
    named = f" “{shown}”" if shown.startswith("!") and len(shown) <= 80 else ""
    return f"不允许使用标签{named}（以 ! 开头的写法）：请删去它，只写值本身；值以 ! 开头时请加引号"


def _char_at(text: str, mark: yaml.Mark | None) -> str:
    if mark is None:
        return ""
    lines = text.splitlines()
    if mark.line >= len(lines) or mark.column >= len(lines[mark.line]):
        return ""
    return lines[mark.line][mark.column]


def _bad_start(char: str) -> str:
    """What to do about a character no YAML value may start with."""
    if char == "\t":
        return "不能用 Tab 缩进，请用空格"
    if char in "@`%":
        return f"值不能以 {char} 开头：请给整个值加英文引号（如 \"{char}…\"）"
    return f"有不能识别的字符 “{char}”：请删除，或给整个值加英文引号" if char.isprintable() and char \
        else "有不能识别的字符：请删除，或给整个值加英文引号"


def _quote_run_on(text: str, line: int) -> tuple[int, int, int] | None:
    """(line, column, line it closed on), 0-based, of a quoted value that opened above ``line`` and ran
    on over lines that look like keys or list items (``at: "09:00`` missing its closing quote: the
    value ends at the next quote, lines further down, where the parser fails). None when there is none."""
    if "'" not in text and '"' not in text:
        return None  # no quoted value at all: the file's tokens need not be walked
    found = None
    rows: list[str] | None = None  # split once, on the first quoted value over several lines
    try:
        for token in yaml.scan(text, Loader=_LOADER):
            start, end = token.start_mark, token.end_mark
            if start.line > line:
                break
            if isinstance(token, yaml.ScalarToken) and token.style in ("'", '"') and start.line < end.line:
                rows = text.splitlines() if rows is None else rows
                # Quoted values do not share lines below their first: each row is matched once at most.
                if any(_KEYLIKE.match(row) for row in rows[start.line + 1:end.line + 1]):
                    found = (start.line, start.column, end.line)
    except yaml.YAMLError:
        pass  # the tokens up to the scanner's own error are the ones that matter
    return found


def _ime_in_unfinished_flow(text: str, problem: str, context: yaml.Mark | None) -> tuple[int, int, str] | None:
    """(line, column, words), 0-based, of the input-method character (“，”, “、”, “］”, “｝”) on the line
    where an unfinished flow list or mapping opens (``notify: [3d，1d`` with no "]"), after its bracket:
    YAML reads ``3d，1d`` as one item and the list never ends, so that character is the one to retype."""
    said = next(((words, end) for fragment, words, end in _UNFINISHED if fragment in problem), None)
    if context is None or said is None:
        return None
    if (m := _FLOW_IME.search(_row(text, context.line), context.column)) is None:
        return None
    return context.line, m.start(), f"{said[0]}：其中{mark_words(m.group())}；{said[1]}"


def _text_after_quote(text: str, mark: yaml.Mark | None) -> tuple[int, int, str] | None:
    """(line, column, words), 0-based, when the parser stopped right after a closing quote on the same
    line (``title: "a"a"a``): the text after the quote is the mistake, whatever the parser's problem.
    One pass over the tokens up to that line (linear in the text)."""
    if mark is None or ('"' not in text and "'" not in text):
        return None
    try:
        for token in yaml.scan(text, Loader=_LOADER):
            end = token.end_mark
            if token.start_mark.line > mark.line:
                break
            if (isinstance(token, yaml.ScalarToken) and token.style in ("'", '"') and end.line == mark.line
                    and end.column <= mark.column and not _row(text, mark.line)[end.column:mark.column].strip(" ")):
                return mark.line, mark.column, AFTER_QUOTE_WORDS
    except yaml.YAMLError:
        pass  # the tokens up to the scanner's own error are the ones that matter
    return None


def _row(text: str, line: int) -> str:
    """Line ``line`` (0-based) of ``text``, "" past its end; found without splitting the whole text."""
    start = 0
    for _ in range(line):
        start = text.find("\n", start) + 1
        if start == 0:
            return ""
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]


def _ime_near(text: str, line: int, context: yaml.Mark | None) -> tuple[int, int, str] | None:
    """(line, column, words), 0-based, of an input-method character on the problem's line or the few
    above it (and the line the parser's context names), nearest the problem first."""
    lines = text.splitlines()
    candidates = list(range(min(line, len(lines) - 1), max(line - _LINES_BEFORE, 0) - 1, -1))
    if context is not None and context.line not in candidates and 0 <= context.line < len(lines):
        candidates.append(context.line)
    for number in candidates:
        found = line_mistake(lines[number])
        if found is None:
            continue
        column, words = found
        if words in (QUOTE_WORDS, COMMA_WORDS) and number != line:
            continue  # such a value parses as text: only on the problem's own line is it the cause
        return number, column, words
    return None


_LEADING_FULL_SPACE = re.compile(r"^[ ]*(\u3000)")
TEXT_TOP_WORDS = "（因此整个文件被读成了一段文本，而不是 键: 值 的映射）"


def text_top_mistake(text: str, tree: yaml.Node) -> tuple[int, int, str] | None:
    """(line, column, words), 0-based, when the whole file parsed as one plain text because of an
    input-method character (``units：`` then ``  - id： x``: no key at all, so no mapping): the first
    key ended by “：” or line indented with full-width spaces in it. None otherwise. Linear in the text."""
    if not isinstance(tree, yaml.ScalarNode) or tree.style:
        return None
    rows = text.splitlines()[tree.start_mark.line:tree.end_mark.line + 1]
    for number, row in enumerate(rows, start=tree.start_mark.line):
        found = line_mistake(row)
        if found is not None and found[1] != QUOTE_WORDS and found[1] != COMMA_WORDS:
            return number, found[0], found[1] + TEXT_TOP_WORDS
    return None


FULL_SPACE_LINE_WORDS = ("这一行开头用了全角空格（中文输入法的空格），YAML 不把它当作缩进："
                         "这一行被接在了上一行的值后面，成了这个值的一部分；"
                         "请删掉全角空格，用半角空格（英文输入法下的空格）重新缩进")


def full_space_lines(text: str, tree: yaml.Node) -> list[tuple[int, int, tuple[object, ...]]]:
    """(line, column, path of the value), 0-based, of each line indented with full-width spaces that YAML
    nevertheless read: such a line (``      　　holiday：next_workday``) is not indented to YAML, it
    is glued to the value above it (a plain text over several lines), so a key becomes part of a value
    with no error. Lines inside quoted or ``|`` / ``>`` texts are the admin's own text and stay silent."""
    if FULL_SPACE not in text:
        return []
    at = {n: m.start(1) for n, row in enumerate(text.splitlines()) if (m := _LEADING_FULL_SPACE.match(row))}
    if not at:
        return []
    lines = sorted(at)
    found: list[tuple[int, int, tuple[object, ...]]] = []
    stack: list[tuple[yaml.Node, tuple[object, ...]]] = [(tree, ())]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in seen:  # an alias: its anchor's node once
            continue
        seen.add(id(node))
        first = bisect.bisect_right(lines, node.start_mark.line)
        if first == len(lines) or lines[first] > node.end_mark.line:
            continue  # no such line below this node's first: a large file is walked only where they are
        if isinstance(node, yaml.MappingNode):
            stack.extend((value, (*path, str(key.value))) for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value))
        elif isinstance(node, yaml.ScalarNode) and not node.style:
            found.extend((n, at[n], path) for n in range(node.start_mark.line + 1, node.end_mark.line + 1) if n in at)
    return sorted(found, key=lambda hit: hit[0])
