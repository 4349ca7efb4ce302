"""Watch schedules/ and message_templates/ while serving: a valid change takes effect at once;
an invalid one is logged with the same messages as ``remindbot validate`` and the last good
schedules keep running."""

from __future__ import annotations

import logging
from collections.abc import Callable

from watchfiles import awatch

from bot.config.loader import check_schedules
from bot.config.models import Schedules
from bot.settings import Settings

log = logging.getLogger(__name__)


def reload_schedules(settings: Settings, apply: Callable[[Schedules], None]) -> bool:
    """Validate the folder; apply it when valid. Returns whether it was applied."""
    schedules, issues = check_schedules(settings.schedules_dir, templates_dir=settings.templates_dir)
    for issue in issues:
        (log.warning if issue.warning or schedules is None else log.info)("%s", issue)
    if schedules is None:
        errors = sum(1 for i in issues if not i.warning)
        log.error("日程配置有 %d 处错误，未生效；继续使用上一次有效的配置", errors)
        return False
    apply(schedules)
    log.info("日程配置已重新加载：%d 个提醒", len(schedules.reminders))
    return True


async def watch_schedules(settings: Settings, apply: Callable[[Schedules], None],
                          *, debounce_ms: int = 300) -> None:
    folders = [settings.schedules_dir, settings.templates_dir]
    async for _changes in awatch(*[str(f) for f in folders if f.exists()], debounce=debounce_ms,
                                 recursive=True):
        try:
            reload_schedules(settings, apply)
        except Exception:  # a reload bug must not stop the service
            log.exception("重新加载日程配置时出错，继续使用上一次有效的配置")
