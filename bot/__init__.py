"""remindbot: recurring reminders pushed to enterprise-messaging robots, with confirmations."""

import os

__version__ = "0.1.0"

# pydantic looks for plugins when it builds its first validator (every command builds `Settings`'): it
# reads the entry points of every installed package, each dist-info folder opened (0.6 % of a
# province's `fire`'s instructions, issue 11). This application has no pydantic plugin. Set only when
# unset: an operator's own value (a plugin enabled on purpose) is kept.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
