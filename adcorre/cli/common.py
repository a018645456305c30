"""What every command shares: how an error a user caused becomes one line and an exit status.

`run_task` runs a command's work and turns the errors a user can cause into `error: <one line>`
on stderr and an exit status: an `adcorre.errors.AdCorreError` (a setting, a dataset, a picture,
a weight file, a missing optional package) and a path that is not there (or is in the way)
exit 2, fix the input and run again; the disk or memory failing under a run set up right (full,
read-only, no permission) exits 1. Anything else is a bug of ours and keeps its traceback.
Ctrl+C, SIGTERM and SIGHUP stop every command alike (`signal_stops`: the files being written are
removed on the way out): one `stopped: ...` line and the exit status 128 + the signal's number
(130, 143, 129).

Example:
>>> from adcorre.errors import SettingError
>>> def task():
...     raise SettingError("margin must be a number from 0 to 1, got -1.")
>>> import contextlib, io
>>> with contextlib.redirect_stderr(io.StringIO()) as err:
...     status = run_task(task)
>>> status, err.getvalue()
(2, 'error: margin must be a number from 0 to 1, got -1.\\n')

This module imports `errors`, `signal_stops` and `config` (and `data.datasets` and
`data.dataset_readers` when a dataset folder is checked).
"""

import argparse
import gc
import math
import os
import signal
import sys

from adcorre import config, signal_stops
from adcorre.errors import AdCorreError, DatasetNotFoundError, SettingError, one_line

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
        with signal_stops.signals_stop():
            return task(*args, **kwargs)
    except KeyboardInterrupt as stop:  # Ctrl+C, or a stopping signal (`signal_stops.Stopped`)
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


def quiet_broken_pipe(main, *args, **kwargs):
    """`main(*args, **kwargs)`'s exit status, or 1 without a traceback when stdout's reader went
    away (`adcorre weights | head -1`).

    Python's recipe (docs: signal, "Note on SIGPIPE"): stdout is flushed here, where the error
    can be caught, and pointed at devnull so the interpreter's own flush at exit stays quiet.
    """
    try:
        try:
            return main(*args, **kwargs)
        finally:  # `--list-weights` leaves through SystemExit with its lines still buffered
            sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def positive_int(text):
    """An argparse type: an integer >= 1 (`--every`, `--n`...)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def number(minimum, inclusive, why="", maximum=math.inf, maximum_inclusive=False):
    """An argparse type: a finite number above (or, `inclusive`, at least) `minimum` and below
    (or, `maximum_inclusive`, at most) `maximum`; `why` ends the message (the upper bound, a
    reason)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if (not math.isfinite(value) or value < minimum or (value == minimum and not inclusive)
                or value > maximum or (value == maximum and not maximum_inclusive)):
            bound = f"{'>=' if inclusive else '>'} {minimum:g}"
            raise argparse.ArgumentTypeError(f"expected a number {bound}{why}, got {text!r}")
        return value

    return parse


def labels(text):
    """An argparse type (`--labels`): a preset of `config.LABEL_PRESETS` (one word, returned in
    lower case) or two or more comma-separated names (a list).

    One word is always a preset: a classifier of one class is no classifier, so a misspelt
    preset is refused here rather than after the model loads.
    """
    if "," not in text:
        if text.lower() not in config.LABEL_PRESETS:
            raise argparse.ArgumentTypeError(
                f"Unknown label preset {text!r}; expected one of "
                f"{', '.join(config.LABEL_PRESETS)} or comma-separated label names")
        return text.lower()
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated label names, got {text!r} "
                                         "(an empty name)")
    return names


def input_range(text):
    """An argparse type (`--input-range`): `LO,HI`, two numbers, LO < HI."""
    try:
        low, high = (float(value) for value in text.split(","))
    except ValueError:
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise argparse.ArgumentTypeError(f"expected LO,HI with LO < HI (e.g. 0,1 or "
                                         f"--input-range=-1,1), got {text!r}")
    return low, high


def refuse_dash_values(parser, argv, flags=("--input-range",)):
    """A usage error for `--input-range -1,1`: argparse reads a value that starts with "-" as
    the next option and would only say "expected one argument"; this says to write `=`."""
    argv = sys.argv[1:] if argv is None else argv
    for flag, value in zip(argv, argv[1:]):
        if flag in flags and value.startswith("-"):
            example = value if value[1:2].isdigit() or value[1:2] == "." else "-1,1"
            parser.error(f"argument {flag}: expected LO,HI; write {flag}={example} (joined with "
                         "'='): a value starting with '-' is read as the next option")


def check_data_dir(parser, dataset, data_dir):
    """One usage error, before TensorFlow loads, for an unknown `--dataset`, a dataset folder
    that is not there (`--data-dir`, or the default one), or one that lacks what its layout
    needs (the dataset record's `required` files)."""
    from adcorre.data import datasets  # noqa: PLC0415 - the records: only when a dataset is named
    from adcorre.data.dataset_readers import find_data_dir  # noqa: PLC0415

    try:
        record = datasets.get(dataset, setting="--dataset")
        if not record.needs_data_dir:
            return
        folder = find_data_dir(dataset, data_dir, setting="--data-dir")
    except (SettingError, DatasetNotFoundError) as error:
        parser.error(str(error))
    missing = record.missing(folder)
    if missing:
        parser.error(f"argument --data-dir: {folder} holds no {record.title}: {'; '.join(missing)}"
                     f" not found there. Expected {record.layout_text}.")
