"""A run stopped at any moment, or by a full disk wherever it strikes, leaves nothing
half-written and records that agree (each test written to fail before its fix).

Each scenario runs the training command in a child process that stops itself at the moment
under test: a SIGTERM sent from inside the very write the issue names (an epoch's `.h5`; the
`training_state.json` of an epoch end, before log.csv and the backup), or a file-size limit
(RLIMIT_FSIZE, the kernel's own "no more bytes in this file", EFBIG) that strikes a chosen write.
"""

import csv
import json
import os
import signal

import numpy as np
import pytest

from helpers import run_python, tiny_trainer

CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}
# 3 epochs of 4 batches of 16 SynthFER faces at 32 px; a backup every 2 batches.
ARGV = ["--epochs", "3", "--synth-train-size", "64", "--synth-test-size", "16", "--batch-size",
        "16", "--input-size", "32", "--backup-every", "2"]

# The child: the training command, with one write wrapped so that it stops the run from inside.
CHILD = """
import os, signal, sys, resource
from adcorre import atomic_files
from adcorre.cli import train

save_dir, mode, argument = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == "limit":  # a full disk for every file past `argument` bytes
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(argument), int(argument)))
elif mode == "term-in-h5":  # SIGTERM half way through writing epoch `argument`'s .h5
    write_bytes = atomic_files.write_bytes
    def slow(path, data):
        if f"_{argument}_AC_" not in os.path.basename(path):
            return write_bytes(path, data)
        with atomic_files.atomic_path(path) as temporary:
            with open(temporary, "wb") as handle:
                handle.write(data[: len(data) // 2])
                handle.flush()
                os.kill(os.getpid(), signal.SIGTERM)
                handle.write(data[len(data) // 2:])
    atomic_files.write_bytes = slow
elif mode == "term-after-state":  # SIGTERM right after epoch `argument`'s training_state.json
    write_json = atomic_files.write_json
    def then_stop(path, payload):
        write_json(path, payload)
        if path.endswith("training_state.json") and payload["history"][-1]["epoch"] == int(argument):
            os.kill(os.getpid(), signal.SIGTERM)
    atomic_files.write_json = then_stop
elif mode == "term-in-start-up":  # SIGTERM half way through writing run_config.json
    write_json = atomic_files.write_json
    def stop_inside(path, payload):
        if not path.endswith("run_config.json"):
            return write_json(path, payload)
        with atomic_files.atomic_path(path) as temporary:
            with open(temporary, "w") as handle:
                handle.write("{")
                handle.flush()
                os.kill(os.getpid(), signal.SIGTERM)
    atomic_files.write_json = stop_inside
sys.exit(train.main([*sys.argv[4:], "--save-dir", save_dir]))
"""


def _train(save_dir, mode="none", argument="0", argv=ARGV):
    return run_python(CHILD, argv=[save_dir, mode, argument, *argv], env=CPU_ONLY, timeout=600)


def _left_behind(folder):
    """Temporary files anywhere in the run folder (atomic writes' `.tmp-`, downloads', ...)."""
    return [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names
            if name.startswith((".tmp-", ".download-")) or ".tmp" in name]


def _records(save_dir):
    with open(os.path.join(save_dir, "training_state.json")) as handle:
        history = [entry["epoch"] for entry in json.load(handle)["history"]]
    with open(os.path.join(save_dir, "log.csv"), newline="") as handle:
        logged = [int(row["epoch"]) for row in csv.DictReader(handle)]
    return history, logged


def test_sigterm_while_an_epochs_h5_is_written_leaves_nothing_half_written(tmp_path):
    """A `.tmp-...h5` of 96 bytes stayed after the resumed run finished."""
    save_dir = str(tmp_path / "run")
    stopped = _train(save_dir, "term-in-h5", "2")
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    said = [line for line in stopped.stderr.splitlines() if line.startswith("stopped:")]
    assert len(said) == 1 and "SIGTERM" in said[0] and f"--save-dir {save_dir}" in said[0]
    assert "Traceback" not in stopped.stderr
    assert _left_behind(save_dir) == []
    resumed = _train(save_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _left_behind(save_dir) == []
    assert _records(save_dir) == ([1, 2, 3], [1, 2, 3])


def test_a_stop_between_an_epochs_records_and_its_backup_is_not_recorded_twice(tmp_path):
    """History epochs [1, 1, 2, 3], and a log.csv that disagreed with them."""
    save_dir = str(tmp_path / "run")
    stopped = _train(save_dir, "term-after-state", "2")
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    resumed = _train(save_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming" in resumed.stdout
    assert _records(save_dir) == ([1, 2, 3], [1, 2, 3])


def test_a_stop_in_the_first_epoch_before_any_backup_starts_over(tmp_path):
    """Without a mid-epoch backup (an epoch of 200 steps or fewer at the default --backup-every
    200), a stop after epoch 1's records left a folder no command could resume: "holds a
    finished run ... but no backup"."""
    save_dir = str(tmp_path / "run")
    argv = [*ARGV[:-1], "0"]
    stopped = _train(save_dir, "term-after-state", "1", argv)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    assert not os.path.exists(os.path.join(save_dir, "backup"))
    again = _train(save_dir, argv=argv)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"Starting {save_dir} over" in again.stdout
    assert _records(save_dir) == ([1, 2, 3], [1, 2, 3])


def test_sigterm_during_start_up_is_the_same_clean_stop(tmp_path):
    """Only the epochs were covered: a SIGTERM while run_config.json was written killed the
    process with no `stopped:` line and left `.tmp-...-run_config.json`."""
    save_dir = str(tmp_path / "run")
    stopped = _train(save_dir, "term-in-start-up")
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    said = [line for line in stopped.stderr.splitlines() if line.startswith("stopped:")]
    assert len(said) == 1 and "SIGTERM" in said[0] and "Traceback" not in stopped.stderr
    assert _left_behind(save_dir) == []


def _epoch_file(folder, epoch, accuracy):
    path = folder / f"synth_{epoch}_AC_{accuracy:.4f}.h5"
    path.write_bytes(b"model")
    return str(path)


@pytest.mark.parametrize("selected_by", ["test", "validation"])
def test_dropped_epochs_take_their_best_and_latest_with_them(tmp_path, selected_by):
    """History was trimmed to the backup's epochs but best_epoch still named a dropped one, so
    the epoch trained again had to beat the score of a model no record listed."""
    from adcorre.training.resume import agree_with_the_backup

    key = "val_accuracy" if selected_by == "validation" else "test_accuracy"
    # Epoch 1's file went when epoch 2 beat it (no --keep-all); epoch 3 is the dropped one.
    scores = {1: (0.60, 0.90), 2: (0.50, 0.80), 3: (0.70, 0.95)}  # test, validation
    paths = {epoch: _epoch_file(tmp_path, epoch, test) for epoch, (test, _) in scores.items()}
    os.remove(paths[1])
    history = [{"epoch": epoch, "test_accuracy": test, "val_accuracy": val}
               for epoch, (test, val) in scores.items()]
    state = {"dataset": "synth", "selected_by": selected_by, "history": history,
             "best_epoch": 3, "best_accuracy": 0.70, "best_path": paths[3],
             "latest_path": paths[3]}
    if selected_by == "validation":
        state["best_val_accuracy"] = 0.95
    (tmp_path / "training_state.json").write_text(json.dumps(state))
    agree_with_the_backup(str(tmp_path), state, 2)
    written = json.loads((tmp_path / "training_state.json").read_text())
    assert written == state and [entry["epoch"] for entry in state["history"]] == [1, 2]
    assert (state["best_epoch"], state["best_path"], state["latest_path"]) == (2, paths[2], paths[2])
    assert state["best_accuracy"] == 0.50
    assert state.get("best_val_accuracy") == (0.80 if key == "val_accuracy" else None)
    # With epoch 1's file still there, it is the best of the kept epochs again.
    _epoch_file(tmp_path, 1, 0.60)
    state.update(history=history, best_epoch=3)
    agree_with_the_backup(str(tmp_path), state, 2)
    assert (state["best_epoch"], state["latest_path"]) == (1, paths[2])


@pytest.mark.parametrize("limit, backup_every", [
    (20_000, "2"),       # the first mid-epoch backup (HDF5 crashed the process: exit 139)
    (2_000_000, "2"),    # the same, half way through its weights
    (200_000, "0"),      # an epoch's .h5 (HDF5's RuntimeError, a traceback)
    (500, "0"),          # run_config.json
], ids=["backup-start", "backup-middle", "epoch-h5", "run-config"])
def test_a_full_disk_is_one_line_and_status_1_wherever_it_strikes(limit, backup_every, tmp_path):
    save_dir = str(tmp_path / "run")
    argv = [*ARGV[:-1], backup_every]
    run = _train(save_dir, "limit", str(limit), argv)
    assert run.returncode == 1, (run.returncode, run.stderr[-3000:])
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: the run stopped: [Errno 27]")
    assert "Traceback" not in run.stderr and "Exception ignored" not in run.stderr
    assert _left_behind(save_dir) == []


def test_a_resumed_epochs_loss_and_accuracy_count_all_its_batches(tmp_path):
    """They covered only the batches run after the resume; the backup now carries the running
    means, and `batches_counted` says how many batches a row covers."""
    from adcorre.training.resume import ResumableBackup

    source = tiny_trainer()
    labels = np.array([0, 1, 1, 2, 3, 3])
    source.accuracy_tracker.update_state(labels, np.eye(7)[[0, 1, 2, 2, 3, 4]])  # 4 of 6 right
    for tracker, value in zip(source.term_trackers, (1.5, 0.25, 0.5, 0.75)):
        tracker.update_state(value)
    backup = ResumableBackup(str(tmp_path / "backup"), chief=True)
    backup.set_model(source)
    backup._save(1, 30)
    saved = {m.name: float(m.result()) for m in source.epoch_metrics}

    resumed = tiny_trainer()
    restorer = ResumableBackup(str(tmp_path / "backup"), chief=True)
    restorer.set_model(resumed)
    assert restorer.load(resumed) == (1, 30)
    for metric in resumed.epoch_metrics:
        metric.reset_state()  # what Keras does just before on_epoch_begin
    restorer.set_params({"steps": 70})
    restorer.on_epoch_begin(1)
    assert {m.name: float(m.result()) for m in resumed.epoch_metrics} == saved
    assert saved["accuracy"] == pytest.approx(4 / 6)
    assert restorer.batches_counted() == 100  # 30 before the stop + the 70 of this fit call
    restorer.on_epoch_begin(2)  # the next epoch starts from nothing
    assert restorer.batches_counted() == 70
