"""A stop by a signal, as Ctrl+C stops: SIGTERM and SIGHUP raise where the program is.

By default SIGTERM (what `kill`, a job scheduler or a container's stop sends) and SIGHUP (a
closed terminal) end Python at once: no `finally` runs, so a file being written under a
temporary name (`atomic_files`) stays behind as `.tmp-...`. Inside `signals_stop()` they raise
`Stopped`, a `KeyboardInterrupt` as Ctrl+C's, where the program is: every `finally` on the way
out removes what it was writing, and the command says `stopped: ...` with the exit status
128 + the signal's number (`cli.common.run_task`, 143 for SIGTERM). Every command runs its work
inside it; a training run adds how to resume to the message (`make_stop`).

Example:
>>> import os, signal
>>> with signals_stop():
...     try:
...         os.kill(os.getpid(), signal.SIGTERM)
...         for _ in range(10**6):  # the handler raises at the next line Python runs
...             pass
...     except Stopped as stop:
...         print(stop, stop.signal_number == signal.SIGTERM)
terminated (SIGTERM) True
"""

import contextlib
import signal
import threading

# The signals that stop a command as Ctrl+C does (SIGHUP is POSIX only).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """A command stopped by a signal, as Ctrl+C stops it: a `KeyboardInterrupt`, so nothing on
    the way out takes it for an error to handle, and every `finally` runs.

    Args:
        signal_number: the signal that stopped it.
        message: what the stop line says; default "terminated (SIGTERM)" and the like.

    Attributes:
        signal_number: as given; the exit status is 128 + it.
    """

    def __init__(self, signal_number, message=None):
        self.signal_number = int(signal_number)
        if message is None:
            name = signal.Signals(signal_number).name
            message = f"{(signal.strsignal(signal_number) or name).lower()} ({name})"
        super().__init__(message)


# The stops of the `signals_stop` blocks now open, outermost first (None: the plain `Stopped`).
_OPEN = []
_stopping = False  # a stop is on its way out: further signals wait for its clean-up


def _stop(number, frame):
    """The handler: raises the stop of the outermost block that words its own (a training
    run's says how to resume, over a download's inside it), else the plain `Stopped`."""
    global _stopping
    if _stopping:
        return
    _stopping = True
    make_stop = next((make for make in _OPEN if make is not None), Stopped)
    raise make_stop(number)


@contextlib.contextmanager
def signals_stop(make_stop=None):
    """While inside, each of `STOP_SIGNALS` raises a stop (a `KeyboardInterrupt`) where the main
    thread is; the handlers before are put back on the way out.

    Blocks nest (every command's work, the download or the run inside it): the stop raised is
    the outermost block's `make_stop`, so the most telling message wins. A second signal while
    the first stop is on its way out (its `finally` blocks removing files) is ignored, so it
    cannot cut that clean-up short. A signal someone else handles or ignores (`nohup` ignores
    SIGHUP) is left as it is, and so is every signal in a thread other than the main one,
    where no handler can be set.

    Args:
        make_stop: signal number -> the `KeyboardInterrupt` to raise; None: `Stopped`, or the
            stop of a block around this one.
    """
    global _stopping
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    taken = [number for number, handler in previous.items() if handler in (signal.SIG_DFL, _stop)]
    _OPEN.append(make_stop)
    for number in taken:
        signal.signal(number, _stop)
    try:
        yield
    finally:
        _OPEN.pop()
        for number in taken:
            signal.signal(number, previous[number])
        if not _OPEN:
            _stopping = False
