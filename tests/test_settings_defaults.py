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


READ = ("import json, sys\n"
        "from pydantic import ValidationError\n"
        "from bot.settings import Settings\n"
        "try:\n"
        "    s = Settings(**json.loads(sys.argv[1]))\n"
        "    shown = {'port': s.port, 'dry_run': s.dry_run, 'ttl': s.link_ttl_days, 'hours': s.work_hours,\n"
        "             'key': s.secret_key.get_secret_value(), 'base': s.base_url}\n"
        "except ValidationError as exc:\n"
        "    shown = {'error': [(list(e['loc']), e['input']) for e in exc.errors()]}\n"
        "shown['imported'] = 'pydantic_settings' in sys.modules\n"
        "print(json.dumps(shown))\n")


def _read(env: dict[str, str], **given: object) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.lower().startswith("remindbot_") and k.lower() != "port"}
    out = subprocess.run([sys.executable, "-c", READ, json.dumps(given)], env=clean | env | {"PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def test_settings_are_read_from_the_environment_as_pydantic_settings_read_them() -> None:
    """Names in any case, PORT for the port (never REMINDBOT_PORT), values converted, keyword
    arguments before the environment, a bad value named by its variable; without importing
    pydantic-settings (a tenth of a command's start)."""
    shown = _read({"PORT": "8123", "REMINDBOT_PORT": "9", "remindbot_dry_run": "yes", "REMINDBOT_LINK_TTL_DAYS": "3",
                   "REMINDBOT_SECRET_KEY": "k", "REMINDBOT_BASE_URL": "https://x.example/",
                   "REMINDBOT_NOT_A_SETTING": "1"})
    assert shown == {"port": 8123, "dry_run": True, "ttl": 3, "hours": "09:00-12:00,14:00-18:00", "key": "k",
                     "base": "https://x.example", "imported": False}
    given = _read({"PORT": "8123", "REMINDBOT_LINK_TTL_DAYS": "3"}, port=7, link_ttl_days=5)
    assert (given["port"], given["ttl"]) == (7, 5)
    assert _read({"PORT": "8123"}, PORT=7)["port"] == 7
    assert _read({"PORT": "abc", "REMINDBOT_VIEW_TTL_DAYS": "0"})["error"] == [[["PORT"], "abc"],
                                                                              [["view_ttl_days"], "0"]]
