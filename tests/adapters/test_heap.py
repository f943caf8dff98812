"""After each cycle the heap is frozen out of the collector's walks (adapters/heap.py), and a
garbage cycle frozen with it is still freed by the next whole collection."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from modeljob.adapters.heap import LongLivedHeap


class Node:
    """Something that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


def garbage_cycle() -> weakref.ref[Node]:
    """Two objects referring to each other and to nothing else: only the collector frees them."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()  # the rest of the test session collects as usual
    gc.set_threshold(*thresholds)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_after_a_cycle_what_is_alive_is_frozen() -> None:
    heap = LongLivedHeap(full_every=600, clock=Clock())
    heap.cycle_done()
    kept = [Node() for _ in range(1000)]
    heap.cycle_done()
    assert gc.get_freeze_count() >= len(kept)
    ids = {id(node) for node in kept}
    # None of it is left in a generation a collection walks.
    assert not any(id(o) in ids for generation in range(3) for o in gc.get_objects(generation))


def test_a_garbage_cycle_frozen_between_full_collections_is_freed_by_the_next_one() -> None:
    clock = Clock()
    heap = LongLivedHeap(full_every=600, clock=clock)
    heap.cycle_done()  # the first is whole
    holder = [Node()]
    holder[0].other = holder[0]
    gone = weakref.ref(holder[0])
    heap.cycle_done()  # frozen while alive
    holder.clear()  # garbage only now, frozen
    clock.now = 599.0
    heap.cycle_done()
    gc.collect()  # an automatic collection, however full, walks no frozen object
    assert gone() is not None
    clock.now = 600.0
    heap.cycle_done()
    assert gone() is None
    assert heap.full_collections == 2


def test_young_garbage_cycles_are_freed_at_every_cycle() -> None:
    clock = Clock()
    heap = LongLivedHeap(full_every=600, clock=clock)
    heap.cycle_done()
    gc.disable()  # no automatic collection may free it first
    try:
        gone = garbage_cycle()
        clock.now = 1.0
        heap.cycle_done()
        assert gone() is None
    finally:
        gc.enable()
    assert heap.full_collections == 1


def test_a_cycle_building_thousands_of_objects_is_not_stopped_by_collections_midway() -> None:
    """The cycle's results, alive until it ends, are not walked again and again while it builds
    them: the young generation is collected once at the cycle's end instead."""
    started: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    heap = LongLivedHeap(full_every=600, clock=Clock())
    heap.cycle_done()
    gc.callbacks.append(count)
    try:
        results = [[n] for n in range(20_000)]  # a step per waiting job, say
        assert started == []
        heap.cycle_done()
        assert started == [1]  # the end-of-cycle collection, alone
    finally:
        gc.callbacks.remove(count)
    assert len(results) == 20_000
