"""Shared helpers: URL masking, markdown dialects, splitting and platform-text scrubbing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.platforms import markup
from bot.platforms.base import Message
from bot.platforms.describe import scrub
from bot.platforms.markup import (
    MAX_PARTS,
    TRUNCATED,
    Dialect,
    PlainText,
    json_len,
    redact_url,
    shorten,
    split_text,
    utf8_len,
    with_title,
    without_title,
)
from bot.platforms.registry import PLATFORMS


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa",
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***",
        ),
        (
            "https://oapi.dingtalk.com/robot/send?access_token=abc123&timestamp=1&sign=xyz%3D",
            "https://oapi.dingtalk.com/robot/send?access_token=***&timestamp=***&sign=***",
        ),
        (
            "https://open.feishu.cn/open-apis/bot/v2/hook/0f9c8d7e-1234",
            "https://open.feishu.cn/open-apis/bot/v2/hook/***",
        ),
        (
            "https://open.larksuite.com/open-apis/bot/v2/hook/0f9c8d7e-1234",
            "https://open.larksuite.com/open-apis/bot/v2/hook/***",
        ),
        (
            "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
            "https://hooks.slack.com/services/***",
        ),
        ("https://user:pw@hooks.example.cn/in", "https://***@hooks.example.cn/in"),
        ("https://hooks.example.cn/remindbot", "https://hooks.example.cn/remindbot"),
        # Free text knows no list of names: every query value and fragment, robot paths on any host.
        ("https://hooks.example.cn/in?appsecret=s3cr3t&x=1", "https://hooks.example.cn/in?appsecret=***&x=***"),
        ("https://hooks.example.cn/in#frag-secret", "https://hooks.example.cn/in#***"),
        ("https://proxy.example.cn/services/T000/B000/XXXXSECRET", "https://proxy.example.cn/services/***"),
        ("https://hooks.example.cn/in/9f8e7d6c5b4a39281706", "https://hooks.example.cn/in/***"),
    ],
)
def test_redact_url_masks_keys_tokens_and_path_secrets(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_message_within_the_limit_is_left_whole() -> None:
    assert split_text("第一段\n\n第二段", 100) == ["第一段\n\n第二段"]


def test_a_long_message_is_split_at_paragraphs_with_visible_markers() -> None:
    text = "\n\n".join(f"第{i}段：请各支部按时组织学习。" for i in range(40))

    parts = split_text(text, 300)

    assert len(parts) > 1
    assert all(utf8_len(part) <= 300 for part in parts)
    assert parts[0].endswith(f"（1/{len(parts)}，未完）")
    assert parts[1].startswith(f"（续 2/{len(parts)}）")
    assert all("请各支部按时组织学习。" in part for part in parts)
    assert "第0段" in parts[0] and "第39段" in parts[-1]


def test_a_long_paragraph_is_split_at_line_boundaries() -> None:
    paragraph = "\n".join(f"- 第{i}项工作：按要求完成并报送。" for i in range(60))

    parts = split_text(paragraph, 400)

    body = [part.split("\n\n（")[0].split("）\n\n")[-1] for part in parts]
    assert all(line.startswith("- 第") for chunk in body for line in chunk.splitlines())
    assert all(utf8_len(part) <= 400 for part in parts)


def test_a_single_unsplittable_line_is_shortened_with_a_marker() -> None:
    line = "很" * 1000

    parts = split_text(line, 200)

    assert len(parts) == 1
    assert parts[0].endswith(TRUNCATED)
    assert utf8_len(parts[0]) <= 200


def test_a_message_needing_too_many_parts_is_cut_after_the_last_allowed_one() -> None:
    text = "\n\n".join("党建工作要点，逐项落实。" * 3 for _ in range(400))

    parts = split_text(text, 200)

    assert len(parts) == MAX_PARTS
    assert TRUNCATED in parts[-1]


def test_the_first_part_can_have_a_smaller_budget_for_mentions() -> None:
    text = "\n\n".join("请按时参加支部党员大会。" for _ in range(50))

    parts = split_text(text, 500, first_budget=200)

    assert utf8_len(parts[0]) <= 200
    assert all(utf8_len(part) <= 500 for part in parts[1:])


def test_shorten_counts_what_the_platform_counts() -> None:
    assert shorten("abc", 10) == "abc"
    cut = shorten('引号"很多"' * 50, 60, json_len)
    assert json_len(cut) <= 60 and cut.endswith(TRUNCATED)


def test_json_measure_counts_escapes_and_three_bytes_per_chinese_character() -> None:
    assert json_len("党") == 3
    assert json_len('a"\n') == 5


def test_plain_text_writes_links_as_text_and_address() -> None:
    markdown = "# 通知\n**请**阅读[学习材料](https://example.cn/a)\n- 一\n> 引文"

    assert PlainText().convert(markdown) == ("【通知】\n请阅读学习材料（https://example.cn/a）\n• 一\n｜引文")


def test_items_marked_by_any_digit_or_space_and_pieces_of_a_line_convert_as_before() -> None:
    """Lines are converted through shortcuts (no span scan without markup, one pass for dialects that keep
    text as it is, no pattern for a line that cannot be a heading, item or quote); these are the cases
    the shortcuts must still catch: full-width digits and ideographic spaces, and escaping dialects."""
    from bot.platforms.slack.robot import Mrkdwn

    markdown = "１. 一\n\u3000- 二\n确认：**x**，[点此](https://u)，`c`。\n普通一行\n#不是标题"
    assert PlainText().convert(markdown) == "１. 一\n\u3000• 二\n确认：x，点此（https://u），c。\n普通一行\n#不是标题"
    assert Mrkdwn().line("a<b **c&d** [t](https://u) `e>`") == "a&lt;b *c&amp;d* <https://u|t> `e&gt;`"
    assert Mrkdwn().line("x < y") == "x &lt; y"

    class Tagged(Dialect):  # a dialect that shows which lines it took for list items
        def item(self, indent: str, marker: str, inline: str) -> str:
            return f"{indent}<{marker}>{inline}"

    assert [Tagged().line(line) for line in ("１. 一", "\u3000- 二", "3) 三", "一、四")] == [
        "<１.>一", "\u3000<->二", "<3)>三", "一、四"]


def test_platform_text_is_scrubbed_of_links_hints_and_keys() -> None:
    raw = (
        "invalid webhook url, hint: [1706169282034183148502830], from ip: 1.2.3.4, "
        "more info at https://open.work.weixin.qq.com/devtool/query?e=93000 key=abcdef"
    )

    shown = scrub(raw)

    assert "http" not in shown and "abcdef" not in shown and "1706169282" not in shown
    assert shown.startswith("invalid webhook url")


TEMPLATE_LIKE = Message(title="主题党日", markdown="### 【提醒】主题党日\n\n**时间：**周五 09:00")


@pytest.mark.parametrize("platform", ["wecom", "dingtalk", "slack"])
def test_a_template_that_opens_with_its_own_heading_shows_the_title_once(platform: str) -> None:
    adapter = PLATFORMS[platform]
    channel = adapter.channel_model.model_validate(
        {"id": "c", "name": "群", "platform": platform, "webhook": "https://h.example/x"}
    )

    (body,) = adapter.build(channel, TEMPLATE_LIKE)

    assert json.dumps(body, ensure_ascii=False).count("主题党日") == (2 if platform == "dingtalk" else 1)


def test_a_message_without_a_heading_gets_the_title_on_top() -> None:
    message = Message(title="党课提醒", markdown="请准时参加。")

    assert with_title(message) == "### 党课提醒\n\n请准时参加。"


def test_formats_with_a_title_field_drop_a_heading_that_repeats_it() -> None:
    assert without_title(TEMPLATE_LIKE) == "**时间：**周五 09:00"
    assert without_title(Message(title="x", markdown="## 议程\n正文")) == "## 议程\n正文"


def test_free_text_redaction_masks_webhook_keys_and_confirmation_tokens() -> None:
    from bot.platforms.markup import redact

    text = redact("失败：https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abcdef123456，"
                  "链接 https://dj.example.gov.cn/c/WzEsIndhbmdfZmFuZyJd.awe1Qw.eX-ow0zNFlx）")
    assert "abcdef123456" not in text and "WzEsIndh" not in text
    assert "key=***" in text and "/c/***" in text


def test_json_bytes_is_compact_utf8_json_as_json_dumps_writes_it() -> None:
    """The send path's serialisation (one C encoder kept, not one built per call) writes the same bytes."""
    bodies: list[Any] = [
        {"msgtype": "text",
         "text": {"content": "【提醒】请于本周五前完成\n\"学习\"\\确认 😀\u2028", "mentioned_list": ["@all"]}},
        {"n": [1, 2.5, None, True, False, {"e": []}], "k": {}, 3: "int key", None: "none key"},
        ["不是字典", 1], "text", 7,
    ]
    for body in bodies:
        assert markup.json_bytes(body) == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    with pytest.raises(TypeError):
        markup.json_bytes({"x": object()})
