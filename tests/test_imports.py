"""The house: no two of the project's modules import each other, directly or round a loop.

The graph is read from the source (every ``import`` anywhere in a module, including those inside
functions, which only hide a loop; ``if TYPE_CHECKING:`` blocks excluded, since they never run), so
a loop fails here whatever order modules happen to be imported in, without importing anything.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "storage")


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "versions" in path.parts:  # migrations are loaded by Alembic, not imported
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    return {id(inner) for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for inner in ast.walk(node)}


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in known:
                    found.add(target)
                elif base in known:
                    found.add(base)
    found.discard(name)
    return found


def loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                part.append(top)
                if top == node:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_two_modules_import_each_other_round_a_loop() -> None:
    known = modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert loops(graph) == []


def test_every_module_imports() -> None:
    names = [name for name in modules() if name not in ("bot.__main__", "storage.migrations.env")]
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, cwd=ROOT,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def _env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "REMINDBOT_VAR_DIR": str(tmp_path / "var"),
            "REMINDBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"}


def test_status_and_report_import_only_what_they_use(tmp_path: Path) -> None:
    """On SQLite with the snapshot warm: no YAML parser, no metrics, no PostgreSQL dialect, no outbox,
    no wcwidth (plain Chinese is measured without it), no templates, no web stack, no Alembic."""
    env = _env(tmp_path)
    # The snapshot built, the database created (Alembic: only then; a reading command makes none), read once.
    for argv in (["validate"], ["db", "upgrade"], ["status"]):
        warm = subprocess.run([sys.executable, "-m", "bot", *argv], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        assert warm.returncode == 0, warm.stderr
    unused = ("yaml", "prometheus_client", "bot.metrics", "sqlalchemy.dialects.postgresql", "bot.delivery.outbox",
              "wcwidth", "jinja2", "aiohttp", "alembic")
    for argv in (["status"], ["report", "--period", "current_month"]):
        code = ("import sys\n"
                "from bot.cli import main\n"
                f"main({argv!r}, standalone_mode=False)\n"
                f"print(sorted(m for m in {unused!r} if m in sys.modules))\n")
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "[]", (argv, done.stdout)


def test_a_one_shot_command_runs_its_work_without_a_pass_of_the_collector(tmp_path: Path) -> None:
    """``report`` and ``status`` (a process that exits after one command) hold the collector paused
    from choosing the command to its end, as while the schedules load: their rows make no cycles
    worth a pass (a province's report: passes over 20,000 rows, ~0.1 s). Run in-process, the
    collector is as it was afterwards."""
    env = _env(tmp_path)
    for argv in (["validate"], ["db", "upgrade"], ["status"]):
        warm = subprocess.run([sys.executable, "-m", "bot", *argv], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        assert warm.returncode == 0, warm.stderr
    for argv in (["status"], ["report", "--period", "current_month"]):
        code = ("import gc\n"
                "from bot.cli import main\n"
                "passes = []\n"
                "gc.callbacks.append(lambda phase, info: passes.append(info) if phase == 'start' else None)\n"
                f"main({argv!r}, standalone_mode=False)\n"
                "print(len(passes), gc.isenabled(), gc.get_freeze_count())\n")
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "0 True 0", (argv, done.stdout)


def test_a_command_process_ends_at_once_with_its_output_and_exit_code_kept(tmp_path: Path) -> None:
    """``python -m bot report`` skips the interpreter's teardown (atexit handlers never run) yet
    writes all its output through a pipe; an error keeps its message and exit code; a non-daemon
    thread still running means the ordinary exit, which waits for it."""
    env = _env(tmp_path)
    script = ("import atexit, sys, threading\n"
              "atexit.register(print, 'torn down', file=sys.stderr)\n"
              "if sys.argv[1] == 'thread':\n"
              # Outlives the command however slow it is: it ends when the interpreter's exit begins.
              "    threading.Thread(target=threading.main_thread().join).start()\n"
              "sys.argv = ['remindbot', *sys.argv[2:]]\n"
              "from bot.cli import entry\n"
              "entry()\n")

    def run(*argv: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-c", script, *argv], cwd=ROOT, env=env, capture_output=True,
                              timeout=120)

    assert run("-", "db", "upgrade").returncode == 0  # report reads an existing database, never makes one
    csv = run("-", "report", "--period", "current_month", "--format", "csv")
    assert csv.returncode == 0 and b"torn down" not in csv.stderr, csv.stderr
    inline = subprocess.run([sys.executable, "-m", "bot", "report", "--period", "current_month", "--format", "csv"],
                            cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert csv.stdout == inline.stdout and csv.stdout.startswith("\ufeff".encode())  # all of it, BOM first
    missing = run("-", "status", "no-such-reminder")
    assert missing.returncode == 1 and b"torn down" not in missing.stderr
    assert "没有标识为 “no-such-reminder” 的提醒".encode() in missing.stderr
    waited = run("thread", "report", "--period", "current_month")
    assert waited.returncode == 0 and b"torn down" in waited.stderr
    assert waited.stdout == run("-", "report", "--period", "current_month").stdout != b""


def test_a_first_fire_loads_neither_alembic_nor_the_metrics_and_its_record_only_counts_wait_for_them(
        tmp_path: Path) -> None:
    """A new install's first ``fire`` (channels without webhooks: recorded, not sent) makes the database
    without Alembic and counts its messages without prometheus_client; a process that loads the
    metrics afterwards (the service) still counts them."""
    code = ("import sys\n"
            "from bot.cli import main\n"
            "main(['fire', 'study-day', '--date', '2026-12-04'], standalone_mode=False)\n"
            "print(sorted(m for m in ('alembic', 'mako', 'prometheus_client', 'bot.metrics') if m in sys.modules))\n"
            "from bot.metrics import MESSAGES\n"
            "print(sum(s.value for m in MESSAGES.collect() for s in m.samples\n"
            "          if s.name.endswith('_total') and s.labels['outcome'] == 'record_only'))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    *said, loaded, counted = done.stdout.strip().splitlines()
    assert loaded == "[]", done.stdout
    queued = next(line for line in said if "新排队" in line)
    assert f"新排队 {int(float(counted))} 条消息" in queued and float(counted) > 0, done.stdout


def test_fire_imports_what_it_runs_and_nothing_of_the_other_commands(tmp_path: Path) -> None:
    """``fire`` (channels without webhooks, as at a province's scale in bench/scale.py) imports no web
    stack or HTTP client, no timer or reconciliation pass, no follow-ups, figures or chart, no
    YAML parser or loader (the snapshot answers), no PostgreSQL dialect on SQLite, and no
    holiday rules or did-you-mean for a reminder that exists: each of them was a fixed cost of
    every fire at some point, and the goal is the bare script's time (issue 11)."""
    env = _env(tmp_path)
    warm = subprocess.run([sys.executable, "-m", "bot", "validate"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert warm.returncode == 0, warm.stderr
    unused = ("aiohttp", "bot.web", "bot.service", "apscheduler", "bot.scheduling.triggers",
              "bot.scheduling.scheduler", "bot.scheduling.reconcile", "bot.delivery.dispatch",
              "bot.confirming.followup", "bot.confirming.inbound", "bot.reporting.reports", "bot.reporting.chart",
              "yaml", "bot.config.loader", "bot.config.sheets", "openpyxl", "sqlalchemy.dialects.postgresql",
              "asyncpg", "holidays", "difflib", "alembic", "prometheus_client")
    code = ("import sys\n"
            "from bot.cli import main\n"
            "main(['fire', 'study-day', '--date', '2026-12-04'], standalone_mode=False)\n"
            f"print(sorted(m for m in {unused!r} if m in sys.modules))\n"
            # pydantic's plugin lookup (every installed package's entry points read) never ran.
            "from pydantic.plugin import _loader\n"
            "print(_loader._plugins)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "新排队" in done.stdout
    assert done.stdout.strip().splitlines()[-2:] == ["[]", "None"], done.stdout


def test_report_and_status_on_a_sqlite_file_read_it_without_sqlalchemy(tmp_path: Path) -> None:
    """``report`` and ``status`` on a SQLite file at the newest schema read it through ``sqlite3``
    (storage/reads.py): SQLAlchemy, SQLModel and the table models are never imported (half of a
    province's report was importing them), and the file is left as it was. A file not there yet is
    said and not made (trial 15); ``fire`` makes it."""
    env = _env(tmp_path)
    first = subprocess.run([sys.executable, "-m", "bot", "report", "--period", "current_month"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 1 and "不存在" in first.stderr, first.stderr
    assert not (tmp_path / "bot.db").exists()
    fired = subprocess.run([sys.executable, "-m", "bot", "fire", "study-day", "--date", "2026-12-04"], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=120)
    assert fired.returncode == 0, fired.stderr
    before = (tmp_path / "bot.db").stat().st_mtime_ns
    unused = ("sqlalchemy", "sqlmodel", "storage.models", "storage.db", "aiosqlite")
    for argv in (["report", "--period", "current_month"], ["report", "--period", "2026-12", "--format", "csv"],
                 ["status"], ["status", "study-day", "--date", "2026-12-04", "--unit", "fgw"]):
        code = ("import sys\n"
                "from bot.cli import main\n"
                f"main({argv!r}, standalone_mode=False)\n"
                f"print(sorted(m for m in {unused!r} if m in sys.modules))\n")
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        *said, loaded = done.stdout.strip().splitlines()
        assert loaded == "[]" and ("每月学习日" in "".join(said) or argv[0] == "report"), (argv, done.stdout)
    assert (tmp_path / "bot.db").stat().st_mtime_ns == before


def test_fire_on_a_sqlite_file_writes_it_without_sqlalchemy(tmp_path: Path) -> None:
    """``fire`` on a SQLite file, new (its tables made from storage/schema_sqlite.sql) or at the newest
    schema, writes through ``sqlite3`` (storage/writes.py): SQLAlchemy, SQLModel, the table models and
    aiosqlite are never imported (~0.5 s of a province's ~1.2 s fire was importing them). Its messages
    are there for the next command, and fired again nothing is queued twice."""
    env = _env(tmp_path)
    unused = ("sqlalchemy", "sqlmodel", "storage.models", "storage.db", "aiosqlite", "alembic")
    code = ("import sys\n"
            "from bot.cli import main\n"
            "main(['fire', 'study-day', '--date', '2026-12-04'], standalone_mode=False)\n"
            f"print(sorted(m for m in {unused!r} if m in sys.modules))\n")
    outputs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
        outputs.append(done.stdout)
    assert "新排队" in outputs[0] and "新排队 0 条消息" not in outputs[0]
    assert "新排队 0 条消息" in outputs[1] and "此前已经排队或发送过" in outputs[1]
    assert (tmp_path / "bot.db").stat().st_mode & 0o777 == 0o600
    status = subprocess.run([sys.executable, "-m", "bot", "status", "study-day"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
