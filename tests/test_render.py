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
