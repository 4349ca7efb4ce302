"""jsontext.loads refuses a document nested deeper than MAX_DEPTH, whatever shortcut it takes."""

from __future__ import annotations

import pytest

from bot import jsontext
from bot.jsontext import MAX_DEPTH


@pytest.mark.parametrize("raw_type", [str, bytes])
def test_the_depth_limit_holds_at_its_boundary_with_brackets_counted_or_walked(raw_type: type) -> None:
    deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    too_deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    # Brackets inside strings make the text's count larger than the depth: the walk decides.
    padded = '{"a": "' + "[" * 100 + '", "b": ' + deepest + "}"
    encode = (lambda t: t) if raw_type is str else (lambda t: t.encode())
    assert jsontext.loads(encode(deepest))
    assert jsontext.loads(encode('{"errcode": 0, "errmsg": "ok"}')) == {"errcode": 0, "errmsg": "ok"}
    with pytest.raises(jsontext.TooDeepError):
        jsontext.loads(encode(too_deep))
    with pytest.raises(jsontext.TooDeepError):  # one level under a padded root: 65 deep
        jsontext.loads(encode(padded))
