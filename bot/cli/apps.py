"""``remindbot apps check``: each app's credentials tried for real, and the callback URL to paste."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp
import click

from bot.cli.schedule import load_or_exit
from bot.config.models import Schedules
from bot.platforms.apps import callback_url
from bot.platforms.appsend import AppChannel
from bot.platforms.base import DeliveryError
from bot.platforms.dingtalk.config import DingTalkApp
from bot.platforms.registry import APP_SENDERS
from bot.platforms.tokens import TokenCache
from bot.platforms.wecom.config import WeComApp
from bot.settings import Settings

PLATFORM_ZH = {"wecom": "企业微信/政务微信", "dingtalk": "钉钉", "feishu": "飞书", "lark": "Lark", "slack": "Slack"}
KINDS = {"retry": "暂时失败，稍后重试可能成功", "config": "配置有误，需要修改", "rejected": "平台拒绝"}
NEEDS = {"wecom": "corp_id、agent_id、secret",
         "dingtalk": "app_key、app_secret，以及 robot_code（机器人单聊）或 agent_id（工作通知）",
         "feishu": "app_id、app_secret", "lark": "app_id、app_secret", "slack": "bot_token"}


@click.group(name="apps")
def apps() -> None:
    """平台应用（apps:）：检查凭证、显示回调地址。"""


@apps.command(name="check")
def check() -> None:
    """为每个应用获取一次访问令牌，用通俗的话报告平台的答复，并列出要填到平台后台的回调地址。"""
    settings = Settings()
    schedules = load_or_exit(settings)
    if not schedules.apps:
        click.echo("没有配置任何应用（apps:）。群机器人不需要应用；要在群里回复确认或发私信，请先添加应用。")
        return
    ok = asyncio.run(_check_all(settings, schedules))
    sys.exit(0 if ok else 1)


async def _check_all(settings: Settings, schedules: Schedules) -> bool:
    cache, failed = TokenCache(), 0
    timeout = aiohttp.ClientTimeout(total=settings.send_timeout_seconds)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for app in schedules.apps.values():
            named = f"，{app.name}" if app.name else ""
            click.echo(f"应用 {app.id}（{PLATFORM_ZH.get(app.platform, app.platform)}{named}）")
            click.echo(f"  回调地址：{_callback(settings, app)}")
            failed += not await _token_line(http, cache, app, timeout)
    sending = sum(1 for app in schedules.apps.values() if app.can_send)
    click.echo(f"共 {len(schedules.apps)} 个应用：{sending - failed} 个可以发私信，{failed} 个失败。")
    return failed == 0


def _callback(settings: Settings, app: Any) -> str:
    if isinstance(app, DingTalkApp) and app.mode == "stream":
        return "无需填写（Stream 模式，由本服务主动连接钉钉）"
    url = callback_url(settings.base_url, app)
    if isinstance(app, WeComApp) and app.kind == "robot":
        return f"{url}（填到群机器人的“接收消息”配置）"
    return url


async def _token_line(http: aiohttp.ClientSession, cache: TokenCache, app: Any,
                      deadline: aiohttp.ClientTimeout) -> bool:
    if not app.can_send:
        click.echo(f"  私信：未启用（需要填写 {NEEDS.get(app.platform, '凭证')}）；群内回复确认不受影响")
        return True
    sender = APP_SENDERS[app.platform]
    try:
        await sender.token(http, AppChannel.of(app, cache), deadline)
    except DeliveryError as exc:
        click.echo(f"  访问令牌：失败（{KINDS[exc.kind.value]}）：{exc.message}", err=True)
        return False
    what = "Bot Token 有效" if app.platform == "slack" else "平台已发放访问令牌"
    click.echo(f"  访问令牌：成功（{what}），可以发私信（{sender.title_for(app)}）")
    return True
