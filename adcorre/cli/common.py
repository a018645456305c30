"""What every command shares: how an error a user caused becomes one line and an exit status.

`run_task` runs a command's work and turns the errors a user can cause into `error: <one line>`
on stderr and an exit status: an `adcorre.errors.AdCorreError` (a setting, a dataset, a picture,
a weight file, a missing optional package) and a path that is not there (or is in the way)
exit 2, fix the input and run again; the disk or memory failing under a run set up right (full,
read-only, no permission) exits 1. Anything else is a bug of ours and keeps its traceback.
Ctrl+C (and SIGTERM, which training turns into the same stop) is one `stopped: ...` line and the
exit status 128 + the signal's number (130, 143).

Example:
>>> from adcorre.errors import SettingError
>>> def task():
...     raise SettingError("margin must be a number from 0 to 1, got -1.")
>>> import contextlib, io
>>> with contextlib.redirect_stderr(io.StringIO()) as err:
...     status = run_task(task)
>>> status, err.getvalue()
(2, 'error: margin must be a number from 0 to 1, got -1.\\n')

This module imports `errors` only.
"""

import argparse
import gc
import signal
import sys

from adcorre.errors import AdCorreError, one_line

# OS errors that name a path the user gave: fix the command, as for any usage error.
PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)


def _resource_errors():
    """TensorFlow's own disk and memory errors (its file writers raise them, not OSError);
    none when TensorFlow was never loaded (then nothing can have raised them)."""
    tf = sys.modules.get("tensorflow")
    errors = getattr(tf, "errors", None)
    if errors is None:
        return ()
    return errors.PermissionDeniedError, errors.ResourceExhaustedError


def exit_status(error):
    """2 for an error the user can fix by changing the command, 1 for a disk or memory failure,
    None for anything else (a bug: it keeps its traceback)."""
    if isinstance(error, AdCorreError):
        return error.exit_status
    if isinstance(error, PATH_ERRORS):
        return 2
    if isinstance(error, (OSError, MemoryError, *_resource_errors())):
        return 1
    return None


def run_task(task, *args, stopped="", **kwargs):
    """`task(*args, **kwargs)`'s exit status, or the status of the user's error it raised.

    Args:
        task: the command's work; returns its exit status.
        stopped: words put before the message of a disk or memory failure (e.g. "the run
            stopped: ").

    Returns:
        The task's status, or 2 / 1 after printing `error: <message>` (one line) to stderr.
    """
    try:
        return task(*args, **kwargs)
    except KeyboardInterrupt as stop:  # Ctrl+C, or SIGTERM where the task turns it into one
        number = getattr(stop, "signal_number", signal.SIGINT)
        said = one_line(stop) or "interrupted (Ctrl+C)"
        print(f"stopped: {said}", file=sys.stderr, flush=True)
        return 128 + int(number)
    except Exception as error:  # noqa: BLE001  (re-raised below unless it is the user's)
        status = exit_status(error)
        if status is None:
            raise
        print(f"error: {stopped if status == 1 else ''}{one_line(error)}", file=sys.stderr,
              flush=True)
        # The traceback holds the failed writer's objects (h5py's among them): let them go
        # now, while their libraries are still there, not at interpreter exit.
        del error
        gc.collect()
        return status


def positive_int(text):
    """An argparse type: an integer >= 1 (`--every`, `--n`...)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value
