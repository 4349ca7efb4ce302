"""Failed admin logins: logged without the password, and throttled per client address."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_web_admin import AUTH, PASSWORD, USER, basic
from test_web_confirm import World, build_world

from bot.settings import Settings
from bot.web import login, make_app
from storage.db import Database

WRONG = "wrong-password-never-logged"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(login, "monotonic", clock)
    return clock


@pytest.fixture
async def client(db: Database, tmp_path: Path) -> AsyncIterator[TestClient]:
    world: World = await build_world(db, tmp_path, admin_user=USER, admin_password=PASSWORD)
    async with TestClient(TestServer(make_app(world.runtime), host="127.0.0.1")) as client:
        yield client


async def fail(client: TestClient, times: int, user: str = "gongwei") -> list[int]:
    return [(await client.get("/admin/", headers=basic(user, WRONG))).status for _ in range(times)]


async def test_a_failed_login_is_logged_with_user_and_address_but_never_the_password(
    client: TestClient, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert await fail(client, 1, user="张三") == [401]
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.web.login"]
    assert len(lines) == 1
    assert "管理后台登录失败" in lines[0] and "用户名 “张三”，" in lines[0] and "127.0.0.1" in lines[0]
    assert all(WRONG not in r.getMessage() for r in caplog.records)


async def test_a_failed_login_names_the_user_in_chinese_quotes_on_one_line(
    client: TestClient, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert await fail(client, 1, user="admin") == [401]
    assert await fail(client, 1, user="ad\tmin") == [401]  # a tab typed in the name: escaped, as before
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.web.login"]
    assert "用户名 “admin”，" in lines[0] and "'admin'" not in lines[0], lines
    assert "用户名 “ad\\tmin”，" in lines[1] and "\t" not in lines[1], lines


async def test_a_browsers_first_request_without_credentials_is_not_a_failure(
    client: TestClient, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(8):
        assert (await client.get("/admin/")).status == 401
    assert (await client.get("/admin/", headers=AUTH)).status == 200
    assert not [r for r in caplog.records if r.name == "bot.web.login"]


async def test_after_five_failures_the_address_waits_longer_and_longer_even_with_the_right_password(
    client: TestClient, clock: Clock
) -> None:
    assert await fail(client, 5) == [401] * 5
    refused = await client.get("/admin/", headers=AUTH)  # the right password does not get through
    assert refused.status == 429
    assert "登录失败次数过多" in await refused.text()
    assert refused.headers["Retry-After"] == "2"

    clock.now += 2.5
    assert await fail(client, 1) == [401]  # the sixth failure: 4 seconds
    clock.now += 2.5
    assert (await client.get("/admin/", headers=AUTH)).status == 429
    clock.now += 2
    assert await fail(client, 1) == [401]  # the seventh: 8 seconds
    response = await client.get("/admin/", headers=AUTH)
    assert response.status == 429 and response.headers["Retry-After"] == "8"

    clock.now += 9
    assert (await client.get("/admin/", headers=AUTH)).status == 200  # a success starts afresh
    assert await fail(client, 4) == [401] * 4
    assert (await client.get("/admin/", headers=AUTH)).status == 200


async def test_failures_are_forgotten_after_an_hour(client: TestClient, clock: Clock) -> None:
    await fail(client, 4)
    clock.now += login.FORGET_AFTER + 1
    assert await fail(client, 4) == [401] * 4  # not blocked: the count started again
    assert (await client.get("/admin/", headers=AUTH)).status == 200


def test_the_throttle_keeps_a_bounded_number_of_addresses(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(login, "MAX_ADDRESSES", 3)
    throttle = login.LoginThrottle()
    for n in range(5):
        for _ in range(login.FREE_FAILURES):
            throttle.failed(f"10.0.0.{n}", "x")
    assert throttle.wait("10.0.0.4") > 0 and throttle.wait("10.0.0.0") == 0


@pytest.mark.parametrize(("password", "refused"), [("", False), ("short-pw-11", True), ("twelve-chars", False)])
def test_an_admin_password_needs_12_characters(password: str, refused: bool) -> None:
    problem = Settings(admin_user="admin", admin_password=password).admin_password_problem()
    assert (problem is not None) == refused
    if problem:
        assert "至少需要 12 个字符" in problem and password not in problem


@pytest.mark.parametrize(("host", "base_url", "warned"), [
    ("0.0.0.0", "", True), ("::", "http://dj.example.gov.cn", True), ("[::]", "", True),
    ("0.0.0.0", "https://dj.example.gov.cn", False), ("127.0.0.1", "", False),
])
def test_listening_everywhere_without_https_is_warned(host: str, base_url: str, warned: bool) -> None:
    assert (Settings(host=host, base_url=base_url).exposure_warning() is not None) == warned


async def test_a_wrong_password_is_said_to_be_wrong_and_a_first_visit_only_asked_to_log_in(client: TestClient) -> None:
    first = await (await client.get("/admin/")).text()
    assert "请输入管理后台的用户名和密码。" in first and "不对" not in first
    wrong = await client.get("/admin/", headers=basic(USER, "not-the-password"))
    assert wrong.status == 401
    assert "用户名或密码不对，请重新输入管理后台的用户名和密码。" in await wrong.text()
