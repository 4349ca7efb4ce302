"""Did-you-mean hints for a mistyped id ("是不是 “p012345”？"), bounded whatever the number of candidates.

Against a few thousand candidates every one is compared (:mod:`difflib`, as for field names). Against
a province's 100,000 people that takes half a second per unknown id and suggests ids that merely look
alike, so there only a typo is looked up: the one candidate a single edit away (a character left out,
added, replaced, or two swapped), found with a few hundred set lookups.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Collection, Iterator

SCAN_MAX = 2_000  # candidates compared one by one; beyond, only one-edit typos are looked up
TIES_SHOWN = 3  # equally close candidates named together (fgw_b1 或 fgw_b2); more than this: none is guessed
ALPHABET_MAX = 64  # characters tried for a replaced or added one: the commonest in the candidates


class Hints:
    """The closest candidate to an unknown value, for one set of candidates (ids, names or keys)."""

    def __init__(self, known: Collection[str]) -> None:
        self.known = known
        self._alphabet: str | None = None
        self._longest: int | None = None

    def closest(self, value: str, *, cutoff: float = 0.6) -> str | None:
        """The candidate the admin probably meant, or None (also for a value of another type)."""
        if not isinstance(value, str) or not value:
            return None
        if len(self.known) <= SCAN_MAX:
            found = difflib.get_close_matches(value, list(self.known), n=1, cutoff=cutoff)
            return found[0] if found else None
        return self.typo(value)

    def meant(self, value: str, *, cutoff: float = 0.6) -> list[str]:
        """The candidates the admin probably meant: the closest, with those exactly as close (an admin
        who wrote ``fgw_bl`` may mean ``fgw_b1`` as well as ``fgw_b2``: naming one would be a coin toss),
        sorted; [] when none is close or more than :data:`TIES_SHOWN` are equally close. Among
        thousands of candidates: the one a single typo away (:meth:`typo`), if any."""
        if not isinstance(value, str) or not value:
            return []
        if len(self.known) > SCAN_MAX:
            found = self.typo(value)
            return [found] if found else []
        matcher = difflib.SequenceMatcher()
        matcher.set_seq2(value)
        scored: list[tuple[float, str]] = []
        for word in self.known:  # what difflib.get_close_matches does, keeping every score
            matcher.set_seq1(word)
            if matcher.real_quick_ratio() >= cutoff and matcher.quick_ratio() >= cutoff \
                    and (ratio := matcher.ratio()) >= cutoff:
                scored.append((ratio, word))
        best = max((ratio for ratio, _ in scored), default=None)
        tied = sorted(word for ratio, word in scored if ratio == best)
        return tied if len(tied) <= TIES_SHOWN else []

    def typo(self, value: str) -> str | None:
        """The candidate a single typo away from ``value`` (a character left out, added, replaced, two
        swapped, or another case), or None: closeness that does not depend on the words' length."""
        if not isinstance(value, str) or not value:
            return None
        if len(value) > self.longest() + 1:
            return None  # no candidate is one edit away; and the edits of a long value take time squared in it
        return next((c for c in self._one_edit(value) if c in self.known), None)

    def _one_edit(self, value: str) -> Iterator[str]:
        """Values one typo away from ``value``, the likeliest first: another case, a swap, a character left out,
        replaced or added."""
        yield from (value.lower(), value.upper())
        for i in range(len(value) - 1):
            yield value[:i] + value[i + 1] + value[i] + value[i + 2:]
        for i in range(len(value)):
            yield value[:i] + value[i + 1:]
        alphabet = self.alphabet()
        for i in range(len(value)):
            for c in alphabet:
                yield value[:i] + c + value[i + 1:]
        for i in range(len(value) + 1):
            for c in alphabet:
                yield value[:i] + c + value[i:]

    def longest(self) -> int:
        """The length of the longest candidate (characters)."""
        if self._longest is None:
            self._longest = max((len(word) for word in self.known if isinstance(word, str)), default=0)
        return self._longest

    def alphabet(self) -> str:
        """The commonest characters of the candidates (counted once)."""
        if self._alphabet is None:
            counts = Counter(c for word in self.known if isinstance(word, str) for c in word)
            self._alphabet = "".join(c for c, _ in counts.most_common(ALPHABET_MAX))
        return self._alphabet


def did_you_mean(words: list[str]) -> str:
    """``，是不是 “a”？`` or ``，是不是 “a” 或 “b”？`` for :meth:`Hints.meant`'s answer; "" for none."""
    if not words:
        return ""
    quoted = [f"“{w}”" for w in words]
    return f"，是不是 {'、'.join(quoted[:-1])} 或 {quoted[-1]}？" if len(quoted) > 1 else f"，是不是 {quoted[0]}？"
