"""What a new user meets first (issue 15, and the training CLI of issue 14).

`python train.py --help` answers before TensorFlow loads, with every option's true default;
bad values are one usage line; the demo of the CLI and of the API are one recipe; commands
start without TensorFlow's noise and name their device in one line; epochs count from 1 in
everything a user reads; a seeded rerun gives the same numbers; a full disk stops a run in
one line; `from test import TestModels` shadowed by Python's own `test` package is said.
"""

import csv
import dataclasses
import errno
import json
import os
import re
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

from adcorre import runtime
from adcorre.cli import train_options
from adcorre.config import RECIPES, SETTING_MINIMUMS, LearningConfig
from helpers import REPO_ROOT, grace_hopper_path, python_env, run_python

CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}
# Child processes of this file start with TF_CPP_MIN_LOG_LEVEL unset (helpers set 3): what a
# user's shell gives, so the quieting under test is the project's own.
USERS_SHELL = {**CPU_ONLY, "TF_CPP_MIN_LOG_LEVEL": ""}
# A tiny run of the demo recipe: 10 steps of 16 faces at 32 px, 2 epochs, every epoch kept.
TINY_RUN = ["--epochs", "2", "--synth-train-size", "160", "--synth-test-size", "40",
            "--batch-size", "16", "--input-size", "32", "--keep-all"]
DEVICE_LINE = re.compile(r"^Device: CPU \(\d+ cores?; no GPU found\), TensorFlow \d+\.\d+")
ABSL_LINE = re.compile(r"^[IWEF]\d{4} ")  # absl's own prefix: I0000, E0000 ...


def _noise_in(stderr):
    """TensorFlow's start-up lines (or any other absl line) found in `stderr`."""
    return [line for line in stderr.splitlines()
            if ABSL_LINE.match(line) or any(m in line for m in runtime.START_UP_NOISE)]


# ----------------------------------------------------------------------- --help and values


def test_help_answers_before_tensorflow_loads():
    # -X importtime lists every module the process imports, on stderr.
    run = subprocess.run([sys.executable, "-X", "importtime", "train.py", "--help"],
                         cwd=REPO_ROOT, env=python_env(**USERS_SHELL), capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if "|" in line}
    assert "adcorre.config" in imported and "adcorre.cli.train_options" in imported
    assert not {"tensorflow", "keras", "numpy"} & imported
    for group in ("data:", "model:", "recipe:", "run:"):
        assert f"\n{group}\n" in run.stdout


def test_every_option_has_help_and_its_true_default(monkeypatch):
    monkeypatch.delenv("FER_DATA_ROOT", raising=False)
    actions = {a.option_strings[-1]: a for a in train_options.build_parser()._actions
               if a.option_strings and a.option_strings[-1] != "--help"}
    for flag, action in actions.items():
        assert action.help and "default" in action.help, flag
        assert "None" not in action.help, flag
    # Recipe-dependent defaults list each recipe's own value.
    for flag, field in (("--epochs", "epochs"), ("--batch-size", "batch_size"),
                        ("--input-size", "input_size"), ("--arch", "arch"),
                        ("--lr-decay-every", "lr_decay_every")):
        help_text = " ".join(actions[flag].help.split())
        for name in RECIPES:
            assert f"{name} {getattr(LearningConfig.from_recipe(name), field)}" in help_text, \
                (flag, name, help_text)
    # Fixed defaults read as the values argparse would use.
    assert "default: 0" in actions["--seed"].help and actions["--seed"].default == 0
    assert "default: 200" in actions["--backup-every"].help
    data_dir = " ".join(actions["--data-dir"].help.split())
    assert os.path.join(".", "data", "<dataset>") in data_dir


def test_data_dir_help_follows_fer_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("FER_DATA_ROOT", str(tmp_path))
    parser = train_options.build_parser()
    action = next(a for a in parser._actions if "--data-dir" in a.option_strings)
    assert os.path.join(str(tmp_path), "<dataset>") in " ".join(action.help.split())


@pytest.mark.parametrize("flag, value, expected", [
    ("--epochs", "0", "an integer >= 1"),
    ("--epochs", "-1", "an integer >= 1"),
    ("--input-size", "0", "an integer >= 1"),
    ("--input-size", "-5", "an integer >= 1"),
    ("--steps-per-epoch", "0", "an integer >= 1"),
    ("--batch-size", "1", "an integer >= 2 (FD, MD and ED compare the samples of a batch)"),
    ("--batch-size", "ten", "an integer >= 2"),
    ("--lr", "0", "a number > 0"),
    ("--lr", "nan", "a number > 0"),
    ("--lr-decay", "-1e-5", "a number >= 0"),
    ("--ce-weight", "inf", "a number >= 0"),
    ("--seed", "-3", "an integer >= 0"),
    ("--attention-window", "0", "an integer >= 1"),
    ("--backup-every", "-1", "an integer >= 0"),
    ("--synth-train-size", "0", "an integer >= 1"),
])
def test_bad_numbers_are_refused_not_replaced(flag, value, expected, capsys):
    with pytest.raises(SystemExit) as exited:
        train_options.parse_args([f"{flag}={value}"])
    assert exited.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1, errors
    assert f"train.py: error: argument {flag}: expected {expected}" in errors[0]
    assert errors[0].endswith(f"got {value!r}")


@pytest.mark.parametrize("field, minimum", sorted(SETTING_MINIMUMS.items()))
def test_the_api_refuses_what_the_cli_refuses(field, minimum, capsys):
    flag = "--" + field.replace("_", "-")
    with pytest.raises(SystemExit):
        train_options.parse_args([f"{flag}={minimum - 1}"])
    assert f"expected an integer >= {minimum}" in capsys.readouterr().err
    with pytest.raises(ValueError, match=f"{field} must be .*an integer >= {minimum}, got"):
        LearningConfig(**{field: minimum - 1})
    with pytest.raises(ValueError, match=f"{field} must be"):
        LearningConfig(**{field: minimum + 0.5})  # a whole number, as the CLI's int()
    assert getattr(LearningConfig(**{field: minimum + 2}), field) == minimum + 2


@pytest.mark.parametrize("field, value", [("lr_decay", -1e-5), ("ce_weight", -1.0),
                                          ("learning_rate", 0.0), ("ce_weight", float("nan"))])
def test_the_api_refuses_the_rates_the_cli_refuses(field, value):
    with pytest.raises(ValueError, match=f"{field} must be"):
        LearningConfig(**{field: value})


def test_bad_values_in_a_real_command_are_two_lines_and_status_2(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    for argv, said in ((["--epochs", "0"], "argument --epochs"),
                       (["--batch-size", "1"], "argument --batch-size"),
                       (["--save-dir", afile / "run"], "is a file, not a folder"),
                       (["--save-dir", afile], "is a file, not a folder")):
        run = run_python(script="train.py", argv=argv, env=USERS_SHELL, timeout=120)
        assert run.returncode == 2, (argv, run.stderr)
        lines = run.stderr.splitlines()
        assert len(lines) == 2 and lines[0].startswith("usage: train.py [options]"), lines
        assert said in lines[1] and "Traceback" not in run.stderr


def test_an_unwritable_save_dir_is_refused(monkeypatch, tmp_path, capsys):
    # Permissions do not bind root, so the refusal a user gets is made here by the check's
    # own probe: creating a file in the folder fails as it would without write permission.
    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(train_options.tempfile, "TemporaryFile", refused)
    with pytest.raises(SystemExit) as exited:
        train_options.parse_args(["--save-dir", str(tmp_path / "new" / "run")])
    assert exited.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert f"cannot write in {tmp_path} (Permission denied)" in error


# --------------------------------------------------------------- the demo: CLI and API agree


def test_cli_and_api_demo_are_one_recipe(monkeypatch):
    from adcorre.cli import train as train_cli
    from adcorre.training.train_model import TrainModel

    configs = []
    monkeypatch.setattr(TrainModel, "train",
                        lambda self, arch=None, weight_path=None: configs.append((self.config,
                                                                                  arch)))
    assert train_cli.main([]) == 0
    cli, arch = configs[0]
    api = TrainModel(dataset_name="synth").config
    assert dataclasses.asdict(cli) == dataclasses.asdict(api)
    assert arch is None  # train(arch=None) takes the recipe's
    assert (api.recipe, api.arch, api.weights, api.input_size, api.epochs, api.batch_size) == (
        "synth_demo", "tiny", None, 48, 8, 25)


# ------------------------------------------------- a tiny real run: what the user reads of it


@pytest.fixture(scope="module")
def two_tiny_runs(tmp_path_factory):
    """The same seeded tiny CLI run twice, in fresh processes: (save_dir, process) each."""
    runs = []
    for name in ("first", "second"):
        save_dir = tmp_path_factory.mktemp(name) / "run"
        run = run_python(script="train.py", argv=[*TINY_RUN, "--save-dir", save_dir],
                         env=USERS_SHELL, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        runs.append((save_dir, run))
    return runs


def test_start_is_quiet_and_names_the_device_once(two_tiny_runs):
    _, run = two_tiny_runs[0]
    assert _noise_in(run.stderr) == []
    devices = [line for line in run.stderr.splitlines() if line.startswith("Device:")]
    assert len(devices) == 1 and DEVICE_LINE.match(devices[0]), run.stderr[-2000:]


def test_epochs_count_from_one_everywhere(two_tiny_runs):
    from adcorre.models import weights_io

    save_dir, run = two_tiny_runs[0]
    with open(save_dir / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    files = sorted(name for name in os.listdir(save_dir) if name.endswith(".h5"))
    expected = [f"synth_{row['epoch']}_AC_{float(row['test_accuracy']):.4f}.h5" for row in rows]
    assert files == sorted(expected)
    for name in files:
        stem = name[:-3]
        assert os.path.exists(save_dir / f"{stem}.txt") and os.path.exists(save_dir / f"{stem}.png")
        _, info = weights_io.load_model(str(save_dir / name))
        assert info.metadata["extra"]["epoch"] == int(name.split("_")[1])
    state = json.loads((save_dir / "training_state.json").read_text())
    assert [h["epoch"] for h in state["history"]] == [1, 2]
    assert os.path.basename(state["best_path"]).startswith(f"synth_{state['best_epoch']}_AC_")
    printed = re.findall(r"^epoch (\d+): test accuracy", run.stdout, re.M)
    assert printed == ["1", "2"]
    assert _tensorboard_steps(save_dir / "tensorboard", "epoch_test_accuracy") == [1, 2]


def test_the_best_model_is_one_line(two_tiny_runs):
    save_dir, run = two_tiny_runs[0]
    state = json.loads((save_dir / "training_state.json").read_text())
    lines = [line for line in run.stdout.splitlines() if state["best_path"] in line]
    assert len(lines) == 1 and lines[0].startswith(f"Best model: {state['best_path']} ")
    assert f"epoch {state['best_epoch']})" in lines[0]
    assert "Saved model" not in run.stdout


def test_a_seeded_rerun_gives_the_same_numbers(two_tiny_runs):
    from adcorre.models import weights_io

    (first, _), (second, _) = two_tiny_runs
    assert (first / "log.csv").read_text() == (second / "log.csv").read_text()
    for name in sorted(n for n in os.listdir(first) if n.endswith(".h5")):
        one, _ = weights_io.load_model(str(first / name))
        two, _ = weights_io.load_model(str(second / name))  # same name: same accuracy
        for a, b in zip(one.get_weights(), two.get_weights()):
            np.testing.assert_array_equal(a, b)


def _tensorboard_steps(folder, tag):
    import tensorflow as tf

    steps = []
    for root, _, names in os.walk(folder):
        for name in names:
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                steps += [event.step for value in event.summary.value if value.tag == tag]
    return sorted(steps)


# ------------------------------------------------------------------- a run that cannot go on


def _tiny_argv(save_dir):
    return ["--epochs", "1", "--synth-train-size", "64", "--synth-test-size", "16",
            "--batch-size", "16", "--input-size", "32", "--save-dir", str(save_dir)]


def test_a_full_disk_stops_the_run_in_one_line(monkeypatch, tmp_path, capsys):
    from adcorre.cli import train as train_cli
    from adcorre.models import weights_io

    def disk_full(model, path, **kwargs):
        # What h5py raises when the disk fills while it writes (its message runs over lines).
        raise OSError(errno.ENOSPC, "Can't close file (file write failed: time = Mon\n, "
                                    "error message = 'No space left on device')")

    monkeypatch.setattr(weights_io, "save_model", disk_full)
    assert train_cli.main(_tiny_argv(tmp_path / "run")) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("error: the run stopped: [Errno 28]")
    assert "No space left on device" in errors[0]


def test_a_bug_still_shows_its_traceback(monkeypatch, tmp_path):
    from adcorre.cli import train as train_cli
    from adcorre.models import weights_io

    def bug(model, path, **kwargs):
        raise TypeError("a bug in the code, not the user's doing")

    monkeypatch.setattr(weights_io, "save_model", bug)
    with pytest.raises(TypeError, match="a bug in the code"):
        train_cli.main(_tiny_argv(tmp_path / "run"))


# ------------------------------------------------------------- the other commands start quiet


def test_test_py_is_quiet_and_names_the_device(tiny_file):
    run = run_python(script="test.py", argv=["--weights", tiny_file, "--image",
                                             grace_hopper_path()], env=USERS_SHELL, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "grace_hopper.jpg" in run.stdout
    assert _noise_in(run.stderr) == []
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and DEVICE_LINE.match(lines[0]), lines


def test_convert_command_is_quiet_and_the_users_log_level_wins(tiny_file, tmp_path):
    argv = ["convert", tiny_file, tmp_path / "converted.h5"]
    quiet = run_python(module="adcorre", argv=argv, env=USERS_SHELL, timeout=300)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert quiet.stderr == ""
    # The user's own TF_CPP_MIN_LOG_LEVEL: nothing set, nothing removed.
    loud = run_python(module="adcorre", argv=[*argv[:-1], tmp_path / "again.h5"],
                      env={**CPU_ONLY, "TF_CPP_MIN_LOG_LEVEL": "0"}, timeout=300)
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert _noise_in(loud.stderr), loud.stderr[-2000:]


def test_the_filter_removes_only_the_known_lines(monkeypatch, capfd):
    monkeypatch.setitem(runtime._state, "quieting", True)
    with runtime._start_up_noise_removed():
        os.write(2, b"I0000 00:00:1 port.cc:153] oneDNN custom operations are on. You may\n")
        os.write(2, b"a line of the user's\n")
        os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n")
        os.write(2, b"and another, after\n")
    assert capfd.readouterr().err == "a line of the user's\nand another, after\n"


def test_device_line_names_gpus_or_why_not(monkeypatch):
    import tensorflow as tf

    monkeypatch.setitem(runtime._state, "gpus", [("NVIDIA H100 80GB HBM3", None)] * 2)
    assert runtime.device_line() == (f"Device: 2 GPUs (NVIDIA H100 80GB HBM3 x2), "
                                     f"TensorFlow {tf.__version__}")
    assert re.match(r"Device: CPU \(\d+ cores?; GPU not used\)", runtime.device_line(False))
    monkeypatch.setitem(runtime._state, "gpus", [])
    assert DEVICE_LINE.match(runtime.device_line())


# ---------------------------------------------------- `from test import TestModels` elsewhere


def _stdlib_test_package():
    path = os.path.join(sysconfig.get_paths()["stdlib"], "test", "__init__.py")
    if not os.path.isfile(path):
        pytest.skip("this Python has no standard-library `test` package to collide with")
    return path


def test_a_shadowed_test_module_is_said_with_the_fixes(tmp_path):
    stdlib_test = _stdlib_test_package()
    code = f"""
import sys
sys.path.append({REPO_ROOT!r})      # the checkout after the standard library
import config                        # an official name: a face of the package
try:
    from test import TestModels
except ImportError as error:
    print("IMPORT ERROR", error)
import adcorre                       # the collision-free name
print("PACKAGE", adcorre.TestModels.__module__)
"""
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                         env=python_env(PYTHONPATH="", **USERS_SHELL), capture_output=True,
                         text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "IMPORT ERROR cannot import name 'TestModels' from 'test'" in run.stdout
    assert "PACKAGE adcorre.inference.model_tester" in run.stdout
    warnings = [line for line in run.stderr.splitlines() if "ShadowedTestModuleWarning" in line]
    assert len(warnings) == 1, run.stderr[-3000:]
    said = warnings[0]
    assert os.path.dirname(stdlib_test) in said and REPO_ROOT in said
    for fix in ("from adcorre import TestModels", "run from the checkout's root",
                f"sys.path.insert(0, {REPO_ROOT!r})"):
        assert fix in said


def test_the_package_alone_never_warns_of_the_shadowed_test_module(tmp_path):
    """`adcorre` is collision-free: importing it from anywhere says nothing of `test`."""
    _stdlib_test_package()
    code = """
import warnings
warnings.simplefilter("error")
import adcorre, adcorre.config
print("QUIET")
"""
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                         env=python_env(PYTHONPATH="", **USERS_SHELL), capture_output=True,
                         text=True, timeout=120, check=False)
    assert "QUIET" in run.stdout, run.stderr[-3000:]


def test_no_warning_when_ours_comes_first(tmp_path):
    _stdlib_test_package()
    code = f"""
import sys, warnings
sys.path.insert(0, {REPO_ROOT!r})
warnings.simplefilter("error")      # any warning fails the import
import config
print("SHADOWED", config.shadowing_test_package())
"""
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                         env=python_env(PYTHONPATH="", **USERS_SHELL), capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "SHADOWED None" in run.stdout
