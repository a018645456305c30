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


@contextlib.contextmanager
def signals_stop(make_stop=Stopped):
    """While inside, each of `STOP_SIGNALS` raises `make_stop(signal_number)` where the main
    thread is; the handlers before are put back on the way out.

    A second signal while the first stop is on its way out (its `finally` blocks removing
    files) is ignored, so it cannot cut that clean-up short. Handlers can only be set from the
    main thread: elsewhere nothing changes.

    Args:
        make_stop: signal number -> the `KeyboardInterrupt` to raise (default `Stopped`).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = False

    def stop(number, frame):
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise make_stop(number)

    previous = {number: signal.signal(number, stop) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
