"""`signal_stops`: the one handler every command's stop goes through (issue 31). Signals are sent
to this process itself; each is raised at the next line Python runs."""

import os
import signal
import time

import pytest

from adcorre import signal_stops
from adcorre.signal_stops import Stopped, signals_stop


def _signal_self(number):
    os.kill(os.getpid(), number)
    # The handler runs in the main thread between two bytecodes; when the kernel hands the
    # signal to another thread (TensorFlow's, left by earlier tests), the main thread sees it
    # at its next check, so wait by the clock, not by a count of loops (on a busy machine a
    # million loops passed first).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.001)
    pytest.fail("the signal was not raised within 30 s")


@pytest.fixture(autouse=True)
def _signals_as_a_terminal_leaves_them():
    """Under `nohup` (a CI job started so) SIGHUP arrives ignored, and `signals_stop` rightly
    leaves it so; these tests are about signals a command obeys, so they start from the
    defaults and put back what was there."""
    before = {number: signal.getsignal(number) for number in signal_stops.STOP_SIGNALS}
    for number in before:
        signal.signal(number, signal.SIG_DFL)
    yield
    for number, handler in before.items():
        signal.signal(number, handler)


class Worded(KeyboardInterrupt):
    def __init__(self, number, what):
        self.signal_number = number
        super().__init__(f"{what} stopped")


@pytest.mark.parametrize("name", [name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)])
def test_a_signal_is_a_stop_and_the_handlers_come_back(name):
    number = signal.Signals[name]
    before = signal.getsignal(number)
    with pytest.raises(Stopped) as stop, signals_stop():
        _signal_self(number)
    assert stop.value.signal_number == number and f"({name})" in str(stop.value)
    assert signal.getsignal(number) is before


def test_nested_blocks_raise_the_outermost_worded_stop():
    with pytest.raises(Worded, match="download stopped"), signals_stop():
        with signals_stop(lambda n: Worded(n, "download")):
            _signal_self(signal.SIGTERM)
    with pytest.raises(Worded, match="run stopped"), signals_stop(lambda n: Worded(n, "run")):
        with signals_stop(lambda n: Worded(n, "download")):
            _signal_self(signal.SIGTERM)


def test_a_second_signal_does_not_cut_the_clean_up_short():
    cleaned = []
    with pytest.raises(Stopped), signals_stop():
        try:
            _signal_self(signal.SIGTERM)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # another stop while this one cleans up
            for _ in range(10**5):
                pass
            cleaned.append(True)
    assert cleaned == [True]
    with pytest.raises(Stopped), signals_stop():  # and the next command stops again
        _signal_self(signal.SIGTERM)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP is POSIX only")
def test_a_signal_ignored_or_handled_by_someone_else_is_left_alone():
    def theirs(number, frame):
        raise Worded(number, "training's")

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN), signal.signal(signal.SIGTERM, theirs)
    try:
        with signals_stop():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN  # nohup's stays
            os.kill(os.getpid(), signal.SIGHUP)
            with pytest.raises(Worded, match="training's"):
                _signal_self(signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is theirs
    finally:
        signal.signal(signal.SIGHUP, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
    assert not signal_stops._OPEN
