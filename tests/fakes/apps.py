"""A fake platform app API on loopback: token and direct-message endpoints of WeCom, DingTalk,
Feishu/Lark and Slack, answering like the real ones (their error codes, token expiry).

Usage::

    async with FakeAppApi(clock=clock) as api:
        app = {"platform": "wecom", "api_base": api.url, ...}  # point an app at api.url
        ...
        assert api.token_fetches["wecom"] == 1
        assert api.sent[0].user == "ZhaoMing" and "逾期" in api.sent[0].text

Tokens live ``lifetime`` seconds of ``clock()``; ``revoke_tokens()`` makes every token issued so far
invalid (the platform's "invalid token" answer on the next message); ``token_delay`` makes each
token fetch take that long (so a burst of senders overlaps it). ``requests`` holds every call with
its answer; ``sent`` only the messages delivered.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

WECOM = {"corp_id": "ww-fake-corp", "secret": "wecom-app-secret-0001", "agent_id": "1000002"}
DINGTALK = {"app_key": "ding-fake-key", "app_secret": "dingtalk-app-secret-0001", "robot_code": "ding-fake-key"}
DINGTALK_AGENT_ID = "2851234567"  # the app's AgentId, for work notifications
FEISHU = {"app_id": "cli_fake0001", "app_secret": "feishu-app-secret-0001"}
SLACK = {"bot_token": "xoxb-fake-slack-bot-token-0001"}


@dataclass(frozen=True)
class Sent:
    """A direct message the fake delivered."""

    platform: str
    user: str
    text: str  # what the person reads (markdown / card JSON / mrkdwn)
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)  # when it arrived (monotonic seconds)


@dataclass
class FakeAppApi:
    clock: Callable[[], float] = time.time
    lifetime: float = 7200.0
    token_delay: float = 0.0
    url: str = ""
    token_fetches: Counter[str] = field(default_factory=Counter)
    requests: list[tuple[str, int, Any]] = field(default_factory=list)  # (path, status, answer)
    sent: list[Sent] = field(default_factory=list)
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (platform, expires at)
    _runner: web.AppRunner | None = None
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    # ---- lifecycle

    async def __aenter__(self) -> FakeAppApi:
        app = web.Application()
        app.router.add_get("/cgi-bin/gettoken", self._wecom_token)
        app.router.add_post("/cgi-bin/message/send", self._wecom_send)
        app.router.add_post("/v1.0/oauth2/accessToken", self._ding_token)
        app.router.add_post("/v1.0/robot/oToMessages/batchSend", self._ding_send)
        app.router.add_post("/v1.0/im/v1.0/robot/interactiveCards/send", self._ding_card)
        app.router.add_get("/gettoken", self._ding_notice_token)
        app.router.add_post("/topapi/message/corpconversation/asyncsend_v2", self._ding_notice)
        app.router.add_post("/open-apis/auth/v3/tenant_access_token/internal", self._feishu_token)
        app.router.add_post("/open-apis/im/v1/messages", self._feishu_send)
        app.router.add_post("/api/auth.test", self._slack_auth)
        app.router.add_post("/api/chat.postMessage", self._slack_send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def revoke_tokens(self) -> None:
        self._tokens.clear()

    def sent_to(self, platform: str) -> list[Sent]:
        return [s for s in self.sent if s.platform == platform]

    # ---- helpers

    async def _issue(self, platform: str) -> tuple[str, float]:
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        self.token_fetches[platform] += 1
        token = f"{platform}-token-{next(self._seq)}"
        self._tokens[token] = (platform, self.clock() + self.lifetime)
        return token, self.lifetime

    def _check(self, platform: str, token: str) -> str | None:
        """None when valid, "expired" or "invalid"."""
        known = self._tokens.get(token)
        if known is None or known[0] != platform:
            return "invalid"
        return "expired" if self.clock() >= known[1] else None

    def _answer(self, path: str, payload: Any, status: int = 200) -> web.Response:
        self.requests.append((path, status, payload))
        return web.json_response(payload, status=status)

    # ---- WeCom

    async def _wecom_token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("corpid") != WECOM["corp_id"]:
            return self._answer(request.path, {"errcode": 40013, "errmsg": "invalid corpid"})
        if q.get("corpsecret") != WECOM["secret"]:
            return self._answer(request.path, {"errcode": 40001, "errmsg": "invalid credential"})
        token, life = await self._issue("wecom")
        return self._answer(request.path, {"errcode": 0, "errmsg": "ok", "access_token": token,
                                           "expires_in": int(life)})

    async def _wecom_send(self, request: web.Request) -> web.Response:
        state = self._check("wecom", request.query.get("access_token", ""))
        if state:
            code = 42001 if state == "expired" else 40014
            return self._answer(request.path, {"errcode": code, "errmsg": f"access_token {state}"})
        body = await request.json()
        if str(body.get("agentid")) != WECOM["agent_id"]:
            return self._answer(request.path, {"errcode": 40056, "errmsg": "invalid agentid"})
        self.sent.append(Sent("wecom", body["touser"], body["markdown"]["content"], body))
        return self._answer(request.path, {"errcode": 0, "errmsg": "ok", "invaliduser": ""})

    # ---- DingTalk

    async def _ding_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("appKey") != DINGTALK["app_key"] or body.get("appSecret") != DINGTALK["app_secret"]:
            return self._answer(request.path, {"code": "invalidClientIdOrSecret",
                                               "message": "无效的clientId或者clientSecret"}, 400)
        token, life = await self._issue("dingtalk")
        return self._answer(request.path, {"accessToken": token, "expireIn": int(life)})

    async def _ding_send(self, request: web.Request) -> web.Response:
        if self._check("dingtalk", request.headers.get("x-acs-dingtalk-access-token", "")):
            return self._answer(request.path, {"code": "InvalidAuthentication", "message": "不合法的access_token"}, 401)
        body = await request.json()
        if body.get("robotCode") != DINGTALK["robot_code"]:
            return self._answer(request.path, {"code": "robot.notExist", "message": "机器人不存在"}, 400)
        param = json.loads(body["msgParam"])
        for user in body["userIds"]:
            self.sent.append(Sent("dingtalk", user, param["text"], body))
        return self._answer(request.path, {"processQueryKey": f"q{next(self._seq)}", "invalidStaffIdList": [],
                                           "flowControlledStaffIdList": []})

    async def _ding_card(self, request: web.Request) -> web.Response:
        if self._check("dingtalk", request.headers.get("x-acs-dingtalk-access-token", "")):
            return self._answer(request.path, {"code": "InvalidAuthentication", "message": "不合法的access_token"}, 401)
        body = await request.json()
        if not body.get("cardTemplateId") or not body.get("cardBizId"):
            return self._answer(request.path, {"code": "param.invalid", "message": "参数错误"}, 400)
        user = json.loads(body["singleChatReceiver"])["userId"]
        params = json.loads(body["cardData"])["cardParamMap"]
        self.sent.append(Sent("dingtalk", user, params["markdown"], body))
        return self._answer(request.path, {"processQueryKey": f"q{next(self._seq)}"})

    # DingTalk work notifications (工作通知): the older server API. Tokens count as "dingtalk-notice".

    async def _ding_notice_token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("appkey") != DINGTALK["app_key"] or q.get("appsecret") != DINGTALK["app_secret"]:
            return self._answer(request.path, {"errcode": 40089, "errmsg": "不合法的corpid或corpsecret"})
        token, life = await self._issue("dingtalk-notice")
        return self._answer(request.path, {"errcode": 0, "errmsg": "ok", "access_token": token,
                                           "expires_in": int(life)})

    async def _ding_notice(self, request: web.Request) -> web.Response:
        state = self._check("dingtalk-notice", request.query.get("access_token", ""))
        if state:
            code = 42001 if state == "expired" else 40014
            return self._answer(request.path, {"errcode": code, "errmsg": "不合法的access_token"})
        body = await request.json()
        if not isinstance(body.get("agent_id"), int):
            return self._answer(request.path, {"errcode": 40035, "errmsg": "不合法的参数"})
        if str(body["agent_id"]) != DINGTALK_AGENT_ID:
            return self._answer(request.path, {"errcode": 88, "sub_code": "60011", "sub_msg": "没有调用该接口的权限",
                                               "errmsg": "ding talk error[subcode=60011]"})
        msg = body.get("msg") or {}
        if len(json.dumps(msg, ensure_ascii=False).encode()) > 2048 or not body.get("userid_list"):
            return self._answer(request.path, {"errcode": 40035, "errmsg": "不合法的参数"})
        if msg.get("msgtype") == "markdown":
            text = msg["markdown"]["title"] + "\n" + msg["markdown"]["text"]
        else:
            card = msg["action_card"]
            text = f"{card['title']}\n{card['markdown']}\n{card['single_title']}：{card['single_url']}"
        for user in str(body["userid_list"]).split(","):
            self.sent.append(Sent("dingtalk-notice", user, text, body))
        return self._answer(request.path, {"errcode": 0, "errmsg": "ok", "task_id": next(self._seq),
                                           "request_id": "fake"})

    # ---- Feishu / Lark

    async def _feishu_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("app_id") != FEISHU["app_id"] or body.get("app_secret") != FEISHU["app_secret"]:
            return self._answer(request.path, {"code": 10014, "msg": "app secret invalid"})
        token, life = await self._issue("feishu")
        return self._answer(request.path, {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": int(life)})

    async def _feishu_send(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        state = self._check("feishu", token)
        if state:
            code = 99991677 if state == "expired" else 99991663
            return self._answer(request.path, {"code": code, "msg": "Invalid access token for authorization."}, 400)
        if request.query.get("receive_id_type") != "open_id":
            return self._answer(request.path, {"code": 99992402, "msg": "field validation failed"}, 400)
        body = await request.json()
        self.sent.append(Sent("feishu", body["receive_id"], body["content"], body))
        return self._answer(request.path, {"code": 0, "msg": "success", "data": {"message_id": "om_1"}})

    # ---- Slack

    def _slack_ok(self, request: web.Request) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {SLACK['bot_token']}"

    async def _slack_auth(self, request: web.Request) -> web.Response:
        if not self._slack_ok(request):
            return self._answer(request.path, {"ok": False, "error": "invalid_auth"})
        self.token_fetches["slack"] += 1
        return self._answer(request.path, {"ok": True, "team": "fake", "user": "remindbot"})

    async def _slack_send(self, request: web.Request) -> web.Response:
        if not self._slack_ok(request):
            return self._answer(request.path, {"ok": False, "error": "invalid_auth"})
        body = await request.json()
        self.sent.append(Sent("slack", body["channel"], body["text"], body))
        return self._answer(request.path, {"ok": True, "channel": "D0FAKE", "ts": "1.0"})
