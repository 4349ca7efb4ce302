"""``remindbot apps check``: each app's credentials tried for real, and the callback URL to paste."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp
import click

from bot.cli.schedule import load_or_exit
from bot.config.models import Schedules
from bot.links import callback_warning
from bot.platforms.appsend import AppChannel
from bot.platforms.base import DeliveryError
from bot.platforms.registry import APP_SENDERS, app_platform_title
from bot.platforms.tokens import TokenCache
from bot.settings import Settings

KINDS = {"retry": "暂时失败，稍后重试可能成功", "config": "配置有误，需要修改", "rejected": "平台拒绝"}


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
            click.echo(f"应用 {app.id}（{app_platform_title(app.platform)}{named}）")
            click.echo(f"  回调地址：{app.callback_text(settings.base_url)}")
            failed += not await _token_line(http, cache, app, timeout)
    if warning := callback_warning(settings, schedules):
        click.echo(f"警告：{warning}", err=True)
    sending = sum(1 for app in schedules.apps.values() if app.can_send)
    click.echo(f"共 {len(schedules.apps)} 个应用：{sending - failed} 个可以发私信，{failed} 个失败。")
    return failed == 0


async def _token_line(http: aiohttp.ClientSession, cache: TokenCache, app: Any,
                      deadline: aiohttp.ClientTimeout) -> bool:
    if not app.can_send:
        click.echo(f"  私信：未启用（需要填写 {app.send_needs}）；群内回复确认不受影响")
        return True
    sender = APP_SENDERS[app.platform]
    try:
        await sender.token(http, AppChannel.of(app, cache), deadline)
    except DeliveryError as exc:
        click.echo(f"  访问令牌：失败（{KINDS[exc.kind.value]}）：{exc.message}", err=True)
        return False
    click.echo(f"  访问令牌：成功（{sender.token_granted}），可以发私信（{sender.title_for(app)}）")
    return True
