"""SynthFER generator: determinism, labels, expression signal, on-disk formats, CLI."""

import csv
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

import config
import synth_faces

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_generate_shapes_and_types():
    images, labels = synth_faces.generate(12, image_size=40, seed=1)
    assert images.shape == (12, 40, 40, 3) and images.dtype == np.uint8
    assert labels.shape == (12,) and labels.dtype == np.int32
    assert labels.min() >= 0 and labels.max() <= 6
    # Not blank: real drawings have many distinct values in every channel.
    assert all(len(np.unique(images[i, :, :, c])) > 20 for i in range(12) for c in range(3))


def test_generate_is_deterministic_by_seed():
    a_images, a_labels = synth_faces.generate(6, image_size=48, seed=7)
    b_images, b_labels = synth_faces.generate(6, image_size=48, seed=7)
    c_images, c_labels = synth_faces.generate(6, image_size=48, seed=8)
    np.testing.assert_array_equal(a_images, b_images)
    np.testing.assert_array_equal(a_labels, b_labels)
    assert not np.array_equal(a_images, c_images)


def test_labels_do_not_depend_on_image_size():
    _, small = synth_faces.generate(30, image_size=24, seed=3)
    _, large = synth_faces.generate(30, image_size=64, seed=3)
    np.testing.assert_array_equal(small, large)


def test_class_prior_follows_rafdb_imbalance():
    _, labels = synth_faces.generate(600, image_size=24, seed=0)
    freq = np.bincount(labels, minlength=7) / len(labels)
    # RAF-DB basic counts, canonical order, computed independently of the module.
    rafdb = np.array([3204, 5957, 2460, 1619, 355, 877, 867]) / 15339
    np.testing.assert_allclose(freq, rafdb, atol=0.05)
    assert freq.argmax() == 1  # Happy most frequent
    assert freq[4] < 0.06  # Fear rare


def test_explicit_labels_and_uniform_prior():
    images, labels = synth_faces.generate(7, image_size=32, seed=0, labels=np.arange(7))
    np.testing.assert_array_equal(labels, np.arange(7))
    _, uniform = synth_faces.generate(700, image_size=24, seed=0, class_prior=np.ones(7))
    assert np.bincount(uniform, minlength=7).min() > 60
    with pytest.raises(ValueError, match="class_prior"):
        synth_faces.generate(3, image_size=32, class_prior=[1, 2])
    with pytest.raises(ValueError, match="labels"):
        synth_faces.generate(2, image_size=32, labels=[0, 9])


def test_expression_changes_the_face_only():
    # With one seed and an explicit label, person, pose and nuisances are identical
    # across classes: the pixels that change must lie on the face, and every class
    # must differ from neutral.
    size = 96
    faces = np.stack([synth_faces.generate(1, size, seed=11, labels=[c])[0][0]
                      for c in range(7)]).astype(np.int32)
    for c in range(1, 7):
        diff = np.abs(faces[c] - faces[0]).sum(-1) > 30
        assert diff.sum() > 0.004 * size * size, f"class {c} barely differs from neutral"
        ys, xs = np.nonzero(diff)
        # The changed pixels sit in a compact region (the face), not all over the background.
        assert (ys.max() - ys.min()) < 0.85 * size and (xs.max() - xs.min()) < 0.85 * size
    # Classes differ from each other too.
    for a in range(1, 7):
        for b in range(a + 1, 7):
            assert np.abs(faces[a] - faces[b]).sum(-1).max() > 30


def test_bad_arguments():
    with pytest.raises(ValueError, match="image_size"):
        synth_faces.generate(2, image_size=8)
    with pytest.raises(ValueError, match="layout"):
        synth_faces.write_dataset("/tmp/never", layout="imagenet", n=2)


def test_rafdb_file_format(tmp_path):
    synth_faces.write_dataset(str(tmp_path), layout="rafdb", n=10, image_size=32, seed=2)
    _, labels = synth_faces.generate(10, 32, seed=2)
    lines = (tmp_path / "EmoLabel" / "list_patition_label.txt").read_text().splitlines()
    assert len(lines) == 10
    raf_names = {1: 3, 2: 4, 3: 5, 4: 1, 5: 2, 6: 6, 7: 0}  # RAF-DB code -> canonical (DESIGN.md)
    for i, line in enumerate(lines):
        match = re.fullmatch(r"(train_\d{5}|test_\d{4})\.jpg ([1-7])", line)
        assert match, line
        assert raf_names[int(match.group(2))] == labels[i]
        image = cv2.imread(str(tmp_path / "Image" / "aligned" / f"{match.group(1)}_aligned.jpg"))
        assert image.shape == (32, 32, 3)


def test_fer_csv_formats(tmp_path):
    synth_faces.write_dataset(str(tmp_path), layout="ferplus", n=12, seed=4, test_fraction=0.5)
    with open(tmp_path / "fer2013.csv", newline="") as f:
        fer = list(csv.DictReader(f))
    with open(tmp_path / "fer2013new.csv", newline="") as f:
        plus = list(csv.DictReader(f))
    assert len(fer) == len(plus) == 12 + 3 * 5  # 5 rule-testing extras per usage group
    for row in fer:
        assert len(row["pixels"].split()) == 48 * 48
        assert row["Usage"] in ("Training", "PublicTest", "PrivateTest")
    for fer_row, plus_row in zip(fer, plus):
        assert fer_row["Usage"] == plus_row["Usage"]
        votes = [int(plus_row[c]) for c in config.FERPLUS_VOTE_COLUMNS]
        assert sum(votes) == 10 and min(votes) >= 0
    usages = [row["Usage"] for row in fer]
    assert usages.count("Training") == 6 + 5


def test_affectnet_csv_format(tmp_path):
    synth_faces.write_dataset(str(tmp_path), layout="affectnet", n=10, image_size=40, seed=1)
    with open(tmp_path / "training.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["subDirectory_filePath", "face_x", "face_y", "face_width",
                             "face_height", "facial_landmarks", "expression", "valence", "arousal"]
    codes = [int(r["expression"]) for r in rows]
    assert codes[-3:] == [8, 9, 10] and 7 in codes
    for r in rows:
        photo = cv2.imread(str(tmp_path / "Manually_Annotated_Images" / r["subDirectory_filePath"]))
        x, y, w, h = (int(r[k]) for k in ("face_x", "face_y", "face_width", "face_height"))
        assert w == h == 40 and x + w <= photo.shape[1] and y + h <= photo.shape[0]
        assert len(r["facial_landmarks"].split(";")) == 136


def test_cli_writes_dataset_and_preview(tmp_path):
    preview = tmp_path / "sheet.png"
    out = tmp_path / "folder"
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "synth_faces.py"), "--layout", "folder", "--out",
         str(out), "--n", "14", "--image-size", "32", "--preview", str(preview), "--per-class", "3"],
        capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    sheet = cv2.imread(str(preview))
    assert sheet.shape[0] == 7 * 32  # one row per class
    files = [f for _, _, fs in os.walk(out) for f in fs]
    assert len(files) == 14
