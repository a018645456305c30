"""A stop by a signal, in any command, is Ctrl+C's clean stop (issue 31): SIGTERM or SIGHUP
mid-write leaves no `.tmp-*` file, prints one `stopped:` line and exits 128 + the signal.

Before, only training turned SIGTERM into a stop: `adcorre test`, `convert` and `synth` died at
once and left the file they were writing under its temporary name. Each child here is stopped
where it hurts most, deterministically: after a file's bytes are written under the temporary
name and before the rename (the child sends itself the signal from `atomic_files`' flush), and
one from outside, by its parent, while it writes a dataset.
"""

import os
import signal
import subprocess
import time

import pytest

from helpers import grace_hopper_path, python_command, python_env, stopped_mid_write

CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}

def _leftovers(folder):
    return [os.path.join(root, name) for root, dirs, files in os.walk(folder)
            for name in files + dirs if name.startswith(".tmp-")]


def _stopped_mid_write(argv, tmp_path, signal_name="SIGTERM"):
    return stopped_mid_write(argv, tmp_path, signal_name, env=CPU_ONLY)


def _assert_clean_stop(run, written, folder, status=143, name="SIGTERM"):
    assert written, run.stderr  # the premise: the signal came while a file was half-made
    assert run.returncode == status, (run.returncode, run.stderr[-2000:])
    stops = [line for line in run.stderr.splitlines() if line.startswith("stopped:")]
    assert stops == [f"stopped: {signal.strsignal(signal.Signals[name]).lower()} ({name})"], \
        run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert not _leftovers(folder) and not any(os.path.exists(p) for p in written)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    import shutil

    folder = tmp_path_factory.mktemp("pictures")
    for i in range(3):
        shutil.copy(grace_hopper_path(), folder / f"face_{i}.jpg")
    return folder


def test_adcorre_test_on_a_folder_stopped_mid_write(tiny_file, pictures, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    run, written = _stopped_mid_write(["test", "--weights", tiny_file, "--detector", "none",
                                       "--image", str(pictures), "--csv", str(out / "rows.csv")],
                                      tmp_path)
    _assert_clean_stop(run, written, out)
    assert not (out / "rows.csv").exists()


def test_adcorre_convert_stopped_mid_write(tiny_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    run, written = _stopped_mid_write(["convert", tiny_file, str(out / "copy.h5")], tmp_path)
    _assert_clean_stop(run, written, out)
    assert os.listdir(out) == []


@pytest.mark.parametrize("signal_name, status", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_adcorre_synth_stopped_mid_write(tmp_path, signal_name, status):
    out = tmp_path / "fer"
    run, written = _stopped_mid_write(["synth", "--layout", "fer2013", "--n", "40", "--out",
                                       str(out)], tmp_path, signal_name)
    _assert_clean_stop(run, written, out, status, signal_name)
    assert not (out / "fer2013.csv").exists()  # never part of the CSV: none at all


def test_adcorre_synth_stopped_from_outside_while_writing_pictures(tmp_path):
    """A real `kill` from another process, while the faces are being written."""
    out = tmp_path / "raf"
    child = subprocess.Popen(
        python_command(module="adcorre", argv=["synth", "--layout", "rafdb", "--n", "4000",
                                                "--image-size", "96", "--out", str(out)]),
        cwd=tmp_path, env=python_env(**CPU_ONLY), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    aligned = out / "Image" / "aligned"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and child.poll() is None:
        if aligned.is_dir() and len(os.listdir(aligned)) >= 20:
            break
        time.sleep(0.05)
    assert child.poll() is None, "the writer ended before it could be stopped"
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 143, (child.returncode, stderr[-2000:])
    assert [line for line in stderr.splitlines() if line.startswith("stopped:")] == [
        "stopped: terminated (SIGTERM)"]
    assert "Traceback" not in stderr and not _leftovers(out)
    # The label file is written last and whole: a stopped writer leaves none to read as a
    # smaller dataset.
    assert not (out / "EmoLabel" / "list_patition_label.txt").exists()
