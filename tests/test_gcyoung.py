"""The collector's young generation while dispatchers run: widened once, restored by the last."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bot.delivery import gcyoung


@pytest.fixture(autouse=True)
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*before)


def test_widened_while_dispatchers_run_and_restored_by_the_last() -> None:
    gcyoung.widen(64)
    assert gc.get_threshold() == (64 * gcyoung.YOUNG_PER_SEND, 10, 10)
    gcyoung.widen(4)  # a second dispatcher in the process: never narrower
    assert gc.get_threshold()[0] == 64 * gcyoung.YOUNG_PER_SEND
    gcyoung.restore()
    assert gc.get_threshold()[0] == 64 * gcyoung.YOUNG_PER_SEND
    gcyoung.restore()
    assert gc.get_threshold() == (700, 10, 10)
    gcyoung.restore()  # one too many: nothing to give back
    assert gc.get_threshold() == (700, 10, 10)


def test_a_wider_or_switched_off_threshold_is_left_alone() -> None:
    gc.set_threshold(100_000, 10, 10)
    gcyoung.widen(8)
    assert gc.get_threshold()[0] == 100_000
    gcyoung.restore()
    gc.set_threshold(0, 10, 10)
    gcyoung.widen(8)
    assert gc.get_threshold()[0] == 0
    gcyoung.restore()
    assert gc.get_threshold()[0] == 0

