"""One Chinese sentence, ended once: the refusals the CLI prints and the pages show end alike.

Refusals come from several places (the shared admin actions, the note check, each surface's own), some
with a final 。 and some without; each surface ends them here, so none reads cut off nor doubled
(``备注最多 200 个字，现在有 300 个字。``). Imports nothing: the CLI's light commands and the pages use it.
"""

from __future__ import annotations

# Marks that end a Chinese sentence by themselves: a question (是不是 “zhao_ming”？) takes no 。 after it.
_ENDS = ("。", "？", "！", "?", "!", "…")


def sentence(text: str) -> str:
    """``text`` ending with exactly one full stop: 。 added when it has none, a doubled one made single,
    none after ？ or ！."""
    body = text.rstrip()
    while body.endswith("。"):
        body = body[:-1].rstrip()
    return body if body.endswith(_ENDS) else f"{body}。"
