"""The spreadsheet columns of people and units: the header words accepted for each field.

Kept out of ``bot/config/sheets.py`` (which reads the sheets) so that an issue can name a column as the
sheet's header does (``bot/config/issues.py``) without importing the sheet reader.
"""

from __future__ import annotations

from bot.platforms.registry import EDITIONS, PERSON_ID_FIELDS

# field -> header words accepted (case-insensitive); the first Chinese one is used in the template.
PEOPLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("标识", "id", "编号", "人员标识"),
    "name": ("姓名", "name"),
    "unit": ("单位", "unit", "所在单位", "支部", "单位标识"),
    "roles": ("角色", "roles", "role"),
    "title": ("职务", "title"),
    "mobile": ("手机", "mobile", "手机号", "手机号码", "电话", "联系电话", "电话号码", "移动电话"),
    **{name: EDITIONS[name].sheet_headers for name in PERSON_ID_FIELDS},  # each platform's own (spec.py)
    "channels": ("所在群", "channels", "频道", "群"),
}
UNIT_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("标识", "id", "编号", "单位标识"),
    "name": ("名称", "name", "单位名称"),
    "parent": ("上级单位", "parent", "上级"),
    "leaders": ("分管领导", "leaders", "领导"),
}
SECTIONS = {"people": PEOPLE_COLUMNS, "units": UNIT_COLUMNS}
