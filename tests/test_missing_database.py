"""Trial 15: a command that only reads or records, pointed at a SQLite file that does not exist (a
mistyped REMINDBOT_DATABASE_URL, or run before the first ``serve``), says which file is missing and how
to make it, exits 1 and leaves nothing behind; the commands that make the database say when they do."""

from __future__ import annotations

import os
import socket
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.test_fire import run_cli

ROOT = Path(__file__).resolve().parent.parent


def env_for(tmp_path: Path, database: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDBOT_")}
    env.update({
        "REMINDBOT_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "REMINDBOT_VAR_DIR": str(tmp_path / "var"),
        "REMINDBOT_SECRET_KEY": "test-signing-key",
        "REMINDBOT_ADMIN_USER": "admin",
        "REMINDBOT_ADMIN_PASSWORD": "a-long-password-of-ours",
    })
    return env


remindbot = run_cli  # the CLI in a process of its own: (exit code, stdout, stderr)


READING = [
    ("db", "check"),
    ("status",),
    ("report", "--period", "2026-12"),
    ("confirm", "1", "王芳", "--by", "admin"),
    ("link", "1", "王芳"),
    ("leader-link", "李国强"),
    ("excuse", "1", "王芳", "--by", "admin", "--reason", "出差"),
    ("resend", "1", "--by", "admin"),
]


@pytest.mark.parametrize("args", READING, ids=[" ".join(a[:2]) for a in READING])
async def test_a_reading_command_names_the_missing_file_and_makes_none(tmp_path: Path, args: tuple[str, ...]) -> None:
    database = tmp_path / "wrong-folder" / "remindbot.db"
    code, out, err = await remindbot(env_for(tmp_path, database), *args)
    assert code == 1, out + err
    assert f"数据库文件 “{database}” 不存在" in err, err
    assert "remindbot serve" in err and "remindbot db upgrade" in err
    assert not database.exists() and not database.parent.exists()  # not even its folder


async def test_db_upgrade_makes_the_file_and_says_so_in_one_line(tmp_path: Path) -> None:
    database = tmp_path / "remindbot.db"
    env = env_for(tmp_path, database)
    code, out, err = await remindbot(env, "db", "upgrade")
    assert code == 0, err
    assert [line for line in err.splitlines() if "新建" in line] == [f"已新建数据库文件 “{database}”（此前不存在）。"]
    assert database.is_file()
    # Now it exists: the reading commands read it, and nothing says it was made again.
    code, out, err = await remindbot(env, "db", "check")
    assert code == 0 and "新建" not in out + err, out + err
    code, out, err = await remindbot(env, "status")
    assert code == 0 and "不存在" not in out + err and "新建" not in out + err, out + err


async def test_fire_still_makes_the_database_and_names_the_new_file(tmp_path: Path) -> None:
    database = tmp_path / "new" / "remindbot.db"
    code, out, err = await remindbot(env_for(tmp_path, database), "fire", "study-day", "--date", "2026-12-04",
                                     "--dry-run")
    assert code == 0, err
    assert f"已新建数据库文件 “{database}”（此前不存在）。" in out + err  # the log: stdout or stderr
    assert database.is_file()


async def test_leader_link_with_a_wrong_name_says_the_name_first_and_makes_no_file(tmp_path: Path) -> None:
    database = tmp_path / "remindbot.db"
    code, _, err = await remindbot(env_for(tmp_path, database), "leader-link", "zhao")
    assert code == 1 and "找不到人员 “zhao”，是不是 “zhao_ming”？" in err and "不存在" not in err, err
    assert not database.exists()


async def test_a_preview_of_a_bulletin_with_no_database_makes_none_and_says_its_figures_are_left_out(
        tmp_path: Path) -> None:
    # A preview writes nothing: the 通报's figures would need the database, which it does not make.
    database = tmp_path / "nowhere" / "remindbot.db"
    code, out, err = await remindbot(env_for(tmp_path, database), "preview", "monthly-bulletin")
    assert code == 0, err
    assert "党员参加组织生活情况通报" in out
    assert f"数据库文件 “{database}” 不存在，以上消息未含统计数字（预览不新建数据库）。" in out
    assert not database.exists() and not database.parent.exists()


# db check (first in READING) says in its own words that an empty file has no tables yet
@pytest.mark.parametrize("args", READING[1:], ids=[" ".join(a[:2]) for a in READING[1:]])
async def test_a_reading_command_refuses_an_empty_file_and_makes_no_tables_in_it(tmp_path: Path,
                                                                                   args: tuple[str, ...]) -> None:
    # `: > remindbot.db`: an existing file, but no database of ours; status used to fill it (200 KB).
    database = tmp_path / "remindbot.db"
    database.touch()
    code, out, err = await remindbot(env_for(tmp_path, database), *args)
    assert code == 1, out + err
    assert f"数据库文件 “{database}” 不是 remindbot 的数据库（没有任何表）" in err and "未执行" in err, err
    assert "remindbot serve" in err and "remindbot db upgrade" in err
    assert database.read_bytes() == b""  # not even SQLite's header (WAL mode) written
    assert not any(database.with_name(database.name + end).exists() for end in ("-wal", "-shm", "-journal"))


async def test_a_reading_command_refuses_a_sqlite_file_of_another_program(tmp_path: Path) -> None:
    database = tmp_path / "other.db"
    with closing(sqlite3.connect(database)) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    code, _, err = await remindbot(env_for(tmp_path, database), "status")
    assert code == 1 and "不是 remindbot 的数据库（其中没有 remindbot 的表）" in err, err
    with closing(sqlite3.connect(database)) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["notes"]


async def test_a_file_that_is_not_sqlite_is_named_in_chinese_and_the_refusal_says_what_was_given_up(
        tmp_path: Path) -> None:
    database = tmp_path / "notes.txt"
    database.write_text("会议记录：不是数据库\n", encoding="utf-8")
    env = env_for(tmp_path, database)
    code, out, err = await remindbot(env, "status")
    assert code == 1, out + err
    assert f"文件 “{database}” 不是 SQLite 数据库" in err and "未执行。" in err, err
    assert "file is not a database" not in err and "放弃启动" not in err
    with socket.socket() as probe:  # a free port: serve takes 1–65535 (fix16a), and refuses before it serves
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, out, err = await remindbot(env, "serve", "--port", str(port))
    assert code == 1, out + err
    assert f"文件 “{database}” 不是 SQLite 数据库" in out + err and "放弃启动。" in out + err, out + err
    assert database.read_text(encoding="utf-8") == "会议记录：不是数据库\n"


async def test_serve_and_db_upgrade_still_make_the_tables_in_an_empty_file(tmp_path: Path) -> None:
    database = tmp_path / "remindbot.db"
    database.touch()
    env = env_for(tmp_path, database)
    code, out, err = await remindbot(env, "db", "upgrade")
    assert code == 0 and "数据库结构已升级：空库" in out, out + err
    code, out, err = await remindbot(env, "status")
    assert code == 0 and "未执行" not in out + err, out + err


async def test_a_reading_command_still_upgrades_a_database_of_an_older_schema(tmp_path: Path) -> None:
    # Guard (passes on main too): the refusal is for files without remindbot's tables, not old ones.
    from test_migrations import make_legacy_database

    from storage.db import Database

    database = tmp_path / "remindbot.db"
    old = Database(f"sqlite+aiosqlite:///{database}", say=False)
    try:
        await make_legacy_database(old)
    finally:
        await old.stop()
    env = env_for(tmp_path, database)
    code, out, err = await remindbot(env, "status")
    assert code == 0 and "未执行" not in out + err, out + err
    code, out, err = await remindbot(env, "db", "check")
    assert code == 0 and "最新" in out, out + err


async def test_db_check_on_an_empty_file_says_it_has_no_tables_and_leaves_it_empty(tmp_path: Path) -> None:
    # fix18a: its connection set WAL mode, which wrote SQLite's 4 KB header into the empty file.
    database = tmp_path / "remindbot.db"
    database.touch()
    code, out, err = await remindbot(env_for(tmp_path, database), "db", "check")
    assert code == 1 and "数据库中还没有 remindbot 的表" in err, out + err
    assert database.read_bytes() == b""
    assert not any(database.with_name(database.name + end).exists() for end in ("-wal", "-shm", "-journal"))


async def test_db_check_on_a_sqlite_file_of_another_program_leaves_it_byte_for_byte(tmp_path: Path) -> None:
    database = tmp_path / "other.db"
    with closing(sqlite3.connect(database)) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    before = database.read_bytes()
    code, out, err = await remindbot(env_for(tmp_path, database), "db", "check")
    assert code == 1 and "还没有 remindbot 的表" in err, out + err
    assert database.read_bytes() == before  # its journal mode not switched to WAL
