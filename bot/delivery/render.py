"""Jinja2 message templates: one template serves every platform (adapters convert the markdown).

Templates live in ``message_templates/<name>.md.j2`` and are rendered with StrictUndefined, so a
misspelt variable fails ``remindbot validate``, not the 9 o'clock send. The context (every key is
always present; absent values are ``none``):

=============== ==============================================================================
``reminder``    ``id``, ``title``, ``note``, ``checklist`` (list), ``kind``
``stage``       ``notice`` (ahead of the day), ``due`` (the day), ``followup``, ``escalation``,
                ``report``, ``test``
``lead``        for notices, how far ahead in words, e.g. ``3天``; else none
``due``         ``date`` (``2026年12月4日``), ``weekday`` (``星期五``), ``time`` (``09:00``),
                ``text`` (all three), ``moved_from`` (original date text when the holiday policy
                moved it), ``holiday`` (the holiday's name), ``provisional`` (true when the date
                comes from the fallback calendar)
``deadline``    confirmation deadline text, e.g. ``2026年12月7日 18:00``; none without confirmation
``confirm``     ``required`` (bool), ``link`` (the person's confirmation link, when allowed here),
                ``code`` (the occurrence's short reply code, e.g. ``A7K3``, where an app of the
                channel's platform receives replies; else none)
``people``      people mentioned: each with ``name``, ``title``, ``unit`` (name)
``person``      the one person this message is for (``per_person`` reminders, follow-ups); each
                with ``id``, ``name``, ``title``, ``unit``, ``roles``; none for group messages
``unit``        that person's unit name; none otherwise
``overdue``     escalations: list of ``name``, ``unit``, ``since`` (deadline text), ``nudges``
``late``        set when the message goes out after its time (补发, after downtime): ``original``,
                the time it was meant for, e.g. ``11月6日 09:00``; none when on time
``figures``     reports and leaders' briefs: ``period``, ``spec``, ``rows`` (per unit: ``unit``,
                ``expected``, ``on_time``, ``late``, ``missing``, ``pending`` (of
                ``missing``, deadline not passed), ``nudges``, ``excused``, ``rate``,
                ``place`` (rank among all units, from 1; equal figures share one; 0: nothing
                due yet, shown "—"), ``due`` (of ``expected``, already due; 0: no rate));
                at most 20 rows (a report's
                ``report.rows``): past that, the best third and the last ones, and
                ``more`` (units not listed; 0: all listed), ``head`` (rows from the top),
                ``waiting`` (units with nothing due yet),
                ``total_units``, ``totals`` (the 合计 row over all units), ``ranked`` (a
                listed unit has something due, so some are behind); optional:
                ``ranking`` (admin units page), ``page`` (a leader's own page)
=============== ==============================================================================
"""

from __future__ import annotations

import functools
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import SandboxedEnvironment

from bot.config.issues import ConfigIssue

if TYPE_CHECKING:
    from bot.config.loader import Parsed
    from bot.config.models import Schedules

SUFFIX = ".md.j2"
CONTEXT_KEYS = ("reminder", "stage", "lead", "due", "deadline", "confirm", "people", "person",
                "unit", "overdue", "figures", "late")
BUILTIN_TEMPLATES = ("followup", "escalation", "report", "test")
_EMPTY: dict[str, Any] = dict.fromkeys(CONTEXT_KEYS)
# Messages of one kind rendered as they are before RenderMemo renders the kind once with slots: its
# environment compiles the template again (5–25 ms, what it saves over a few hundred messages).
PROBE_AFTER = 300


class TemplateProblem(Exception):
    def __init__(self, template: str, line: int | None, message: str) -> None:
        super().__init__(message)
        self.template = template
        self.line = line
        self.message = message


TEMPLATE_BYTES = 1 << 20  # a template file's bound (the shipped ones are a few KB): read whole when used


class _BoundedLoader(jinja2.FileSystemLoader):
    """Jinja2's file loader, refusing a template file over :data:`TEMPLATE_BYTES` before reading it
    (an admin's folder is outside input: a file of gigabytes would be read whole at the check). Jinja2
    itself loads only regular files (``os.path.isfile``): a pipe named like a template is not found."""

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str | None, Callable[[], bool]]:
        for folder in self.searchpath:
            path = Path(folder) / template
            if path.is_file() and (size := path.stat().st_size) > TEMPLATE_BYTES:
                name = template.removesuffix(SUFFIX)
                raise TemplateProblem(name, None, f"模板文件 {template} 过大（{size / (1 << 20):.1f} MB），"
                                                  f"超过上限 {TEMPLATE_BYTES >> 20} MB，未读取")
        return super().get_source(environment, template)


@dataclass(frozen=True)
class Rendered:
    title: str
    markdown: str


_BLOCK = re.compile(r"\{%[-+]?.*?[-+]?%\}")
_ENDS_IN_BLOCK = re.compile(r"(?<![-+])%\}$")


class InlineBlocksKeepLines(Extension):
    """``trim_blocks`` for lines that hold only block tags; plain Jinja2 for lines with text.

    ``trim_blocks`` drops the newline after every block tag, which suits a line holding only
    ``{% if %}``, but glues two lines when a line of text ends in an inline tag
    (``**对象：**{% if person %}…{% else %}各支部书记{% endif %}`` then a new line). Such a
    tag gets Jinja2's own ``+%}`` opt-out, so the line ends where the template says it does.
    """

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        lines = source.split("\n")
        for index, line in enumerate(lines):
            if _ENDS_IN_BLOCK.search(line) and _BLOCK.sub("", line).strip():
                lines[index] = line[:-2] + "+%}"
        return "\n".join(lines)


class _Sandbox(SandboxedEnvironment):
    """Jinja2's sandbox, with ``dict.key`` looked up without the failed attribute lookup first.

    Jinja2 tries ``getattr(obj, key)`` and, on ``AttributeError``, ``obj[key]``: for a plain dict and
    a name that is no attribute of ``dict``, that is ``obj[key]`` or undefined, which this does
    directly (the context is dicts throughout: twelve lookups a message, each an exception before).
    Anything else (``items``, objects) goes through the sandbox's checks as before.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and isinstance(attribute, str) and attribute not in _DICT_NAMES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


_DICT_NAMES = frozenset(dir(dict))


class Renderer:
    """Compiles templates once (per reload) and renders them with a complete context.

    A template is read and compiled on its first use and kept for this renderer's life: no disk
    check per message (a province's fire renders 20,000). Templates change by a reload, which
    makes a new renderer (``bot.service.apply_schedules``; each command makes its own).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._templates: dict[str, jinja2.Template] = {}
        self._globals: dict[str, dict[str, Any]] = {}  # each template's globals as one dict (a ChainMap in Jinja2)
        self._probes: dict[str, tuple[jinja2.Template, dict[str, Any]]] = {}  # compiled for RenderMemo
        self._unslotted: set[str] = set()  # templates that do more with a person's strings than print them
        self.env = _Sandbox(
            loader=_BoundedLoader(str(folder)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # output is markdown for chat apps, not HTML
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            extensions=[InlineBlocksKeepLines],
            auto_reload=False,  # compiled once per renderer: see the class's docstring
        )
        self._probe_env: _Probe | None = None

    def exists(self, name: str) -> bool:
        return (self.folder / f"{name}{SUFFIX}").is_file()

    def render(self, name: str, context: Mapping[str, Any], title: str) -> Rendered:
        try:
            template = self._templates.get(name)
            if template is None:
                template = self._templates[name] = self.env.get_template(f"{name}{SUFFIX}")
                self._globals[name] = dict(template.globals)
            text = self._render(template, {**self._globals[name], **_EMPTY, **context})
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateProblem(name, exc.lineno, syntax_message(str(exc.message))) from None
        except jinja2.UndefinedError as exc:
            raise TemplateProblem(name, _template_line(name), _undefined_message(exc)) from None
        except jinja2.TemplateNotFound:
            raise TemplateProblem(name, None, f"找不到模板文件 {name}{SUFFIX}") from None
        return Rendered(title=title, markdown=_tidy(text))


    def memo(self, probe_after: int = PROBE_AFTER) -> RenderMemo:
        """A :class:`RenderMemo` for one batch of messages (a fire, a follow-up pass)."""
        return RenderMemo(self, probe_after)

    def _render_probe(self, name: str, context: Mapping[str, Any]) -> str:
        """The template rendered, untidied, by the probe environment (slots print as markers)."""
        probe = self._probes.get(name)
        if probe is None:
            if self._probe_env is None:
                self._probe_env = _Probe(self.env)
            self._probe_env.check_blocks(f"{name}{SUFFIX}")
            template = self._probe_env.get_template(f"{name}{SUFFIX}")
            probe = self._probes[name] = (template, dict(template.globals))
        template, globals_ = probe
        context = template.new_context({**globals_, **_EMPTY, **context}, shared=True)
        return self._probe_env.concat(template.root_render_func(context))  # type: ignore[attr-defined,no-any-return,union-attr]

    def _render(self, template: jinja2.Template, full: dict[str, Any]) -> str:
        """``template.render(full)`` for a context that already holds the template's globals: Jinja2
        would copy it twice more and merge its globals (a ChainMap) again, for every message."""
        context = template.new_context(full, shared=True)
        try:
            return self.env.concat(template.root_render_func(context))  # type: ignore[attr-defined,no-any-return]
        except Exception:
            self.env.handle_exception()  # raises, with the template's own lines in the traceback, as render does
        raise AssertionError("unreachable")


class _Tainted(Exception):
    """A template did more with a personal value than print it or test whether it is empty."""


class _Slot:
    """Stands for one person's non-empty string while a template is rendered once for many people.

    Printing it (the probe environment's ``finalize``) gives its marker and testing it gives True,
    as the string would; anything else (compare, filter, slice, join, ``~``, attribute) raises
    :class:`_Tainted`, and the people are rendered one by one as before.
    """

    __slots__ = ("marker",)

    def __init__(self, index: int) -> None:
        self.marker = f"\x00{index}\x00"

    def __bool__(self) -> bool:
        return True

    def _taint(self, *args: Any, **kwargs: Any) -> Any:
        raise _Tainted

    __str__ = __repr__ = __format__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _taint
    __hash__ = __len__ = __iter__ = __contains__ = __getitem__ = __call__ = _taint  # type: ignore[assignment]
    __add__ = __radd__ = __mul__ = __rmul__ = __mod__ = __rmod__ = __int__ = __float__ = __index__ = _taint


def _finalize(value: Any) -> Any:
    return value.marker if type(value) is _Slot else value


def _guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter or test that refuses a :class:`_Slot` (keeps Jinja2's ``pass_context`` marks)."""

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if any(map(_marked, args)) or any(map(_marked, kwargs.values())):
            raise _Tainted
        return func(*args, **kwargs)

    return guarded


def _marked(value: Any) -> bool:
    """A slot, or text holding one's marker (a macro's output, a ``{% filter %}`` block's body)."""
    return type(value) is _Slot or (isinstance(value, str) and "\x00" in value)


_SLOT_SAFE_FILTERS = frozenset({"default", "d"})  # return the value itself, or the default for undefined
_SLOT_SAFE_TESTS = frozenset({"defined", "undefined", "none"})  # the same answer for the string and its slot


class _Probe(_Sandbox):
    """The renderer's sandbox for rendering with :class:`_Slot` values: slots print as markers."""

    def __init__(self, base: _Sandbox) -> None:
        super().__init__(loader=base.loader, undefined=base.undefined, autoescape=False, trim_blocks=True,
                         lstrip_blocks=True, keep_trailing_newline=False, extensions=[InlineBlocksKeepLines],
                         auto_reload=False, finalize=_finalize)
        self.filters = {k: f if k in _SLOT_SAFE_FILTERS else _guarded(f) for k, f in base.filters.items()}
        self.tests = {k: f if k in _SLOT_SAFE_TESTS else _guarded(f) for k, f in base.tests.items()}

    def getattr(self, obj: Any, attribute: str) -> Any:
        if _marked(obj):
            raise _Tainted
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if _marked(obj) or _marked(argument):
            raise _Tainted
        return super().getitem(obj, argument)

    def check_blocks(self, name: str, seen: set[str] | None = None) -> None:
        """Raise :class:`_Tainted` where the template (or one it imports) captures output as text
        (``{% set x %}…{% endset %}``, ``{% filter %}``, ``{% call %}``) or loads a template by a
        computed name: such text could be compared as a whole, which no guard here can see."""
        seen = set() if seen is None else seen
        if name in seen:
            return
        seen.add(name)
        source = self.loader.get_source(self, name)[0]  # type: ignore[union-attr]
        tree = self.parse(source)
        captures = (nodes.AssignBlock, nodes.FilterBlock, nodes.CallBlock)
        if "\x00" in source or any(True for _ in tree.find_all(captures)):
            raise _Tainted  # (a marker's character in the template's own text would be read as a slot)
        if _calls_outside_output(tree):
            raise _Tainted
        for node in tree.find_all((nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends)):
            if not isinstance(node.template, nodes.Const) or not isinstance(node.template.value, str):
                raise _Tainted
            self.check_blocks(node.template.value, seen)


def _calls_outside_output(tree: nodes.Template) -> bool:
    """Whether a call (a macro's, a method's) is used other than printed (``{{ m(x) }}``, through filters):
    its text may hold a marker, and ``in``, ``==``, a loop over it or an argument that receives it cannot
    be guarded, so such a template is rendered person by person."""
    printed: set[int] = set()
    for output in tree.find_all(nodes.Output):
        for node in output.nodes:
            while isinstance(node, nodes.Filter) and node.node is not None:
                node = node.node
            if isinstance(node, nodes.Call):
                printed.add(id(node))
    return any(id(call) not in printed for call in tree.find_all(nodes.Call))


_SLOTTED = object()  # in a memo key: a non-empty string that a slot stands for
_OWN = frozenset({"person", "people", "unit", "confirm"})  # the context's keys that hold a person's strings
_MARKER = re.compile("\x00([0-9]+)\x00")
_Entry = tuple[list["str | int"], list["str | int"], dict[str, Any]]  # raw parts, tidied parts, probe context


class RenderMemo:
    """Renders one template for many people once per kind of message, then fills in each person's strings.

    A fire or follow-up pass renders the same template for 20,000 people whose contexts differ only
    in their own strings (``person``, ``people`` = [person], ``unit``, ``confirm.link``). The first
    context of each kind (which of those are empty; every other value the same object) is rendered
    with :class:`_Slot` markers for them; the others are that text with their strings put in, tidied
    as :meth:`Renderer.render` does: the same text, as the template only printed the strings or
    tested them. A template that does more with them is rendered person by person (the guards: the
    probe environment's filters, tests and lookups, no block that captures output as text, and no call
    whose result is used other than printed: ``{% if '李' in m(person.name) %}`` cannot be guarded).
    Holds the contexts it saw (their values' ids are its keys): make one per batch of messages.
    """

    def __init__(self, renderer: Renderer, probe_after: int = PROBE_AFTER) -> None:
        self.renderer = renderer
        self.probe_after = probe_after
        self._texts: dict[tuple[Any, ...], _Entry | None] = {}
        self._seen: dict[tuple[Any, ...], int] = {}  # plain renders of each kind not yet probed

    def render(self, name: str, context: Mapping[str, Any], title: str) -> Rendered:
        found = None if name in self.renderer._unslotted else _personal(context)
        if found is None:
            return self.renderer.render(name, context, title)
        shape, values = found
        key = (name, shape)
        entry = self._texts.get(key, _SLOTTED)
        if entry is _SLOTTED:
            seen = self._seen[key] = self._seen.get(key, 0) + 1
            if seen < self.probe_after:  # a few messages: not worth compiling the template again
                return self.renderer.render(name, context, title)
            entry = self._texts[key] = self._probe(name, context)
        if entry is None:
            return self.renderer.render(name, context, title)
        raw, tidied, _ = entry  # type: ignore[misc]
        if all(v.strip() == v and len(v.splitlines()) == 1 for v in values):
            # strings with no line break and no space at either end tidy as their markers do
            return Rendered(title=title, markdown="".join([p if type(p) is str else values[p] for p in tidied]))
        return Rendered(title=title, markdown=_tidy("".join([p if type(p) is str else values[p] for p in raw])))

    def _probe(self, name: str, context: Mapping[str, Any]) -> _Entry | None:
        probe = _probe_context(context)
        if probe is None:
            return None
        try:
            text = self.renderer._render_probe(name, probe)
        except _Tainted:
            self.renderer._unslotted.add(name)
            return None
        except Exception:  # an error in the template: the plain render raises it as usual
            return None
        return _parts(text), _parts(_tidy(text)), probe  # the probe context keeps the key's ids valid


def _parts(text: str) -> list[str | int]:
    """Text with markers as literal pieces and slot numbers."""
    return [int(p) if i % 2 else p for i, p in enumerate(_MARKER.split(text))]


def _personal(context: Mapping[str, Any]) -> tuple[tuple[Any, ...], list[str]] | None:
    """(kind of message, the person's strings in slot order) for a one-person message; None otherwise.

    The kind: the person's and ``confirm``'s keys, which of their values are non-empty strings (slots)
    and the others' values (ids for anything but ``link``'s siblings' scalars), and the ids of the
    context's other values. Checked once per kind by :func:`_probe_context`.
    """
    person = context.get("person")
    people = context.get("people")
    confirm = context.get("confirm")
    if type(person) is not dict or type(people) is not list or len(people) != 1 or people[0] is not person \
            or type(confirm) is not dict:
        return None
    values = [v for v in person.values() if type(v) is str and v]
    link = confirm.get("link")
    if type(link) is str and link:
        values.append(link)
    if "\x00" in "".join(values):  # a marker's character in a real string: render it as it is
        return None
    unit = context.get("unit")
    try:
        shape = (
            tuple(person), tuple([_SLOTTED if type(v) is str and v else tuple(v) if type(v) is list else v
                                  for v in person.values()]),
            tuple(confirm), tuple([_SLOTTED if k == "link" and type(v) is str and v else id(v)
                                   for k, v in confirm.items()]),
            tuple(context), tuple([id(v) for k, v in context.items() if k not in _OWN]),
            True if unit is not None and unit is person.get("unit") else id(unit),
        )
        hash(shape)
    except TypeError:  # a value that cannot be a key (a dict in ``person``): render as it is
        return None
    return shape, values


def _probe_context(context: Mapping[str, Any]) -> dict[str, Any] | None:
    """The context with a :class:`_Slot` for each of the person's strings, numbered as :func:`_personal`
    lists them; None where a person's value is neither a string, none nor a list of strings."""
    person, confirm = context["person"], context["confirm"]
    count = 0
    slotted: dict[str, Any] = {}
    for key, value in person.items():
        if type(value) is str and value:
            slotted[key] = _Slot(count)
            count += 1
        elif value is None or type(value) is str or (type(value) is list and all(type(v) is str for v in value)):
            # only these: a key compares values, and 0 == False would print differently
            slotted[key] = value
        else:
            return None
    link = confirm.get("link")
    own_confirm = dict(confirm)
    if type(link) is str and link:
        own_confirm["link"] = _Slot(count)
    probe = {k: v for k, v in context.items() if k not in _OWN}
    unit = context.get("unit")
    probe.update(person=slotted, people=[slotted], confirm=own_confirm,
                 unit=slotted.get("unit") if unit is not None and unit is person.get("unit") else unit)
    return probe


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out)


_SYNTAX: tuple[tuple[str, str], ...] = (
    (r"^Unexpected end of template\. Jinja was looking for the following tags: .*?\. "
     r"The innermost block that needs to be closed is '(\w+)'", "{{% {0} %}} 块没有结束：缺少 {{% end{0} %}}"),
    (r"^Encountered unknown tag '(\w+)'\. Jinja was looking for the following tags: .*?\. "
     r"The innermost block that needs to be closed is '(\w+)'", "这里应为 {{% end{1} %}}（结束 {{% {1} %}} 块），"
     "而不是 {{% {0} %}}"),
    (r"^Encountered unknown tag '(\w+)'", "不认识的标签 {{% {0} %}}（检查拼写，如 endif、endfor）"),
    (r"^unexpected end of template, expected '(.*?)'",
     "模板在 {{{{ }}}} 或 {{% %}} 写完之前就结束了（缺少结尾的 }}}} 或 %}}）"),
    (r"^expected token 'end of print statement', got '(.*?)'",
     "{{{{ }}}} 里只能写一个表达式，“{0}” 多余（缺少 | 或运算符？）"),
    (r"^expected token '(.*?)', got '(.*?)'", "这里应为 “{0}”，而不是 “{1}”"),
    (r"^Expected an expression, got '(.*?)'", "这里缺少表达式（例如 {{% if 变量 %}}）"),
    (r"^unexpected char (.+) at \d+", "有不能识别的字符 {0}（引号是否成对？）"),
    (r"^unexpected '(.*?)'", "多出了 “{0}”（{{{{ }}}} 与 {{% %}} 是否成对？）"),
    (r"^No filter named '(.*?)'", "没有名为 {0} 的过滤器（| 后面的名字）"),
    (r"^No test named '(.*?)'", "没有名为 {0} 的测试（is 后面的名字）"),
    (r"^tag name expected", "{{% %}} 里缺少标签名（如 if、for）"),
)


def syntax_message(original: str) -> str:
    """Jinja's syntax error as a Chinese sentence, the original kept in brackets for searching."""
    for pattern, words in _SYNTAX:
        m = re.match(pattern, original)
        if m:
            text = words.format(*m.groups())
            return f"模板语法错误：{text}（{original}）"
    return f"模板语法错误：请检查 {{{{ }}}} 与 {{% %}} 是否成对、拼写是否正确（{original}）"


def _template_line(name: str) -> int | None:
    """The template line where rendering failed, from the traceback Jinja2 rewrote."""
    tb = sys.exc_info()[2]
    line = None
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename.endswith(f"{name}{SUFFIX}"):
            line = lineno
    return line


def _undefined_message(exc: jinja2.UndefinedError) -> str:
    text = str(exc.message or exc)
    if "is undefined" in text:
        name = text.split("'")[1] if "'" in text else text
        return f"使用了未定义的变量 {name}（可用变量：{'、'.join(CONTEXT_KEYS)}）"
    if "has no attribute" in text:
        attr = text.rsplit("'", 2)[-2] if text.count("'") >= 2 else text
        return f"使用了不存在的属性 {attr}（{text}）"
    return f"模板变量错误：{text}"


# ------------------------------------------------------------------ validation


def sample_contexts(reminder_title: str) -> list[dict[str, Any]]:
    """Contexts covering each stage, with every optional value both present and absent."""
    person = {"id": "p", "name": "张三", "title": "支部书记", "unit": "第一党支部", "roles": ["secretary"]}
    due = {"date": "2026年12月4日", "weekday": "星期五", "time": "09:00",
           "text": "2026年12月4日（星期五）09:00", "moved_from": "2026年12月3日", "holiday": "国庆节",
           "provisional": True}
    row = {"unit": "第一党支部", "expected": 3, "on_time": 2, "late": 1, "missing": 0, "pending": 0, "nudges": 1,
           "excused": 0, "rate": 0.67, "place": 1, "due": 3}
    # as bot.reporting.reports.figures_for gives them: a long ranking, its middle left out
    figures = {"period": "2026年11月", "spec": "2026-11", "more": 38, "head": 1, "waiting": 1, "total_units": 40,
               "rows": [row, row | {"unit": "第二党支部", "place": 40},
                        row | {"unit": "第三党支部", "place": 0, "due": 0}],  # nothing due yet: "—"
               "totals": row | {"unit": "合计", "expected": 120, "on_time": 80, "late": 40, "place": None, "due": 120},
               "ranked": True,
               "ranking": "https://example.invalid/admin/units?period=2026-11",
               "page": "https://example.invalid/l/t"}
    reminder = {"id": "r", "title": reminder_title, "note": "请提前准备", "checklist": ["事项一"], "kind": "reminder"}
    full = {
        "reminder": reminder, "lead": "3天", "due": due, "deadline": "2026年12月7日 18:00",
        "confirm": {"required": True, "link": "https://example.invalid/c/t", "code": "A7K3"},
        "people": [person], "person": person, "unit": "第一党支部",
        "overdue": [{"name": "张三", "unit": "第一党支部", "since": "2026年12月7日 18:00", "nudges": 2}],
        "figures": figures, "late": {"original": "12月4日 09:00"},
    }
    bare_due = due | {"moved_from": None, "holiday": None, "provisional": False}
    bare = {
        "reminder": reminder | {"note": None, "checklist": []}, "lead": None, "due": bare_due,
        "deadline": None, "confirm": {"required": False, "link": None, "code": None}, "people": [],
        "person": None, "unit": None, "overdue": [], "figures": None, "late": None,
    }
    stages = ("notice", "due", "followup", "escalation", "report")
    short = full | {"figures": {"period": "2026年11月", "spec": "2026-11", "more": 0, "head": 1, "waiting": 0,
                                "total_units": 1,
                                "rows": [row], "totals": figures["totals"], "ranked": True}}  # every unit listed
    return [ctx | {"stage": stage} for stage in stages for ctx in (full, short, bare)]


def _missing_words(path: Path) -> str:
    """Why the template file at ``path`` (in the configured templates folder) cannot be used."""
    if path.exists() or path.is_symlink():  # there, but a pipe, device or broken link: never opened
        return f"模板文件 “{path}” 不是普通文件（命名管道、设备或失效的链接），未读取"
    return f"找不到模板文件 “{path}”"


def check_template(renderer: Renderer, name: str, title: str) -> TemplateProblem | None:
    if not renderer.exists(name):
        return TemplateProblem(name, None, _missing_words(renderer.folder / f"{name}{SUFFIX}"))
    for ctx in sample_contexts(title):
        try:
            renderer.render(name, ctx, title)
        except TemplateProblem as problem:
            return problem
    return None


def check_templates(s: Schedules, parsed: list[Parsed], folder: Path) -> list[ConfigIssue]:
    """One issue per broken template, at the first reminder using it (the others counted there);
    a template that does not exist is an issue at every reminder naming it (each line is a fix)."""
    from bot.config.yamlsource import locate_path_in, openable  # PyYAML: only when checking, not rendering

    renderer = Renderer(folder)
    issues: list[ConfigIssue] = []
    results: dict[str, TemplateProblem | None] = {}
    first: dict[str, int] = {}  # template -> index of its issue
    users: dict[str, int] = {}
    for p in parsed:
        for i, reminder in p.items("reminders"):
            name = reminder.template
            if name not in results:
                results[name] = check_template(renderer, name, reminder.title)
            problem = results[name]
            if problem is None:
                continue
            users[name] = users.get(name, 0) + 1
            if name in first and renderer.exists(name):
                continue
            line, col = locate_path_in(("reminders", i, "template"), p.doc.tree)
            where = f"（模板第 {problem.line} 行，{openable(folder / f'{name}{SUFFIX}')}:{problem.line}）" \
                if problem.line and renderer.exists(name) else ""
            first.setdefault(name, len(issues))
            issues.append(ConfigIssue(p.doc.label, line, col, f"reminders[{i}].template",
                                      f"模板 {name}{where}：{problem.message}"))
    for name, index in first.items():
        if users[name] > 1 and renderer.exists(name):
            issue = issues[index]
            issues[index] = replace(issue, message=f"{issue.message}（另有 {users[name] - 1} 个提醒使用此模板）")
    for name in BUILTIN_TEMPLATES:
        problem = check_template(renderer, name, "提醒")
        if problem is not None:
            where = problem.line or 1
            # An absolute path: shown_issue() makes it relative to the admin's folder when under it.
            issues.append(ConfigIssue(str((folder / f"{name}{SUFFIX}").resolve()), where, 1, "",
                                      problem.message))
    return issues + old_wording(folder)


# Words the shipped templates no longer use, as an admin's own copy may still have them: the pattern,
# and (Chinese) what is wrong with it and the current wording to copy.
_OLD_WORDING = (
    (re.compile(r"逾期\s*\{\{-?\s*[\w.]*late\s*-?\}\}"),
     "沿用旧的措辞“逾期 … 项”，现行模板写作“逾期确认 {{ row.late }} 项”"
     "（与通报、领导页面、提醒记录一致），请照此修改"),
    (re.compile(r"因服务中断(?!延后补发\"\))"),
     "沿用旧的补发说明“因服务中断延后补发”：手动补发（remindbot fire）或提前发送时也会这样说；现行模板写作"
     "“> **{{ late.label | default(\"补发\") }}**：本条原定 {{ late.original }} 发送，"
     "{{ late.why | default(\"因服务中断延后补发\") }}。”，请照此修改"),
)
TEMPLATE_READ_BYTES = 1 << 20  # an admin's template read for old words (the shipped ones are a few KB)


def old_wording(folder: Path) -> list[ConfigIssue]:
    """Warnings at each line of the folder's templates (the admin's own copies) that keeps words the
    shipped templates replaced, naming the file and line and the current wording; one per line and
    kind. The shipped templates have none."""
    issues: list[ConfigIssue] = []
    for path in sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []:
        if not path.is_file():
            continue  # a pipe or a device named like a template: never opened (opening a pipe waits)
        try:
            with path.open("rb") as handle:
                text = handle.read(TEMPLATE_READ_BYTES).decode("utf-8", "replace")
        except OSError:
            continue  # the render check says what is wrong with it
        for number, line in enumerate(text.splitlines(), start=1):
            for pattern, message in _OLD_WORDING:
                if (found := pattern.search(line)) is not None:
                    issues.append(ConfigIssue(str(path.resolve()), number, found.start() + 1, "",
                                              f"模板{message}", warning=True))
    return issues
