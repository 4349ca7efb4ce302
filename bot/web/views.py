"""Read-only signed views shared by the leader page, calendar feeds and chart images.

A view token (``bot.confirming.tokens.make_view_token``) is read here with its purpose; whatever is wrong
with it becomes a Chinese 4xx page: 400 malformed, 403 forged or signed for something else
(a confirmation link, another view), 410 expired.
"""

from __future__ import annotations

from aiohttp import web

from bot.confirming.tokens import TokenError, ViewPurpose, read_view_token
from bot.web.common import error_response, runtime_of

VIEW_REFUSALS: dict[str, tuple[int, str]] = {
    "forged": (403, "这个链接不完整或已被改动，无法使用。请从提醒消息中重新打开原始链接。"),
    "malformed": (400, "这个链接的格式不正确。请从提醒消息中重新打开原始链接，注意复制完整。"),
    "expired": (410, "这个链接已超过有效期。请打开最近一次提醒消息中的新链接，或联系机关工委管理员。"),
}


class Refused(Exception):
    """A view that cannot be shown; ``response`` is the Chinese page to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.response = error_response(status, message=message)


def read_view(request: web.Request, purposes: tuple[ViewPurpose, ...], ttl_days: int,
              token: str | None = None) -> tuple[ViewPurpose, list[str | int]]:
    """The first of ``purposes`` the request's token was signed for, with its payload.

    Raises :class:`Refused` (the worst reason among the purposes tried: expired before forged).
    """
    runtime = runtime_of(request)
    token = token if token is not None else request.match_info["token"]
    reasons = []
    for purpose in purposes:
        try:
            return purpose, read_view_token(runtime.link_key, purpose, token, ttl_days * 86400, now=runtime.clock())
        except TokenError as exc:
            reasons.append(exc.reason)
    reason = "expired" if "expired" in reasons else reasons[0]
    raise Refused(*VIEW_REFUSALS[reason])


def not_found(message: str) -> Refused:
    return Refused(404, message)
