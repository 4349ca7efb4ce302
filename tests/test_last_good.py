"""The last good schedules, kept on disk: the read/record commands go on with them while a broken edit
waits to be fixed (saying so on stderr), the commands that send refuse, ``validate`` still fails.

The commands run through click's CliRunner on a real SQLite file (the ``cli`` world of
tests/test_cli_confirmations.py); the entry itself is read and written in a real ``var/cache``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from test_cli_confirmations import Cli, cli, confirmations  # noqa: F401 (cli: the fixture)

from bot.cli.confirmations import confirm, link, report, status
from bot.cli.delivery import fire_command, preview, send_test
from bot.cli.schedule import upcoming, validate
from bot.config.snapshot import check_cached, last_good, load_or_last_good
from bot.settings import Settings


@pytest.fixture
def world(request: pytest.FixtureRequest) -> Cli:
    """tests/test_cli_confirmations.py's world: its schedules, two occurrences, a confirmation."""
    return request.getfixturevalue("cli")  # type: ignore[no-any-return]


NOTE = re.compile(r"日程配置有 1 处错误（运行 remindbot validate 查看）。\n"
                  r"以下按上一次有效的配置（\d{4}-\d\d-\d\d \d\d:\d\d 检查通过）执行\n")
OLD_CONFIG = "正在运行的服务继续使用上一次有效的配置"


def _world(world: Cli) -> Path:
    return Path(world.env["REMINDBOT_SCHEDULES_DIR"]) / "world.yaml"


def _break(world: Cli) -> None:
    """The trial's typo: one unknown field in a reminder (one error)."""
    path = _world(world)
    text = path.read_text(encoding="utf-8")
    assert "  - id: study\n" in text
    path.write_text(text.replace("  - id: study\n", "  - id: study\n    templte: x\n", 1), encoding="utf-8")


def _checked_good(world: Cli) -> None:
    """A check that passes (as any command, validate or the service does), keeping the last good entry."""
    assert world.run(validate).exit_code == 0


def test_a_broken_edit_does_not_stop_recording_a_confirmation_given_by_phone(world: Cli) -> None:
    _checked_good(world)
    _break(world)

    result = world.run(confirm, str(world.check), "吴敏", "--by", "chen")

    assert result.exit_code == 0, result.output
    assert NOTE.match(result.stderr), result.stderr
    assert "wu" in [c.person_id for c in confirmations(world)]


def test_the_read_commands_run_on_the_last_good_schedules_and_say_so_first(world: Cli) -> None:
    _checked_good(world)
    _break(world)

    for command, args in [(status, []), (report, ["--period", "2026-12"]), (link, [str(world.check), "吴敏"]),
                          (upcoming, ["--days", "40"]), (preview, ["study"])]:
        result = world.run(command, *args)
        assert result.exit_code == 0, (command.name, result.output)
        assert NOTE.match(result.stderr), (command.name, result.stderr)
        assert "请修改后再试" not in result.output


def test_commands_that_send_refuse_and_say_the_service_keeps_the_last_good_schedules(world: Cli) -> None:
    _checked_good(world)
    _break(world)

    for command, args in [(fire_command, ["study"]), (fire_command, ["study", "--dry-run"]), (send_test, ["group"])]:
        result = world.run(command, *args)
        assert result.exit_code == 1, (command.name, result.output)
        assert "日程配置有 1 处错误，请修改后再试。" in result.stderr
        assert OLD_CONFIG in result.stderr and "本命令不按旧配置执行" in result.stderr


def test_validate_still_fails_and_says_what_runs_meanwhile(world: Cli) -> None:
    _checked_good(world)
    _break(world)

    result = world.run(validate)

    assert result.exit_code == 1
    assert "共 1 处错误，配置未通过检查。" in result.stdout
    assert re.search(r"继续使用上一次有效的配置（\d{4}-\d\d-\d\d \d\d:\d\d 检查通过）", result.stdout), result.stdout


def test_without_a_last_good_entry_the_commands_refuse_as_before(world: Cli) -> None:
    _break(world)  # never checked good in this var folder (the world was written, not checked)

    result = world.run(status)

    assert result.exit_code == 1
    assert "日程配置有 1 处错误，请修改后再试。" in result.output
    assert "以下按上一次有效的配置" not in result.output


def test_the_entry_follows_the_last_good_check_is_private_and_not_read_by_other_code(tmp_path: Path) -> None:
    folder, cache = tmp_path / "schedules", tmp_path / "var" / "cache"
    folder.mkdir()
    good = "channels:\n  - {id: g, name: 群, platform: wecom}\nreminders: []\n"
    (folder / "a.yaml").write_text(good, encoding="utf-8")
    assert check_cached(folder, cache_dir=cache)[0] is not None
    first = last_good(cache, folder)
    assert first is not None and list(first.schedules.channels) == ["g"]
    entries = sorted(p.name for p in cache.glob("last-good-*"))
    assert len(entries) == 2  # the pointer and the snapshot it names
    assert all(os.stat(cache / name).st_mode & 0o777 == 0o600 for name in entries)

    (folder / "a.yaml").write_text(good.replace("id: g,", "id: h,"), encoding="utf-8")
    assert check_cached(folder, cache_dir=cache)[0] is not None
    (folder / "a.yaml").write_text(good + "bogus: 1\n", encoding="utf-8")
    assert check_cached(folder, cache_dir=cache)[0] is None
    second = last_good(cache, folder)
    assert second is not None and list(second.schedules.channels) == ["h"]
    assert second.checked_at >= first.checked_at
    assert len(list(cache.glob("last-good-*"))) == 2  # the earlier snapshot's entry is gone

    # Written by other code (a new version of remindbot): none, as on a first start.
    pointer = next(cache.glob("last-good-*.json"))
    entry = cache / re.sub(r"\.json$", f"-{json.loads(pointer.read_text())['key']}.pickle", pointer.name)
    entry.write_bytes(b"other-code-version\n" + entry.read_bytes().split(b"\n", 1)[1])
    assert last_good(cache, folder) is None


def test_a_second_folder_has_its_own_last_good_entry(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.yaml").write_text(
            f"channels:\n  - {{id: {name}, name: 群, platform: wecom}}\n", encoding="utf-8")
        check_cached(tmp_path / name, cache_dir=cache)
    (tmp_path / "one" / "a.yaml").write_text("bogus: 1\n", encoding="utf-8")

    settings = Settings(schedules_dir=tmp_path / "one", var_dir=tmp_path, database_url="sqlite+aiosqlite:///x.db")
    schedules, refused = load_or_last_good(settings)
    assert refused is not None and len(refused.errors) == 1
    assert list(schedules.channels) == ["one"]



def test_the_last_good_copy_takes_a_rotated_webhook_but_reads_no_file_past_the_loaders_bounds(tmp_path: Path) -> None:
    """Re-reading the channels as written (for the current environment's webhooks) keeps the loader's
    bounds: an alias bomb or an oversized file holding a ``${…}`` is skipped, not parsed, and the
    channels file beside it still gives its channel the rotated webhook."""
    from bot.config.limits import Limits
    from bot.config.loader import load_schedules
    from bot.config.snapshot import current_secrets

    folder = tmp_path / "schedules"
    folder.mkdir()
    (folder / "channels.yaml").write_text(
        "channels:\n  - id: group\n    name: 党务群\n    platform: wecom\n    webhook: ${HOOK}\n", encoding="utf-8")
    old = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=old"
    new = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=new"
    schedules = load_schedules(folder, env={"HOOK": old})
    assert schedules.channels["group"].webhook_url() == old
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(20))
    elsewhere = "channels:\n  - id: group\n    webhook: ${ELSEWHERE}\n"
    # After channels.yaml in the folder's order: parsed, they would win.
    (folder / "z-bomb.yaml").write_text(bomb + elsewhere, encoding="utf-8")
    (folder / "z-big.yaml").write_text(elsewhere + "# padding\n" * 2000, encoding="utf-8")
    env = {"HOOK": new, "ELSEWHERE": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=elsewhere"}

    changed = current_secrets(schedules, folder, env, Limits(file_bytes=10_000))

    assert changed == 1
    assert schedules.channels["group"].webhook_url() == new


def test_a_broken_channels_file_still_gives_the_last_good_channels_a_rotated_webhook(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The channels file itself is the broken one (it no longer parses): the last good copy still knows
    each channel's ``${VAR}`` as written when it was checked, so a webhook rotated in the environment since
    is used, not the old one; a channel written without a ``${VAR}`` keeps its value."""
    from bot.config.snapshot import last_good_for

    folder = tmp_path / "schedules"
    folder.mkdir()
    channels = ("channels:\n  - id: group\n    name: 党务群\n    platform: wecom\n    webhook: ${HOOK}\n"
                "  - id: fixed\n    name: 固定群\n    platform: wecom\n"
                "    webhook: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=fixed\n")
    (folder / "channels.yaml").write_text(channels, encoding="utf-8")
    old = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=old"
    new = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=new"
    monkeypatch.setenv("HOOK", old)
    settings = Settings(schedules_dir=folder, var_dir=tmp_path / "var", database_url="sqlite+aiosqlite:///x.db")
    assert check_cached(folder, cache_dir=tmp_path / "var" / "cache")[0] is not None
    (folder / "channels.yaml").write_text(channels.replace("    name: 党务群\n", "    name: [党务群\n"),
                                          encoding="utf-8")  # an unclosed bracket: the file does not parse
    assert check_cached(folder, cache_dir=tmp_path / "var" / "cache")[0] is None
    monkeypatch.setenv("HOOK", new)

    last = last_good_for(settings)

    assert last is not None
    assert last.schedules.channels["group"].webhook_url() == new
    assert last.schedules.channels["fixed"].webhook_url().endswith("key=fixed")
    pointer = next((tmp_path / "var" / "cache").glob("last-good-*.json")).read_text(encoding="utf-8")
    assert "key=old" not in pointer and "${HOOK}" in pointer  # the names kept, not the values


def test_a_broken_apps_file_still_gives_the_last_good_apps_their_rotated_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Not only channels: an app's secrets (a WeCom app's secret for direct messages, a Slack app's signing
    secret) written as ``${VAR}`` in a file that is now the broken one take the current environment too,
    as the channels' webhooks do; the values are never logged, and the entry keeps the names only."""
    from bot.config.snapshot import last_good_for

    folder = tmp_path / "schedules"
    folder.mkdir()
    apps = ("apps:\n  - id: gw-app\n    name: 政务微信应用\n    platform: wecom\n    corp_id: ww-corp\n"
            "    token: ${WECOM_TOKEN}\n    encoding_aes_key: kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR\n"
            "    agent_id: \"1000002\"\n    secret: ${WECOM_SECRET}\n"
            "  - id: sl\n    platform: slack\n    signing_secret: ${SLACK_SIGNING}\n")
    (folder / "apps.yaml").write_text(apps, encoding="utf-8")
    monkeypatch.setenv("WECOM_TOKEN", "token-then")
    monkeypatch.setenv("WECOM_SECRET", "app-secret-then")
    monkeypatch.setenv("SLACK_SIGNING", "signing-then")
    settings = Settings(schedules_dir=folder, var_dir=tmp_path / "var", database_url="sqlite+aiosqlite:///x.db")
    assert check_cached(folder, cache_dir=tmp_path / "var" / "cache")[0] is not None
    (folder / "apps.yaml").write_text(apps.replace("    name: 政务微信应用\n", "    name: [政务微信应用\n"),
                                      encoding="utf-8")  # an unclosed bracket: the file does not parse
    assert check_cached(folder, cache_dir=tmp_path / "var" / "cache")[0] is None
    monkeypatch.setenv("WECOM_SECRET", "app-secret-now")
    monkeypatch.setenv("SLACK_SIGNING", "signing-now")

    with caplog.at_level("DEBUG"):
        last = last_good_for(settings)

    assert last is not None
    wecom, slack = last.schedules.apps["gw-app"], last.schedules.apps["sl"]
    assert wecom.secret.get_secret_value() == "app-secret-now"
    assert wecom.token.get_secret_value() == "token-then"  # not rotated: as it was
    assert slack.signing_secret.get_secret_value() == "signing-now"
    assert "2 个应用的密钥已按当前环境变量更新" in caplog.text
    assert "-now" not in caplog.text and "-then" not in caplog.text
    pointer = next((tmp_path / "var" / "cache").glob("last-good-*.json")).read_text(encoding="utf-8")
    assert "-then" not in pointer and "${SLACK_SIGNING}" in pointer and "${WECOM_SECRET}" in pointer
