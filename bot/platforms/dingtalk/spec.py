"""What the registry knows of DingTalk (钉钉): see :mod:`bot.platforms.spec`."""

from __future__ import annotations

from bot.platforms.dingtalk.app import DingTalkAppSender
from bot.platforms.dingtalk.config import DingTalkApp, DingTalkChannel
from bot.platforms.dingtalk.robot import DingTalk
from bot.platforms.spec import Edition, PlatformSpec, lazy_callback

SPEC = PlatformSpec(
    editions=(Edition(name="dingtalk", title="钉钉", id_description="钉钉 userid",
                      sheet_headers=("钉钉", "dingtalk", "钉钉userid"),
                      robot_hosts=("oapi.dingtalk.com", "api.dingtalk.com")),),
    robot=DingTalk(),
    channel_model=DingTalkChannel,
    app_model=DingTalkApp,
    app_sender=DingTalkAppSender(),
    callback=lazy_callback("bot.platforms.dingtalk.inbound"),
)
