"""WeCom (企业微信, and 政务微信 on its own host): ``robot`` (group robot), ``app`` (tokens, application
messages), ``inbound`` (callback verification, AES, parsing), ``config`` (channel and app models)."""
