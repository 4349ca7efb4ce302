"""Service settings, read from the environment (the one place they are documented).

Every setting has a default that suits the embedded setup: a SQLite file under ``var/``,
the ``schedules/`` and ``message_templates/`` folders, and dry-run delivery for channels without a
webhook. Those folders are the source checkout's when running from one, else the current working
directory's (a plain ``pip install .`` run from the app folder, as the Procfile does).
"""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from bot.config.limits import (
    DEFAULT_ALIAS_NODES,
    DEFAULT_ENTRIES,
    DEFAULT_FILE_BYTES,
    DEFAULT_SHEET_BYTES,
    DEFAULT_SHEET_ROWS,
)
from bot.sentences import sentence

ROOT = Path(__file__).resolve().parent.parent
MIN_ADMIN_PASSWORD = 12  # characters
ALL_ADDRESSES = frozenset({"0.0.0.0", "::", "", "*"})
ENV_PREFIX = "REMINDBOT_"
DAY_SECONDS = 86_400
MAX_TTL_DAYS = 3_650  # a link's lifetime: ten years at most (a larger one leaves Python's dates)
# A duration setting (seconds): more than 0, at most a day, a finite number ("inf", "nan" are not)
SECONDS: dict[str, Any] = {"gt": 0, "le": DAY_SECONDS, "allow_inf_nan": False}
SECONDS_OR_NONE: dict[str, Any] = {"ge": 0, "le": DAY_SECONDS, "allow_inf_nan": False}  # 0: no wait


def app_root() -> Path:
    """Where ``schedules/``, ``message_templates/`` and ``var/`` are by default.

    The source checkout when the code runs from one (``pyproject.toml`` beside the ``bot`` package),
    else the current working directory: an installed package lives in site-packages, which is never
    the app's folder.
    """
    if (ROOT / "pyproject.toml").is_file() and (ROOT / "bot").is_dir():
        return ROOT
    return Path.cwd()


class Settings(BaseModel):
    """Environment settings. Each field is read from ``REMINDBOT_<NAME>`` (``port`` from ``PORT``).

    Read as pydantic-settings read them (it was the base class): a variable's name in any case, the
    value as written (pydantic converts it: ``8080``, ``true``/``yes``/``1``…), keyword arguments
    before the environment, defaults validated too, unknown names ignored. Importing that package
    (its sources for .env files, secrets folders, cloud vaults and argparse) cost every command
    about 35 ms of CPU at start, a tenth of a ``preview``, for reading a few variables.
    """

    model_config = ConfigDict(extra="ignore", validate_default=True, populate_by_name=True)

    def __init__(self, **values: Any) -> None:
        super().__init__(**(from_environment(type(self), values) | values))

    database_url: str = Field(
        default="",
        description="SQLAlchemy URL. SQLite (sqlite+aiosqlite:///path) or PostgreSQL "
        "(postgresql+asyncpg://user@host/db). Default: var_dir/remindbot.db.",
    )
    database_schema: str = Field(
        default="", description="PostgreSQL only: keep every table in this schema (created if missing). "
        "Lets several services or test runs share one database.",
    )
    db_start_timeout_seconds: float = Field(
        default=60.0, **SECONDS_OR_NONE,
        description="At start, how long to keep retrying (with backoff) a PostgreSQL server that "
        "does not answer or refuses us, before exiting with code 1 (seconds).",
    )
    schedules_dir: Path = Field(default_factory=lambda: app_root() / "schedules", description="Admin YAML folder.")
    templates_dir: Path = Field(
        default_factory=lambda: app_root() / "message_templates", description="Jinja2 message templates folder."
    )
    base_url: str = Field(
        default="",
        description="Public base URL of the web app, used in confirmation links "
        "(default http://127.0.0.1:<port>).",
    )
    secret_key: SecretStr = Field(
        default=SecretStr(""),
        description="Key that signs confirmation links. When empty, one is generated and kept "
        "in var/secret_key so links survive a restart.",
    )
    port: int = Field(default=8080, ge=1, le=65535, validation_alias="PORT", description="HTTP port.")
    host: str = Field(
        default="127.0.0.1",
        description="HTTP bind address. Keep 127.0.0.1 behind a TLS reverse proxy; 0.0.0.0 listens on every "
        "address (Procfile platforms, containers).",
    )
    log_format: Literal["text", "json"] = Field(default="text", description="Log line format.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="Least severe log lines written (any case: info, INFO)."
    )
    dry_run: bool = Field(
        default=False, description="Record and log messages instead of sending them."
    )
    admin_user: str = Field(default="", description="Admin area user (basic auth).")
    admin_password: SecretStr = Field(
        default=SecretStr(""),
        description="Admin area password, at least 12 characters. The admin area is closed while either "
        "is empty.",
    )
    admins: SecretStr = Field(
        default=SecretStr(""),
        description="Several admins: name:argon2-hash pairs, separated by commas, semicolons or new lines "
        "(hashes from `remindbot admin hash-password`). The name is recorded with every admin action.",
    )
    link_ttl_days: int = Field(default=14, ge=1, le=MAX_TTL_DAYS, description="Confirmation link lifetime in days.")
    view_ttl_days: int = Field(
        default=100, ge=1, le=MAX_TTL_DAYS,
        description="Lifetime in days of a leader's page link and a report's chart link.",
    )
    chart_fonts: str = Field(
        default="Noto Sans CJK SC,Noto Sans CJK JP,Source Han Sans SC,Source Han Sans CN,WenQuanYi Zen Hei,"
        "WenQuanYi Micro Hei,Noto Serif CJK SC",
        description="Font families (comma-separated, first found wins) for the report chart's Chinese labels.",
    )
    feed_ttl_days: int = Field(
        default=400, ge=1, le=MAX_TTL_DAYS, description="Lifetime in days of a calendar feed link (.ics)."
    )
    work_hours: str = Field(
        default="09:00-12:00,14:00-18:00",
        description="Working windows (local time) for follow-ups and escalations.",
    )
    rate_window_seconds: float = Field(
        default=60.0, **SECONDS, description="Length of a rate-limit window (tests shorten it)."
    )
    max_attempts: int = Field(default=8, ge=1, le=100, description="Delivery attempts before a message is dead.")
    retry_base_seconds: float = Field(
        default=15.0, **SECONDS, description="First retry delay; doubles each attempt (with jitter)."
    )
    retry_max_seconds: float = Field(default=1800.0, **SECONDS, description="Longest delay between retries.")
    dead_digest_seconds: float = Field(
        default=300.0, **SECONDS_OR_NONE,
        description="Dead messages of one robot within this window make one admin notice.",
    )
    send_concurrency: int = Field(default=64, ge=1, le=10_000, description="Messages in flight at once.")
    send_timeout_seconds: float = Field(default=10.0, **SECONDS, description="One request's time limit.")
    health_stale_seconds: float = Field(
        default=180.0, **SECONDS, description="/healthz answers 503 when the scheduler's or dispatcher's loop has not "
        "ticked for this long (seconds; they tick at least every 30 s).",
    )
    metrics_enabled: bool = Field(
        default=True, description="Serve /metrics (Prometheus text) without login: only counts, no names.",
    )
    lane_lease_seconds: float = Field(
        default=10.0, **SECONDS, description="Lease on a robot lane; renewed every heartbeat while the instance lives.",
    )
    heartbeat_seconds: float = Field(
        default=2.0, **SECONDS, description="How often an instance records that it is alive and renews its lanes.",
    )
    heartbeat_stale_seconds: float = Field(
        default=6.0, **SECONDS, description="An instance silent this long is gone: its lanes are taken over at once.",
    )
    claim_poll_seconds: float = Field(
        default=1.0, **SECONDS, description="How often an instance looks for robot lanes to take (besides wake-ups).",
    )
    claim_lanes_max: int = Field(
        default=1000, ge=1, le=1_000_000, description="Robot lanes one instance holds at most."
    )
    claim_rows_max: int = Field(
        default=10000, ge=1, le=1_000_000, description="Messages one instance holds in memory at most."
    )
    var_dir: Path = Field(default_factory=lambda: app_root() / "var", description="Folder for local state files.")
    max_schedule_file_bytes: int = Field(
        default=DEFAULT_FILE_BYTES, gt=0, description="Largest schedules YAML file (bytes); a larger one is an error."
    )
    max_yaml_alias_nodes: int = Field(
        default=DEFAULT_ALIAS_NODES, ge=0,
        description="YAML nodes one file may reach through aliases (*name), counted as if expanded.",
    )
    max_schedule_entries: int = Field(
        default=DEFAULT_ENTRIES, gt=0, description="Units, people, channels and reminders together, in all YAML files "
                    "(spreadsheet rows: max_sheet_rows)."
    )
    max_sheet_bytes: int = Field(
        default=DEFAULT_SHEET_BYTES, gt=0, description="Largest people/units spreadsheet (.csv, .xlsx) in bytes."
    )
    max_sheet_rows: int = Field(
        default=DEFAULT_SHEET_ROWS, gt=0, description="Data rows across all people/units spreadsheets."
    )
    schedules_cache: bool = Field(
        default=True, description="Keep the validated schedules under var/ (keyed by the files' hashes) for reuse.",
    )
    reload_timeout_seconds: float = Field(
        default=60.0, **SECONDS, description="A schedules reload still checking after this long is abandoned (seconds)."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_capitals(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("work_hours")
    @classmethod
    def _readable_hours(cls, value: str) -> str:
        # Checked here, not first by a follow-up hours after the start (its ValueError says what, in Chinese)
        from bot.scheduling.workhours import WorkHours

        WorkHours.parse(value)
        return value

    @model_validator(mode="after")
    def _default_base_url(self) -> Settings:
        if not self.base_url:
            self.base_url = f"http://127.0.0.1:{self.port}"
        self.base_url = self.base_url.rstrip("/")
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.var_dir.resolve() / 'remindbot.db'}"
        return self

    @property
    def schedules_dir_absolute(self) -> bool:
        """Whether the admin gave the schedules folder as an absolute path (REMINDBOT_SCHEDULES_DIR=/srv/x):
        then every command shows its files' paths absolute; the default folder's, relative to the current one."""
        return "schedules_dir" in self.model_fields_set and self.schedules_dir.is_absolute()

    @property
    def base_url_is_default(self) -> bool:
        """Whether ``base_url`` is the default for this ``port`` (REMINDBOT_BASE_URL left unset)."""
        return self.base_url == f"http://127.0.0.1:{self.port}"

    @cached_property
    def signing_key(self) -> str:
        """The secret key, or one generated once and kept in var/secret_key."""
        value = self.secret_key.get_secret_value()
        if value:
            return value
        path = self.var_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.var_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(32)
        path.write_text(value)
        path.chmod(0o600)
        return value

    @property
    def admin_enabled(self) -> bool:
        return bool(self.admin_user and self.admin_password.get_secret_value()) or bool(
            self.admins.get_secret_value().strip())

    def admin_password_problem(self) -> str | None:
        """Why the admin password may not be used (Chinese, for ``serve`` to refuse to start), or None."""
        length = len(self.admin_password.get_secret_value())
        if 0 < length < MIN_ADMIN_PASSWORD:
            return (f"错误：REMINDBOT_ADMIN_PASSWORD 太短（{length} 个字符）："
                    f"管理后台密码至少需要 {MIN_ADMIN_PASSWORD} 个字符。请设置更长的密码，或清空它以关闭管理后台。")
        from bot.admins import AdminConfigError, parse_admins

        try:
            parse_admins(self.admins.get_secret_value())
        except AdminConfigError as exc:
            # Worded as settings_problem words a bad variable; the message names the entry, never its hash.
            why = exc.why.lstrip()
            return "\n".join((f"错误：{variable_problem(_variable('admins'), '（不显示：可能含密钥）', why)}",
                              FIX_VARIABLES))
        return None

    def exposure_warning(self) -> str | None:
        """A Chinese warning when every address is listened on and links are not https, else None."""
        if self.host.strip("[] ") not in ALL_ADDRESSES or self.base_url.startswith("https://"):
            return None
        return (f"正在监听所有网络地址（{self.host or '0.0.0.0'}），但 REMINDBOT_BASE_URL 不是 https 地址："
                "确认链接和管理后台密码会以明文经过网络。建议 REMINDBOT_HOST=127.0.0.1，在前面放置 TLS 反向代理，"
                "并把 REMINDBOT_BASE_URL 设为 https:// 开头的公开地址。")


def from_environment(model: type[BaseModel], given: dict[str, Any]) -> dict[str, str]:
    """The fields' values found in the environment, keyed by the variable's name for an aliased field
    (``PORT``: a bad value is reported under that name) and by the field's name otherwise, leaving out
    fields ``given`` names (by either)."""
    environ = {name.lower(): value for name, value in os.environ.items()}
    found: dict[str, str] = {}
    for name, info in model.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else None
        if name in given or (alias is not None and alias in given):
            continue
        value = environ.get((alias or f"{ENV_PREFIX}{name}").lower())
        if value is not None:
            found[alias or name] = value
    return found


SECRET_FIELDS = frozenset({"secret_key", "admin_password", "admins", "database_url"})  # a URL may carry a password
_KINDS = {int: "整数", float: "数字"}
_UNITS = {"_seconds": "（单位：秒）", "_days": "（单位：天）", "_bytes": "（单位：字节）"}


def settings_problem(exc: ValidationError) -> str:
    """What is wrong with the environment, for an admin (Chinese): one line per bad variable, naming it,
    its value as written (never a secret's) and what it should be; then what to do.

    ``exc``: raised by :class:`Settings` (its ``title`` is ``"Settings"``)."""
    lines = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        field = _field_named(name)
        if field is None:  # the model's own check (none fails today): pydantic's words
            lines.append(f"环境设置有误：{error['msg']}。")
            continue
        variable = _variable(field)
        shown = "（不显示：可能含密钥）" if field in SECRET_FIELDS else f" “{_written(variable, error.get('input'))}” "
        if error["type"] == "value_error":  # a field's own check (work hours): its Chinese words say what
            why = str((error.get("ctx") or {}).get("error") or error["msg"]).rstrip("。")
        else:
            wanted = expected(field)
            # spaced before ASCII and before a quoted choice (“text”), as values are spaced elsewhere
            why = f"应为{' ' if wanted[0].isascii() or wanted[0] == '“' else ''}{wanted}"
        lines.append(variable_problem(variable, shown, why))
    lines.append(FIX_VARIABLES)
    return "\n".join(lines)


FIX_VARIABLES = "请改正或删除这些环境变量（删除时用默认值）后再运行。"


def variable_problem(variable: str, shown: str, why: str) -> str:
    """One bad variable's line: ``shown`` is its value quoted (`` “abc” ``) or a secret's stand-in
    (``（不显示：可能含密钥）``), ``why`` what it should be (ended with one 。 here)."""
    return sentence(f"环境变量 {variable} 的值{shown}不可用：{why}")


def _written(variable: str, value: object) -> str:
    """The variable's value as the environment has it (before a validator changed its case), shortened."""
    wanted = variable.lower()
    text = next((v for k, v in os.environ.items() if k.lower() == wanted), str(value))
    return text if len(text) <= 80 else f"{text[:80]}…"


def _field_named(name: str) -> str | None:
    """The field a validation error's location names (the field, or the variable of an aliased one)."""
    for field, info in Settings.model_fields.items():
        if name in (field, info.validation_alias):
            return field
    return None


def _variable(field: str) -> str:
    """The environment variable a field is read from: ``PORT``, ``REMINDBOT_LINK_TTL_DAYS``."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"{ENV_PREFIX}{field.upper()}"


def expected(field: str) -> str:
    """What a field's variable takes, in Chinese words: ``1–65535 之间的整数``, ``“text” 或 “json”``."""
    info = Settings.model_fields[field]
    kind = info.annotation
    if kind is bool:
        return "是或否：true 或 false（也可写 yes/no、1/0、on/off）"
    if get_origin(kind) is Literal:
        *others, last = (f"“{choice}”" for choice in get_args(kind))
        return f"{'、'.join(others)} 或 {last}" if others else last
    if kind is Path:
        return "路径"
    if kind not in _KINDS:
        return "文本"
    unit = next((words for suffix, words in _UNITS.items() if field.endswith(suffix)), "")
    return _span(_KINDS[kind], kind is int, info.metadata) + unit


def _span(words: str, whole: bool, bounds: list[Any]) -> str:
    """``words`` (整数, 数字) within a field's bounds (annotated_types Ge, Gt, Le): ``1–65535 之间的整数``,
    ``大于 0、不超过 86400 的数字``; ``whole``: an integer, whose ``gt=0`` is written ``不小于 1``."""
    low = high = None
    above = False  # low itself excluded (gt on a number that need not be whole: a duration)
    for bound in bounds:
        if isinstance(bound, annotated_types.Ge):
            low = bound.ge
        elif isinstance(bound, annotated_types.Gt):
            low, above = (bound.gt + 1, False) if whole else (bound.gt, True)
        elif isinstance(bound, annotated_types.Le):
            high = bound.le
    if low is not None and high is not None:
        return f"大于 {low}、不超过 {high} 的{words}" if above else f"{low}–{high} 之间的{words}"
    if low is not None:
        return f"大于 {low} 的{words}" if above else f"不小于 {low} 的{words}"
    return words


def get_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
