import gc

# The command line's modules (click, the command table) are thousands of objects and no cycles: the
# collector's passes over them cost a command a few milliseconds. They live as long as the process,
# so they go to the permanent generation, as what serve's start makes does (bot/config/gcpause.py);
# each command decides from here (bot/cli/__init__.py).
gc.disable()
from bot.cli import entry  # noqa: E402

gc.freeze()
gc.enable()
entry()
