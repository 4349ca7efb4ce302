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
ALPHABET_MAX = 64  # characters tried for a replaced or added one: the commonest in the candidates


class Hints:
    """The closest candidate to an unknown value, for one set of candidates (ids, names or keys)."""

    def __init__(self, known: Collection[str]) -> None:
        self.known = known
        self._alphabet: str | None = None

    def closest(self, value: str, *, cutoff: float = 0.6) -> str | None:
        """The candidate the admin probably meant, or None (also for a value of another type)."""
        if not isinstance(value, str) or not value:
            return None
        if len(self.known) <= SCAN_MAX:
            found = difflib.get_close_matches(value, list(self.known), n=1, cutoff=cutoff)
            return found[0] if found else None
        return self.typo(value)

    def typo(self, value: str) -> str | None:
        """The candidate a single typo away from ``value`` (a character left out, added, replaced, two
        swapped, or another case), or None: closeness that does not depend on the words' length."""
        if not isinstance(value, str) or not value:
            return None
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

    def alphabet(self) -> str:
        """The commonest characters of the candidates (counted once)."""
        if self._alphabet is None:
            counts = Counter(c for word in self.known if isinstance(word, str) for c in word)
            self._alphabet = "".join(c for c, _ in counts.most_common(ALPHABET_MAX))
        return self._alphabet
