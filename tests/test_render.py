"""Templates render line for line as written: an inline block tag at a line's end keeps its line break."""

from __future__ import annotations

from pathlib import Path

import jinja2.sandbox
import pytest

from bot.delivery.render import Renderer, TemplateProblem

FOUND = (
    "### 【提醒】{{ reminder.title }}\n"
    "\n"
    "**对象：**{% if person %}{{ person.name }}{% else %}各支部书记{% endif %}\n"
    "**时间：**{{ due.text }}\n"
    "{% if reminder.note %}\n"
    "{{ reminder.note }}\n"
    "{% endif %}\n"
    "**参加：**{% for p in people %}{{ p.name }}{% if not loop.last %}、{% endif %}{% endfor %}\n"
    "请准时参加。\n"
)


def render(tmp_path: Path, context: dict[str, object]) -> str:
    (tmp_path / "found.md.j2").write_text(FOUND, encoding="utf-8")
    base = {"reminder": {"title": "学习日", "note": None}, "due": {"text": "12月4日 09:00"}, "people": []}
    return Renderer(tmp_path).render("found", base | context, "学习日").markdown


def test_a_line_ending_in_an_inline_endif_is_not_glued_to_the_next(tmp_path: Path) -> None:
    text = render(tmp_path, {"person": None})
    assert "**对象：**各支部书记\n**时间：**12月4日 09:00\n" in text


def test_with_the_person_and_a_note_every_line_stays_a_line(tmp_path: Path) -> None:
    text = render(tmp_path, {"person": {"name": "张三"}, "reminder": {"title": "学习日", "note": "带好笔记本"},
                             "people": [{"name": "张三"}, {"name": "李四"}]})
    assert text.splitlines() == [
        "### 【提醒】学习日", "", "**对象：**张三", "**时间：**12月4日 09:00", "带好笔记本",
        "**参加：**张三、李四", "请准时参加。",
    ]


def test_a_template_changed_on_disk_takes_effect_with_the_next_renderer_only(tmp_path: Path) -> None:
    """Templates are compiled once per renderer (no disk check per message); a reload makes a new renderer.
    A broken edit the reload refuses therefore cannot break the messages of the running renderer."""
    base = {"reminder": {"title": "学习日", "note": None}, "due": {"text": "12月4日 09:00"}, "people": []}
    (tmp_path / "found.md.j2").write_text("旧：{{ reminder.title }}", encoding="utf-8")
    running = Renderer(tmp_path)
    assert running.render("found", base, "学习日").markdown == "旧：学习日"
    (tmp_path / "found.md.j2").write_text("新：{{ reminder.title }", encoding="utf-8")  # broken
    assert running.render("found", base, "学习日").markdown == "旧：学习日"
    (tmp_path / "found.md.j2").write_text("新：{{ reminder.title }}", encoding="utf-8")
    assert Renderer(tmp_path).render("found", base, "学习日").markdown == "新：学习日"


def test_the_sandbox_still_refuses_internals_and_names_a_missing_key(tmp_path: Path) -> None:
    """Dict keys are looked up directly (no failed attribute lookup first); the sandbox's refusals stay."""
    (tmp_path / "internals.md.j2").write_text("{{ reminder.__class__.__mro__ }}", encoding="utf-8")
    (tmp_path / "missing.md.j2").write_text("{{ reminder.nope }}", encoding="utf-8")
    (tmp_path / "methods.md.j2").write_text("{{ reminder.items() | list | length }}·{{ reminder.title }}",
                                            encoding="utf-8")
    renderer, context = Renderer(tmp_path), {"reminder": {"title": "学习日"}}
    with pytest.raises(jinja2.sandbox.SecurityError):
        renderer.render("internals", context, "学习日")
    with pytest.raises(TemplateProblem, match="nope"):
        renderer.render("missing", context, "学习日")
    assert renderer.render("methods", context, "学习日").markdown == "1·学习日"


# --------------------------------------------------------------- one rendering for many people

PERSONAL = (
    "### 【催办】{{ reminder.title }}\n"
    "{% if person.title %}{{ person.title }} {% endif %}{{ person.name }}（{{ unit or \"未设单位\" }}）：\n"
    "{% for p in people %}- {{ p.name }}{% if p.unit %}，{{ p.unit }}{% endif %}\n{% endfor %}"
    "请确认{% if confirm.link %}：[点此确认]({{ confirm.link }}){% endif %}。\n"
)
# Strings a template might be tricked by: markup, Jinja syntax, format marks, edge spaces, a line break.
NAMES = ("张三", "李四 ", " 王五", "赵**六**", "钱{{ 七 }}", "孙%s八", "周\n九", "吴[十](x)", "Zhang San")


def personal_contexts() -> list[dict[str, object]]:
    """One message each, as a fire makes them: the base shared, each person's own strings."""
    base = {"reminder": {"title": "学习日", "note": None}, "due": {"text": "12月4日 09:00"}}
    contexts: list[dict[str, object]] = []
    for i, name in enumerate(NAMES * 2):
        person = {"id": f"p{i}", "name": name, "title": ("书记", None, "")[i % 3],
                  "unit": (f"第{i}支部", None)[i % 5 == 4], "roles": ["secretary"]}
        link = f"https://dj.example.gov.cn/c/{i}" if i % 4 else None
        contexts.append(base | {"person": person, "people": [person], "unit": person["unit"],
                                "confirm": {"required": True, "link": link, "code": None}})
    return contexts


def test_a_template_rendered_once_for_many_people_gives_each_their_own_text(tmp_path: Path) -> None:
    """A batch renders each kind of message once and puts each person's strings in: the texts are those
    of rendering person by person, each with their own name, unit and link, titles and links left out
    where empty, whatever characters the strings hold."""
    (tmp_path / "personal.md.j2").write_text(PERSONAL, encoding="utf-8")
    renderer = Renderer(tmp_path)
    memo = renderer.memo(probe_after=1)
    contexts = personal_contexts()
    renders: list[str] = []
    probe = renderer._render_probe
    renderer._render_probe = lambda *a: renders.append(a[0]) or probe(*a)  # type: ignore[method-assign]
    texts = [memo.render("personal", ctx, "学习日").markdown for ctx in contexts]
    assert texts == [Renderer(tmp_path).render("personal", ctx, "学习日").markdown for ctx in contexts]
    assert len(renders) < len(contexts)  # rendered once per kind (which strings are empty), not per person
    assert texts[1].splitlines()[1] == "李四 （第1支部）："
    assert "- 周\n九，第6支部" in texts[6] and "[点此确认](https://dj.example.gov.cn/c/6)" in texts[6]
    assert "点此确认" not in texts[0] and "钱{{ 七 }}" in texts[4] and "孙%s八（第5支部）" in texts[5]


@pytest.mark.parametrize("use", [
    "{{ person.name | upper }}", "{% if person.name == '张三' %}本人{% endif %}", "{{ person.name[0] }}",
    "{{ person.name ~ '同志' }}", "{{ '%s同志' % person.name }}", "{{ person.name is string }}",
    "{{ person.name.startswith('张') }}", "{{ people | map(attribute='name') | join('、') }}",
    "{{ person.name | length }}", "{% for c in person.name %}{{ c }}.{% endfor %}", "{{ person }}",
    "{{ person.name | replace('三', '3') }}", "{{ confirm.link | urlencode }}", "{{ unit is sameas person.unit }}",
    "{{ person.name in ['张三'] }}", "{{ people | selectattr('name', 'equalto', '张三') | list | length }}",
    "{{ person.title | default('无职务') }}", "{{ person.name is defined }}|{{ person.title is none }}",
    "{% filter upper %}{{ person.name }}{% endfilter %}",
    "{% set x %}{{ person.name }}{% endset %}{{ x == 'Zhang San' }}",
    "{% macro m(n) %}{{ n }}{% endmacro %}{{ m(person.name) | upper }}|{{ m(person.name)[0] }}",
    "{% macro m(n) %}{{ n }}{% endmacro %}{% set x = m(person.name) %}{{ x.lower() }}",
    "{% macro m(n) %}{{ n }}{% endmacro %}{% if '李' in m(person.name) %}李{% endif %}",
    "{% macro m(n) %}{{ n }}{% endmacro %}{% set x = m(person.name) %}{% if x == '李四' %}本人{% endif %}",
    "{% macro m(n) %}{{ n }}{% endmacro %}{% for ch in m(person.name) %}{{ ch }}.{% endfor %}",
    "{% macro m(n) %}{{ n }}{% endmacro %}{% macro k(t) %}{% if t == '李四' %}本人{% endif %}{% endmacro %}"
    "{{ k(m(person.name)) }}",
    "{% macro m(n) %}{{ n }}{% endmacro %}{{ m(person.name) == '李四' }}",
])
def test_a_template_that_works_on_a_persons_strings_still_gets_each_persons_own(tmp_path: Path, use: str) -> None:
    """Comparing, filtering, slicing or joining a person's strings is rendered person by person: each text
    is the plain render's, never one person's result for everybody."""
    (tmp_path / "uses.md.j2").write_text(f"对象：{use}", encoding="utf-8")
    memo = Renderer(tmp_path).memo(probe_after=1)
    contexts = personal_contexts()
    texts = [memo.render("uses", ctx, "学习日").markdown for ctx in contexts]
    assert texts == [Renderer(tmp_path).render("uses", ctx, "学习日").markdown for ctx in contexts]


def test_a_broken_template_fails_in_a_batch_as_it_does_alone(tmp_path: Path) -> None:
    (tmp_path / "broken.md.j2").write_text("{{ person.name }}{{ missing.key }}", encoding="utf-8")
    with pytest.raises(TemplateProblem) as alone:
        Renderer(tmp_path).render("broken", personal_contexts()[0], "学习日")
    with pytest.raises(TemplateProblem) as batch:
        Renderer(tmp_path).memo(probe_after=1).render("broken", personal_contexts()[0], "学习日")
    assert (batch.value.line, batch.value.message) == (alone.value.line, alone.value.message)


def test_validate_warns_of_an_admins_template_copy_keeping_the_old_words(tmp_path: Path) -> None:
    """An admin's own copies of the templates made before the wording changed keep 逾期 … 项 and a
    hard-coded 因服务中断延后补发: ``validate`` passes, with a warning at each such line (file and line)
    giving the current wording; the shipped templates raise none."""
    from tests.servehelp import Workspace

    workspace = Workspace.create(tmp_path)
    assert "模板沿用旧" not in workspace.validate().stdout  # the shipped templates
    brief = workspace.templates / "duty_brief.md.j2"
    brief.write_text(brief.read_text(encoding="utf-8").replace("逾期确认 {{ row.late }} 项", "逾期 {{ row.late }} 项"),
                     encoding="utf-8")
    common = workspace.templates / "_common.md.j2"
    text = common.read_text(encoding="utf-8")
    current = ('> **{{ late.label | default("补发") }}**：本条原定 {{ late.original }} 发送，'
               '{{ late.why | default("因服务中断延后补发") }}。')
    assert current in text
    common.write_text(text.replace(current, "> **补发**：本条原定 {{ late.original }} 发送，因服务中断延后补发。"),
                      encoding="utf-8")

    checked = workspace.validate()

    assert checked.returncode == 0, checked.stdout
    lines = [line for line in checked.stdout.splitlines() if "模板沿用旧" in line]
    assert len(lines) == 2, checked.stdout
    assert lines[0].startswith("message_templates/_common.md.j2:7:") and "因服务中断延后补发" in lines[0]
    assert 'late.why | default(\"因服务中断延后补发\")' in lines[0]
    assert lines[1].startswith("message_templates/duty_brief.md.j2:17:") and "逾期确认 {{ row.late }} 项" in lines[1]
