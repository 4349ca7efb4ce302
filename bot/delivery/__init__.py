"""Delivery: from a rendered template to a message a platform accepted.

Owns the Jinja2 templates (``render``), platform-neutral messages per channel (``compose``), the
direct-or-group decision (``directs``), the outbox (``outbox``), robot lanes and heartbeats
(``lanes``), per-robot rate limits (``ratelimit``), the dispatcher (``dispatch``) and the dead
message digest (``deadletters``). Talking to each platform is :mod:`bot.platforms`.
"""
