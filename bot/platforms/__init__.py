"""Messaging platform adapters, one module per platform, registered in ``registry``."""
