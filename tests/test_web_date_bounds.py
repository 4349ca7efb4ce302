"""Admin pages asked for periods outside the years a report may cover, or absurdly long, over loopback HTTP:
never a 500, a 400 whose Chinese reason names the link's ``period`` parameter, and no 8 KB echo."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient
from test_web_admin import AUTH, client, world  # noqa: F401  (fixtures)

LONG = "2026-" + "1" * 7000  # under aiohttp's 8190-byte request line, so the page itself must refuse it
ODD = ["9999-12", "9999-12-31", "0001-01", "0000", "99999999-01-01", "99999999-01", "1969-12", "3000",
       "2026-00", LONG]


def alert(page: str) -> str:
    """The page's refusal paragraph (the admin pages' ``role="alert"``), else the whole page."""
    found = re.search(r'<p class="alert" role="alert">(.*?)</p>', page, re.S)
    return found[1] if found else page


@pytest.mark.parametrize("value", ODD, ids=lambda v: v[:16])
async def test_an_odd_period_is_refused_naming_the_parameter_and_this_month_shown(
    client: TestClient, value: str  # noqa: F811
) -> None:
    response = await client.get("/admin/units", params={"period": value}, headers=AUTH)
    assert response.status == 400
    reason = alert(await response.text())
    assert reason.startswith("链接参数 period") and "下面是本月的情况。" in reason
    assert len(reason) < 300  # the 7 KB value is not quoted back


@pytest.mark.parametrize("path", ["/admin/units.csv", "/admin/units.png"])
@pytest.mark.parametrize("value", ["9999-12", "0001-01", LONG], ids=lambda v: v[:16])
async def test_an_odd_period_for_a_download_is_a_short_chinese_400(
    client: TestClient, path: str, value: str  # noqa: F811
) -> None:
    response = await client.get(path, params={"period": value}, headers=AUTH)
    assert response.status == 400 and response.content_type == "text/html"
    page = await response.text()
    assert "链接参数 period" in page and "1" * 100 not in page



@pytest.mark.parametrize("path", ["/admin/units", "/admin/units.csv", "/admin/units.png"])
async def test_an_empty_period_field_means_this_month_as_no_field_does(client: TestClient, path: str) -> None:  # noqa: F811
    empty = await client.get(path, params={"period": ""}, headers=AUTH)
    assert empty.status == 200, await empty.text()
    none = await client.get(path, headers=AUTH)
    assert empty.content_type == none.content_type
    if path == "/admin/units":
        assert alert(await empty.text()) == alert(await none.text())
