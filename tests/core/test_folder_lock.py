"""`folder_lock`: one writer per folder, the holder named, an abandoned lock taken over."""

import json
import os
import socket
import subprocess
import time

import pytest

from adcorre.errors import FolderInUseError
from adcorre.folder_lock import LOCK_NAME, StaleLockWarning, locked_folder, read_holder
from helpers import python_command, python_env, run_python


def _write_lock(folder, **holder):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_NAME)
    with open(path, "w") as handle:
        json.dump({"host": socket.gethostname(), "started": "2026-01-01 10:00:00",
                   "started_at": time.time() - 5, **holder}, handle)
    return path


def test_the_lock_names_its_holder_and_goes_at_the_end(tmp_path):
    folder = tmp_path / "run"
    with locked_folder(folder) as lock:
        holder = read_holder(lock)
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        assert abs(holder["started_at"] - time.time()) < 60 and holder["started"]
        with pytest.raises(FolderInUseError) as refused, locked_folder(folder):
            pass
        message = str(refused.value)
        assert f"in use by process {os.getpid()} on host {socket.gethostname()}" in message
        assert os.path.exists(lock)  # a refused second holder leaves the first one's lock
    assert os.listdir(folder) == []


def test_of_two_processes_started_at_once_one_holds_the_folder(tmp_path):
    code = """
import sys, time
from adcorre.cli.common import run_task
from adcorre.folder_lock import locked_folder

def hold():
    with locked_folder(sys.argv[1]):
        print("held", flush=True)
        time.sleep(3)
    return 0

sys.exit(run_task(hold))
"""
    children = [subprocess.Popen(python_command(code, argv=[tmp_path / "run"]), env=python_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    results = [(child.wait(timeout=120), *child.communicate()) for child in children]
    assert sorted(status for status, _, _ in results) == [0, 2], results
    (held,) = [child.pid for child, (status, _, _) in zip(children, results) if status == 0]
    refused = next(err for status, _, err in results if status == 2)
    assert refused.startswith("error: The run folder") and f"process {held} on host" in refused
    assert os.listdir(tmp_path / "run") == []


def test_the_lock_of_a_process_that_is_gone_is_taken_over_saying_so(tmp_path):
    gone = run_python("import os; print(os.getpid())").stdout.strip()
    lock = _write_lock(tmp_path / "run", pid=int(gone))
    with pytest.warns(StaleLockWarning, match=f"took over the lock of process {gone} on host"):
        with locked_folder(tmp_path / "run"):
            assert read_holder(lock)["pid"] == os.getpid()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_a_pid_reused_by_a_later_process_is_no_holder(tmp_path):
    _write_lock(tmp_path / "run", pid=os.getpid(), started_at=1.0)  # "this" PID, decades ago
    with pytest.warns(StaleLockWarning), locked_folder(tmp_path / "run"):
        pass


def test_a_lock_of_another_host_is_never_guessed_at(tmp_path):
    lock = _write_lock(tmp_path / "run", pid=1, host="elsewhere")
    with pytest.raises(FolderInUseError, match="process 1 on host elsewhere.*remove the lock file"
                                               " by hand"):
        with locked_folder(tmp_path / "run"):
            pass
    assert read_holder(lock)["host"] == "elsewhere"


def test_an_empty_lock_is_being_made_then_abandoned(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    lock = folder / LOCK_NAME
    lock.write_text("")
    with pytest.raises(FolderInUseError, match="is being locked by another process"):
        with locked_folder(folder):
            pass
    os.utime(lock, (time.time() - 60, time.time() - 60))
    with pytest.warns(StaleLockWarning, match="took over the lock of a process"):
        with locked_folder(folder):
            assert read_holder(lock)["pid"] == os.getpid()
