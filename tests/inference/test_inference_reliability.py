"""Careless or hostile input to recognition, export and the CLI: nothing is lost, no traceback (each written to fail
before its fix).
"""

import json
import os
import shutil

import cv2
import numpy as np
import pytest

from adcorre.inference import face_crops
from adcorre.data import pictures
from adcorre.models import weights_io
from adcorre.config import EXPRESSIONS_7
from helpers import grace_hopper_path, run_python
from adcorre.cli import test as test_cli
from adcorre.inference.model_tester import TestModels
from picture_files import write_grey_jpeg, write_grey_png


# ------------------------------------------------------------------------- data loss: export


def test_export_never_deletes_what_it_did_not_write(tester, tiny_file, tmp_path, monkeypatch,
                                                     capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    # The reported case: --out . emptied the current folder.
    assert test_cli.main(["--weights", tiny_file, "--export", "saved_model", "--out", "."]) == 2
    assert "current folder" in capsys.readouterr().err
    assert (work / "notes.txt").read_text() == "mine"

    # A folder that is not an export, even with --overwrite; a user's <out>.json.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileExistsError, match="not empty and not an earlier export.*notes.txt"):
        tester.export(str(work), "saved_model", overwrite=True)
    (tmp_path / "served.json").write_text('{"my": "settings"}')
    with pytest.raises(FileExistsError, match="served.json.*not an export's description"):
        tester.export(str(tmp_path / "served"), "saved_model")
    assert json.loads((tmp_path / "served.json").read_text()) == {"my": "settings"}
    assert sorted(os.listdir(work)) == ["notes.txt"]

    # An earlier export of the same model is replaced; of another model only on purpose.
    (tmp_path / "served.json").unlink()
    out = str(tmp_path / "served")
    tester.export(out, "saved_model")
    tester.export(out, "saved_model")
    assert os.path.isfile(os.path.join(out, "saved_model.pb"))
    other = weights_io.save_model(tester.model, str(tmp_path / "other.h5"), labels=EXPRESSIONS_7)
    assert test_cli.main(["--weights", other, "--export", "saved_model", "--out", out]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert test_cli.main(["--weights", other, "--export", "saved_model", "--out", out,
                   "--overwrite"]) == 0
    assert json.load(open(out + ".json"))["source"] == os.path.abspath(other)
    # A file that an export did not write is never replaced.
    (tmp_path / "model.tflite").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="not an earlier export"):
        tester.export(str(tmp_path / "model.tflite"), "tflite", overwrite=True)
    assert (tmp_path / "model.tflite").read_bytes() == b"precious"


# ------------------------------------------------------ one bad picture must not end a batch


def test_cli_streams_a_folder_and_goes_on_after_bad_pictures(tiny_file, tmp_path, monkeypatch,
                                                             capsys):
    shutil.copy(grace_hopper_path(), tmp_path / "a_grace.jpg")
    cv2.imwrite(str(tmp_path / "b_wide.png"), np.full((1, 5000), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "c_tall.png"), np.full((5000, 1), 90, np.uint8))
    (tmp_path / "d_broken.jpg").write_bytes(b"\xff\xd8\xff" + bytes(20))
    shutil.copy(grace_hopper_path(), tmp_path / "e_grace.jpg")
    printed_before = []
    read = pictures.read_picture

    def spy(source, *args):  # what had been printed when each picture's turn came
        printed_before.append(capsys.readouterr().out)
        return read(source, *args)

    monkeypatch.setattr(pictures, "read_picture", spy)
    # One face crop per model call: each line is out before the next picture is read (the
    # default batches the crops of several pictures, and prints a batch at a time).
    assert test_cli.main(["--weights", tiny_file, "--image", str(tmp_path),
                          "--batch-size", "1"]) == 1
    out = "".join(printed_before) + capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 6 and lines[0].split()[:4] == ["picture", "label", "prob", "box"]
    # Streamed: a picture's line is out before the next picture is read.
    assert "a_grace.jpg" in printed_before[1] and "d_broken.jpg" in printed_before[4]
    # 5000 x 1 and 1 x 5000: no face can fit, so the whole picture is classified.
    for line in lines[2:4]:
        assert line.split()[1] in EXPRESSIONS_7 and "none (whole picture)" in line
    assert "d_broken.jpg" in lines[4] and "error: " in lines[4] and "Traceback" not in out
    assert lines[5].split()[1] in EXPRESSIONS_7

    # JSON lines: one object per picture, errors included (the default batch size).
    monkeypatch.setattr(pictures, "read_picture", read)
    assert test_cli.main(["--weights", tiny_file, "--image", str(tmp_path), "--json"]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [os.path.basename(r["picture"]) for r in rows] == sorted(os.listdir(tmp_path))
    assert ["error" in r for r in rows] == [False, False, False, True, False]


@pytest.mark.parametrize("method", ["blazeface", "haar"])
@pytest.mark.parametrize("shape", [(1, 5000), (5000, 1)])
def test_detector_finds_nothing_in_a_strip_instead_of_crashing(shape, method):
    assert face_crops.FaceDetector(method).detect(np.full(shape + (3,), 90, np.uint8)) == []


@pytest.mark.parametrize("margin", ["-0.5", "-1", "1e6", "nan", "x"])
def test_margin_outside_0_to_2_is_one_usage_error(margin, tiny_file, grace_file, capsys):
    with pytest.raises(SystemExit) as exited:
        test_cli.main(["--weights", tiny_file, "--image", grace_file, f"--margin={margin}"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "margin must be a number from 0 to 2" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def grace_file():
    return grace_hopper_path()


def test_margin_is_checked_by_the_api_too(tiny_file, grace_file):
    face = face_crops.Face(box=(10, 10, 50, 50))
    picture = np.zeros((100, 100, 3), np.uint8)
    for margin in (-0.5, -1, 1e6):
        with pytest.raises(ValueError, match="from 0 to 2"):
            face_crops.crop_face(picture, face, 32, margin=margin)
        with pytest.raises(ValueError, match="from 0 to 2"):
            TestModels(tiny_file, margin=margin)
    for margin in (0, 2):  # the bounds themselves are fine
        assert face_crops.crop_face(picture, face, 32, margin=margin).shape == (32, 32, 3)
    # The checked value is the one used: a margin the check accepts as text crops as its number.
    ramp = np.repeat(np.arange(100, dtype=np.uint8)[None, :, None], 100, axis=0).repeat(3, axis=2)
    np.testing.assert_array_equal(face_crops.crop_face(ramp, face, 32, margin="0.3"),
                                  face_crops.crop_face(ramp, face, 32, margin=0.3))


def test_16_bit_grey_png_is_scaled_on_the_reduced_path(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 65536, (120, 160), dtype=np.uint16)
    deep, flat = str(tmp_path / "deep.png"), str(tmp_path / "flat.png")
    cv2.imwrite(deep, pixels)
    cv2.imwrite(flat, (pixels >> 8).astype(np.uint8))
    # reduce_above under the picture's size takes the reader for pictures over 16 MP.
    for source in (deep, open(deep, "rb").read()):
        reduced = pictures.read_picture(source, reduce_above=4800)
        reference = pictures.read_picture(flat, reduce_above=4800)
        assert reduced.shape == reference.shape == (60, 80, 3)
        assert np.abs(reduced.astype(int) - reference.astype(int)).max() <= 1
        assert 100 < reduced.mean() < 155  # not a white square
    np.testing.assert_array_equal(pictures.read_picture(deep), np.repeat(
        (pixels >> 8).astype(np.uint8)[..., None], 3, axis=2))


def test_bytes_get_the_bomb_guard_and_exif_orientation(tmp_path):
    from PIL import Image

    bomb = open(write_grey_png(str(tmp_path / "bomb.png"), 12000, 12000), "rb").read()
    with pytest.raises(pictures.PictureError, match="12000 x 12000 PNG"):
        pictures.read_picture(bomb)
    pixels = np.random.default_rng(1).integers(0, 256, (60, 40, 3), dtype=np.uint8)
    picture = Image.fromarray(pixels)
    exif = picture.getexif()
    exif[0x0112] = 6
    path = str(tmp_path / "turned.jpg")
    picture.save(path, exif=exif, quality=95)
    from_bytes = pictures.read_picture(open(path, "rb").read())
    assert from_bytes.shape == (40, 60, 3)
    np.testing.assert_array_equal(from_bytes, pictures.read_picture(path))


def test_huge_jpeg_bytes_are_decoded_reduced_in_bounded_memory(tmp_path):
    path = write_grey_jpeg(str(tmp_path / "huge.jpg"), 20000, 20000)
    script = (
        "import resource\nfrom adcorre.data import pictures\n"
        f"data = open({path!r}, 'rb').read()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "image = pictures.read_picture(data)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(image.shape[0], image.shape[1], (after - before) // 1024)\n")
    run = run_python(script, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    height, width, grown_mb = map(int, run.stdout.split())
    assert height * width <= pictures.REDUCE_ABOVE_PIXELS * 1.01 and height == width > 1000
    assert grown_mb < 400  # a full decode takes 1.2 GB


def test_a_folder_given_as_a_picture_is_named_a_folder(tester, tmp_path):
    with pytest.raises(pictures.ImageDecodeError, match="is a folder, not a picture"):
        tester.recognize_fer(str(tmp_path))


def test_a_latin1_file_name_is_read_and_named_in_the_table_and_the_lines(tiny_file, tmp_path):
    """`--image folder/ --csv` stopped with "'utf-8' codec can't encode character '\\udce9'"
    and wrote no CSV; the plain lines went the same way on a UTF-8 stdout."""
    import pandas as pd

    folder = tmp_path / "photos"
    folder.mkdir()
    with open(grace_hopper_path(), "rb") as handle:
        data = handle.read()
    with open(os.path.join(os.fsencode(str(folder)), b"caf\xe9.jpg"), "wb") as out:
        out.write(data)
    table = tmp_path / "faces.csv"
    run = run_python(script="test.py", argv=["--weights", tiny_file, "--image", str(folder),
                                             "--csv", str(table)],
                     env={"CUDA_VISIBLE_DEVICES": "", "PYTHONIOENCODING": "utf-8"})
    assert run.returncode == 0, run.stderr[-3000:]
    rows = pd.read_csv(table, keep_default_na=False)
    assert list(rows["path"]) == [os.path.join(str(folder), "caf\\xe9.jpg")]
    assert rows["error"][0] == "" and rows["label"][0] in EXPRESSIONS_7
    lines = run_python(script="test.py", argv=["--weights", tiny_file, "--image", str(folder)],
                       env={"CUDA_VISIBLE_DEVICES": "", "PYTHONIOENCODING": "utf-8"})
    assert lines.returncode == 0, lines.stderr[-3000:]
    assert "caf\\xe9.jpg" in lines.stdout and "error" not in lines.stdout
