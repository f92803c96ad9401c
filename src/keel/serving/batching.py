"""Server-side micro-batching: concurrent requests for the same version and signature share one call.

Requests wait in a list. The worker takes what is waiting; if that is less than `max_batch_size`
rows it waits up to `max_wait_s` for more (less if the batch fills), then runs the model once on
the concatenated columns in its single model thread, and hands each caller its own rows. While a
batch runs the next one fills, so under load batches form without any waiting. Requests with a
different key (version, signature) go in a later batch. `max_batch_size=1` turns batching off:
each request is its own model call.
"""

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

Columns = dict[str, np.ndarray]


@dataclasses.dataclass
class _Pending:
    key: tuple
    run: Callable[[Columns], Columns]
    columns: Columns
    rows: int
    done: asyncio.Future


class MicroBatcher:
    """Joins requests with the same key into batches of at most `max_batch_size` rows."""

    def __init__(
        self,
        max_batch_size: int = 64,
        max_wait_s: float = 0.002,
        on_batch: Callable[[tuple, int], None] | None = None,
    ):
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch  # called with (key, rows) after each model call that succeeded
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="keel-model")
        self._pending: list[_Pending] = []
        self._pending_rows = 0
        self._waiting: asyncio.Event | None = None
        self._full: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self.batches = 0
        self.batched_rows = 0

    async def start(self) -> None:
        self._waiting, self._full = asyncio.Event(), asyncio.Event()
        self._worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        """Finishes the waiting requests, then stops the worker and the model thread."""
        if self._worker is not None:
            while self._pending:
                await asyncio.sleep(0.005)
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        self._model_thread.shutdown(wait=True)

    async def submit(self, key: tuple, run: Callable[[Columns], Columns], columns: Columns, rows: int) -> Columns:
        """Runs `run` on `columns` (alone or batched with others of the same key); returns its rows' outputs."""
        loop = asyncio.get_running_loop()
        if self.max_batch_size <= 1:
            outputs = await loop.run_in_executor(self._model_thread, run, columns)
            if self.on_batch is not None:
                self.on_batch(key, rows)
            return outputs
        done = loop.create_future()
        self._pending.append(_Pending(key, run, columns, rows, done))
        self._pending_rows += rows
        self._waiting.set()
        if self._pending_rows >= self.max_batch_size:
            self._full.set()
        return await done

    def _take(self) -> list[_Pending]:
        first = self._pending[0]
        batch, rows, rest = [], 0, []
        for item in self._pending:
            if item.key == first.key and (not batch or rows + item.rows <= self.max_batch_size):
                batch.append(item)
                rows += item.rows
            else:
                rest.append(item)
        self._pending = rest
        self._pending_rows -= rows
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._waiting.wait()
            if self._pending_rows < self.max_batch_size and self.max_wait_s > 0:
                self._full.clear()
                try:
                    await asyncio.wait_for(self._full.wait(), self.max_wait_s)
                except asyncio.TimeoutError:
                    pass
            batch = self._take()
            if not self._pending:
                self._waiting.clear()
            await self._run(loop, batch)

    async def _run(self, loop, batch: list[_Pending]) -> None:
        live = [p for p in batch if not p.done.cancelled()]
        if not live:
            return
        columns = {name: np.concatenate([p.columns[name] for p in live]) for name in live[0].columns}
        try:
            outputs = await loop.run_in_executor(self._model_thread, live[0].run, columns)
        except Exception as e:
            if len(live) > 1:  # one request's bad inputs must not fail the others: each runs alone
                for p in live:
                    await self._run(loop, [p])
                return
            if not live[0].done.done():
                live[0].done.set_exception(e)
            return
        self.batches += 1
        self.batched_rows += sum(p.rows for p in live)
        if self.on_batch is not None:
            self.on_batch(live[0].key, sum(p.rows for p in live))
        start = 0
        for p in live:
            if not p.done.done():
                p.done.set_result({name: values[start : start + p.rows] for name, values in outputs.items()})
            start += p.rows
