"""The micro-batcher: concurrent requests share one model call, split back per caller; a bad request fails alone."""

import asyncio
import threading

import numpy as np
import pytest

from keel.serving.batching import MicroBatcher


class Model:
    """A model function that records the rows of every call and the thread it ran on."""

    def __init__(self, fail: bool = False, refuse: int | None = None):
        self.calls: list[list[int]] = []
        self.threads: set[str] = set()
        self.fail, self.refuse = fail, refuse  # fail every call, or only calls holding the row `refuse`

    def __call__(self, columns):
        self.calls.append(columns["x"].tolist())
        self.threads.add(threading.current_thread().name)
        if self.fail or self.refuse in self.calls[-1]:
            raise ValueError("the model refused")
        return {"y": columns["x"] * 10, "z": columns["x"] + 0.5}


def rows(*values: int) -> dict[str, np.ndarray]:
    """One request's columns: a single input `x` holding `values`."""
    return {"x": np.array(values)}


async def serve(batcher: MicroBatcher, requests: list[tuple], return_exceptions: bool = False) -> list:
    """Starts `batcher`, submits every (key, model, columns) at once, stops it; returns the answers in order."""
    await batcher.start()
    try:
        return await asyncio.gather(
            *(batcher.submit(key, model, columns, len(columns["x"])) for key, model, columns in requests),
            return_exceptions=return_exceptions,
        )
    finally:
        await batcher.stop()


def test_concurrent_requests_share_one_call_and_each_gets_its_own_rows():
    model = Model()
    # A batch that fills exactly starts at once, so the long wait is never waited.
    batcher = MicroBatcher(max_batch_size=6, max_wait_s=60)
    answers = asyncio.run(
        serve(batcher, [("v1", model, rows(1, 2)), ("v1", model, rows(3, 4)), ("v1", model, rows(5, 6))])
    )
    assert model.calls == [[1, 2, 3, 4, 5, 6]]
    assert [a["y"].tolist() for a in answers] == [[10, 20], [30, 40], [50, 60]]
    assert [a["z"].tolist() for a in answers] == [[1.5, 2.5], [3.5, 4.5], [5.5, 6.5]]
    assert (batcher.batches, batcher.batched_rows) == (1, 6)
    assert all(name.startswith("keel-model") for name in model.threads)


def test_batches_never_exceed_the_maximum_and_keep_request_order():
    model = Model()
    batcher = MicroBatcher(max_batch_size=4, max_wait_s=60)
    answers = asyncio.run(serve(batcher, [("v1", model, rows(i, i)) for i in range(1, 5)]))
    assert model.calls == [[1, 1, 2, 2], [3, 3, 4, 4]]
    assert [a["y"].tolist() for a in answers] == [[10, 10], [20, 20], [30, 30], [40, 40]]


def test_a_request_larger_than_the_maximum_runs_alone():
    model = Model()
    answers = asyncio.run(
        serve(MicroBatcher(max_batch_size=2, max_wait_s=60), [("v1", model, rows(1, 2, 3)), ("v1", model, rows(4, 5))])
    )
    assert model.calls == [[1, 2, 3], [4, 5]]
    assert [a["y"].tolist() for a in answers] == [[10, 20, 30], [40, 50]]


def test_a_partial_batch_runs_after_the_wait():
    model = Model()
    answers = asyncio.run(serve(MicroBatcher(max_batch_size=64, max_wait_s=0.01), [("v1", model, rows(7))]))
    assert model.calls == [[7]] and answers[0]["y"].tolist() == [70]


def test_requests_with_different_keys_are_never_mixed():
    one, two = Model(), Model()
    answers = asyncio.run(
        serve(
            MicroBatcher(max_batch_size=4, max_wait_s=60),
            [("v1", one, rows(1, 2)), ("v2", two, rows(3, 4)), ("v1", one, rows(5, 6)), ("v2", two, rows(7, 8))],
        )
    )
    assert one.calls == [[1, 2, 5, 6]] and two.calls == [[3, 4, 7, 8]]
    assert [a["y"].tolist() for a in answers] == [[10, 20], [30, 40], [50, 60], [70, 80]]


def test_a_model_error_reaches_every_caller_in_the_batch_and_the_next_batch_still_runs():
    failing, working = Model(fail=True), Model()

    async def scenario():
        batcher = MicroBatcher(max_batch_size=4, max_wait_s=60)
        await batcher.start()
        try:
            failed = await asyncio.gather(
                batcher.submit("v1", failing, rows(1, 2), 2),
                batcher.submit("v1", failing, rows(3, 4), 2),
                return_exceptions=True,
            )
            after = await asyncio.gather(
                batcher.submit("v1", working, rows(5, 6), 2), batcher.submit("v1", working, rows(7, 8), 2)
            )
        finally:
            await batcher.stop()
        return failed, after, batcher

    failed, after, batcher = asyncio.run(scenario())
    assert failing.calls == [[1, 2, 3, 4], [1, 2], [3, 4]]  # the failed batch is re-run request by request
    assert [type(e) for e in failed] == [ValueError, ValueError] and str(failed[0]) == "the model refused"
    assert [a["y"].tolist() for a in after] == [[50, 60], [70, 80]]
    assert (batcher.batches, batcher.batched_rows) == (1, 4)  # only the call that answered counts


def test_one_request_the_model_refuses_fails_alone_and_its_batch_mates_are_answered():
    model = Model(refuse=3)
    answers = asyncio.run(
        serve(
            MicroBatcher(max_batch_size=6, max_wait_s=60),
            [("v1", model, rows(1, 2)), ("v1", model, rows(3, 4)), ("v1", model, rows(5, 6))],
            return_exceptions=True,
        )
    )
    assert model.calls == [[1, 2, 3, 4, 5, 6], [1, 2], [3, 4], [5, 6]]
    assert answers[0]["y"].tolist() == [10, 20] and answers[2]["y"].tolist() == [50, 60]
    assert isinstance(answers[1], ValueError)


def test_max_batch_size_one_turns_batching_off():
    model = Model()
    answers = asyncio.run(serve(MicroBatcher(max_batch_size=1), [("v1", model, rows(1, 2)), ("v1", model, rows(3))]))
    assert sorted(model.calls) == [[1, 2], [3]]
    assert [a["y"].tolist() for a in answers] == [[10, 20], [30]]


def test_errors_without_batching_reach_the_caller():
    with pytest.raises(ValueError, match="the model refused"):
        asyncio.run(serve(MicroBatcher(max_batch_size=1), [("v1", Model(fail=True), rows(1))]))
