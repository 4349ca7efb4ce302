"""Default folders of an installed package, and database URLs written the common ways."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from storage.db import Database

ROOT = Path(__file__).resolve().parent.parent

SHOW = ("from bot.settings import Settings; import json; s = Settings(); "
        "print(json.dumps({'schedules': str(s.schedules_dir), 'templates': str(s.templates_dir), "
        "'var': str(s.var_dir), 'db': s.database_url}))")


def test_an_installed_package_keeps_its_data_in_the_app_folder_not_in_site_packages(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    for package in ("bot", "storage"):
        shutil.copytree(ROOT / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    app = tmp_path / "app"
    app.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDBOT_")}
    env["PYTHONPATH"] = str(site)
    out = subprocess.run([sys.executable, "-c", SHOW], cwd=app, env=env, capture_output=True, text=True,
                         check=True).stdout
    shown = json.loads(out)
    assert shown["schedules"] == str(app / "schedules")
    assert shown["templates"] == str(app / "message_templates")
    assert shown["var"] == str(app / "var")
    assert shown["db"] == f"sqlite+aiosqlite:///{app / 'var' / 'remindbot.db'}"


def test_a_source_checkout_keeps_its_own_folders_wherever_it_is_run_from(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDBOT_")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", SHOW], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out)["schedules"] == str(ROOT / "schedules")


@pytest.mark.parametrize("written", ["postgres://u@127.0.0.1:5432/test", "postgresql://u@127.0.0.1:5432/test"])
def test_heroku_style_postgres_urls_are_accepted_with_the_async_driver(written: str) -> None:
    db = Database(written)
    assert db.engine.dialect.name == "postgresql"
    assert db.engine.dialect.driver == "asyncpg"
    assert db.url.startswith("postgresql+asyncpg://")


async def test_a_plain_sqlite_url_is_accepted_and_works(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'plain.db'}")
    assert db.engine.dialect.driver == "aiosqlite"
    await db.start()
    await db.stop()
    assert (tmp_path / "plain.db").exists()
