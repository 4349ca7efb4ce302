"""Every body an adapter builds is within its platform's documented limits, whatever is added to it.

Property-based (Hypothesis): random titles, notes, checklists and recipient lists (with and
without platform ids or mobiles, long names, emoji), over every platform and format, with and
without a robot keyword and a confirmation button. Each platform module states its limits once
(``oversize``); this test holds every built body to them. Bounded for CI: a fixed number of
examples per platform and format, no deadline.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from bot.config.loader import load_schedules
from bot.delivery.render import Renderer
from bot.metrics import REGISTRY
from bot.platforms.base import ChannelBase, Mention, Message
from bot.platforms.registry import PLATFORMS
from bot.platforms.wecom.config import WeComChannel
from bot.platforms.wecom.robot import WeCom
from bot.runtime import Runtime
from bot.scheduling.occurrences import fire
from bot.scheduling.timing import Fire, due_times
from bot.scheduling.workdays import WorkCalendar
from bot.settings import Settings
from storage.db import Database
from storage.models import Outbox

ROOT = Path(__file__).resolve().parent.parent
BJ = ZoneInfo("Asia/Shanghai")

FORMATS = [
    ("wecom", "text"), ("wecom", "markdown"),
    ("dingtalk", "text"), ("dingtalk", "markdown"), ("dingtalk", "card"),
    ("feishu", "text"), ("feishu", "post"), ("feishu", "card"), ("lark", "card"),
    ("slack", "markdown"), ("slack", "text"),
    ("generic", "markdown"), ("generic", "text"),
]
WEBHOOKS = {
    "wecom": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K",
    "dingtalk": "https://oapi.dingtalk.com/robot/send?access_token=T",
    "feishu": "https://open.feishu.cn/open-apis/bot/v2/hook/T",
    "lark": "https://open.larksuite.com/open-apis/bot/v2/hook/T",
    "slack": "https://hooks.slack.com/services/T/B/X",
    "generic": "https://example.org/hook",
}
KEYWORD_PLATFORMS = {"dingtalk", "feishu", "lark"}

# Chinese, ASCII, markdown and JSON-escaped characters, emoji (4 bytes, 2 UTF-16 units), newlines.
PIECES = [*"党支部学习日提醒请确认完成abcXYZ019 *#[]()`>-\"\\<&\t\n😀", "🇨🇳", "👩‍💻"]
NAME_PIECES = [*"王李张赵钱孙周吴郑冯陈褚卫蒋沈韩杨朱秦尤许何吕施·AbcDe 😀", "👩‍💻"]


def text(pieces: list[str], min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(pieces), min_size=min_size, max_size=max_size).map("".join)


WORD = text(PIECES, 1, 60)
NAME = text(NAME_PIECES, 1, 40).map(str.strip).filter(bool)


@st.composite
def mentions(draw: st.DrawFn) -> Mention:
    ids = draw(st.dictionaries(st.sampled_from(["wecom", "dingtalk", "feishu", "lark", "slack"]),
                               st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=3, max_size=40),
                               max_size=3))
    mobile = draw(st.none() | st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
    return Mention(person_id=draw(st.from_regex(r"[a-z]{1,12}", fullmatch=True)), name=draw(NAME),
                   mobile=mobile, ids=ids)


@st.composite
def crowds(draw: st.DrawFn) -> list[Mention]:
    """Many people alike (Hypothesis rarely draws long lists of varied ones): ids, mobiles or neither."""
    size, name = draw(st.integers(0, 130)), draw(NAME)
    kind = draw(st.sampled_from(["none", "mobile", "ids", "mixed"]))
    people = []
    for n in range(size):
        pick = kind if kind != "mixed" else ("none", "mobile", "ids")[n % 3]
        ids = {p: f"user_{n}_{'x' * 20}" for p in ("wecom", "dingtalk", "feishu", "lark", "slack")}
        people.append(Mention(person_id=f"p{n}", name=f"{name}{n}", mobile=f"138{n:08d}" if pick == "mobile" else None,
                              ids=ids if pick == "ids" else {}))
    return people


@st.composite
def messages(draw: st.DrawFn) -> Message:
    title = draw(WORD).replace("\n", " ").strip() or "提醒"
    note = draw(text(PIECES, 0, 800)) * draw(st.integers(1, 40))
    checklist = draw(st.lists(WORD, max_size=30))
    heading = draw(st.sampled_from(["", f"### 【提醒】{title}\n\n"]))
    markdown = heading + note + "\n\n" + "\n".join(f"- {item}" for item in checklist)
    people = draw(st.lists(mentions(), max_size=130) | crowds())
    link = draw(st.none() | st.just("https://remind.example.org/c/" + "x" * 120))
    return Message(title=title, markdown=markdown, mentions=tuple(people), mention_all=draw(st.booleans()),
                   button_text="确认已完成" if link else None, button_url=link)


def channel(platform: str, fmt: str, keyword: str | None) -> ChannelBase:
    model = PLATFORMS[platform].channel_model
    data: dict[str, Any] = {"id": "c", "name": "党支部群", "platform": platform, "format": fmt,
                            "webhook": WEBHOOKS[platform]}
    if platform in KEYWORD_PLATFORMS and keyword:
        data["keyword"] = keyword
    return model.model_validate(data)


@pytest.mark.parametrize(("platform", "fmt"), FORMATS, ids=[f"{p}-{f}" for p, f in FORMATS])
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(message=messages(), keyword=st.none() | st.sampled_from(["党建", "提醒", "通知😀"]))
def test_every_body_fits_the_platforms_documented_limits(
    platform: str, fmt: str, message: Message, keyword: str | None
) -> None:
    adapter = PLATFORMS[platform]
    target = channel(platform, fmt, keyword)
    bodies = adapter.build(target, message)
    assert bodies
    for body in bodies:
        assert adapter.oversize(body) is None, adapter.oversize(body)
    if keyword and platform in KEYWORD_PLATFORMS:
        assert all(keyword in json.dumps(body, ensure_ascii=False) for body in bodies)


def test_fifty_people_without_ids_in_a_wecom_text_channel_fit_in_2048_bytes() -> None:
    """The Found: the "@姓名" line was added after the split, giving 2,401 bytes (WeCom 40058)."""
    people = tuple(Mention(person_id=f"p{n}", name=f"市发展和改革委员会党支部书记{n:02d}") for n in range(50))
    message = Message(title="学习日提醒", markdown="### 【提醒】学习日\n\n" + "请各支部按时组织学习。\n" * 40,
                      mentions=people)
    target = WeComChannel(id="c", name="群", platform="wecom", format="text", webhook=WEBHOOKS["wecom"])
    bodies = WeCom().build(target, message)
    sizes = [len(body["text"]["content"].encode()) for body in bodies]
    assert max(sizes) <= 2048, sizes
    named = " ".join(body["text"]["content"] for body in bodies)
    assert all(f"@{p.name}" in named for p in people)  # everyone is still named


# ---------------------------------------------------------------- a cut message is told


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", var_dir=tmp_path / "var",
                        secret_key="k")
    env = {"REMINDBOT_GW_WECOM_WEBHOOK": WEBHOOKS["wecom"] + "gw",
           "REMINDBOT_LEADERS_WECOM_WEBHOOK": WEBHOOKS["wecom"] + "leaders"}
    schedules = load_schedules(ROOT / "schedules", templates_dir=ROOT / "message_templates", env=env)
    schedules.channels["gw_wecom"] = schedules.channels["gw_wecom"].model_copy(update={"format": "text"})
    schedules.service = schedules.service.model_copy(update={"admin_channel": "leaders_wecom"})
    reminder = schedules.reminders["study-day"]
    long_note = "\n\n".join(f"第{n}项：" + "请各支部认真组织学习，做好记录。" * 20 for n in range(60))
    schedules.reminders["study-day"] = reminder.model_copy(
        update={"note": long_note, "recipients": reminder.recipients.model_copy(update={"channels": ["gw_wecom"]})})
    db = Database(settings.database_url)
    await db.start()
    yield Runtime(settings=settings, db=db, schedules=schedules, calendar=WorkCalendar(schedules.calendar),
                  renderer=Renderer(ROOT / "message_templates"), clock=lambda: datetime(2026, 12, 4, 9, tzinfo=BJ))
    await db.stop()


async def test_a_cut_message_is_told_to_the_admin_channel_once_with_the_reminders_name(runtime: Runtime) -> None:
    reminder = runtime.schedules.reminders["study-day"]
    start = datetime(2026, 12, 4, tzinfo=BJ)
    due = due_times(reminder, runtime.calendar, start, start.replace(hour=23))[0]
    before = REGISTRY.get_sample_value("remindbot_messages_truncated_total", {"platform": "wecom"}) or 0.0

    await fire(runtime, Fire("study-day", "due", due.due_at, due, None))
    await fire(runtime, Fire("study-day", "due", due.due_at, due, None))  # firing again adds nothing

    async with runtime.db.session() as session:
        rows = list((await session.exec(select(Outbox).order_by(Outbox.id))).all())
    group = [r for r in rows if r.channel_id == "gw_wecom"]
    notices = [r for r in rows if r.channel_id == "leaders_wecom"]
    assert len(group) == 10 and "（已截断）" in group[-1].body["text"]["content"]
    assert len(notices) == 1 and notices[0].stage == "admin"
    notice = json.dumps(notices[0].body, ensure_ascii=False)
    assert "截断" in notice and reminder.title in notice
    after = REGISTRY.get_sample_value("remindbot_messages_truncated_total", {"platform": "wecom"})
    assert after == before + 1
