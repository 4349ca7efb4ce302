"""What the registry knows of Feishu (飞书) and Lark, the same protocol on another host (the host is
taken from the webhook URL or the app's ``api_base``): see :mod:`bot.platforms.spec`."""

from __future__ import annotations

from bot.platforms.feishu.app import FeishuAppSender
from bot.platforms.feishu.config import FeishuApp, FeishuChannel
from bot.platforms.feishu.robot import Feishu
from bot.platforms.spec import Edition, PlatformSpec, lazy_callback

SPEC = PlatformSpec(
    editions=(
        Edition(name="feishu", title="飞书", id_description="飞书 open_id（ou_ 开头）",
                sheet_headers=("飞书", "feishu", "飞书open_id"), robot_hosts=("open.feishu.cn",)),
        Edition(name="lark", title="Lark", id_description="Lark open_id",
                sheet_headers=("lark",), robot_hosts=("open.larksuite.com",)),
    ),
    robot=Feishu(),
    channel_model=FeishuChannel,
    app_model=FeishuApp,
    app_sender=FeishuAppSender(),
    callback=lazy_callback("bot.platforms.feishu.inbound"),
)
