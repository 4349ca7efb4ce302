"""Slack: ``robot`` (Incoming Webhook), ``app`` (``chat.postMessage`` to a user), ``inbound`` (Events API,
interactivity, v0 signatures), ``config`` (channel and app models)."""
