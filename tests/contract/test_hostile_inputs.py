"""A hostile user's run through the situations of issue 31 ("Nothing silent"), on the command
line as a user meets them: every lying input ends in one clear line (an error naming what was
expected, or a note), or in a skip that is warned of and counted; never a traceback, never a
figure that is silently wrong, never a file left behind.

Each situation is one case of `CASES`: it prepares its input under a temporary folder, runs the
command (`adcorre test ...` in this process, through the CLI's own `main`, or a child process
where a signal or a second process is part of the situation) and says what must be seen. The
layer tests prove each behaviour in detail (docs/reliability.md names them); this module holds
the promise across them.
"""

import csv
import json
import os
import shutil
import warnings

import pytest

from adcorre.data import synth_faces
from helpers import grace_hopper_path, stopped_mid_write

SIZE = 32


def _leftovers(folder):
    """Temporary files (`.tmp-*`) anywhere under `folder`."""
    return [os.path.join(root, name) for root, dirs, files in os.walk(folder)
            for name in files + dirs if name.startswith(".tmp-")]


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def _write_rows(path, rows):
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)


@pytest.fixture(scope="module")
def datasets_written(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    return {layout: synth_faces.write_dataset(str(root / layout), layout, n=40, image_size=SIZE,
                                              seed=9)
            for layout in ("rafdb", "affectnet", "fer2013")}


def _adcorre_test(argv, capsys):
    """`adcorre test ARGV` in this process: `(status, stdout, stderr, warnings)`."""
    from adcorre.cli import test as test_cli

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = test_cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err, [str(w.message) for w in caught]


def _one_error_line(status, err, *words):
    assert status == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    for word in words:
        assert word in errors[0], errors[0]


# ------------------------------------------------------------------------------ label files


def test_an_image_listed_twice_with_two_labels(datasets_written, tiny_file, tmp_path, capsys):
    data = shutil.copytree(datasets_written["rafdb"], tmp_path / "rafdb")
    labels = data / "EmoLabel" / "list_patition_label.txt"
    name, code = labels.read_text().splitlines()[0].split()
    with open(labels, "a") as handle:
        handle.write(f"{name} {1 + int(code) % 7}\n")
    status, _, err, _ = _adcorre_test(["--weights", tiny_file, "--dataset", "rafdb",
                                       "--data-dir", str(data), "--split", "train"], capsys)
    _one_error_line(status, err, str(labels), name, "line 1", "listed twice")


def test_a_fer2013_pixel_that_is_not_an_integer(datasets_written, tiny_file, tmp_path, capsys):
    data = shutil.copytree(datasets_written["fer2013"], tmp_path / "fer2013")
    rows = _rows(data / "fer2013.csv")
    pixels = rows[-1][1].split()
    pixels[7] = "12.5"
    rows[-1][1] = " ".join(pixels)
    _write_rows(data / "fer2013.csv", rows)
    status, _, err, _ = _adcorre_test(["--weights", tiny_file, "--dataset", "fer2013",
                                       "--data-dir", str(data)], capsys)
    _one_error_line(status, err, "fer2013.csv", f"line {len(rows)}", "'12.5'",
                    "an integer 0..255")


def test_an_affectnet_box_outside_its_picture_is_skipped_and_counted(datasets_written, tiny_file,
                                                                    tmp_path, capsys):
    data = shutil.copytree(datasets_written["affectnet"], tmp_path / "affectnet")
    argv = ["--weights", tiny_file, "--dataset", "affectnet", "--data-dir", str(data), "--json"]
    status, out, err, _ = _adcorre_test(argv, capsys)
    assert status == 0, err
    honest = json.loads(out)
    rows = _rows(data / "validation.csv")
    rows[1][1] = "4000"  # the face box far right of its picture
    _write_rows(data / "validation.csv", rows)
    status, out, err, said = _adcorre_test(argv, capsys)
    assert status == 0 and "Traceback" not in err, err
    summary = json.loads(out)
    assert summary["skipped_images"] == honest["skipped_images"] + 1 == 1
    assert summary["num_samples"] == honest["num_samples"] - 1
    assert [line for line in said if "whose face box in" in line and "line 2" in line]


def test_rafdb_box_files_skipped_are_counted_by_the_evaluation(tiny_file, tmp_path, capsys):
    data = synth_faces.write_dataset(str(tmp_path / "raf"), "rafdb", n=40, image_size=SIZE,
                                     seed=9, aligned=False)
    os.remove(os.path.join(data, "Annotation", "boundingbox", "test_0001_boundingbox.txt"))
    status, out, err, _ = _adcorre_test(["--weights", tiny_file, "--dataset", "rafdb",
                                         "--data-dir", data, "--json"], capsys)
    assert status == 0 and json.loads(out)["skipped_images"] == 1, err


# ---------------------------------------------------------------------------- model files


def test_a_model_read_on_assumed_labels_says_so_on_the_command_line(fer_model, capsys):
    status, out, err, _ = _adcorre_test(["--weights", fer_model, "--image",
                                         grace_hopper_path()], capsys)
    assert status == 0 and "class_" in out
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "does not say how to read it" in notes[0]


# ------------------------------------------------------------------------------- stops


def test_a_stop_mid_write_leaves_no_temporary_file(tiny_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    run, written = stopped_mid_write(["convert", tiny_file, str(out / "copy.h5")], tmp_path,
                                     env={"CUDA_VISIBLE_DEVICES": ""})
    assert written and run.returncode == 143 and "Traceback" not in run.stderr, run.stderr
    assert [line for line in run.stderr.splitlines() if line.startswith("stopped:")] == [
        "stopped: terminated (SIGTERM)"]
    assert os.listdir(out) == [] and not _leftovers(tmp_path)


# ------------------------------------------------------------------------------- exports


@pytest.fixture(scope="module")
def tflite_export(tiny_file, tmp_path_factory):
    from adcorre.inference.test_models import TestModels

    folder = tmp_path_factory.mktemp("export")
    return TestModels(tiny_file, verbose=False).export(str(folder / "tiny.tflite"), "tflite")


@pytest.mark.parametrize("input_range", [["low", "high"], [1, 0]])
def test_an_export_whose_description_lies_about_its_input_range(tflite_export, tmp_path, capsys,
                                                                input_range):
    lying = tmp_path / "lying.tflite"
    shutil.copy(tflite_export, lying)
    with open(tflite_export + ".json") as handle:
        described = json.load(handle)
    (tmp_path / "lying.tflite.json").write_text(json.dumps({**described,
                                                            "input_range": input_range}))
    status, out, err, _ = _adcorre_test(["--weights", str(lying), "--image",
                                         grace_hopper_path()], capsys)
    _one_error_line(status, err, "lying.tflite.json", "'input_range'", "low < high")
    assert out == ""  # no figure


@pytest.mark.parametrize("case", ["two inputs", "integer input"])
def test_an_onnx_model_the_tester_cannot_feed(tmp_path, capsys, case):
    from onnx_files import onnx_classifier

    integer = pytest.importorskip("onnx").TensorProto.UINT8 if case == "integer input" else None
    path, _ = onnx_classifier(tmp_path / "odd.onnx", ["N", 32, 32, 3], layout="NHWC",
                              input_type=integer, second_input=case == "two inputs")
    status, out, err, _ = _adcorre_test(["--weights", path, "--image", grace_hopper_path()],
                                        capsys)
    _one_error_line(status, err, "odd.onnx", "the tester can give one float32 input of pictures")
    assert out == ""
