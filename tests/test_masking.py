"""Secrets in webhooks are masked by what each platform publishes, not by a list of names.

For every platform, everything after the host that the platform's module does not declare public
(``public: PublicParts``) is hidden wherever a webhook is shown (``preview``, ``send-test``) and in
every log line (``channel_secrets`` feeds ``set_secrets``); log lines also lose anything shaped like
a confirmation token, whichever logger wrote them.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from aiohttp.http_exceptions import LineTooLong
from test_fire import base_env, run_cli

from bot.confirming.tokens import make_token
from bot.logs import JsonFormatter, _Redacting, channel_secrets, mask, set_secrets
from bot.platforms.registry import PLATFORMS, platform_for, shown_webhook
from tests.fakes.platforms import FakePlatforms

GENERIC_SECRETS = ("S3cretPathSeg", "APPSECRET-0042", "frag-secret-0043")
GENERIC_WEBHOOK = "https://oa.example.cn/push/S3cretPathSeg?appsecret=APPSECRET-0042#frag-secret-0043"
SLACK_ELSEWHERE = "https://slack-proxy.example.cn/services/T0AAA/B0BBB/XXXXSLACKSECRET"


def channel(platform: str, webhook: str) -> object:
    model = PLATFORMS[platform].channel_model
    return model(id="c", name="群", platform=platform, webhook=webhook)


# ---------------------------------------------------------------- shown webhooks


@pytest.mark.parametrize(
    ("platform", "webhook", "shown"),
    [
        ("generic", GENERIC_WEBHOOK, "https://oa.example.cn/***"),
        ("generic", SLACK_ELSEWHERE, "https://slack-proxy.example.cn/***"),
        ("generic", "https://oa.example.cn", "https://oa.example.cn"),
        ("generic", "https://user:pw@oa.example.cn:8443/in", "https://***@oa.example.cn:8443/***"),
        ("slack", SLACK_ELSEWHERE, "https://slack-proxy.example.cn/services/***"),
        ("slack", "https://hooks.slack.com/services/T0/B0/X?x=1#f", "https://hooks.slack.com/services/***?***#***"),
        ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY-0001&debug=1#f",
         "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***&debug=***#***"),
        ("wecom", "https://zwwx.example.gov.cn/secret-0001/send?key=K", "https://zwwx.example.gov.cn/***?key=***"),
        ("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=TOKEN-0001",
         "https://oapi.dingtalk.com/robot/send?access_token=***"),
        ("dingtalk", "https://oapi.dingtalk.com/robot/send?TOKEN0001SECRET", "https://oapi.dingtalk.com/robot/send?***"),
        ("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/HOOK-0001", "https://open.feishu.cn/open-apis/bot/v2/hook/***"),
        ("lark", "https://open.larksuite.com/open-apis/bot/v2/hook/HOOK-0001/extra?appsecret=A1#z",
         "https://open.larksuite.com/open-apis/bot/v2/hook/***?***#***"),
    ],
)
def test_a_webhook_shows_only_what_its_platform_publishes(platform: str, webhook: str, shown: str) -> None:
    assert shown_webhook(channel(platform, webhook)) == shown  # type: ignore[arg-type]


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_no_platform_shows_a_secret_path_query_or_fragment(platform: str) -> None:
    """Contract over every platform: a webhook with secrets everywhere after the host hides them all."""
    public = platform_for(channel(platform, "https://x.example.cn/")).public  # type: ignore[arg-type]
    prefix = public.paths[0] if public.paths else "/"
    url = f"https://x.example.cn{prefix.rstrip('/')}/PATHSECRET-7/more?appsecret=QUERYSECRET-7#FRAGSECRET-7"
    shown = shown_webhook(channel(platform, url))  # type: ignore[arg-type]
    for secret in ("PATHSECRET-7", "QUERYSECRET-7", "FRAGSECRET-7"):
        assert secret not in shown
    assert shown.startswith("https://x.example.cn")


# ---------------------------------------------------------------- log lines


def formatted(message: str, *args: object, exc: BaseException | None = None) -> list[str]:
    """The record as both formatters (text and JSON) write it."""
    record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, message, args,
                               (type(exc), exc, None) if exc else None)
    return [_Redacting("%(name)s: %(message)s").format(record), JsonFormatter().format(record)]


def test_log_lines_lose_every_hidden_part_of_a_configured_webhook() -> None:
    channels = [channel("generic", GENERIC_WEBHOOK), channel("slack", SLACK_ELSEWHERE)]
    set_secrets(channel_secrets(channels))
    try:
        for text in (f"POST {GENERIC_WEBHOOK} failed", "path /push/S3cretPathSeg refused",
                     "appsecret APPSECRET-0042 rejected", "fragment frag-secret-0043",
                     "URL('https://oa.example.cn/push/S3cretPathSeg?appsecret=APPSECRET%2D0042')",
                     "slack T0AAA/B0BBB/XXXXSLACKSECRET"):
            for line in formatted("%s", text):
                for secret in (*GENERIC_SECRETS, "XXXXSLACKSECRET"):
                    assert secret not in line, line
    finally:
        set_secrets([])


def test_words_of_a_public_path_are_not_masked_everywhere() -> None:
    set_secrets(channel_secrets([channel("generic", "https://oa.example.cn/api/webhook/K3y-0000-0001")]))
    try:
        assert mask("webhook 地址无效") == "webhook 地址无效"
        assert "K3y-0000-0001" not in mask("sent to /api/webhook/K3y-0000-0001")
    finally:
        set_secrets([])


def test_aiohttps_over_long_line_error_loses_the_token_in_every_format() -> None:
    token = make_token("key", 42, "wang_fang")
    line = f"GET /c/{token}?pad={'a' * 200}".encode()
    error = LineTooLong(line[:100] + b"...", 8190)
    for text in formatted("Error handling request from %s", "127.0.0.1", exc=error):
        assert token not in text and token[:30] not in text
        assert "/c/***" in text


def test_a_token_without_its_link_is_masked_too() -> None:
    token = make_token("key", 7, "li_na")
    for text in formatted("bad token %s (Authorization: Basic YWRtaW46c2VjcmV0)", token):
        assert token not in text and "YWRtaW46c2VjcmV0" not in text
    assert json.loads(formatted("x")[1])["message"] == "x"


def test_a_masked_json_log_line_is_still_json() -> None:
    text, as_json = formatted('fetch "%s" failed: "%s"', "https://x.example.cn/in?appsecret=A1B2", "/c/abc.def")
    assert "A1B2" not in text
    message = json.loads(as_json)["message"]
    assert message == 'fetch "https://x.example.cn/in?appsecret=***" failed: "/c/***"'


# ---------------------------------------------------------------- the CLI


async def test_preview_hides_a_generic_webhooks_path_query_and_fragment(tmp_path: Path) -> None:
    for webhook in (GENERIC_WEBHOOK, SLACK_ELSEWHERE):
        env = base_env(tmp_path) | {"REMINDBOT_OA_WEBHOOK": webhook}
        code, out, err = await run_cli(env, "preview", "party-spirit-checkup", "--date", "2026-12-10")
        assert code == 0, err
        host = webhook.split("/")[2]
        assert f"https://{host}/***" in out
        for secret in (*GENERIC_SECRETS, "T0AAA", "XXXXSLACKSECRET"):
            assert secret not in out + err


async def test_send_test_hides_a_generic_webhooks_path_query_and_fragment(tmp_path: Path) -> None:
    async with FakePlatforms(clock=time.time) as fakes:
        oa = fakes.generic(secret="oa-signing-secret-0003")
        path_secret = oa.url.rsplit("/", 1)[-1]
        env = base_env(tmp_path) | {
            "REMINDBOT_OA_WEBHOOK": f"{oa.url}?appsecret=APPSECRET-0042#frag-secret-0043",
            "REMINDBOT_OA_SECRET": "oa-signing-secret-0003",
        }
        code, out, err = await run_cli(env, "send-test", "oa_push")
        assert code == 0, err
        assert len(oa.received) == 1
        assert f"{oa.url.rsplit('/', 2)[0]}/***" in out
        for secret in (path_secret, "APPSECRET-0042", "frag-secret-0043", "oa-signing-secret-0003"):
            assert secret not in out + err

