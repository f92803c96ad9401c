"""keel.serving.heap.settle freezes what lives and frees what an earlier settle froze and is now garbage."""

import gc
import weakref

from keel.serving import heap


class Node:
    def __init__(self):
        self.me = self  # a cycle: only the cyclic collector frees it


def test_settle_freezes_the_survivors():
    kept = Node()
    try:
        heap.settle()
        assert gc.get_freeze_count() > 0
        assert kept.me is kept
    finally:
        gc.unfreeze()


def test_settle_collects_garbage_frozen_by_an_earlier_settle():
    """A replaced model version's objects were frozen while it served; the next settle must free them."""
    old_version = Node()
    gone = weakref.ref(old_version)
    try:
        heap.settle()
        del old_version
        gc.collect()
        assert gone() is not None  # frozen: a plain collection does not reach it
        heap.settle()
        assert gone() is None
    finally:
        gc.unfreeze()
