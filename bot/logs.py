"""Logging to stdout, as text or JSON lines, with secrets masked in every record."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_SECRETS: set[str] = set()


def set_secrets(values: Iterable[str]) -> None:
    """Strings (webhook URLs, keys, signing secrets) to mask wherever they would be logged."""
    _SECRETS.clear()
    _SECRETS.update(v for v in values if v and len(v) >= 6)


def mask(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


class _Redacting(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


# Attributes every LogRecord has; anything else on a record came from ``extra={...}``.
_STANDARD = {*logging.LogRecord("", 0, "", 0, "", None, None).__dict__, "message", "asctime", "taskName"}


class JsonFormatter(_Redacting):
    """One JSON object per line: time, level, logger, message, then any structured fields passed
    with ``extra={"event": ..., ...}`` under their own names (see README, "Logs")."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload.setdefault(key, value)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return mask(json.dumps(payload, ensure_ascii=False, default=str))


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
    """Each channel's webhook and secret, and the parts of the webhook that are credentials."""
    out: list[str] = []
    for ch in channels:
        for name in ("webhook", "secret"):
            value = getattr(ch, name, None)
            if value is None:
                continue
            text = value.get_secret_value()
            out.append(text)
            if name == "webhook":
                parts = urlsplit(text)
                out.extend(v for _, v in parse_qsl(parts.query))
                out.extend(seg for seg in parts.path.split("/") if len(seg) >= 16)
    return out
