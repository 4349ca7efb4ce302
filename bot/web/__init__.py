"""The web application: health check, personal confirm pages and the admin area."""

from bot.web.app import RedactingAccessLogger, make_app

__all__ = ["RedactingAccessLogger", "make_app"]
