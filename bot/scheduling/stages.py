"""Stage words: the one place a stage key (``due``, ``notice:3d``, ``followup:2``) becomes Chinese.

Logs, previews, status, the admin pages and the CLI all name a stage with :func:`stage_words`, and
``preview --stage`` reads the same words back with :func:`parse_stage`.
"""

from __future__ import annotations

from collections.abc import Sequence

_FIXED = {"due": "当天提醒", "report": "通报", "test": "测试消息"}


def stage_words(stage: str) -> str:
    """``due`` -> 当天提醒, ``notice:2wd`` -> 提前2个工作日通知, ``followup:2`` -> 第2次催办,
    ``escalation:1`` -> 第1次告知领导; an unknown key is returned as is."""
    kind, _, arg = stage.partition(":")
    if kind in _FIXED and not arg:
        return _FIXED[kind]
    if kind == "notice":
        return f"提前{_lead_words(arg)}通知"
    if kind == "followup" and arg.isdigit():
        return f"第{arg}次催办"
    if kind == "escalation" and arg.isdigit():
        return f"第{arg}次告知领导"
    return stage


def _lead_words(lead: str) -> str:
    from bot.config.spans import parse_span

    try:
        return parse_span(lead).describe()
    except ValueError:
        return lead


def parse_stage(text: str, leads: Sequence[str]) -> str | None:
    """The stage key an admin means: ``due``/``当天``/``当天提醒``, ``notice:3d``/``3d``/``提前3天``/
    ``提前3天通知``; None when it names none of ``leads`` (the reminder's notices as written)."""
    said = text.strip().replace(" ", "")
    if said in ("due", "当天", "当天提醒"):
        return "due"
    for lead in leads:
        words = _lead_words(lead)
        if said in (f"notice:{lead}", lead, f"提前{words}", f"提前{words}通知", f"提前通知（{words}）",
                    f"提前通知({words})", words):
            return f"notice:{lead}"
    return None
