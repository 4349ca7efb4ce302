"""What the registry knows of Slack: see :mod:`bot.platforms.spec`."""

from __future__ import annotations

from bot.platforms.slack.app import SlackAppSender
from bot.platforms.slack.config import SlackApp, SlackChannel
from bot.platforms.slack.robot import Slack
from bot.platforms.spec import Edition, PlatformSpec, lazy_callback

SPEC = PlatformSpec(
    editions=(Edition(name="slack", title="Slack", id_description="Slack member id",
                      sheet_headers=("slack",), robot_hosts=("hooks.slack.com",)),),
    robot=Slack(),
    channel_model=SlackChannel,
    app_model=SlackApp,
    app_sender=SlackAppSender(),
    callback=lazy_callback("bot.platforms.slack.inbound"),
)
