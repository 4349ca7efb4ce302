"""Where the links the service sends point: a warning when they would point to this machine.

Personal confirmation links, leaders' pages and a report's chart and ranking are
``REMINDBOT_BASE_URL/...``. Left unset, that is ``http://127.0.0.1:<port>``: fine while every
channel only records, but a real group or person receiving it gets a link no one can open (trial 9:
it went out silently). ``serve`` logs :func:`base_url_warning` at start and ``validate`` prints it;
``apps check`` prints :func:`callback_warning` under the callback URLs it lists.

Light on purpose (``validate`` imports it): the settings, the schedules' models and the standard library.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from bot.config.models import Schedules
    from bot.settings import Settings

NAMES_LOGGED = 10  # a start-up line names at most this many channels (500 made one line of 4.5 KB)


def names_shown(names: list[str], most: int = NAMES_LOGGED) -> str:
    """``甲、乙、丙``, or the first ``most`` and how many in all: ``甲、乙……等 500 个``."""
    if len(names) <= most:
        return "、".join(names)
    return f"{'、'.join(names[:most])}……等 {len(names)} 个"


def local_only(base_url: str) -> bool:
    """Whether a link under ``base_url`` opens only on this machine (localhost, 127.x, ::1, 0.0.0.0)."""
    host = (urlsplit(base_url).hostname or "").rstrip(".").lower()
    if not host or host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a name: it may well be public
        return False
    return address.is_loopback or address.is_unspecified


def linking_targets(schedules: Schedules) -> list[str]:
    """Names of what really sends (a channel with a webhook, an app able to send direct messages)
    messages carrying links to the service, in the schedules' order; never a webhook or key.

    A channel carries them when it allows personal links (confirmation links, a leader's page) or
    receives a report (its chart and ranking); an app when some reminder asks for confirmation links
    (a person's direct message carries one whatever the channel allows)."""
    reports = {channel_id for r in schedules.reminders.values() if r.enabled and r.kind == "report"
               for channel_id in r.recipients.channels}
    names = [c.name for c in schedules.channels.values()
             if not c.dry_run and (c.personal_links or c.id in reports)]
    if any(r.enabled and r.confirm is not None and r.confirm.link for r in schedules.reminders.values()):
        names += [f"{app.label}（个人消息）" for app in schedules.apps.values() if app.can_send]
    return names


def base_url_warning(settings: Settings, schedules: Schedules, *, here: bool = False) -> str | None:
    """One Chinese warning when links to the service go out for real under a local-only base URL, else None.

    ``here``: said by a command (``validate``), whose environment need not be the service's: the
    sentence says so instead of claiming what the service will do."""
    if settings.dry_run or not local_only(settings.base_url):
        return None
    targets = linking_targets(schedules)
    if not targets:
        return None
    default = "（未设置时的默认值）" if settings.base_url == f"http://127.0.0.1:{settings.port}" else ""
    where = "按本命令的环境，" if here else ""
    return (f"{where}REMINDBOT_BASE_URL 是本机地址 {settings.base_url}{default}，但发往 {names_shown(targets)} "
            "的消息带有指向本服务的链接（个人确认链接、领导页面、通报图表等），收到的人打不开。"
            "请把 REMINDBOT_BASE_URL 设为大家能访问的地址（建议 https:// 开头）后重启服务。")


def callback_warning(settings: Settings, schedules: Schedules) -> str | None:
    """One Chinese warning when the apps' callback URLs (``remindbot apps check``) are under a
    local-only base URL, which no platform can reach; None when they are not, or no app needs one.
    Said by a command: the sentence is about this command's environment."""
    if not local_only(settings.base_url):
        return None
    apps = [app.label for app in schedules.apps.values() if app.needs_callback]
    if not apps:
        return None
    default = "（未设置时的默认值）" if settings.base_url == f"http://127.0.0.1:{settings.port}" else ""
    return (f"按本命令的环境，REMINDBOT_BASE_URL 是本机地址 {settings.base_url}{default}：平台访问不到上面 "
            f"{names_shown(apps)} 的回调地址，群里回复确认、按钮都收不到。请把 REMINDBOT_BASE_URL 设为平台能访问的"
            "公网地址（建议 https:// 开头），用那时列出的回调地址填到平台后台。")
