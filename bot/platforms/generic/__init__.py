"""Generic JSON webhook (HMAC-signed): ``robot`` and ``config``; no app."""
