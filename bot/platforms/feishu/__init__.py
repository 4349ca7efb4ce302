"""Feishu / Lark (飞书; Lark is Feishu on another host): ``robot`` (custom robot), ``app`` (tokens, app
messages, cards), ``inbound`` (events, card callbacks), ``config`` (channel and app models)."""
