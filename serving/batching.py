"""Opportunistic batching of model calls, as TF Serving's `--enable_batching` with `batch_timeout_micros` 0.

Requests that arrive while every model thread is busy wait in one queue; a thread that comes
free takes every waiting request (up to `max_rows` rows, at least one request) into a single
call. A request that arrives while a thread is free starts at the end of the event loop's
current pass, with whatever other requests that pass read: batching adds no timed wait, it only
shares what would otherwise be repeated per request (a thread hand-over each way,
onnxruntime's per-call work). TF Serving's batching guide suggests the same for CPU-only
serving: `num_batch_threads` the number of cores, a large `max_batch_size`, timeout 0.
docs/rest-server.md has the measurements behind the defaults.

The queue lives on the event loop; only `run_batch` runs on the model threads, once per batch.
With no model threads (`threads=0`, what each worker process of `serve --workers` uses), calls
run on the event loop itself: the processes give the parallelism, and a call costs no hand-over
of the GIL between threads. Requests that arrive during a call are read in the loop's next pass
and share the next call.

A request whose client has left while it waited (its connection closed) is dropped from the
queue before it can join a call: 30 abandoned large requests would otherwise hold a small one
behind them for seconds. Its `submit` raises ClientGone.
"""

import asyncio
import collections
import concurrent.futures


class ClientGone(Exception):
    """The client of a queued request left before the request joined a model call: it was not computed."""


class ModelBatcher:
    """`await batcher.submit(item)` -> run_batch([..., item, ...])'s answer for `item`.

    `run_batch(items)` returns one answer per item, in order; it runs on one of `threads`
    threads, or on the event loop with `threads=0`. `item.rows` is its number of rows. With
    `merge=False` every call takes one item (batching off, for comparison). An exception from
    `run_batch` is raised to every request of that batch.
    """

    def __init__(self, run_batch, threads, max_rows, merge=True):
        self.run_batch = run_batch
        self.max_rows = max_rows
        self.merge = merge
        self.executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="model") if threads else None
        self._idle_threads = threads or 1  # on the loop: one call at a time
        self._queue = collections.deque()  # (item, asyncio future, client_gone) in arrival order
        self._dispatch_scheduled = False

    async def submit(self, item, client_gone=None):
        """`client_gone()`, if given, is true once nobody waits for the answer: then ClientGone is raised, uncomputed."""
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self._queue.append((item, answer, client_gone))
        if self._idle_threads:
            self._schedule_dispatch(loop)
        return await answer

    def shutdown(self):
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)

    def _schedule_dispatch(self, loop):
        # Not at once: requests the loop reads in this same pass join the call, so fewer calls
        # carry a lone request, for the latency of one pass of the loop; and the clients that
        # left during the last call have had their connections' closing read.
        if not self._dispatch_scheduled:
            self._dispatch_scheduled = True
            loop.call_soon(self._dispatch, loop)

    def _dispatch(self, loop):
        self._dispatch_scheduled = False
        while self._idle_threads and self._queue:
            self._start_batch(loop)

    def _start_batch(self, loop):
        batch, rows = [], 0
        while self._queue:
            item, answer, client_gone = self._queue[0]
            if answer.done():  # its request was cancelled while it waited
                self._queue.popleft()
            elif client_gone is not None and client_gone():
                self._queue.popleft()
                answer.set_exception(ClientGone())
            elif not batch or (self.merge and rows + item.rows <= self.max_rows):
                self._queue.popleft()
                batch.append((item, answer))
                rows += item.rows
            else:
                break
        if batch:
            self._idle_threads -= 1
            if self.executor is None:
                self._run(loop.call_soon, loop, batch)
            else:
                self.executor.submit(self._run, loop.call_soon_threadsafe, loop, batch)

    def _run(self, schedule, loop, batch):
        """On a model thread (or the loop): one call for the whole batch, then `schedule` its answers on the loop."""
        try:
            answers, error = self.run_batch([item for item, _ in batch]), None
        except Exception as exception:  # raised to each waiting request, as a call of its own would
            answers, error = None, exception
        schedule(self._finished, loop, batch, answers, error)

    def _finished(self, loop, batch, answers, error):
        self._idle_threads += 1
        for index, (_, answer) in enumerate(batch):
            if answer.done():
                continue
            if error is None:
                answer.set_result(answers[index])
            else:
                answer.set_exception(error)
        self._schedule_dispatch(loop)
