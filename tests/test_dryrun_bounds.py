"""A dry run of a big fire shows a bounded number of message bodies, names the parts of a split
message, and, run again, says it shows the earlier rehearsal's records."""

from __future__ import annotations

from pathlib import Path

from tests.test_bulk_fire import world_yaml
from tests.test_fire import base_env, run_cli

PEOPLE = 60  # over WeCom's 50 @-mentions: the group message goes out in parts
WECOM_GROUP = 'platform: wecom, webhook: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abcdef123456"'


def env_for(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "world.yaml").write_text(world_yaml(PEOPLE, WECOM_GROUP), encoding="utf-8")
    return base_env(tmp_path) | {"REMINDBOT_SCHEDULES_DIR": str(tmp_path / "schedules")}


def bodies(out: str) -> list[str]:
    return [line for line in out.splitlines() if "只记录、不发送（演练）：频道" in line]


async def test_a_big_dry_run_shows_twenty_bodies_then_counts_the_rest(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    code, out, err = await run_cli(env, "fire", "study", "--date", "2026-11-03", "--dry-run")
    assert code == 0, err
    assert len(bodies(out)) == 20, out  # 63 messages recorded (the group message in 3 parts), 20 shown
    assert "另有 43 条消息未列出内容" in out and "--all" in out and "remindbot preview" in out
    assert "演练 63 条消息（内容见上，未发送）" in out
    # The group message in parts: each line says which part, so the two lines differ.
    assert "党务工作群（第 1/3 条）" in out and "党务工作群（第 2/3 条）" in out

    code, again, err = await run_cli(env, "fire", "study", "--date", "2026-11-03", "--dry-run")
    assert code == 0, err
    assert "内容见上" not in again and "演练 0 条" not in again
    assert "此前已经演练过" in again and "此前那次演练各条消息的记录（本次未新增）" in again
    assert "演练（未发送） 63 条" not in again  # the counts line speaks of the earlier records
    assert "演练 63 条" in again


async def test_a_dry_run_with_all_shows_every_body(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    code, out, err = await run_cli(env, "fire", "study", "--date", "2026-11-03", "--dry-run", "--all")
    assert code == 0, err
    assert len(bodies(out)) == PEOPLE + 3 and "未列出内容" not in out
