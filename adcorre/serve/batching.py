"""Work that arrives from many threads at about the same time, done in one call: `Batcher`.

The web app's request threads each `submit` one picture; one worker thread takes the pictures
waiting and, when other clients are about (it took more than one, its last batch held more, or
the picture came while a batch ran), waits at most `max_wait_ms` milliseconds for more (none once `max_batch` are there); then it hands
the list to one call of `run_batch`. A lone client's picture never waits. A model is much cheaper per picture in a batch (Xception on a 2-core CPU: a batch
of 16 costs about 60 % of 16 single calls), and the worker is the only thread that touches the
model and the face detector, which are not safe for concurrent calls.

Example:

>>> batcher = Batcher(lambda items: [item * 2 for item in items], max_batch=4, max_wait_ms=1)
>>> batcher.submit(21)
42
>>> batcher.close()
"""

import concurrent.futures
import queue
import threading
import time

from adcorre.errors import SettingError

# The defaults of the web app, measured with `bench/bench_server.py` (docs/performance.md).
DEFAULT_MAX_BATCH = 8
DEFAULT_MAX_WAIT_MS = 10.0
_STOP = object()


class BatcherClosedError(RuntimeError):
    """`submit` after `close` (the server is stopping)."""


class _Pending:
    __slots__ = ("item", "future", "arrived")

    def __init__(self, item):
        self.item = item
        self.future = concurrent.futures.Future()
        self.arrived = time.perf_counter()


class Batcher:
    """Runs `run_batch(items)` on items submitted from many threads, several items per call.

    Args:
        run_batch: a function of a list of items returning one result per item, in order. If
            it raises for a batch of several, each item of that batch is run again alone, so
            an item that fails fails only its own `submit`.
        max_batch: at most this many items per call.
        max_wait_ms: milliseconds the worker waits for more items when other submitters are
            about (0: take only what is already queued).
        observe: called after each batch with `(size, waits, seconds)`: the number of items,
            each item's seconds in the queue and the call's seconds (metrics).
        name: the worker thread's name.

    Raises:
        SettingError: a `max_batch` below 1 or a negative `max_wait_ms`.
    """

    def __init__(self, run_batch, max_batch=DEFAULT_MAX_BATCH, max_wait_ms=DEFAULT_MAX_WAIT_MS,
                 observe=None, name="batcher"):
        self.max_batch, self.max_wait_ms = check_batching(max_batch, max_wait_ms)
        self._run_batch = run_batch
        self._observe = observe
        self._queue = queue.Queue()
        self._closed = False
        self._last_size = 1
        self._free_since = 0.0
        self._closing = threading.Lock()
        self._worker = threading.Thread(target=self._loop, name=name, daemon=True)
        self._worker.start()

    def submit(self, item):
        """Blocks until the item's batch has run; returns its result or raises its error."""
        pending = _Pending(item)
        with self._closing:  # nothing may queue behind the stop
            if self._closed:
                raise BatcherClosedError("the server is stopping; send the request again later.")
            self._queue.put(pending)
        return pending.future.result()

    def close(self):
        """Finishes the items already submitted, then stops the worker."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._worker.join()

    # ----------------------------------------------------------------------------- the worker

    def _loop(self):
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop = self._collect(first)
            self._run(batch)
            if stop:
                return

    def _collect(self, first):
        """`first`, what waits behind it, and what comes within the wait when company is about:
        `(batch, whether a stop came)`."""
        batch = [first]
        if self._take(batch, timeout=None):
            return batch, True
        queued = first.arrived < self._free_since  # it came while the last batch ran
        if len(batch) > 1 or self._last_size > 1 or queued:
            # Other clients are about: wait for their next pictures. Measured from now, not from
            # the first picture's arrival, so clients that send again as soon as they have an
            # answer meet in one batch instead of alternating between two half-full ones. A
            # lone client (batches of one, each sent after the last answer) never waits.
            if self._take(batch, timeout=time.perf_counter() + self.max_wait_ms / 1e3):
                return batch, True
        self._last_size = len(batch)
        return batch, False

    def _take(self, batch, timeout):
        """Adds queued items to `batch` up to `max_batch`: those already there (`timeout`
        None), or those that come until the `timeout` deadline. True if a stop came."""
        while len(batch) < self.max_batch:
            try:
                if timeout is None:
                    item = self._queue.get_nowait()
                else:
                    item = self._queue.get(timeout=max(0.0, timeout - time.perf_counter()))
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            batch.append(item)
        return False

    def _run(self, batch):
        try:
            self._run_items(batch)
        finally:
            self._free_since = time.perf_counter()

    def _run_items(self, batch):
        started = time.perf_counter()
        try:
            results = self._run_batch([pending.item for pending in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"run_batch returned {len(results)} results for "
                                   f"{len(batch)} items")
        except Exception as error:  # noqa: BLE001 (handed to the submitting threads)
            if len(batch) == 1:
                batch[0].future.set_exception(error)
            else:  # find the item at fault: each alone
                for pending in batch:
                    self._run_items([pending])
            return
        if self._observe is not None:
            self._observe(len(batch), [started - pending.arrived for pending in batch],
                          time.perf_counter() - started)
        for pending, result in zip(batch, results):
            pending.future.set_result(result)


def check_batching(max_batch, max_wait_ms):
    """`(max_batch, max_wait_ms)` checked: an int >= 1 and a number >= 0, else `SettingError`."""
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise SettingError(f"max_batch must be a whole number of pictures >= 1, got "
                           f"{max_batch!r}.")
    if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, (int, float)) or \
            not 0 <= max_wait_ms < float("inf"):
        raise SettingError(f"max_wait_ms must be a number of milliseconds >= 0, got "
                           f"{max_wait_ms!r}.")
    return max_batch, float(max_wait_ms)
