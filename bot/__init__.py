"""remindbot: recurring reminders pushed to enterprise-messaging robots, with confirmations."""

__version__ = "0.1.0"
