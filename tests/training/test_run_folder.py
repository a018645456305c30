"""A run folder is one run's (issue 31): a second run on it is refused naming the first, a lock
left by a run that is gone is taken over saying so, and a run whose folder vanishes stops with
one error and exit status 1, never naming a best model it did not keep (each test written to
fail before its fix: two runs at once both wrote one folder, log.csv got two headers and every
epoch twice; a deleted folder's run exited 0 naming a file that did not exist).
"""

import csv
import json
import os
import subprocess

import pytest

from adcorre.folder_lock import LOCK_NAME
from helpers import python_command, python_env, run_python

CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}
# 3 epochs of 4 batches of 16 SynthFER faces at 32 px.
ARGV = ["train", "--epochs", "3", "--synth-train-size", "64", "--synth-test-size", "16",
        "--batch-size", "16", "--input-size", "32"]


def _log_rows(save_dir):
    with open(os.path.join(save_dir, "log.csv"), newline="") as handle:
        return list(csv.reader(handle))


def test_of_two_runs_started_at_once_on_one_folder_one_runs(tmp_path):
    save_dir = tmp_path / "run"
    children = [subprocess.Popen(python_command(module="adcorre",
                                                argv=[*ARGV, "--save-dir", save_dir]),
                                 cwd=tmp_path, env=python_env(**CPU_ONLY), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(child, *child.communicate(timeout=600)) for child in children]
    statuses = sorted(child.returncode for child, _, _ in results)
    assert statuses == [0, 2], [(c.returncode, err[-1500:]) for c, _, err in results]
    (winner,) = [child for child, _, _ in results if child.returncode == 0]
    (_, out, err) = next(result for result in results if result[0].returncode == 2)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err[-2000:]
    assert f"{save_dir} is in use by process {winner.pid} on host" in errors[0]
    assert "Best model" not in out
    rows = _log_rows(save_dir)
    assert [row[0] for row in rows] == ["epoch", "1", "2", "3"]  # one header, each epoch once
    assert not (save_dir / LOCK_NAME).exists()  # released at the end


def test_a_lock_left_by_a_run_that_is_gone_is_taken_over_saying_so(tmp_path):
    import socket

    gone = run_python("import os; print(os.getpid())").stdout.strip()
    save_dir = tmp_path / "run"
    save_dir.mkdir()
    (save_dir / LOCK_NAME).write_text(json.dumps({
        "pid": int(gone), "host": socket.gethostname(), "started": "2026-01-01 10:00:00",
        "started_at": 0.0}))
    run = run_python(module="adcorre", argv=[*ARGV, "--epochs", "1", "--save-dir", save_dir],
                     cwd=tmp_path, env=CPU_ONLY, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    said = [line for line in run.stderr.splitlines() if "took over the lock" in line]
    assert len(said) == 1 and f"process {gone} on host" in said[0]
    assert said[0].startswith("warning: ") and "StaleLockWarning" not in run.stderr
    assert "Best model:" in run.stdout and not (save_dir / LOCK_NAME).exists()


# The child: the training command, its run folder deleted right after epoch `argument`'s
# training_state.json is written (from inside, as a second process deleting it would).
DELETED_MID_RUN = """
import os, shutil, sys
from adcorre import atomic_files
from adcorre.cli import main

save_dir, epoch = sys.argv[1], int(sys.argv[2])
write_json = atomic_files.write_json

def then_delete(path, payload):
    write_json(path, payload)
    if path.endswith("training_state.json") and payload["history"][-1]["epoch"] == epoch:
        shutil.rmtree(save_dir)

atomic_files.write_json = then_delete
sys.exit(main.main(sys.argv[3:] + ["--save-dir", save_dir]))
"""


@pytest.mark.parametrize("epoch", [1, 3])
def test_a_run_whose_folder_is_deleted_stops_with_one_error_and_status_1(tmp_path, epoch):
    save_dir = tmp_path / "run"
    run = run_python(DELETED_MID_RUN, argv=[save_dir, str(epoch), *ARGV], cwd=tmp_path,
                     env=CPU_ONLY, timeout=600)
    assert run.returncode == 1, (run.returncode, run.stdout[-1000:], run.stderr[-2000:])
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert errors[0].startswith(f"error: the run stopped: The run folder {save_dir} is gone")
    assert "Best model" not in run.stdout
    assert not save_dir.exists() or LOCK_NAME not in os.listdir(save_dir)
