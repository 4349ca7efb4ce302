"""Logging to stdout, as text or JSON lines, with secrets masked in every record.

Two kinds of masking run on every formatted line, whichever logger wrote it (ours, aiohttp's
access and error loggers, asyncio's): the configured secrets (:func:`set_secrets`: webhooks, their
hidden parts, signing secrets), and secrets recognised by shape (:func:`bot.platforms.markup.redact`:
confirmation links and tokens, URL query values and fragments, credential headers).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.config.models import DEFAULT_TZ
from bot.platforms.markup import redact

# Log times are in the service's zone (the zone the pages show), with the offset written out, so
# an operator can match a log line to a page whatever the server's own zone is.
ZONE = ZoneInfo(DEFAULT_TZ)


_SECRETS: set[str] = set()


def set_secrets(values: Iterable[str]) -> None:
    """Strings (webhook URLs, keys, signing secrets) to mask wherever they would be logged."""
    _SECRETS.clear()
    _SECRETS.update(v for v in values if v and len(v) >= 6)


def mask(text: str) -> str:
    """``text`` with every configured secret, and everything secret-shaped, replaced by ``***``."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return redact(text)


def stamp(created: float, sep: str = " ") -> str:
    """A record's time (seconds since the epoch) as ``2026-12-04 09:00:00.123+08:00``."""
    return datetime.fromtimestamp(created, ZONE).isoformat(sep=sep, timespec="milliseconds")


def minute(moment: datetime) -> str:
    """``2026-12-04 09:00``: a moment as a log stamp begins (the service's zone, to the minute). The times
    an admin matches with the log are written so wherever shown (the terminal's lines, the commands'
    notes, the admin pages' banners): when the running schedules were checked, since when a change is
    refused, when a reload removed reminders."""
    return f"{moment.astimezone(ZONE):%Y-%m-%d %H:%M}"


class _Redacting(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return stamp(record.created)


# Attributes every LogRecord has; anything else on a record came from ``extra={...}``.
_STANDARD = {*logging.LogRecord("", 0, "", 0, "", None, None).__dict__, "message", "asctime", "taskName"}


class JsonFormatter(_Redacting):
    """One JSON object per line: time, level, logger, message, then any structured fields passed
    with ``extra={"event": ..., ...}`` under their own names (see README, "Logs")."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": stamp(record.created, sep="T"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload.setdefault(key, value)
        if record.exc_info:
            payload["exception"] = mask(self.formatException(record.exc_info))
        # Masked before encoding, so a mask never cuts through a JSON escape and each line stays JSON.
        return json.dumps(payload, ensure_ascii=False, default=str)


def setup_logging(fmt: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_Redacting("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "aiohttp.access", "watchfiles", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def channel_secrets(channels: Iterable[object]) -> list[str]:
    """Each channel's webhook and secret, and every part of the webhook its platform does not publish."""
    from bot.platforms.registry import webhook_secrets

    out: list[str] = []
    for ch in channels:
        secret = getattr(ch, "secret", None)
        if secret is not None:
            out.append(secret.get_secret_value())
        if getattr(ch, "webhook", None) is not None:
            out.extend(webhook_secrets(ch))  # type: ignore[arg-type]
    return out
