"""The YAML format, as pydantic models. The JSON Schema (``remindbot schema``) comes from here too.

Several files in ``schedules/`` are each validated as a :class:`ScheduleFile` (every section
optional) and then merged into one :class:`Schedules`; ids are unique across files.
"""

from __future__ import annotations

import enum
import pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, create_model, field_validator, model_validator

from bot.config import cron, gcpause
from bot.config.rows import Rows
from bot.config.spans import Span, SpanField, TimeOfDay
from bot.config.zone import DEFAULT_TZ  # re-exported: most modules take it from here
from bot.platforms.registry import PERSON_ID_FIELDS, AppConfig, ChannelConfig

ID_PATTERN = r"^[A-Za-z0-9_.-]+$"
# A mainland mobile: 11 digits starting with 1 (what WeCom and DingTalk @-mention by), optionally
# written with +86; anything shorter or longer could never be @-mentioned.
MOBILE_PATTERN = r"^(\+86)?1\d{10}$"
DEFERRED = ("people", "units", "sources")  # Schedules' sections an unpickled copy opens on first read
DEFAULT_GRACE = Span(hours=6)  # how late a stage may still be sent (marked 补发) after downtime


_SHARED_SETS: dict[frozenset[str], set[str]] = {}


class Strict(BaseModel):
    # defer_build (here, on Schedules and on the platforms' bases): each model's validator is built
    # on its first validation, not at import. A command that reads the snapshot (unpickled, never
    # validated: status, report, …) builds none of them (25 ms of every start at a province's scale).
    model_config = ConfigDict(defer_build=True, extra="forbid", populate_by_name=True)


def compact(model: BaseModel) -> None:
    """Share the model's set of given fields with equal ones: 100,000 people would otherwise hold
    100,000 equal sets (about 90 MB). Nothing reads it but pydantic's ``exclude_unset``, which this
    project does not use. The snapshot's pickle keeps the sharing (pickle stores a shared object once)."""
    given = model.__pydantic_fields_set__
    shared = _SHARED_SETS.setdefault(frozenset(given), set(given))
    object.__setattr__(model, "__pydantic_fields_set__", shared)


class Weekday(enum.StrEnum):
    mon = "mon"
    tue = "tue"
    wed = "wed"
    thu = "thu"
    fri = "fri"
    sat = "sat"
    sun = "sun"

    @property
    def index(self) -> int:
        return list(Weekday).index(self)


WEEKDAY_ZH = {"mon": "星期一", "tue": "星期二", "wed": "星期三", "thu": "星期四", "fri": "星期五",
              "sat": "星期六", "sun": "星期日"}


# ---------------------------------------------------------------- people and units


# A person's ids on each platform (for @-mentions, direct messages and who replied): one optional
# field per platform that has people's ids, taken from the registry (bot/platforms/registry.py).
PlatformIds: type[Strict] = create_model(  # type: ignore[call-overload]
    "PlatformIds",
    __base__=Strict,
    __doc__="A person's ids on each platform (for @-mentions and, later, direct messages).",
    __module__=__name__,
    **{name: (str | None, Field(default=None, description=text)) for name, text in PERSON_ID_FIELDS.items()},
)


NAME_CHARS = 64  # WeCom's bound on a member's name; the spreadsheet reader applies the same (sheets.FIELD_CHARS)
_NAME_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def plain_name(value: str) -> str:
    """A person's or unit's name as one short line: a line break would split an @-mention and a
    table row (names come from YAML here; spreadsheet cells are checked as they are read).

    Raises ValueError (shown to the admin in Chinese) for a control character or an over-long name."""
    if _NAME_CONTROL.search(value):
        raise ValueError("名称中不能有换行符、制表符等控制字符")
    if len(value) > NAME_CHARS:
        raise ValueError(f"名称不能超过 {NAME_CHARS} 个字符（现在 {len(value)} 个）")
    return value


class Person(Strict):
    id: str = Field(pattern=ID_PATTERN, description="人员标识，在提醒中引用")
    name: str = Field(description="姓名")
    roles: list[str] = Field(default_factory=list, description="角色，例如 leader、secretary、admin")
    unit: str | None = Field(default=None, description="所在单位或支部的标识")
    title: str | None = Field(default=None, description="职务，例如 “支部书记”")
    mobile: str | None = Field(
        default=None, pattern=MOBILE_PATTERN, description="手机号（11 位，可带 +86），用于 @ 提及"
    )
    ids: PlatformIds = Field(default_factory=PlatformIds, description="各平台上的用户标识")
    channels: list[str] | None = Field(
        default=None, description="此人所在的群（频道标识）；不写则视为在提醒的所有群中"
    )

    _plain_name = field_validator("name")(plain_name)

    @field_validator("mobile")
    @classmethod
    def _bare_mobile(cls, value: str | None) -> str | None:
        """Platforms @-mention by the 11 digits alone, so a +86 prefix is dropped here."""
        return value.removeprefix("+86") if value else value


class Unit(Strict):
    id: str = Field(pattern=ID_PATTERN, description="单位或支部标识")
    name: str = Field(description="名称")
    parent: str | None = Field(default=None, description="上级单位标识")
    leaders: list[str] = Field(
        default_factory=list, description="分管此单位党建工作的领导（人员标识）"
    )

    _plain_name = field_validator("name")(plain_name)


# ---------------------------------------------------------------- calendar overrides


class DateRange(Strict):
    start: date = Field(alias="from", description="起始日期")
    end: date = Field(alias="to", description="结束日期（含）")
    name: str | None = Field(default=None, description="名称，例如 “春节”")

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.end < self.start:
            raise ValueError("结束日期（to）早于起始日期（from）")
        return self


class NamedDate(Strict):
    date: date
    name: str | None = None


DateEntry = date | DateRange | NamedDate


class CalendarOverrides(Strict):
    """Holidays and working days added by the admin, e.g. for a year the data does not cover."""

    holidays: list[DateEntry] = Field(default_factory=list, description="额外的放假日期")
    workdays: list[DateEntry] = Field(
        default_factory=list, description="额外的上班日期（调休上班的周末）"
    )
    covered_years: list[int] = Field(
        default_factory=list,
        description="已由上述覆盖完整录入全年安排的年份（录入后不再提示“超出日历数据范围”）",
    )


# ---------------------------------------------------------------- when


class DayRule(Strict):
    """Which day within a period: exactly one of ``day``, ``weekday`` (+``nth``) or ``workday``."""

    month: int | None = Field(
        default=None,
        description="周期内的第几个月：季度 1–3，半年 1–6，每年 1–12；每月时不写",
    )
    day: int | None = Field(
        default=None, ge=-31, le=31, description="几号；-1 表示最后一天"
    )
    weekday: Weekday | None = Field(default=None, description="星期几：mon…sun")
    nth: int | None = Field(
        default=None, ge=-5, le=5, description="第几个（与 weekday 合用）；-1 表示最后一个"
    )
    workday: int | None = Field(
        default=None, ge=-23, le=23, description="第几个工作日；-1 表示最后一个工作日"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> DayRule:
        kinds = [k for k in ("day", "weekday", "workday") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("需要且只能写 day（几号）、weekday（星期几）、workday（第几个工作日）中的一项")
        if self.day == 0 or self.workday == 0 or self.nth == 0:
            raise ValueError("序号从 1 开始（倒数用 -1），不能为 0")
        if self.nth is not None and self.weekday is None:
            raise ValueError("nth（第几个）要与 weekday（星期几）一起写")
        return self


class WeeklyRule(Strict):
    weekday: Weekday | list[Weekday] = Field(description="星期几，例如 fri 或 [mon, thu]")


class When(Strict):
    """When a reminder is due. Exactly one of the period keys, plus ``at`` (time of day)."""

    cron: str | None = Field(
        default=None, description="cron 表达式（分 时 日 月 周），例如 \"0 9 * * fri\""
    )
    weekly: WeeklyRule | None = Field(default=None, description="每周")
    monthly: DayRule | None = Field(default=None, description="每月")
    quarterly: DayRule | None = Field(
        default=None, description="每季度；month 为季度内第几个月（1–3）"
    )
    half_yearly: DayRule | None = Field(default=None, description="每半年；month 为 1–6")
    yearly: DayRule | None = Field(default=None, description="每年；month 为 1–12")
    once: date | None = Field(default=None, description="只一次，写日期 YYYY-MM-DD")
    at: TimeOfDay | None = Field(default=None, description="时刻 HH:MM，默认 09:00")

    @model_validator(mode="after")
    def _one_period(self) -> When:
        keys = [k for k in PERIOD_KEYS if getattr(self, k) is not None]
        if len(keys) != 1:
            raise ValueError(
                "when 需要且只能写一种周期：cron、weekly、monthly、quarterly、half_yearly、yearly、once"
            )
        if self.cron is not None and self.at is not None:
            raise ValueError("cron 表达式已含时刻，不要再写 at")
        if self.cron is not None:
            cron.check(self.cron)
        limits = {"monthly": None, "quarterly": 3, "half_yearly": 6, "yearly": 12}
        for key, top in limits.items():
            rule: DayRule | None = getattr(self, key)
            if rule is None:
                continue
            if top is None and rule.month is not None:
                raise ValueError("monthly 不需要 month")
            if top is not None and rule.month is None:
                raise ValueError(f"{key} 需要 month（周期内第几个月，1–{top}）")
            if top is not None and rule.month is not None and not 1 <= rule.month <= top:
                raise ValueError(f"{key} 的 month 应在 1–{top} 之间")
        return self

    @property
    def period(self) -> str:
        return next(k for k in PERIOD_KEYS if getattr(self, k) is not None)


PERIOD_KEYS = ("cron", "weekly", "monthly", "quarterly", "half_yearly", "yearly", "once")


# ---------------------------------------------------------------- recipients & confirmation


class Selector(Strict):
    """A set of people: listed ``people``, plus everyone matching ``roles`` within ``units``.

    ``roles`` alone: everyone with one of the roles. ``units`` alone: everyone in those units
    (and their sub-units). Both: people with one of the roles inside those units.
    """

    people: list[str] = Field(default_factory=list, description="人员标识")
    roles: list[str] = Field(default_factory=list, description="角色，例如 secretary")
    units: list[str] = Field(default_factory=list, description="单位标识（含下级单位）")
    all: bool = Field(default=False, description="@所有人")

    @property
    def empty(self) -> bool:
        return not (self.people or self.roles or self.units or self.all)


class Recipients(Strict):
    channels: list[str] = Field(min_length=1, description="发送到的群（频道标识）")
    mention: Selector = Field(default_factory=Selector, description="在群里 @ 谁")
    per_person: bool = Field(
        default=False,
        description="为每个被 @ 的人单独发一条（个人化内容，例如“一岗双责”提醒）",
    )


class Confirm(Strict):
    who: Selector | None = Field(
        default=None, description="谁需要确认；不写则为被 @ 的人"
    )
    deadline: SpanField = Field(description="提醒时刻之后多久截止，例如 3d 或 2wd")
    remind_every: SpanField | None = Field(
        default=None, description="未确认时每隔多久再提醒一次，例如 1d"
    )
    escalate_to: list[str] = Field(
        default_factory=lambda: ["unit_leaders"],
        description="逾期后告知谁：unit_leaders（所在单位的分管领导）或人员标识",
    )
    escalate_every: SpanField | None = Field(
        default=None, description="逾期后每隔多久再告知一次；不写则只告知一次"
    )
    link: bool = Field(default=True, description="在允许的频道里附上个人确认链接")


# Units a 通报 or a leader's brief names at most (bot.reporting.reports.shown_rows): with typical unit
# names 20 rows fit one WeCom markdown message of 4,096 bytes (30 went out in two parts); longer names
# split it, and the 通报 puts its summary (合计, where the whole ranking is) before the list.
REPORT_ROWS = 20


class ReportSpec(Strict):
    period: Literal["previous_month", "current_month", "previous_quarter", "current_quarter",
                    "previous_year"] = Field(default="previous_month", description="统计周期")
    reminders: list[str] = Field(
        default_factory=list, description="统计哪些提醒（不写则为所有需要确认的提醒）"
    )
    units: list[str] = Field(default_factory=list, description="统计哪些单位（不写则为全部）")
    rows: int = Field(default=REPORT_ROWS, ge=3, le=100,
                      description="通报最多列出多少个单位（排名靠前的约三分之一与靠后的其余，中间的汇总为一行）")


class HolidayPolicy(enum.StrEnum):
    next_workday = "next_workday"
    previous_workday = "previous_workday"
    skip = "skip"
    keep = "keep"


class Reminder(Strict):
    id: str = Field(pattern=ID_PATTERN, description="提醒标识")
    title: str = Field(description="标题，例如 “每月学习日”")
    kind: Literal["reminder", "report"] = Field(
        default="reminder", description="reminder（提醒）或 report（定期通报）"
    )
    enabled: bool = True
    when: When
    timezone: str = Field(default=DEFAULT_TZ, description="时区，默认 Asia/Shanghai")
    holiday: HolidayPolicy = Field(
        default=HolidayPolicy.next_workday,
        description="遇节假日或周末：next_workday 顺延，previous_workday 提前，skip 跳过，keep 照常",
    )
    notices: list[SpanField] = Field(
        default_factory=list, description="提前通知，例如 [3d, 1d] 表示提前3天和1天各通知一次"
    )
    template: str = Field(default="default", description="消息模板（message_templates/ 下的文件名，不含扩展名）；"
                          "默认 default，kind: report 的通报默认 report（带各单位数字）")
    recipients: Recipients
    confirm: Confirm | None = Field(default=None, description="需要确认时填写")
    report: ReportSpec | None = Field(default=None, description="kind: report 时的统计范围")
    checklist: list[str] = Field(default_factory=list, description="清单式事项，逐条列在消息中")
    note: str | None = Field(default=None, description="附加说明，会出现在消息里")
    grace: SpanField = Field(
        default=DEFAULT_GRACE,
        description="补发时限：服务中断等原因未能按时发出时，在此时长内仍会补发（标明“补发”）；"
        "超过则记为“错过”并告知管理员。默认 6h",
        json_schema_extra={"default": str(DEFAULT_GRACE)},
    )

    @field_validator("grace")
    @classmethod
    def _grace_in_time(cls, value: Span) -> Span:
        if value.workdays:
            raise ValueError("grace（补发时限）请写成 30m、6h、1d 等时长，不能用工作日（wd）")
        if value.delta.total_seconds() <= 0:
            raise ValueError("grace（补发时限）应大于 0，例如 30m 或 6h")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"未知时区 “{value}”，例如 Asia/Shanghai") from None
        return value

    @model_validator(mode="after")
    def _report_needs_spec(self) -> Reminder:
        if self.kind == "report" and self.report is None:
            self.report = ReportSpec()
        if self.kind == "report" and "template" not in self.model_fields_set:
            self.template = "report"  # the default template shows no figures: a 通报 without them says nothing
        if self.kind != "report" and self.report is not None:
            raise ValueError("只有 kind: report 的提醒才能写 report")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ServiceOptions(Strict):
    admin_channel: str | None = Field(
        default=None, description="投递失败等系统通知发往的频道"
    )


class ScheduleFile(Strict):
    """One YAML file in schedules/. Every section is optional; files are merged."""

    schema_ref: str | None = Field(default=None, alias="$schema", description="JSON Schema 地址")
    service: ServiceOptions | None = None
    calendar: CalendarOverrides | None = None
    units: list[Unit] = Field(default_factory=list)
    people: list[Person] = Field(default_factory=list)
    channels: list[ChannelConfig] = Field(default_factory=list)
    apps: list[AppConfig] = Field(default_factory=list, description="平台应用（接收群内回复、卡片按钮）")
    reminders: list[Reminder] = Field(default_factory=list)


class Schedules(BaseModel):
    """Everything from schedules/, merged and cross-checked."""

    model_config = ConfigDict(defer_build=True, arbitrary_types_allowed=True)

    service: ServiceOptions = Field(default_factory=ServiceOptions)
    calendar: CalendarOverrides = Field(default_factory=CalendarOverrides)
    units: dict[str, Unit] = Field(default_factory=dict)
    people: dict[str, Person] = Field(default_factory=dict)
    channels: dict[str, Any] = Field(default_factory=dict)  # id -> ChannelConfig
    apps: dict[str, Any] = Field(default_factory=dict)  # id -> AppConfig (bot/platforms/registry.py)
    reminders: dict[str, Reminder] = Field(default_factory=dict)
    sources: dict[str, str] = Field(default_factory=dict)  # "reminders:<id>" -> "file:line"
    # The enabled one-off dates and where they are written, for the past-date warning as of whenever
    # it is shown (bot/config/dated.py: a snapshot outlives the day it was checked on).
    dated: list[Any] = Field(default_factory=list, exclude=True)  # OnceDate
    _index: Any = PrivateAttr(default=None)
    _selected: dict[tuple[tuple[str, ...], ...], list[Person]] = PrivateAttr(default_factory=dict)
    _by_channel: dict[tuple[tuple[str, ...], ...], ChannelMembers] = PrivateAttr(default_factory=dict)
    _leaders: dict[str | None, list[Person]] = PrivateAttr(default_factory=dict)
    _deferred: dict[str, bytes] | None = PrivateAttr(default=None)
    _sizes: dict[str, int] | None = PrivateAttr(default=None)

    def __getstate__(self) -> dict[Any, Any]:
        """Pickled without the indexes: they are rebuilt on demand from the rows (bot/config/snapshot.py).

        The big sections (``DEFERRED``: people, units, sources) go in as pickles of their own, which
        an unpickled copy opens only when first read: ``remindbot upcoming`` never builds the
        100,000 people of a province, ``status`` and ``report`` not unless they need them. People
        and units go in as plain rows (:class:`bot.config.rows.Rows`): opened, they are a mapping
        that builds each model when it is read, so firing for 20,000 people builds 20,000."""
        self._open()
        state = super().__getstate__()
        state["__pydantic_private__"] = None
        fields = dict(state["__dict__"])
        state["__deferred__"] = {name: pickle.dumps(_as_rows(name, fields.pop(name)), protocol=pickle.HIGHEST_PROTOCOL)
                                 for name in DEFERRED}
        state["__sizes__"] = {name: len(getattr(self, name)) for name in DEFERRED}
        state["__dict__"] = fields
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        deferred = state.pop("__deferred__", None)
        sizes = state.pop("__sizes__", None)
        super().__setstate__(state)
        self._fresh_indexes()
        self.__pydantic_private__["_deferred"] = deferred  # type: ignore[index]
        self.__pydantic_private__["_sizes"] = sizes  # type: ignore[index]

    def size(self, name: str) -> int:
        """How many entries a section has (``people``, ``units``…), without opening a deferred one."""
        sizes = self._sizes
        if name not in self.__dict__ and sizes and name in sizes:
            return int(sizes[name])
        return len(getattr(self, name))

    def _fresh_indexes(self) -> None:
        object.__setattr__(self, "__pydantic_private__", {
            "_index": None, "_selected": {}, "_by_channel": {}, "_leaders": {}, "_deferred": None,
            "_sizes": None})

    def __getattr__(self, name: str) -> Any:
        """A deferred section (see ``__getstate__``) is unpickled here, on its first read."""
        if name in DEFERRED:
            private = object.__getattribute__(self, "__pydantic_private__")
            deferred = private.get("_deferred") if private else None
            if deferred and name in deferred:
                with gcpause.no_gc():  # a million objects and no cycles
                    value = pickle.loads(deferred[name])
                self.__dict__[name] = value
                del deferred[name]
                return value
        return super().__getattr__(name)  # type: ignore[misc]

    def _open(self) -> None:
        for name in DEFERRED:
            getattr(self, name)

    def materialize(self) -> Schedules:
        """Every deferred section read and every model built, each section a plain ``dict`` again
        (before anything that walks the fields directly: pydantic's dump, copy, equality)."""
        self._open()
        for name in DEFERRED:
            value = self.__dict__[name]
            if isinstance(value, Rows):
                self.__dict__[name] = dict(value.items())
        return self

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Schedules):
            self.materialize()
            other.materialize()
            return all(getattr(self, name) == getattr(other, name) for name in type(self).model_fields)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr_args__(self) -> Any:
        self.materialize()
        return super().__repr_args__()

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        return super(Schedules, self.materialize()).model_dump(**kwargs)

    def model_dump_json(self, **kwargs: Any) -> str:
        return super(Schedules, self.materialize()).model_dump_json(**kwargs)

    def model_copy(self, **kwargs: Any) -> Schedules:
        return super(Schedules, self.materialize()).model_copy(**kwargs)

    def __copy__(self) -> Schedules:
        return super(Schedules, self.materialize()).__copy__()

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Schedules:
        return super(Schedules, self.materialize()).__deepcopy__(memo)

    def unit_chain(self, unit_id: str | None) -> list[Unit]:
        """The unit and its ancestors, nearest first."""
        chain: list[Unit] = []
        seen: set[str] = set()
        while unit_id and unit_id in self.units and unit_id not in seen:
            seen.add(unit_id)
            chain.append(self.units[unit_id])
            unit_id = self.units[unit_id].parent
        return chain

    def unit_name(self, unit_id: str | None) -> str | None:
        """The name of a unit, None when there is no such unit (from a snapshot's rows: no model built)."""
        units = self.units
        if type(units) is Rows:
            return units.field(unit_id, "name") if unit_id else None
        unit = units.get(unit_id) if unit_id else None
        return unit.name if unit is not None else None

    def unit_names(self) -> dict[str, str]:
        """Every unit's name by id, from the index (no unit model built): naming the units of a fire's
        20,000 people through :meth:`unit_name` cost 0.01 s more. Read it, do not change it."""
        return self._indexes().unit_names

    def leaders_in_charge(self) -> set[str]:
        """Ids of the people in charge of some unit (any unit's ``leaders``), from the index."""
        return set(self._indexes().led_by)

    def in_units(self, person: Person, unit_ids: set[str]) -> bool:
        return any(u.id in unit_ids for u in self.unit_chain(person.unit))

    def _indexes(self) -> Membership:
        """Who is where, made once per snapshot; each of its indexes is built on first use."""
        private = self.__pydantic_private__
        index: Membership | None = private["_index"]  # type: ignore[index]
        if index is None:
            index = private["_index"] = Membership(self)  # type: ignore[index]
        return index

    def subtree(self, unit_ids: set[str]) -> set[str]:
        """The units and all their sub-units."""
        children = self._indexes().children
        out: set[str] = set()
        stack = list(unit_ids)
        while stack:
            uid = stack.pop()
            if uid not in out:
                out.add(uid)
                stack.extend(children.get(uid, []))
        return out

    def select(self, selector: Selector) -> list[Person]:
        """People matched by a selector, in YAML order (memoised: many reminders share one).

        The list carries its selector (``Selection.key``), so :meth:`channel_members` can split it
        by channel once for all the reminder's channels.
        """
        key = (tuple(selector.people), tuple(selector.roles), tuple(selector.units))
        if key not in self._selected:
            with gcpause.no_gc():  # the chosen people's models are built here (bot/config/rows.py)
                self._selected[key] = self._select(selector)
        return Selection(self._selected[key], key)

    def _select(self, selector: Selector) -> list[Person]:
        """Positions from the index, then only the chosen people's models (see ``Membership``)."""
        index = self._indexes()
        if not selector.people and not selector.units and len(selector.roles) == 1:  # ascending, no repeats
            positions = index.with_role(selector.roles[0])
            return self._people_at(positions, index.ids)
        chosen = {index.order[pid] for pid in selector.people if pid in index.order}
        if selector.roles or selector.units:
            units = self.subtree(set(selector.units)) if selector.units else None
            by_role = [i for role in selector.roles for i in index.with_role(role)]
            if units is not None and (not selector.roles or sum(index.unit_size(u) for u in units) < len(by_role)):
                roles = set(selector.roles)
                chosen.update(i for u in units for i in index.by_unit.get(u, [])
                              if not roles or not roles.isdisjoint(index.roles[i]))
            else:
                unit_of = index.unit
                chosen.update(i for i in by_role if units is None or unit_of[i] in units)
        return self._people_at(sorted(chosen), index.ids)

    def _people_at(self, positions: list[int], ids: list[str]) -> list[Person]:
        """The people at these positions (file order), each model built on its first read."""
        people = self.people
        if isinstance(people, Rows):
            return people.at(positions, ids)
        return [people[ids[i]] for i in positions]

    def in_channel(self, person: Person, channel_id: str) -> bool:
        """Whether the person is in the channel's group (no ``channels`` listed: in every group)."""
        return person.channels is None or channel_id in person.channels

    def channel_members(self, people: list[Person], channel_id: str) -> list[Person]:
        """Those of ``people`` in the channel's group, in YAML order.

        For a selection (from :meth:`select`) the people are split by channel in one pass, once per
        snapshot, so a reminder to 500 groups costs its rows, not 500 × its rows.
        """
        key = getattr(people, "key", None)
        if key is None or len(people) < 64:
            return [p for p in people if self.in_channel(p, channel_id)]
        split = self._by_channel.get(key)
        if split is None:
            split = self._by_channel[key] = ChannelMembers.split(people, self._indexes())
        return split.members(channel_id)

    def leaders_of(self, person: Person) -> list[Person]:
        """Leaders in charge of the person's unit (the nearest unit that names any); memoised per unit.

        The walk up stops at the first unit already known, so sibling units share their parents'
        answer: 20,000 branches cost 20,000 steps, not 20,000 × their depth."""
        memo: dict[str | None, list[Person]] = self.__pydantic_private__["_leaders"]  # type: ignore[index]
        unit_id = person.unit
        found = memo.get(unit_id)
        if found is None:
            people = self.people
            found = memo[unit_id] = [people[p] for p in self._indexes().leader_ids(unit_id)]
        return list(found)

    def unit_facts(self, unit_ids: Iterable[str | None]) -> dict[str | None, tuple[str | None, list[str]]]:
        """For each of ``unit_ids`` (once each): its name (None: no such unit), as :meth:`unit_name`
        gives it, and the ids of the leaders in charge of it, as :meth:`leaders_of` gives them (units
        answered by one walk share one list: read it, do not change it).

        For the thousands of units of a fire at once: read from the index's columns, so no unit or
        leader model is built, and each chain is walked up once (a province's 20,000 units took 0.09 s
        through ``unit_name`` and ``leaders_of``, a field at a time)."""
        index = self._indexes()
        names, leaders = index.unit_names, index.leaders_of_units(unit_ids)
        return {unit_id: (names.get(unit_id) if unit_id else None, found) for unit_id, found in leaders.items()}

    def unit_places(self) -> Mapping[str, int]:
        """Each unit's place in the admins' order (YAML ``units:`` order, then spreadsheet rows), from 0:
        the order units are listed in everywhere (read from the index: no unit model built)."""
        return self._indexes().unit_position

    def units_overseen_by(self, person_id: str) -> list[Unit]:
        """Units a leader is in charge of, with their sub-units, in YAML order.

        Costs the units returned (their positions sorted), not every unit of the snapshot."""
        units, position = self.units, self._indexes().unit_position
        return [units[uid] for uid in sorted(self.unit_ids_overseen_by(person_id), key=position.__getitem__)]

    def unit_ids_overseen_by(self, person_id: str) -> set[str]:
        """Ids of the units a leader is in charge of, with their sub-units (no model is built)."""
        return self.subtree(set(self._indexes().led_by.get(person_id, [])))

    def units_led_by(self, person_id: str) -> list[str]:
        """Ids of the units that name the person among their ``leaders`` (not their sub-units), YAML order."""
        return list(self._indexes().led_by.get(person_id, []))

    def leader_ids(self) -> list[str]:
        """People who lead at least one unit (named in a unit's ``leaders``), in YAML order.

        Costs the leaders (from the index), not people × units."""
        index = self._indexes()
        return sorted((pid for pid in index.led_by if pid in index.order), key=index.order.__getitem__)

    def leaders_over(self, unit_ids: set[str]) -> set[str]:
        """People in charge of any of these units: named in the ``leaders`` of the unit or of a unit
        above it. Costs the units' chains, from the index (no model is built)."""
        index = self._indexes()
        found: set[str] = set()
        walked: set[str] = set()
        for uid in unit_ids:
            while uid and uid not in walked:  # a chain walked already leads to leaders found already
                walked.add(uid)
                found.update(index.unit_leaders.get(uid, ()))
                uid = index.parent.get(uid)  # type: ignore[assignment]
        return found

    def overseen_count(self, person_id: str) -> int:
        """How many units a leader is in charge of, with their sub-units: ``len(unit_ids_overseen_by)``
        from sizes counted once per snapshot, so a page of leaders costs their units, not their subtrees."""
        index = self._indexes()
        led = set(index.led_by.get(person_id, []))
        sizes, parent = index.subtree_sizes(), index.parent
        total = 0
        for uid in led:
            if uid not in sizes:  # in a loop of parents (refused when loading): count it the long way
                return len(self.unit_ids_overseen_by(person_id))
            up, seen = parent.get(uid), {uid}
            while up and up not in led and up not in seen:  # counted already under a led unit above?
                seen.add(up)
                up = parent.get(up)
            if not up or up in seen:
                total += sizes[uid]
        return total


def _as_rows(name: str, value: Any) -> Any:
    """People and units as plain rows for the pickle (see ``Schedules.__getstate__``)."""
    model = {"people": Person, "units": Unit}.get(name)
    if model is None or isinstance(value, Rows):
        return value
    return Rows(model, *Rows.encode(model, value.items())[1:])


class Selection(list[Person]):
    """People chosen by a selector; ``key`` names the selector (the memo key of ``Schedules.select``)."""

    def __init__(self, people: list[Person], key: tuple[tuple[str, ...], ...]) -> None:
        super().__init__(people)
        self.key = key


class Membership:
    """Indexes over one snapshot: each person's position (file order), people's positions by role
    and by unit, sub-units, units by leader. Each is built on its first use, in one pass over the
    columns it needs (from a snapshot's rows no person model is built), so lookups cost the rows they
    return, and a command pays only for the indexes it reads: selecting 20,000 secretaries out of
    100,000 people reads the roles column, not the units', and builds no position by unit."""

    def __init__(self, s: Schedules) -> None:
        self._people = s.people
        self._units = s.units
        self._with_role: dict[str, list[int]] = {}
        self._sizes: dict[str, int] | None = None
        self._leader_memo: dict[str | None, list[str]] = {}

    def leader_ids(self, unit_id: str | None) -> list[str]:
        """The ids of the leaders in charge of a unit: those of the nearest unit up its chain that names
        any who are people ([] for no unit, a loop of parents, or none named). Every unit walked through
        is memoised with the answer, so sibling units share their parents' walk: 20,000 branches cost
        20,000 steps, not 20,000 × their depth. Shared lists: read them, do not change them."""
        memo = self._leader_memo
        found = memo.get(unit_id)
        if found is not None:
            return found
        parent, named, known = self.parent, self.unit_leaders, self.known_leaders
        walked: list[str | None] = [unit_id]
        seen: set[str] = set()
        while unit_id and unit_id not in seen:
            seen.add(unit_id)
            if unit_id not in parent:  # no such unit
                break
            leaders = named.get(unit_id)
            if leaders:
                found = [p for p in leaders if p in known]
                break
            unit_id = parent[unit_id]
            if unit_id in memo:
                found = memo[unit_id]
                break
            walked.append(unit_id)
        found = [] if found is None else found
        for walked_id in walked:
            memo[walked_id] = found
        return found

    def leaders_of_units(self, unit_ids: Iterable[str | None]) -> dict[str | None, list[str]]:
        """:meth:`leader_ids` of each of ``unit_ids`` (once each, in order), for thousands of units at once.

        The common step is taken here without a call: a unit that names no leaders and whose parent is
        answered already shares its parent's answer (a province's 20,000 branches under 200 bureaus:
        one step each). Anything else takes :meth:`leader_ids`' walk."""
        memo, parent, named = self._leader_memo, self.parent, self.unit_leaders
        out: dict[str | None, list[str]] = {}
        for unit_id in dict.fromkeys(unit_ids):
            found = memo.get(unit_id)
            if found is None:
                up = parent.get(unit_id) if unit_id and unit_id not in named else None
                found = memo.get(up) if up and up != unit_id else None
                if found is None:
                    found = self.leader_ids(unit_id)
                else:
                    memo[unit_id] = found
            out[unit_id] = found
        return out

    @cached_property
    def ids(self) -> list[str]:
        """Person id by position."""
        return _columns(self._people, ("id",))[0]

    @cached_property
    def order(self) -> dict[str, int]:
        """Position by person id (a snapshot's rows keep exactly this mapping: copied, not rebuilt)."""
        if isinstance(self._people, Rows):
            return dict(self._people.pos)
        return {pid: i for i, pid in enumerate(self.ids)}

    @cached_property
    def roles(self) -> list[list[str]]:
        """Roles by position."""
        return _columns(self._people, ("roles",))[0]

    @cached_property
    def unit(self) -> list[str | None]:
        """Unit id by position."""
        return _columns(self._people, ("unit",))[0]

    def with_role(self, role: str) -> list[int]:
        """Positions (ascending) of the people holding ``role``: from a snapshot's roles column as written
        (``Rows.holding``), else one pass over the roles column per role."""
        found = self._with_role.get(role)
        if found is None:
            people = self._people
            found = people.holding("roles", role) if isinstance(people, Rows) else None
            if found is None:
                found = [i for i, held in enumerate(self.roles) if role in held]
            self._with_role[role] = found
        return found

    @cached_property
    def by_unit(self) -> dict[str | None, list[int]]:
        """Positions by unit id."""
        by_unit: dict[str | None, list[int]] = {}
        with gcpause.no_gc():  # 10⁴ lists, no cycles
            for i, unit in enumerate(self.unit):
                by_unit.setdefault(unit, []).append(i)
        return by_unit

    @cached_property
    def _unit_links(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        children: dict[str, list[str]] = {}
        led_by: dict[str, list[str]] = {}
        with gcpause.no_gc():  # 10⁴ lists, no cycles
            for uid, parent, leaders in zip(*self._unit_columns, strict=True):
                if parent:
                    children.setdefault(parent, []).append(uid)
                for leader in leaders:
                    led_by.setdefault(leader, []).append(uid)
        return children, led_by

    @cached_property
    def _unit_columns(self) -> list[list[Any]]:
        """The units' id, parent and leaders columns, in file order."""
        return _columns(self._units, ("id", "parent", "leaders"))

    @property
    def children(self) -> dict[str, list[str]]:
        """Sub-unit ids by unit id."""
        return self._unit_links[0]

    @property
    def led_by(self) -> dict[str, list[str]]:
        """Unit ids by the leader in charge of them (person id), in file order."""
        return self._unit_links[1]

    @cached_property
    def unit_names(self) -> dict[str, str]:
        """Each unit's name by id."""
        return dict(zip(self._unit_columns[0], _columns(self._units, ("name",))[0], strict=True))

    @cached_property
    def known_leaders(self) -> set[str]:
        """The ids named in some unit's ``leaders`` that are people (the loader refuses others; a
        schedules made in code may hold them)."""
        named = {p for leaders in self.unit_leaders.values() for p in leaders}
        people = self._people
        return people.having(named) if isinstance(people, Rows) else {p for p in named if p in people}

    @cached_property
    def unit_position(self) -> dict[str, int]:
        """Each unit's position (file order)."""
        return {uid: i for i, uid in enumerate(self._unit_columns[0])}

    @cached_property
    def parent(self) -> dict[str, str | None]:
        """Each unit's parent id as written (may name no unit)."""
        ids, parents, _ = self._unit_columns
        return dict(zip(ids, parents, strict=True))

    @cached_property
    def unit_leaders(self) -> dict[str, list[str]]:
        """A unit's ``leaders``, for the units that name any."""
        ids, _, leader_lists = self._unit_columns
        return {uid: list(leaders) for uid, leaders in zip(ids, leader_lists, strict=True) if leaders}

    def unit_size(self, unit_id: str) -> int:
        return len(self.by_unit.get(unit_id, ()))

    def subtree_sizes(self) -> dict[str, int]:
        """Units in each unit's subtree (itself included), counted once from the leaves up.

        A unit in a loop of parents (the loader refuses those) gets no entry."""
        if self._sizes is None:
            sizes: dict[str, int] = {}
            waiting = {uid: len(self.children.get(uid, ())) for uid in self.unit_position}
            ready = [uid for uid, n in waiting.items() if n == 0]
            while ready:
                uid = ready.pop()
                sizes[uid] = 1 + sum(sizes[c] for c in self.children.get(uid, ()))
                up = self.parent.get(uid)
                if up in waiting:
                    waiting[up] -= 1
                    if waiting[up] == 0:
                        ready.append(up)
            self._sizes = sizes
        return self._sizes


def _columns(section: Any, names: tuple[str, ...]) -> list[list[Any]]:
    """Fields of every entry of a people or units section, column by column, in order."""
    if isinstance(section, Rows):
        return [section.column(name) for name in names]
    values = list(section.values())
    return [[getattr(v, name) for v in values] for name in names]


@dataclass
class ChannelMembers:
    """A selection split by channel: who lists each channel, and who is in every channel."""

    listed: dict[str, list[Person]]
    everywhere: list[Person]
    index: Membership  # its ``order`` (a copy of 10⁵ positions) is read only to merge the two

    @classmethod
    def split(cls, people: list[Person], index: Membership) -> ChannelMembers:
        listed: dict[str, list[Person]] = {}
        everywhere: list[Person] = []
        for person in people:
            if person.channels is None:
                everywhere.append(person)
                continue
            for channel_id in dict.fromkeys(person.channels):
                listed.setdefault(channel_id, []).append(person)
        return cls(listed, everywhere, index)

    def members(self, channel_id: str) -> list[Person]:
        here = self.listed.get(channel_id, [])
        if not self.everywhere:
            return list(here)
        if not here:
            return list(self.everywhere)
        order = self.index.order
        return sorted([*here, *self.everywhere], key=lambda p: order[p.id])
