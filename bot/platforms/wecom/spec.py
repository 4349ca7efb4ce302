"""What the registry knows of WeCom (企业微信 / 政务微信): see :mod:`bot.platforms.spec`."""

from __future__ import annotations

from bot.platforms.spec import Edition, PlatformSpec, lazy_callback
from bot.platforms.wecom.app import WeComAppSender
from bot.platforms.wecom.config import WeComApp, WeComChannel
from bot.platforms.wecom.robot import WeCom

SPEC = PlatformSpec(
    editions=(Edition(name="wecom", title="企业微信", app_title="企业微信/政务微信",
                      id_description="企业微信/政务微信 userid",
                      sheet_headers=("企业微信", "wecom", "政务微信", "企业微信userid"),
                      robot_hosts=("qyapi.weixin.qq.com",)),),
    robot=WeCom(),
    channel_model=WeComChannel,
    app_model=WeComApp,
    app_sender=WeComAppSender(),
    callback=lazy_callback("bot.platforms.wecom.inbound"),
    callback_methods=("GET", "POST"),  # a GET is WeCom's URL verification
)
