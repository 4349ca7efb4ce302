"""One module per schema revision: ``NNNN_what.py``, ``revision = "NNNN"``."""
