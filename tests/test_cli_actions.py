"""``remindbot excuse``, ``resend`` and ``admin hash-password`` through click's CliRunner on a real SQLite file."""

from __future__ import annotations

import asyncio
import os
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from click.testing import CliRunner
from test_cli_confirmations import Cli, cli  # noqa: F401  (the fixture)
from test_web_confirm import serve

from bot.admins import Accounts, hash_password, parse_admins
from bot.cli import main
from bot.cli.actions import admin, excuse, resend
from bot.cli.confirmations import confirm, leader_link, open_runtime, status
from bot.web import make_app

ROOT = Path(__file__).resolve().parent.parent


def db_path(cli: Cli) -> Path:  # noqa: F811
    return Path(cli.env["REMINDBOT_DATABASE_URL"].split("///", 1)[1])


def audit(cli: Cli) -> list[tuple[str, str, str | None, str | None]]:  # noqa: F811
    with sqlite3.connect(db_path(cli)) as db:
        return db.execute("select admin, action, person_id, reason from admin_action order by id").fetchall()


def test_excuse_by_name_takes_the_person_out_and_status_shows_it(cli: Cli) -> None:  # noqa: F811
    result = cli.run(excuse, str(cli.study), "刘洋", "--by", "陈静", "--reason", "出差：赴省委党校学习")
    assert result.exit_code == 0, result.output
    assert "已登记：刘洋 免于确认" in result.output and "登记人 陈静" in result.output
    assert result.output.rstrip().endswith("赴省委党校学习。")  # one sentence, ended
    assert audit(cli) == [("chen", "excuse", "liu", "出差：赴省委党校学习")]
    shown = cli.run(status, "study").output
    line = next(line for line in shown.splitlines() if "刘洋" in line)
    assert "免于确认" in line and "出差：赴省委党校学习（陈静 登记）" in line
    assert "请假等免于确认 1 人" in shown

    again = cli.run(excuse, str(cli.study), "liu", "--by", "chen", "--kind", "出差", "--reason", "再登记一次")
    assert again.exit_code == 1 and "无需重复登记" in again.output
    assert "由 陈静 登记" in again.output and "chen" not in again.output  # the name, as the web shows it
    assert len(audit(cli)) == 1


def test_excuse_is_refused_for_someone_confirmed_a_non_admin_and_a_missing_reason(cli: Cli) -> None:  # noqa: F811
    confirmed = cli.run(excuse, str(cli.study), "wang", "--by", "chen", "--kind", "出差", "--reason", "学习")
    assert confirmed.exit_code == 1 and "已经确认，无需登记免于确认" in confirmed.output
    not_admin = cli.run(excuse, str(cli.study), "liu", "--by", "wang", "--kind", "出差", "--reason", "学习")
    assert not_admin.exit_code == 1 and "不是管理员" in not_admin.output
    blank = cli.run(excuse, str(cli.study), "liu", "--by", "chen", "--kind", "出差", "--reason", "  ")
    assert blank.exit_code == 1 and "请写明原因" in blank.output
    missing = cli.run(excuse, str(cli.study), "liu", "--by", "chen", "--kind", "出差")
    assert missing.exit_code == 1 and "请用 --reason 写明原因" in missing.output and "缺少选项" not in missing.output
    assert audit(cli) == []


def test_excuse_refuses_an_unknown_kind_and_a_reason_with_nothing_after_the_kind(cli: Cli) -> None:  # noqa: F811
    unknown = cli.run(excuse, str(cli.study), "liu", "--by", "chen", "--kind", "旅游", "--reason", "去三亚")
    assert unknown.exit_code == 1 and "类别“旅游”不在可选范围内" in unknown.output and "因公外出" in unknown.output
    no_kind = cli.run(excuse, str(cli.study), "liu", "--by", "chen", "--reason", "去三亚")
    assert no_kind.exit_code == 1 and "请写明类别" in no_kind.output
    vacation = cli.run(excuse, str(cli.study), "liu", "--by", "chen", "--reason", "休假：去三亚")
    assert vacation.exit_code == 1 and "类别“休假”不在可选范围内" in vacation.output
    assert "请假、出差、因公外出、病假、其他" in vacation.output
    empty = cli.run(excuse, str(cli.study), "liu", "--by", "chen", "--reason", "出差：   ")
    assert empty.exit_code == 1 and "请写明原因" in empty.output
    assert audit(cli) == []
    done = cli.run(excuse, str(cli.study), "liu", "--by", "chen", "--kind", "因公外出", "--reason", "赴省里开会")
    assert done.exit_code == 0, done.output
    assert audit(cli) == [("chen", "excuse", "liu", "因公外出：赴省里开会")]


def test_the_web_admins_may_act_from_the_command_line_and_an_unknown_one_is_told_who_may(cli: Cli) -> None:  # noqa: F811
    cli.env["REMINDBOT_ADMINS"] = f"陈明:{hash_password('chen-ming-admin-pass')}"
    cli.env["REMINDBOT_ADMIN_USER"], cli.env["REMINDBOT_ADMIN_PASSWORD"] = "gongwei", "gongwei-admin-password"
    done = cli.run(excuse, str(cli.study), "liu", "--by", "陈明", "--kind", "出差", "--reason", "赴省委党校学习")
    assert done.exit_code == 0, done.output
    assert "登记人 陈明" in done.output
    confirmed = cli.run(confirm, str(cli.study), "wu", "--by", "gongwei", "--note", "电话告知")
    assert confirmed.exit_code == 0 and "代录人 gongwei" in confirmed.output
    assert audit(cli) == [("陈明", "excuse", "liu", "出差：赴省委党校学习"),  # the name, as from the web
                          ("gongwei", "confirm", "wu", "电话告知")]
    unknown = cli.run(excuse, str(cli.study), "wu", "--by", "王五", "--kind", "出差", "--reason", "学习")
    assert unknown.exit_code == 1 and "“王五” 不是管理员" in unknown.output
    assert "陈明（管理后台）" in unknown.output and "gongwei（管理后台）" in unknown.output
    assert "陈静（chen）" in unknown.output
    assert "chen-ming-admin-pass" not in unknown.output and "$argon2" not in unknown.output


def _dead(cli: Cli, channel: str) -> int:  # noqa: F811
    with sqlite3.connect(db_path(cli)) as db:
        [(outbox_id,)] = db.execute("select id from outbox where channel_id = ? limit 1", (channel,)).fetchall()
        db.execute("update outbox set status = 'dead', attempts = 8 where id = ?", (outbox_id,))
    return outbox_id


def test_resend_requeues_a_dead_message_once_its_channel_has_a_webhook(cli: Cli) -> None:  # noqa: F811
    outbox_id = _dead(cli, "group")
    refused = cli.run(resend, str(outbox_id), "--by", "chen")
    assert refused.exit_code == 1 and "没有配置 webhook：请先修正频道配置" in refused.output
    # Judged by this command's environment, and said so (trial 9): the service's may differ.
    assert "按本命令的环境，频道 党务工作群 没有配置 webhook" in refused.output
    assert "运行本命令也须设置该变量" in refused.output
    world = cli.tmp / "schedules" / "world.yaml"  # the admin fixes the channel
    world.write_text(world.read_text(encoding="utf-8").replace(
        "{id: group, name: 党务工作群, platform: generic}",
        '{id: group, name: 党务工作群, platform: generic, webhook: "https://hooks.example.gov.cn/party"}'),
        encoding="utf-8")
    done = cli.run(resend, str(outbox_id), "--by", "陈静", "--reason", "已补上 webhook")
    assert done.exit_code == 0, done.output
    assert "已重新排队" in done.output and "正在运行的服务会尽快发送" in done.output
    with sqlite3.connect(db_path(cli)) as db:
        assert db.execute("select status, attempts from outbox where id = ?", (outbox_id,)).fetchone() == ("pending", 0)
    assert audit(cli) == [("chen", "resend", None, "已补上 webhook")]
    twice = cli.run(resend, str(outbox_id), "--by", "chen")
    assert twice.exit_code == 1 and "只有发送失败或只记录（未配置 webhook）的消息可以重新发送" in twice.output


def _recorded_only(cli: Cli, channel: str) -> int:  # noqa: F811
    """A real occurrence's message the dispatcher recorded without sending: its channel has no webhook."""
    with sqlite3.connect(db_path(cli)) as db:
        [(outbox_id,)] = db.execute("select id from outbox where channel_id = ? limit 1", (channel,)).fetchall()
        db.execute("update outbox set status = 'dry_run' where id = ?", (outbox_id,))
    return outbox_id


def test_resend_requeues_a_real_message_only_recorded_for_want_of_a_webhook_and_says_so(cli: Cli) -> None:  # noqa: F811
    outbox_id = _recorded_only(cli, "group")
    done = cli.run(resend, str(outbox_id), "--by", "chen", "--reason", "稍后补 webhook")
    assert done.exit_code == 0, done.output
    assert "已重新排队" in done.output and "演练" not in done.output
    # Trial 9: it said 仍只记录、不会真正发送, judged by the command's environment, and the running
    # service (the webhook in its environment) then sent it. What this command cannot know is not claimed.
    assert ("按本命令的环境，频道 党务工作群 未配置 webhook；若运行中的服务配置了 webhook，将由服务发送，否则仍只记录"
            in done.output), done.output
    assert "不会真正发送" not in done.output and "会尽快发送" not in done.output
    with sqlite3.connect(db_path(cli)) as db:
        assert db.execute("select status from outbox where id = ?", (outbox_id,)).fetchone() == ("pending",)
    assert audit(cli) == [("chen", "resend", None, "稍后补 webhook")]


async def _open_on_loopback(cli: Cli, path: str, headers: dict[str, str] | None = None) -> str:  # noqa: F811
    """The page at ``path`` as the service (same database and key) serves it over loopback."""
    from bot.settings import Settings

    env = {k.removeprefix("REMINDBOT_").lower(): v for k, v in cli.env.items()}
    async with open_runtime(Settings(**env)) as runtime, serve(make_app(runtime)) as base:
        async with aiohttp.ClientSession() as http, http.get(base + path, headers=headers) as response:
            assert response.status == 200, await response.text()
            return await response.text()


def test_a_confirmation_recorded_from_the_command_line_is_in_the_boards_audit(cli: Cli) -> None:  # noqa: F811
    cli.env["REMINDBOT_ADMIN_USER"], cli.env["REMINDBOT_ADMIN_PASSWORD"] = "gongwei", "gongwei-admin-password"
    done = cli.run(confirm, str(cli.study), "吴敏", "--by", "陈静", "--note", "电话确认，参会 23 人")
    assert done.exit_code == 0, done.output
    assert audit(cli) == [("chen", "confirm", "wu", "电话确认，参会 23 人")]
    login = {"Authorization": aiohttp.encode_basic_auth("gongwei", "gongwei-admin-password")}
    board = asyncio.run(_open_on_loopback(cli, f"/admin/occurrences/{cli.study}", login))
    actions = board.split('<h2 id="actions">操作记录</h2>', 1)[1]
    assert "还没有管理员操作" not in actions
    row = actions.split("<tr>")[2]  # the first row after the header
    assert "陈静" in row and "代为登记" in row and "吴敏" in row and "电话确认，参会 23 人" in row


def test_leader_link_prints_a_leaders_own_page_and_refuses_someone_who_leads_nothing(cli: Cli) -> None:  # noqa: F811
    cli.env["REMINDBOT_BASE_URL"] = "https://dj.example.gov.cn"
    shown = cli.run(leader_link, "赵明")
    assert shown.exit_code == 0, shown.output
    url = next(word for word in shown.output.split() if "/l/" in word)
    assert url.startswith("https://dj.example.gov.cn/l/")
    page = asyncio.run(_open_on_loopback(cli, url.removeprefix("https://dj.example.gov.cn")))
    assert "赵明同志分管单位" in page and "发改委第一党支部" in page and "教育局" not in page
    assert cli.run(leader_link, "sun").exit_code == 0  # by id too
    secretary = cli.run(leader_link, "王芳")
    assert secretary.exit_code == 1 and "王芳 没有分管的单位" in secretary.output
    assert "赵明、孙丽" in secretary.output and "/l/" not in secretary.output
    nobody = cli.run(leader_link, "王五")
    assert nobody.exit_code == 1 and "找不到人员 “王五”" in nobody.output


def hash_password_on_a_terminal(answers: list[str], *args: str) -> tuple[int, str]:
    """`remindbot admin hash-password` with a pseudo-terminal for its input, answering each prompt.

    A new session has no /dev/tty, so getpass hides the echo on this terminal (its stdin).
    """
    master, slave = os.openpty()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, "-m", "bot", "admin", "hash-password", *args], cwd=ROOT,
                               env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    seen, pending, answered = b"", list(answers), 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the command ended and closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            prompts = seen.count("密码: ".encode()) + seen.count("再输入一次: ".encode())
            if pending and prompts > answered:  # typed only once asked: getpass flushes earlier input
                os.write(master, pending.pop(0).encode() + b"\n")
                answered += 1
        return process.wait(timeout=30), seen.decode()
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()


def test_hash_password_on_a_terminal_checks_the_length_before_asking_again() -> None:
    code, out = hash_password_on_a_terminal(["short"])
    assert code != 0 and "至少需要 12 个字符" in out
    assert "再输入一次" not in out and "short" not in out  # not echoed
    code, out = hash_password_on_a_terminal(["a-long-enough-password", "another-password-x"])
    assert code != 0 and "两次输入的密码不一致" in out
    code, out = hash_password_on_a_terminal(["a-long-enough-password", "a-long-enough-password"])
    assert code == 0 and "$argon2" in out and "a-long-enough-password" not in out
    assert "Warning" not in out


def test_hash_password_from_a_pipe_reads_one_line_without_getpass_warnings() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "bot", "admin", "hash-password", "--name", "陈明"], cwd=ROOT,
                          env=env, input="a-long-enough-password\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no GetPassWarning, no "Password input may be echoed", no prompts
    assert Accounts(hashes=parse_admins(done.stdout.strip())).check("陈明", "a-long-enough-password")
    empty = subprocess.run([sys.executable, "-m", "bot", "admin", "hash-password"], cwd=ROOT, env=env,
                           input="", capture_output=True, text=True, timeout=60)
    assert empty.returncode == 1 and "标准输入中没有读到密码" in empty.stderr


def test_hash_password_gives_a_line_for_REMINDBOT_ADMINS_that_logs_in() -> None:
    result = CliRunner().invoke(admin, ["hash-password", "--name", "陈明"], input="a-long-enough-password\n")
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert "a-long-enough-password" not in line
    accounts = Accounts(hashes=parse_admins(line))
    assert accounts.check("陈明", "a-long-enough-password") and accounts.check("陈明", "a-long-enough-password")
    assert not accounts.check("陈明", "wrong-password-here") and not accounts.check("李华", "a-long-enough-password")
    short = CliRunner().invoke(admin, ["hash-password"], input="short\nshort\n")
    assert short.exit_code != 0 and "至少需要 12 个字符" in short.output


def test_the_commands_are_part_of_remindbot() -> None:
    names = set(main.commands)
    assert {"excuse", "resend", "admin", "leader-link"} <= names
