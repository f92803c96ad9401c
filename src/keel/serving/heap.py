"""Keeps Python's cyclic garbage collector from pausing the server for the objects a model load leaves.

A loaded TensorFlow SavedModel (with TensorFlow's own modules) leaves a few million long-lived Python
objects. Every full (generation 2) collection walks all of them: measured with `bench/serving.py`'s
load on penguin, 8 full collections in a 20 s run, each pausing the whole server 120-225 ms, which
was the whole of REST's p99 (230-250 ms against a p50 of 30 ms). `settle()` collects once and then
freezes what survives (`gc.freeze`), so later collections walk only the objects created since.
"""

import gc


def settle() -> None:
    """Collects garbage and moves every surviving object out of the collector's reach.

    Call it after the models are loaded, and again after a new version replaces an old one: the
    old version's objects were frozen too and only an unfreeze lets them be collected. That call
    pauses the server once, for one full collection.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
