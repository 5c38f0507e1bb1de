"""In-process adaptive batching: worker threads own the model and run the requests queued meanwhile together."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from vtpose.errors import VtposeError
from vtpose.pose import PersonPose

T = TypeVar("T")


@dataclass
class _Job:
    items: list[Any]  # the model's inputs once `prepare` (if any) has run on them in the worker
    future: asyncio.Future[list[list[PersonPose]]]
    loop: asyncio.AbstractEventLoop
    prepare: Callable[[Any], Any] | None = None


class PoseBatcher:
    """Adaptive batching on the server, in-process: worker threads own the model and run queued requests together.

    Endpoints `await batcher.infer(items)`; a worker thread takes the first waiting request, then what else is
    already queued, up to `max_batch_size` items and its 1 / `workers` share of the queue (waiting at most
    `max_wait_ms` for more), runs it as one model call per input shape and hands each request its own results.
    With one client nothing waits; under load the requests that arrived during a model call share the next one.
    Only the `workers` threads call the model, so at most that many calls run at once whatever the load.

    `prepare_and_infer(raw, prepare)` queues raw inputs (an upload's bytes) that the worker turns into model inputs
    itself, just before the call: a request then crosses threads once (there and back) instead of twice, and only
    the images being run are held decoded, however many requests wait.

    Args:
        run: the model call, items -> persons per item (a backend's `run` on letterboxed images).
        key: groups items that may share one call (their input shape).
        max_batch_size: most items per model call.
        max_wait_ms: how long the thread waits for more requests once it has one; 0 takes only those already
            queued, which adds no latency at low load.
        workers: threads making model calls at once (ONNX Runtime sessions and OpenVINO compiled models are run
            from several threads; PyTorch's own thread pool is process-wide, so use 1 for it).

    Raises:
        ValueError: max_batch_size < 1 or max_wait_ms < 0.
    """

    def __init__(
        self,
        run: Callable[[list[Any]], list[list[PersonPose]]],
        key: Callable[[Any], Hashable],
        max_batch_size: int = 16,
        max_wait_ms: float = 0.0,
        workers: int = 1,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers={workers} must be at least 1")
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size={max_batch_size} must be at least 1")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms={max_wait_ms} must be >= 0")
        self._run = run
        self._key = key
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.batches = 0  # model calls made, for tests and logs
        self.largest_batch = 0
        self._threads = [
            threading.Thread(target=self._serve, name=f"pose-batcher-{n}", daemon=True) for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    async def infer(self, items: list[Any]) -> list[list[PersonPose]]:
        """Persons for each item, in order; raises what the model call raised.

        More items than `max_batch_size` are queued as several jobs of at most that many, so that idle workers
        share them (a /predict_batch of 8 on a CPU: two calls of 4 side by side rather than one after the other).
        """
        return [persons for _, persons in await self.prepare_and_infer(items, None)]

    async def prepare_and_infer(
        self, raw: list[Any], prepare: Callable[[Any], Any] | None
    ) -> list[tuple[Any, list[PersonPose]]]:
        """Each raw item's model input (`prepare(item)`, run on the worker thread) and its persons, in order.

        Raises:
            Whatever `prepare` raised for the first item it refused (in order; the request's other items are not
            run), or what the model call raised.
        """
        if not raw:
            return []
        if not any(thread.is_alive() for thread in self._threads):
            raise VtposeError("the pose batcher threads have stopped; restart the service.")
        loop = asyncio.get_running_loop()
        size = self.max_batch_size
        jobs = [_Job(list(raw[i : i + size]), loop.create_future(), loop, prepare) for i in range(0, len(raw), size)]
        for job in jobs:
            self._queue.put(job)
        found = [await jobs[0].future] if len(jobs) == 1 else await gather_in_order(job.future for job in jobs)
        # The worker replaced each job's items by their model inputs before it settled the job's future.
        return [pair for job, persons in zip(jobs, found, strict=True) for pair in zip(job.items, persons, strict=True)]

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the threads after the requests already queued."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout_s)

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, count, stop = [first], len(first.items), False
            deadline = time.monotonic() + self.max_wait_s
            # Leave the other workers their share of what is queued: one worker taking all of it would run it on
            # its own threads while the others idle.
            share = -(-(count + self._queue.qsize()) // len(self._threads))  # requests queued ~ images queued
            while count < min(self.max_batch_size, share):
                try:
                    remaining = deadline - time.monotonic()
                    job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
                count += len(job.items)
            self._run_jobs(jobs)
            if stop:
                return

    def _run_jobs(self, jobs: list[_Job]) -> None:
        failed: dict[int, BaseException] = {}
        for j, job in enumerate(jobs):
            if job.prepare is not None:
                try:
                    job.items = [job.prepare(item) for item in job.items]
                except Exception as error:  # a refused input (a 4xx): that request's answer, not the others'
                    failed[j] = error
        groups: dict[Hashable, list[tuple[int, int]]] = {}
        for j, job in enumerate(jobs):
            if j in failed:
                continue
            for i, item in enumerate(job.items):
                groups.setdefault(self._key(item), []).append((j, i))
        results: list[list[list[PersonPose] | None]] = [[None] * len(job.items) for job in jobs]
        for members in groups.values():
            for start in range(0, len(members), self.max_batch_size):
                chunk = [(j, i) for j, i in members[start : start + self.max_batch_size] if j not in failed]
                if not chunk:
                    continue
                try:
                    found = self._run([jobs[j].items[i] for j, i in chunk])
                except Exception as error:  # handed to the waiting requests, which re-raise it (a 500)
                    for j, _ in chunk:
                        failed[j] = error
                    continue
                self.batches += 1
                self.largest_batch = max(self.largest_batch, len(chunk))
                for (j, i), persons in zip(chunk, found, strict=True):
                    results[j][i] = persons
        for j, job in enumerate(jobs):
            outcome: Any = failed.get(j, results[j])
            with contextlib.suppress(RuntimeError):  # the request's event loop already closed (shutdown)
                job.loop.call_soon_threadsafe(_settle, job.future, outcome)


async def gather_in_order(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Await all side by side; their results in order, or the first failure in order raised once all are done
    (none is left unretrieved, so asyncio logs no stray exception)."""
    outcomes = await asyncio.gather(*awaitables, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return cast("list[T]", outcomes)


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():  # the request was cancelled (client gone) while it waited
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
