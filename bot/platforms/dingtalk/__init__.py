"""DingTalk (钉钉): ``robot`` (custom robot), ``app`` (tokens, one-to-one messages, cards), ``inbound``
(callback signature, parsing), ``stream`` (Stream mode client), ``config`` (channel and app models)."""
