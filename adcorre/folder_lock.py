"""One writer per folder: a lock file that names the process holding the folder.

`locked_folder(folder)` creates `folder/LOCK_NAME` with `O_CREAT | O_EXCL` (the file system
makes one creator win, whatever the timing) holding the holder's PID, host and start time, and
removes it on the way out. A second process is refused with one `FolderInUseError` naming the
holder. A lock left by a process that is gone (same host, its PID not running, or running but
started after the lock was made: the PID was reused) is taken over, and a warning says so;
a lock of another host is never guessed at: the message says to remove it by hand if that
process is gone.

Example:
>>> with locked_folder("run") as lock:
...     holder = read_holder(lock)
...     holder["pid"] == os.getpid(), os.path.basename(lock)
(True, '.adcorre.lock')
>>> os.listdir("run")
[]
"""

import contextlib
import datetime
import json
import os
import socket
import time
import warnings

from adcorre.errors import FolderInUseError

LOCK_NAME = ".adcorre.lock"
# How long a lock file may stay empty before it counts as abandoned (its creator died between
# creating and writing it: microseconds apart).
_EMPTY_GRACE_S = 10.0


class StaleLockWarning(UserWarning):
    """A lock left by a process that is no longer running was taken over."""


def read_holder(lock_path):
    """What a lock file says of its holder (`pid`, `host`, `started`, `started_at`), or None
    when it holds nothing readable."""
    try:
        with open(lock_path, encoding="utf-8") as handle:
            holder = json.load(handle)
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None


def describe_holder(holder):
    """"process 123 on host h, since 2026-01-01 10:00:00" for messages."""
    return (f"process {holder['pid']} on host {holder.get('host', '?')}, since "
            f"{holder.get('started', '?')}")


def _process_start(pid):
    """When process `pid` started (seconds since the epoch), where /proc says; else None."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as handle:
            boot = next(float(line.split()[1]) for line in handle if line.startswith("btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _is_running(holder):
    """Whether the holder (of this host) still runs: its PID is alive and is the same process
    (not a later one that got the PID again)."""
    pid = holder["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    started = _process_start(pid)
    return started is None or started <= float(holder.get("started_at", started)) + 2.0


def _write_new(lock_path):
    """Creates the lock file, failing with `FileExistsError` if it exists; returns the holder."""
    now = time.time()
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": now,
              "started": datetime.datetime.fromtimestamp(now).strftime("%Y-%m-%d %H:%M:%S")}
    descriptor = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(holder, handle)
        handle.flush()
        os.fsync(handle.fileno())
    return holder


def _take(lock_path, what):
    """Creates the lock, taking over an abandoned one; raises `FolderInUseError` if held."""
    for _ in range(3):  # a lock removed or taken over by another process meanwhile: look again
        try:
            return _write_new(lock_path)
        except FileExistsError:
            pass
        holder = read_holder(lock_path)
        if holder is None:
            age = _age(lock_path)
            if age is None:
                continue  # gone meanwhile
            if age < _EMPTY_GRACE_S:
                raise FolderInUseError(f"{what} {os.path.dirname(lock_path)} is being locked by "
                                       f"another process ({lock_path} was just made); wait for it "
                                       "or use another folder.")
            holder = {}
        elif holder.get("host") != socket.gethostname() or _is_running(holder):
            gone = (" If that process is gone, remove the lock file by hand."
                    if holder.get("host") != socket.gethostname() else "")
            raise FolderInUseError(f"{what} {os.path.dirname(lock_path)} is in use by "
                                   f"{describe_holder(holder)} ({lock_path}); wait for it to "
                                   f"finish or use another folder.{gone}")
        if _remove_if_unchanged(lock_path, holder):
            warnings.warn(f"{lock_path}: took over the lock of "
                          f"{describe_holder(holder) if holder else 'a process'} that is no "
                          "longer running.", StaleLockWarning, stacklevel=4)
    raise FolderInUseError(f"{what} {os.path.dirname(lock_path)}: other processes keep taking "
                           f"its lock ({lock_path}); use another folder.")


def _age(path):
    try:
        return time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return None


def _remove_if_unchanged(lock_path, holder):
    """Removes an abandoned lock if it still says what was read (another process may have
    taken it over meanwhile: then theirs stays). True if removed."""
    aside = f"{lock_path}.{os.getpid()}.stale"
    try:
        os.rename(lock_path, aside)  # atomic: of two processes only one moves any given file
    except FileNotFoundError:
        return False
    moved = read_holder(aside) or {}
    if moved != holder:  # not the abandoned lock: a live process's fresh one; put it back
        with contextlib.suppress(OSError):
            os.link(aside, lock_path)
        with contextlib.suppress(OSError):
            os.remove(aside)
        return False
    os.remove(aside)
    return True


@contextlib.contextmanager
def locked_folder(folder, what="The run folder"):
    """Holds `folder` for this process while inside (the folder is created if needed).

    Args:
        folder: the folder to hold.
        what: the folder in words, for the messages ("The run folder").

    Yields:
        The lock file's path.

    Raises:
        FolderInUseError: another running process holds the folder (the message names it).
    """
    os.makedirs(folder, exist_ok=True)
    lock_path = os.path.join(folder, LOCK_NAME)
    holder = _take(lock_path, what)
    try:
        yield lock_path
    finally:
        if read_holder(lock_path) == holder:
            with contextlib.suppress(OSError):
                os.remove(lock_path)
